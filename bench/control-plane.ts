/**
 * Control-plane benchmark: what the daemon and the CLI cost when no guest is booting.
 *
 *   node dist/bench/control-plane.js [--vms N] [--runs R]     (defaults 1000, 30)
 *
 *  1. CLI start-up: `hypercore --version` against `node -e 0` (the floor of any node program),
 *     interleaved, R runs each.
 *  2. ls with 100 VMs and with N VMs (stopped drive VMs written into the daemon's state database,
 *     see test/e2e/seed-vms.ts): `GET /v1/vms` through the in-process API client, and
 *     `hypercore ls` as a new CLI process (against `node -e 0` in the same loop), R runs each; the
 *     API floor is `GET /v1/vms/{id}` of one VM.
 *  3. create (without boot: `start: false`) plus rm through the in-process API client, N of each,
 *     one after the other: each call's latency, and operations per second. A daemon that boots on
 *     create (no `start: false`) is said to be so, and only 20 creates are measured (they boot).
 * Targets (issue 11): --version ≤ 1.5× node -e 0; ls of 100 VMs through the CLI < 150 ms; ls of
 * 1000 through the API ≤ 50 ms; create + rm ≥ 500 ops/s with p99 ≤ 20 ms. Prints numbers only.
 */
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HypercoreClient } from '../sdk/src/index.js';
import type { VmSpec } from '../src/core/vm.js';
import { hostCpuCount } from '../src/system/host.js';
import { repoRoot, TestDaemon } from '../test/e2e/harness.js';
import { seedStoppedVms } from '../test/e2e/seed-vms.js';
import { intInRange, parseFlags } from './lib/args.js';
import { columns, fmtMs } from './lib/format.js';
import { guardCleanup, runBench } from './lib/lifecycle.js';
import { ChildSet, runProcess } from './lib/processes.js';
import { percentile } from './lib/stats.js';

const CLI_TIMEOUT_MS = 30_000;
/** Creates measured when the daemon boots each one (no create without boot). */
const BOOTING_CREATES = 20;

interface Options {
  vms: number;
  runs: number;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { vms: 1000, runs: 30 };
  parseFlags(argv, {
    usage: 'usage: node dist/bench/control-plane.js [--vms N] [--runs R]   (defaults 1000, 30)',
    flags: {
      '--vms': (value) => (o.vms = intInRange('--vms', value(), 100, 100_000)),
      '--runs': (value) => (o.runs = intInRange('--runs', value(), 3, 10_000)),
    },
  });
  return o;
}

/** `label  p50 X  p99 Y  min Z  max W  (n=N)`. */
function line(label: string, values: readonly number[]): string {
  const cols = columns([['p50', percentile(values, 0.5)], ['p99', percentile(values, 0.99)], ['min', Math.min(...values)], ['max', Math.max(...values)]], fmtMs, 9);
  return `  ${label.padEnd(46)} ${cols}  (n=${values.length})`;
}

const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
const p50 = (v: readonly number[]): number => percentile(v, 0.5);

const children = new ChildSet();

