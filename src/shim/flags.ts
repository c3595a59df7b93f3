/** The shim binary's command line, as containerd 1.6 writes it (Go's flag package syntax). */

export interface Flags {
  namespace?: string;
  address?: string;
  id?: string;
  bundle?: string;
  command?: string;
}

/** Go's flag syntax: -name value, -name=value, --name value; booleans (-debug, -v) take no value. */
export function parseFlags(argv: readonly string[]): Flags {
  const flags: Flags & Record<string, string | undefined> = {};
  const withValue = new Set(['namespace', 'address', 'publish-binary', 'id', 'bundle', 'socket']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) {
      if (flags.command !== undefined) throw new Error(`unexpected argument "${arg}"`);
      flags.command = arg;
      continue;
    }
    const [name, inline] = arg.replace(/^--?/, '').split(/=(.*)/s, 2) as [string, string | undefined];
    if (!withValue.has(name)) {
      if (name === 'debug' || name === 'v') continue;
      throw new Error(`unknown flag -${name}`);
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`flag -${name} needs a value`);
    flags[name === 'publish-binary' ? 'publishBinary' : name] = value;
  }
  return flags;
}

