// Compiles the agent's exec helper (src/agent/exec-helper*.c) into dist/agent/exec-helper, next to
// the agent bundle; the guest system image ships both in /agent. Static, so it runs in any
// workload's container whatever libc the image has (or none), and stripped, so the same source and
// compiler give the same bytes (the file is an input of the system image's cache key).
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = ['exec-helper.c', 'exec-helper-restore.c'].map((file) => join(root, 'src/agent', file));
const output = join(root, 'dist/agent/exec-helper');
const tmp = `${output}.tmp-${process.pid}`;
mkdirSync(dirname(output), { recursive: true });
try {
  execFileSync('gcc', ['-static', '-Os', '-s', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-o', tmp, ...sources], { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(tmp, output);
} catch (err) {
  rmSync(tmp, { force: true });
  console.error(`build-exec-helper: gcc failed (install gcc and libc6-dev: apt-get install gcc libc6-dev): ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
console.log(`build-exec-helper: ${output} ${statSync(output).size} bytes`);