async function timedProcess(file: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const r = await runProcess(file, args, { timeoutMs: CLI_TIMEOUT_MS, children, ...(env ? { env } : {}) });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-500)}`);
  return r.ms;
}

const hypercore = (daemon: TestDaemon, args: readonly string[]) => timedProcess(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], daemon.env);
const nodeE0 = () => timedProcess(process.execPath, ['-e', '0']);

async function timed<T>(f: () => Promise<T>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

/** ls through the API and the CLI with the daemon's current VMs. */
async function measureLs(daemon: TestDaemon, client: HypercoreClient, runs: number, oneId: string): Promise<{ api: number[]; floor: number[]; cli: number[]; node: number[]; count: number }> {
  const count = (await client.listVms()).length;
  const api: number[] = [];
  const floor: number[] = [];
  const cli: number[] = [];
  const node: number[] = [];
  for (let i = -2; i < runs; i++) {
    const a = await timed(() => client.listVms());
    const f = await timed(() => client.getVm(oneId));
    const c = await hypercore(daemon, ['ls']);
    const n = await nodeE0();
    if (i < 0) continue; // warm-up
    api.push(a);
    floor.push(f);
    cli.push(c);
    node.push(n);
  }
  return { api, floor, cli, node, count };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const daemon = new TestDaemon('hc-bench-cp-');
  let client: HypercoreClient | undefined;
  const guard = guardCleanup(async () => {
    await client?.close();
    await children.killAllHard();
    await daemon.cleanup();
  });
  try {
    console.log('hypercore control-plane benchmark');
    console.log(`  host: ${hostCpuCount()} CPUs, node ${process.version}; runs ${opts.runs}, VMs ${opts.vms}`);
    const drive = join(daemon.dir, 'drive.raw');
    writeFileSync(drive, '');
    truncateSync(drive, 64 * 1024 * 1024);

    // 1. CLI start-up
    const version: number[] = [];
    const node: number[] = [];
    for (let i = -2; i < opts.runs; i++) {
      const v = await hypercore(daemon, ['--version']);
      const n = await nodeE0();
      if (i >= 0) version.push(v), node.push(n);
    }
    console.log('\n1. CLI start-up (a new process each run, interleaved):');
    console.log(line('node -e 0 (baseline)', node));
    console.log(line('hypercore --version', version));
    const versionRatio = p50(version) / p50(node);
    console.log(`  ratio --version / node -e 0 (p50): ${versionRatio.toFixed(2)}  target ≤ 1.5: ${verdict(versionRatio <= 1.5)}`);

    // 2. ls with 100, then N VMs
    const ids = seedStoppedVms(daemon.root, 100, { prefix: 'seeded', drive });
    await daemon.start();
    client = new HypercoreClient({ socketPath: daemon.socket });
    const ls100 = await measureLs(daemon, client, opts.runs, ids[0]!);
    // The daemon reads its records from the database at each call: more can be written beside it.
    seedStoppedVms(daemon.root, opts.vms - 100, { prefix: 'seeded', first: 100, drive });
    const lsN = await measureLs(daemon, client, opts.runs, ids[0]!);
    console.log(`\n2. ls (stopped drive VMs in the state database; in-process API client and the CLI):`);
    for (const r of [ls100, lsN]) {
      console.log(line(`${r.count} VMs: GET /v1/vms/{id} (API floor)`, r.floor));
      console.log(line(`${r.count} VMs: GET /v1/vms`, r.api));
      console.log(line(`${r.count} VMs: node -e 0 (baseline)`, r.node));
      console.log(line(`${r.count} VMs: hypercore ls`, r.cli));
    }
    console.log(`  hypercore ls, ${ls100.count} VMs, p50 ${fmtMs(p50(ls100.cli))} (${(p50(ls100.cli) / p50(ls100.node)).toFixed(2)}x node -e 0)  target < 150 ms: ${verdict(p50(ls100.cli) < 150)}`);
    console.log(`  GET /v1/vms, ${lsN.count} VMs, p50 ${fmtMs(p50(lsN.api))} (${(p50(lsN.api) / p50(lsN.floor)).toFixed(1)}x the floor)  target ≤ 50 ms: ${verdict(p50(lsN.api) <= 50)}`);

    // 3. create (no boot) + rm
    console.log(`\n3. create + rm through the in-process API client:`);
    const spec = (name: string): VmSpec => ({
      name,
      description: '',
      cores: 1,
      memoryMib: 128,
      kernelArgs: '',
      drive,
      driveReadOnly: true,
      provider: 'qemu',
      hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} },
    });
    const probe = await client.createVm(spec('probe'), { start: false });
    await client.deleteVm(probe.id, { force: true });
    // 'created' (defined, not booted) is the state of a VM made with start: false, where the daemon has it.
    const noBoot = (probe.state as string) === 'created';
    const n = noBoot ? opts.vms : BOOTING_CREATES;
    if (!noBoot) console.log(`  this daemon boots on create (the probe came back ${probe.state}): no create without boot in this build; ${n} booting creates measured instead`);
    const creates: number[] = [];
    const rms: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      let id = '';
      creates.push(await timed(async () => void (id = (await client!.createVm(spec(`cp-${i}`), { start: false })).id)));
      rms.push(await timed(() => client!.deleteVm(id, { force: true })));
    }
    const seconds = (performance.now() - t0) / 1000;
    const opsPerSecond = (2 * n) / seconds;
    const all = [...creates, ...rms];
    console.log(line(`create${noBoot ? ' (start: false)' : ' (boots)'}`, creates));
    console.log(line('rm', rms));
    console.log(`  ${2 * n} operations in ${seconds.toFixed(2)} s: ${opsPerSecond.toFixed(0)} ops/s, p99 ${fmtMs(percentile(all, 0.99))}  target ≥ 500 ops/s and p99 ≤ 20 ms: ${verdict(noBoot && opsPerSecond >= 500 && percentile(all, 0.99) <= 20)}${noBoot ? '' : ' (not measurable here)'}`);
  } finally {
    await guard.finish();
  }
}

runBench(main);
