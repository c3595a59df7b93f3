/**
 * The CLI's start-up: `--version` of both programs, and what `hypercore` loads before it answers.
 * Runs the built bin/hypercore (the bundle in dist/cli) as a user would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HYPERCORE_VERSION } from '../core/version.js';

// This file runs as dist/src/cli/startup.test.js.
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const hypercore = `${repo}bin/hypercore`;
const hypercored = `${repo}bin/hypercored`;

function timedRun(file: string, args: readonly string[]): { ms: number; status: number | null; stdout: string; stderr: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [file, ...args], { encoding: 'utf8', env: { ...process.env, HYPERCORE_SOCKET: '/nonexistent/hypercore.sock' } });
  return { ms: performance.now() - t0, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('hypercore --version and hypercored --version print their version', () => {
  for (const [file, name] of [[hypercore, 'hypercore'], [hypercored, 'hypercored']] as const) {
    for (const flag of ['--version', '-V']) {
      const r = timedRun(file, [flag]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${name} ${HYPERCORE_VERSION}\n`);
    }
  }
  // Commander answers it too when other options come first.
  const late = timedRun(hypercore, ['--socket', '/x', '--version']);
  assert.equal(late.stdout, `hypercore ${HYPERCORE_VERSION}\n`);
});

test('hypercore version without a daemon prints the client version and fails naming the socket', () => {
  const r = timedRun(hypercore, ['version']);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, `Client:        hypercore ${HYPERCORE_VERSION} (node ${process.version})\n`);
  assert.match(r.stderr, /hypercored is not running \(nothing listens on \/nonexistent\/hypercore\.sock\).*\[HC_DAEMON_UNAVAILABLE\]/);
});

test("the CLI's entry loads nothing but itself to answer --version", () => {
  const entry = `${repo}dist/cli/hypercore.js`;
  const text = readFileSync(entry, 'utf8');
  // Static imports are loaded before the entry runs: only the version constant's tiny chunk may be one.
  const statics = [...text.matchAll(/^import\s[^;]*?from\s*"([^"]+)"/gm)].map((m) => m[1]!).filter((s) => !s.startsWith('node:'));
  const bytes = statics.reduce((sum, s) => sum + statSync(new URL(s, `file://${entry}`)).size, statSync(entry).size);
  assert.ok(bytes < 8 * 1024, `--version loads ${bytes} bytes: ${statics.join(', ')}`);
  assert.match(text, /import\("\.\/chunks\/main-[^"]+\.js"\)/, 'the commands are a dynamic import');
});

test('the commands load the client of the daemon (the SDK) only when they call it: --help does not', () => {
  const chunks = `${repo}dist/cli/chunks/`;
  const main = readdirSync(chunks).find((f) => /^main-[A-Z0-9]+\.js$/.test(f));
  assert.ok(main, 'the commands chunk');
  // Every file loaded with the commands (static imports, transitively) before any of them runs.
  const loaded = new Set<string>();
  const visit = (file: string): void => {
    if (loaded.has(file)) return;
    loaded.add(file);
    const text = readFileSync(`${chunks}${file}`, 'utf8');
    for (const m of text.matchAll(/(?:^|;|\n)\s*import\s*(?:[^;()"]*?from\s*)?"\.\/([^"]+)"/g)) visit(m[1]!);
  };
  visit(main);
  const withClient = [...loaded].filter((f) => readFileSync(`${chunks}${f}`, 'utf8').includes('HypercoreClient=class'));
  assert.deepEqual(withClient, [], `loaded with the commands: ${[...loaded].join(', ')}`);
  const client = readdirSync(chunks).filter((f) => readFileSync(`${chunks}${f}`, 'utf8').includes('HypercoreClient=class'));
  assert.equal(client.length, 1, `the SDK's client is in one chunk: ${client.join(', ')}`);
  assert.match(readFileSync(`${chunks}${main}`, 'utf8'), new RegExp(`import\\("\\./${client[0]!.replace('.', '\\.')}"\\)`), 'and the commands import it on demand');
});

// How fast it starts is measured by bench/control-plane.ts (against node -e 0 in the same run), not
// asserted here: a timed assertion fails on a busy host and says nothing about correctness.
