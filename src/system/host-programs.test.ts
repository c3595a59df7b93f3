/**
 * The host-program list (scripts/host-programs.json) is what set-up installs. These tests keep it
 * honest: every listed program is on PATH (else the failure names it and its Debian package), each
 * comes from the package the list says, and every program the sources run is listed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

interface HostProgram {
  program: string;
  package: string;
  for: 'daemon' | 'guest' | 'tests' | 'bench';
  why: string;
}

const list = JSON.parse(readFileSync(join(repoRoot, 'scripts', 'host-programs.json'), 'utf8')) as { programs: HostProgram[] };

function which(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', 'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1"', 'sh', name], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * The Debian package that owns `path`: the path itself (gcc's /usr/bin/gcc is the gcc package's
 * link to gcc-12's compiler), else what it resolves to (dpkg records /bin and /sbin paths on
 * merged-/usr hosts).
 */
function owningPackage(path: string): string | undefined {
  const real = realpathSync(path);
  for (const candidate of [path, real, real.replace(/^\/usr(?=\/s?bin\/)/, '')]) {
    const r = spawnSync('dpkg', ['-S', candidate], { encoding: 'utf8' });
    if (r.status === 0) return r.stdout.split(':')[0]!.trim();
  }
  return undefined;
}

test('every program set-up installs is on PATH (a failure names the program and its Debian package)', () => {
  const missing = list.programs.filter((p) => which(p.program) === undefined).map((p) => `${p.program} (apt-get install ${p.package}; needed by ${p.for}: ${p.why})`);
  assert.deepEqual(missing, [], `missing host programs: ${missing.join(', ')}; run scripts/setup.sh`);
});

test('each listed program comes from the Debian package the list names', () => {
  const wrong: string[] = [];
  for (const p of list.programs) {
    const path = which(p.program);
    if (path === undefined) continue; // reported by the test above
    const owner = owningPackage(path);
    if (owner !== p.package) wrong.push(`${p.program}: listed as ${p.package}, but ${path} belongs to ${owner ?? 'no package'}`);
  }
  assert.deepEqual(wrong, []);
});

/**
 * Source files that run programs on the host. The agent's own modules run inside the guest, on the
 * guest's busybox; its tests and their helpers run on the host, so they are searched too.
 */
function hostSources(dir: string, out: string[] = [], guestDir = false): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!['node_modules', 'dist'].includes(entry.name)) hostSources(path, out, guestDir || entry.name === 'agent');
    } else if (/\.(ts|mjs)$/.test(entry.name) && (!guestDir || /(\.test|^test-helpers)\.ts$/.test(entry.name))) out.push(path);
  }
  return out;
}

/**
 * Calls that start a program named by a string literal: the command module, node's child_process
 * functions, and the network room's command runner (`run('nft', …)`).
 */
const CALL = /\b(?:runCommand|spawn|spawnSync|execFile|execFileSync|run)\(\s*'([^']+)'/g;
/** `run(` is also a lock's method; its keys are not programs. */
const NOT_PROGRAMS = new Set(['host', 'k', 'e']);

test('every program the sources run is in scripts/host-programs.json', () => {
  const listed = new Set(list.programs.map((p) => p.program));
  const unlisted: string[] = [];
  for (const file of ['src', 'test', 'bench', 'scripts'].flatMap((d) => hostSources(join(repoRoot, d)))) {
    for (const match of readFileSync(file, 'utf8').matchAll(CALL)) {
      const program = match[1]!.split('/').pop()!;
      if (!listed.has(program) && !NOT_PROGRAMS.has(program)) unlisted.push(`${program} (${relative(repoRoot, file)})`);
    }
  }
  assert.deepEqual(unlisted, [], 'add these programs and their Debian packages to scripts/host-programs.json');
});
