/**
 * Command-line parsing for the benches: `--flag value` and `--flag=value`, `--help`/`-h`, and
 * integer range checks. Errors print one line on stderr and exit 2.
 */

/** `--flag=value` → [`--flag`, `value`] (split at the first `=`); anything else → [arg, undefined]. */
export function splitFlag(arg: string): [flag: string, inline: string | undefined] {
  const eq = arg.indexOf('=');
  return eq < 0 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
}

export interface FlagSpec {
  /** Printed on stdout for `--help`/`-h` (then exit 0). */
  usage: string;
  /** Also print the usage (on stdout) after `unknown argument: ...`. */
  usageOnUnknown?: boolean;
  /** A handler per flag name (list aliases separately); `value()` is the inline value or else the next argument. */
  flags: Record<string, (value: () => string | undefined) => void>;
}

/** Calls the handler of each flag in `argv`, in order; exits on `--help` and on unknown arguments. */
export function parseFlags(argv: readonly string[], spec: FlagSpec): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = splitFlag(arg);
    const handler = Object.hasOwn(spec.flags, flag) ? spec.flags[flag] : undefined;
    if (handler) handler(() => inline ?? argv[++i]);
    else if (flag === '--help' || flag === '-h') {
      console.log(spec.usage);
      process.exit(0);
    } else {
      console.error(`unknown argument: ${arg}`);
      if (spec.usageOnUnknown) console.log(spec.usage);
      process.exit(2);
    }
  }
}

/** `value` as an integer from `min` to `max`; otherwise prints `NAME must be an integer from MIN to MAX` and exits 2. */
export function intInRange(name: string, value: string | number | undefined, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`${name} must be an integer from ${min} to ${max}`);
    process.exit(2);
  }
  return n;
}
