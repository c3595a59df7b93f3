/**
 * The CLI's start-up: `--version` of both programs, and what `hypercore` loads before it answers.
 * Runs the built bin/hypercore (the bundle in dist/cli) as a user would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
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

// The fastest of several interleaved runs, so a busy shared host moves both sides alike.
test('hypercore --version starts within 1.5x of node -e 0', () => {
  const node: number[] = [];
  const cli: number[] = [];
  for (let i = 0; i < 12; i++) {
    node.push(timedRun('-e', ['0']).ms);
    cli.push(timedRun(hypercore, ['--version']).ms);
  }
  const ratio = Math.min(...cli) / Math.min(...node);
  assert.ok(ratio <= 1.5, `hypercore --version ${Math.min(...cli).toFixed(1)} ms, node -e 0 ${Math.min(...node).toFixed(1)} ms: ${ratio.toFixed(2)}x`);
});
