// Checks that every program in scripts/host-programs.json is on PATH and names the Debian package of
// each missing one. Exit 0 when all are there, 1 otherwise. Run by scripts/setup.sh after it
// installed the packages, so a package list that lacks a program fails set-up, not a test later.
//   node scripts/check-host-programs.mjs [--for daemon,guest,tests,bench]
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const listPath = join(dirname(fileURLToPath(import.meta.url)), 'host-programs.json');
const { programs } = JSON.parse(readFileSync(listPath, 'utf8'));
const forArg = process.argv.indexOf('--for');
const wanted = forArg > 0 ? new Set(process.argv[forArg + 1].split(',')) : undefined;

/** The first executable `name` on PATH (plus the sbin dirs a root shell has), or undefined. */
export function which(name, path = process.env.PATH ?? '') {
  for (const dir of [...path.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const missing = programs.filter((p) => (!wanted || wanted.has(p.for)) && !which(p.program));
for (const p of missing) console.error(`missing program ${p.program} (Debian package ${p.package}; needed by ${p.for}: ${p.why})`);
if (missing.length > 0) {
  console.error(`install them with: apt-get install ${[...new Set(missing.map((p) => p.package))].join(' ')}`);
  process.exit(1);
}
