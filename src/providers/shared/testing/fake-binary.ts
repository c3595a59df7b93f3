/** Stand-in VMM binaries for contract tests: an executable shell script that runs a Node module with a fixed environment. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes `<dir>/<name>`, which runs `module` (a path) under this Node with `env` and its own arguments; returns its path. */
export function writeNodeProgram(dir: string, name: string, module: string, env: Record<string, string>): string {
  const path = join(dir, name);
  const exports = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join('');
  writeFileSync(path, `#!/bin/sh\n${exports}exec ${shellQuote(process.execPath)} ${shellQuote(module)} "$@"\n`, { mode: 0o755 });
  return path;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
