/**
 * Network benchmark: what does a port forward (nftables DNAT on the bridge address) cost compared
 * with talking to the guest's address directly?
 *
 *   node dist/bench/network.js [--mb N] [--requests N]     (defaults: 64 MiB, 1000 requests)
 *
 * Everything runs inside a network namespace this bench creates (`hc-bench-net-<random>`) and always
 * deletes: hypercored runs in it (TestDaemon with netns), so its bridge, the VM's TAP and the
 * nftables rules live there, and the load generator runs in it too (this same file, started as
 * `ip netns exec NS node network.js --worker ...`). The namespace has no link but lo and what the
 * daemon creates, so no packet can leave it.
 *
 * One demo VM (accel tcg, 1 vCPU, 256 MiB, [network] mode = "nat") with ports 18080:8080 and
 * 18081:8081; its rc.local starts a TCP sink on 8080 (busybox `nc -ll -e`, a `dd of=/dev/null` per
 * connection) and busybox httpd on 8081 serving a 128-byte file.
 *  - throughput host→guest: N MiB over one TCP connection, connect → the guest's close after EOF
 *    (so every byte reached the guest's reader), to guest:8080 and to gateway:18080, 3 runs each,
 *    interleaved;
 *  - latency: sequential HTTP GETs (busybox httpd closes every connection, so each is a fresh TCP
 *    connection: handshake + request + response), to guest:8081 and gateway:18081, interleaved halves.
 * Under TCG the guest can be slow: a short probe measures the rate and the sizes are scaled down
 * (and the output says so) so that the whole bench stays under 6 minutes. Prints numbers only.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Vm } from '../src/core/vm.js';
import { buildDemoRootfs } from '../src/guest/demo-rootfs.js';
import { hostCpuCount } from '../src/system/host.js';
import { sleep, TestDaemon } from '../test/e2e/harness.js';
import { intInRange, parseFlags } from './lib/args.js';
import { columns, fixed, minMedianMaxLine } from './lib/format.js';
import { guardCleanup, runBench } from './lib/lifecycle.js';
import { ChildSet, runCli, runProcess } from './lib/processes.js';
import { qemuVersion } from './lib/raw-qemu.js';
import { median, percentile, summarize } from './lib/stats.js';

const MiB = 1024 * 1024;
/** The whole bench must end within 6 minutes: measurements stop by SOFT_DEADLINE_MS after start... */
const SOFT_DEADLINE_MS = 310_000;
/** ...and past HARD_DEADLINE_MS a watchdog cleans up and exits whatever is still running. */
const HARD_DEADLINE_MS = 345_000;
const BOOT_TIMEOUT_MS = 120_000;
const CLI_TIMEOUT_MS = 60_000;
const RUNS = 3;
const SUBNET = '10.78.0.0/24';
const SINK_PORT = 8080;
const HTTP_PORT = 8081;
const FWD_SINK_PORT = 18080;
const FWD_HTTP_PORT = 18081;
const CORES = 1;
const MEMORY_MIB = 256;
const SMALL_FILE = `${'hypercore network bench '.repeat(6).slice(0, 127)}\n`; // 128 bytes
const SINK_BLOCK = 65536;
const SERVERS_UP = 'hc-bench: servers up';

// ---------------------------------------------------------------------------------------------
// worker: runs inside the namespace, does one measurement, prints JSON on stdout

type Task =
  | { kind: 'tcp'; host: string; port: number; bytes: number; timeoutMs: number }
  | { kind: 'http'; host: string; port: number; path: string; count: number; expectBytes: number; timeoutMs: number; deadlineMs: number };

interface TcpResult {
  ms: number;
  bytes: number;
}
interface HttpResult {
  latencies: number[];
  errors: number;
  firstError?: string;
  stoppedEarly: boolean;
}

function tcpSend(task: Extract<Task, { kind: 'tcp' }>): Promise<TcpResult> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(Math.min(MiB, task.bytes));
    const t0 = performance.now();
    let left = task.bytes;
    const sock = connect({ host: task.host, port: task.port, noDelay: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`TCP ${task.host}:${task.port}: not done after ${task.timeoutMs} ms (${((task.bytes - left) / MiB).toFixed(1)} MiB written)`));
    }, task.timeoutMs);
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
    };
    sock.once('connect', pump);
    // After our FIN the guest's dd prints its record counts back on the connection.
    let reply = '';
    sock.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`TCP ${task.host}:${task.port}: ${e.message}`));
    });
    // The guest's reader closes its side only after reading everything up to our FIN.
    sock.once('close', (hadError) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (hadError) return;
      if (left !== 0) return reject(new Error(`TCP ${task.host}:${task.port}: closed early`));
      // Whole 64 KiB blocks only (iflag=fullblock): "N+0 records in" proves the guest read every byte.
      const m = /(\d+)\+(\d+) records in/.exec(reply);
      const expected = task.bytes / SINK_BLOCK;
      if (!m || Number(m[1]) !== expected || Number(m[2]) !== 0) {
        return reject(new Error(`TCP ${task.host}:${task.port}: the guest reports "${reply.trim().split('\n')[0] ?? ''}", expected ${expected}+0 records of ${SINK_BLOCK} bytes`));
      }
      resolve({ ms, bytes: task.bytes });
    });
  });
}

