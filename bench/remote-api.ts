/**
 * Remote API benchmark: what does a call cost on the remote listener (TLS, authentication) against
 * the unix socket, and what does a scrape of /metrics cost?
 *
 *   node dist/bench/remote-api.js [--runs N]    (default 300)
 *
 * Set-up: an isolated hypercored (TestDaemon, fresh root, no VMs) with `--listen https://127.0.0.1:P`
 * and certificates from `hypercore tls init`; one read token. Each client is one keep-alive undici
 * agent; one warm-up call each is not counted.
 *
 *  1. `GET /v1/vms` latency: unix socket; https with the client certificate (mTLS); https with the
 *     token (verified against the database on every call).
 *  2. a new TLS connection per call (handshake + client certificate check + call), mTLS.
 *  3. `GET /metrics` over mTLS (the default metrics, VM counts, per-VM /proc reads: none here).
 *
 * Prints numbers only, no assertions. The daemon and its temp dir are removed in `finally` and on
 * SIGINT/SIGTERM; a watchdog bounds the run to 3 minutes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { freePort, TestDaemon } from '../test/e2e/harness.js';
import { intInRange, parseFlags } from './lib/args.js';
import { minMedianMaxLine } from './lib/format.js';
import { guardCleanup, runBench } from './lib/lifecycle.js';

async function timeCalls(runs: number, call: () => Promise<void>): Promise<number[]> {
  await call();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await call();
    times.push(performance.now() - started);
  }
  return times;
}

async function get(agent: Agent, origin: string, path: string, headers: Record<string, string> = {}): Promise<void> {
  const res = await request(`${origin}${path}`, { dispatcher: agent, headers });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${path}: HTTP ${res.statusCode}`);
}

async function main(): Promise<void> {
  let runs = 300;
  parseFlags(process.argv.slice(2), { usage: 'node dist/bench/remote-api.js [--runs N]', flags: { '--runs': (v) => (runs = intInRange('--runs', v(), 1, 100_000)) } });
  const daemon = new TestDaemon('hc-bench-remote-');
  const guard = guardCleanup(() => daemon.cleanup(), { watchdog: { ms: 180_000, message: '[bench] watchdog: 3 minutes passed' } });
  try {
    const tls = join(daemon.dir, 'tls');
    if (daemon.cli(['tls', 'init', tls]).code !== 0) throw new Error('tls init failed');
    const origin = `https://127.0.0.1:${await freePort()}`;
    await daemon.start(['--listen', origin, '--tls-dir', tls]);
    const token = daemon.cli(['token', 'create', '--scope', 'read']).stdout.trim();
    const pem = (name: string) => readFileSync(join(tls, name));
    const mtls = { ca: pem('ca.pem'), cert: pem('cert.pem'), key: pem('key.pem') };
    const unix = new Agent({ connect: { socketPath: daemon.socket } });
    const byCert = new Agent({ connect: mtls });
    const byToken = new Agent({ connect: { ca: pem('ca.pem') } });
    const format = { labelWidth: 44, width: 9, format: (v: number) => `${v.toFixed(2)} ms` };
    console.log(`GET /v1/vms, ${runs} calls each on one keep-alive connection:`);
    console.log(minMedianMaxLine('  unix socket', await timeCalls(runs, () => get(unix, 'http://localhost', '/v1/vms')), format));
    console.log(minMedianMaxLine('  https, client certificate', await timeCalls(runs, () => get(byCert, origin, '/v1/vms')), format));
    console.log(minMedianMaxLine('  https, token', await timeCalls(runs, () => get(byToken, origin, '/v1/vms', { authorization: `Bearer ${token}` })), format));
    const fresh = await timeCalls(Math.min(runs, 100), async () => {
      const once = new Agent({ connect: mtls, pipelining: 0 });
      try {
        await get(once, origin, '/v1/vms');
      } finally {
        await once.destroy();
      }
    });
    console.log(minMedianMaxLine('  https, new TLS connection each (mTLS)', fresh, format));
    console.log(minMedianMaxLine('GET /metrics over mTLS', await timeCalls(Math.min(runs, 100), () => get(byCert, origin, '/metrics')), format));
    await Promise.all([unix.close(), byCert.close(), byToken.close()]);
  } finally {
    await guard.finish();
  }
}

runBench(main);