function httpGet(task: Extract<Task, { kind: 'http' }>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: task.host, port: task.port, path: task.path, agent: false, headers: { Connection: 'close' }, timeout: task.timeoutMs }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.once('end', () => {
        const ms = performance.now() - t0;
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        else if (n !== task.expectBytes) reject(new Error(`body of ${n} bytes, expected ${task.expectBytes}`));
        else resolve(ms);
      });
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${task.timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

async function runWorker(json: string): Promise<void> {
  const task = JSON.parse(json) as Task;
  if (task.kind === 'tcp') {
    process.stdout.write(JSON.stringify(await tcpSend(task)));
    return;
  }
  const out: HttpResult = { latencies: [], errors: 0, stoppedEarly: false };
  const deadline = performance.now() + task.deadlineMs;
  for (let i = 0; i < task.count; i++) {
    if (performance.now() > deadline) {
      out.stoppedEarly = true;
      break;
    }
    try {
      out.latencies.push(await httpGet(task));
    } catch (e) {
      out.errors++;
      out.firstError ??= e instanceof Error ? e.message : String(e);
      if (out.errors >= 10 && out.latencies.length === 0) break;
    }
  }
  process.stdout.write(JSON.stringify(out));
}

// ---------------------------------------------------------------------------------------------
// helpers

function parseArgs(argv: readonly string[]): { mb: number; requests: number } {
  let mb: string | number | undefined = 64;
  let requests: string | number | undefined = 1000;
  parseFlags(argv, {
    usage: 'usage: node dist/bench/network.js [--mb N] [--requests N]   (defaults 64 MiB per transfer, 1000 requests per path)',
    flags: { '--mb': (value) => (mb = value()), '--requests': (value) => (requests = value()) },
  });
  return { mb: intInRange('--mb', mb, 1, 4096), requests: intInRange('--requests', requests, 10, 100_000) };
}

const f1 = (v: number): string => fixed(v, 1);
const f2 = (v: number): string => fixed(v, 2);
const f3 = (v: number): string => fixed(v, 3);

const liveChildren = new ChildSet();

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { mb: requestedMb, requests: requestedRequests } = parseArgs(process.argv.slice(2));
  const tStart = performance.now();
  const remaining = () => SOFT_DEADLINE_MS - (performance.now() - tStart);
  const ns = `hc-bench-net-${randomBytes(3).toString('hex')}`;
  const self = fileURLToPath(import.meta.url);
  let nsCreated = false;
  let daemon: TestDaemon | undefined;
  let vmId: string | undefined;

  const cli = (args: readonly string[], timeoutMs = CLI_TIMEOUT_MS) => runCli(daemon!, args, { timeoutMs, children: liveChildren, noteTimeout: false });

  /** Runs one task in the namespace; throws with the worker's message when it fails. */
  const inNs = async <T>(task: Task, timeoutMs: number): Promise<T> => {
    const r = await runProcess('ip', ['netns', 'exec', ns, process.execPath, self, '--worker', JSON.stringify(task)], { timeoutMs, children: liveChildren });
    if (r.timedOut) throw new Error(`worker killed after ${Math.round(timeoutMs)} ms`);
    if (r.code !== 0) throw new Error(r.stderr.trim().split('\n').find((l) => /Error|error:/.test(l)) ?? r.stderr.trim().slice(-500));
    return JSON.parse(r.stdout) as T;
  };

  const guard = guardCleanup(
    async () => {
      liveChildren.killAll();
      if (daemon && vmId) await cli(['rm', '-f', vmId], 20_000).catch(() => undefined);
      await daemon?.cleanup().catch(() => undefined);
      if (nsCreated) {
        // Anything still inside the namespace was started by this bench (daemon, QEMU, workers).
        const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
        for (const pid of pids.split('\n').map(Number).filter((n) => Number.isInteger(n) && n > 0)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        if (pids.trim()) await sleep(500);
        const del = spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8', timeout: 10_000 });
        if (del.status !== 0) console.error(`[bench] ip netns del ${ns} failed: ${del.stderr}`);
      }
    },
    { watchdog: { ms: HARD_DEADLINE_MS, message: `\n[bench] still running after ${HARD_DEADLINE_MS / 1000} s: cleaning up and exiting` } },
  );

  try {
    const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    if (add.status !== 0) throw new Error(`ip netns add ${ns}: ${add.stderr}`);
    nsCreated = true;
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);

    daemon = new TestDaemon('hc-bench-net-', ns);
    const drive = join(daemon.dir, 'rootfs.ext4');
    await buildDemoRootfs({
      output: drive,
      files: {
        '/www/small.txt': SMALL_FILE,
        '/usr/bin/hc-sink': `#!/bin/sh\nexec dd of=/dev/null bs=${SINK_BLOCK} iflag=fullblock 2>&1\n`,
        '/etc/rc.local':
          '#!/bin/sh\n' +
          `nc -ll -p ${SINK_PORT} -e /usr/bin/hc-sink </dev/null >/dev/null 2>&1 &\n` +
          `httpd -p ${HTTP_PORT} -h /www\n` +
          `echo "${SERVERS_UP}"\n`,
      },
    });
    await daemon.start();

    const hacFile = join(daemon.dir, 'net.toml');
    writeFileSync(
      hacFile,
      `[spacecore]\nname = "netbench"\n[hardware]\ncores = ${CORES}\nmemory = ${MEMORY_MIB}\ndrive = "rootfs.ext4"\ndrive_readonly = true\n` +
        `[hypervisor]\nprovider = "qemu"\n[hypervisor.qemu]\naccel = "tcg"\n` +
        `[network]\nmode = "nat"\nsubnet = "${SUBNET}"\nports = ["${FWD_SINK_PORT}:${SINK_PORT}", "${FWD_HTTP_PORT}:${HTTP_PORT}"]\n`,
    );

    console.log('hypercore network benchmark');
    console.log(`  host: ${hostCpuCount()} CPUs, ${qemuVersion()}, node ${process.version}`);
    console.log(`  guest: demo busybox rootfs, ${CORES} vCPU, ${MEMORY_MIB} MiB, accel tcg, virtio-net on a TAP, [network] mode = "nat", subnet ${SUBNET}`);
    console.log(`  namespace: ${ns} (daemon, QEMU and load generator inside; deleted at the end)`);
    console.log(`  requested: ${requestedMb} MiB per transfer, ${requestedRequests} requests per path; time bound 6 min`);

    const tSpawn = performance.now();
    const sp = await cli(['spawn', '--hac', hacFile]);
    if (sp.code !== 0) throw new Error(`hypercore spawn failed (${sp.code}${sp.timedOut ? ', timed out' : ''}): ${sp.stderr}\n${daemon.log().slice(-3000)}`);
    vmId = sp.stdout.trim().split('\n').at(-1)!;
    const spawnMs = performance.now() - tSpawn;
    const ls = await cli(['ls', '--json']);
    const vm = (JSON.parse(ls.stdout) as Vm[]).find((v) => v.id === vmId);
    if (!vm?.network) throw new Error(`VM ${vmId} has no network attachment: ${ls.stdout}`);
    const guest = vm.network.ip;
    const gateway = vm.network.gateway;

    for (;;) {
      const logs = await cli(['logs', vmId], 20_000);
      if (logs.stdout.includes(SERVERS_UP)) break;
      if (performance.now() - tSpawn > BOOT_TIMEOUT_MS) throw new Error(`guest servers not up within ${BOOT_TIMEOUT_MS / 1000} s; console tail:\n${logs.stdout.slice(-2000)}`);
      await sleep(250);
    }
    const upMs = performance.now() - tSpawn;
    let accel = '?';
    try {
      const argv = readFileSync(`/proc/${vm.pid}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('-accel');
      accel = i >= 0 ? (argv[i + 1] ?? '?') : 'not given';
    } catch {
      // no pid
    }
    console.log(`  VM ${vmId}: guest ${guest}, gateway ${gateway}, tap ${vm.network.tap}, QEMU pid ${vm.pid ?? '?'} (-accel ${accel})`);
    console.log(`  forwards: ${gateway}:${FWD_SINK_PORT} → ${guest}:${SINK_PORT} (TCP sink: busybox nc -ll -e "dd of=/dev/null bs=64k iflag=fullblock", its record count checked)`);
    console.log(`            ${gateway}:${FWD_HTTP_PORT} → ${guest}:${HTTP_PORT} (busybox httpd, /small.txt = ${SMALL_FILE.length} bytes)`);
    console.log(`  spawn CLI: ${Math.round(spawnMs)} ms; spawn → guest servers up: ${Math.round(upMs)} ms`);

    // ---- probe (also the warm-up, and a check that both paths work)
    const httpTask = (host: string, port: number, count: number, deadlineMs: number): Task => ({
      kind: 'http',
      host,
      port,
      path: '/small.txt',
      count,
      expectBytes: SMALL_FILE.length,
      timeoutMs: 10_000,
      deadlineMs,
    });
    const tcpTask = (host: string, port: number, bytes: number, timeoutMs: number): Task => ({ kind: 'tcp', host, port, bytes, timeoutMs });
    const rate = (r: TcpResult) => r.bytes / MiB / (r.ms / 1000);

    console.log('\nprobe (warm-up, not counted):');
    const p1 = await inNs<TcpResult>(tcpTask(guest, SINK_PORT, MiB, 30_000), 40_000);
    const p1f = await inNs<TcpResult>(tcpTask(gateway, FWD_SINK_PORT, MiB, 30_000), 40_000);
    console.log(`  1 MiB direct ${f1(rate(p1))} MiB/s (${Math.round(p1.ms)} ms), forwarded ${f1(rate(p1f))} MiB/s (${Math.round(p1f.ms)} ms)`);
    let probeRate = Math.min(rate(p1), rate(p1f));
    if (p1.ms < 2_000) {
      const bytes = Math.max(2, Math.min(16, Math.floor(rate(p1) * 2))) * MiB;
      const p2 = await inNs<TcpResult>(tcpTask(guest, SINK_PORT, bytes, 30_000), 40_000);
      console.log(`  ${bytes / MiB} MiB direct ${f1(rate(p2))} MiB/s (${Math.round(p2.ms)} ms)`);
      probeRate = Math.max(probeRate, rate(p2)) * 0.8; // forwarded may be somewhat slower
    }
    const h1 = await inNs<HttpResult>(httpTask(guest, HTTP_PORT, 20, 30_000), 40_000);
    const h1f = await inNs<HttpResult>(httpTask(gateway, FWD_HTTP_PORT, 20, 30_000), 40_000);
    if (h1.latencies.length === 0 || h1f.latencies.length === 0) throw new Error(`HTTP probe failed: direct ${h1.firstError ?? 'ok'}, forwarded ${h1f.firstError ?? 'ok'}`);
    const probeLatency = Math.max(summarize(h1.latencies).mean, summarize(h1f.latencies).mean);
    console.log(`  20 HTTP GETs: direct mean ${f2(summarize(h1.latencies).mean)} ms, forwarded mean ${f2(summarize(h1f.latencies).mean)} ms`);

    // ---- sizes that fit the time bound
    const WORKER_OVERHEAD_MS = 600; // `ip netns exec node` start-up, per run
    const budget = remaining();
    const tpBudget = budget * 0.45;
    const latBudget = budget * 0.4;
    const fitMb = Math.floor(((tpBudget / (2 * RUNS) - WORKER_OVERHEAD_MS) / 1000) * probeRate / 1.5);
    const mb = Math.max(1, Math.min(requestedMb, fitMb));
    const fitRequests = Math.floor((latBudget / 2 - 2 * WORKER_OVERHEAD_MS) / (probeLatency * 1.5));
    const requests = Math.max(10, Math.min(requestedRequests, fitRequests));
    console.log(`  budget left for measuring: ${Math.round(budget / 1000)} s (probe rate ${f1(probeRate)} MiB/s, probe latency ${f2(probeLatency)} ms)`);
    if (mb < requestedMb) console.log(`  NOTE: scaled down: ${mb} MiB per transfer instead of ${requestedMb} MiB, to stay within the 6-minute bound`);
    if (requests < requestedRequests) console.log(`  NOTE: scaled down: ${requests} requests per path instead of ${requestedRequests}, to stay within the 6-minute bound`);

    // ---- throughput
    console.log(`\nthroughput host→guest (${mb} MiB per run, one TCP connection, connect → guest closes after EOF; ${RUNS} runs each, interleaved):`);
    const direct: number[] = [];
    const forwarded: number[] = [];
    const perRunTimeout = Math.max(15_000, ((mb / probeRate) * 1000) * 4);
    for (let i = 1; i <= RUNS; i++) {
      const cells: string[] = [];
      for (const [label, host, port, into] of [
        ['direct', guest, SINK_PORT, direct],
        ['forwarded', gateway, FWD_SINK_PORT, forwarded],
      ] as const) {
        const left = remaining() - latBudget * 0.9;
        if (left < 5_000) {
          cells.push(`${label} skipped (time bound)`);
          continue;
        }
        const timeoutMs = Math.min(perRunTimeout, left);
        try {
          const r = await inNs<TcpResult>(tcpTask(host, port, mb * MiB, timeoutMs), timeoutMs + 5_000);
          into.push(rate(r));
          cells.push(`${label} ${f1(rate(r)).padStart(7)} MiB/s (${String(Math.round(r.ms)).padStart(6)} ms)`);
        } catch (e) {
          cells.push(`${label} failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      console.log(`  run ${i}: ${cells.join('   ')}`);
    }

    // ---- latency
    console.log(`\nlatency (${requests} sequential HTTP GETs of /small.txt per path, a new TCP connection each; in 2 interleaved halves):`);
    const lat = { direct: [] as number[], forwarded: [] as number[] };
    const errs = { direct: 0, forwarded: 0 };
    let stoppedEarly = false;
    const halves = [Math.ceil(requests / 2), Math.floor(requests / 2)];
    for (const count of halves) {
      for (const [label, host, port] of [
        ['direct', guest, HTTP_PORT],
        ['forwarded', gateway, FWD_HTTP_PORT],
      ] as const) {
        const deadlineMs = Math.max(1_000, Math.min(latBudget / 4 * 1.5, remaining() - 5_000));
        try {
          const r = await inNs<HttpResult>(httpTask(host, port, count, deadlineMs), deadlineMs + 15_000);
          lat[label].push(...r.latencies);
          errs[label] += r.errors;
          if (r.stoppedEarly) stoppedEarly = true;
          if (r.firstError) console.log(`  ${label}: ${r.errors} failed requests, first: ${r.firstError}`);
        } catch (e) {
          console.log(`  ${label}: worker failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
    if (stoppedEarly) console.log('  NOTE: a batch hit its time bound and stopped early; n below is what completed');

    // ---- summary
    const tpLine = (label: string, v: number[]) => minMedianMaxLine(`  ${label}`, v, { labelWidth: 30, width: 7, format: f1, beforeCount: ' MiB/s ', empty: 'n/a' });
    const latLine = (label: string, v: number[], errors: number) => {
      if (v.length === 0) return `  ${label.padEnd(28)} n/a`;
      const s = summarize(v);
      const cols = columns([['p50', percentile(v, 0.5)], ['p99', percentile(v, 0.99)], ['min', s.min], ['max', s.max], ['mean', s.mean]], f3, 8);
      return `  ${label.padEnd(28)} ${cols} ms (n=${s.n}, errors ${errors})`;
    };
    const ratio = (a: number[], b: number[], f: (v: number[]) => number) => (a.length && b.length ? f(a) / f(b) : NaN);

    console.log('\nsummary:');
    console.log(`throughput host→guest, ${mb} MiB per run:`);
    console.log(tpLine(`direct ${guest}:${SINK_PORT}`, direct));
    console.log(tpLine(`forwarded ${gateway}:${FWD_SINK_PORT}`, forwarded));
    console.log(`  ratio forwarded/direct (median MiB/s): ${f3(ratio(forwarded, direct, median))}`);
    console.log(`  ratio forwarded/direct (min MiB/s):    ${f3(ratio(forwarded, direct, (v) => summarize(v).min))}`);
    console.log(`HTTP latency, ${requests} requests per path:`);
    console.log(latLine(`direct ${guest}:${HTTP_PORT}`, lat.direct, errs.direct));
    console.log(latLine(`forwarded ${gateway}:${FWD_HTTP_PORT}`, lat.forwarded, errs.forwarded));
    console.log(`  ratio forwarded/direct p50: ${f3(ratio(lat.forwarded, lat.direct, (v) => percentile(v, 0.5)))}`);
    console.log(`  ratio forwarded/direct p99: ${f3(ratio(lat.forwarded, lat.direct, (v) => percentile(v, 0.99)))}`);
    console.log(`total wall time: ${f1((performance.now() - tStart) / 1000)} s (before cleanup)`);
  } finally {
    const t = performance.now();
    await guard.finish();
    console.log(`cleanup: ${Math.round(performance.now() - t)} ms (VM removed, daemon stopped, namespace ${ns} deleted)`);
  }
}

if (process.argv[2] === '--worker') {
  runWorker(process.argv[3] ?? '{}').then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`worker error: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
} else {
  runBench(main);
}
