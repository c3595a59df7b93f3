/**
 * Boot benchmark: how much does Hypercore add on top of a bare QEMU boot of the same guest?
 *
 *   node dist/bench/boot.js [--runs N]      (default 5)
 *
 * Measured in one process, on the same host, interleaved (raw, hypercore, raw, hypercore, ...) so
 * that drift in host load hits both sides alike:
 *  - raw QEMU: the provider's exact command line (qemuArguments) with the console on `-serial stdio`
 *    and without -daemonize/-pidfile/-qmp, under `setpriv --pdeathsig KILL`; spawn → marker on stdout.
 *  - hypercore: an isolated hypercored (TestDaemon); `hypercore spawn` CLI start → marker in
 *    <root>/vms/<id>/console.log (polled every 20 ms), and CLI start → VM id printed.
 *  - the HTTP API alone (POST /v1/vms → 201 with state running), plus RSS of hypercored and QEMU.
 * Both sides use accel TCG explicitly (KVM is unusable on this host); every boot gets a fresh copy
 * of the demo rootfs (copied outside the timed region). Prints numbers only, no assertions.
 */
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HypercoreClient, type Vm } from '../sdk/src/index.js';
import { loadHacFile } from '../src/config/index.js';
import type { VmSpec } from '../src/core/vm.js';
import { buildDemoRootfs, DEMO_MARKER } from '../src/guest/demo-rootfs.js';
import { hostCpuCount, hostTscKhz } from '../src/system/host.js';
import { bootDir, isAlive, sleep, TestDaemon } from '../test/e2e/harness.js';
import { intInRange, parseFlags } from './lib/args.js';
import { minMedianMaxLine, wholeMs } from './lib/format.js';
import { kernelVersion, waitForConsoleLine } from './lib/guest.js';
import { guardCleanup, runBench } from './lib/lifecycle.js';
import { ChildSet, killHard, runCli as runHypercore, type RunResult } from './lib/processes.js';
import { bootRawQemu, qemuVersion, rawQemuArguments, rawQemuCommandLine } from './lib/raw-qemu.js';
import { median } from './lib/stats.js';

const BOOT_TIMEOUT_MS = 60_000;
const CLI_TIMEOUT_MS = 60_000;
const POLL_MS = 20;
const RSS_SETTLE_MS = 5_000;
const CORES = 1;
const MEMORY_MIB = 192;

// ---------------------------------------------------------------------------------------------
// small helpers

function parseRuns(argv: readonly string[]): number {
  let runs = 5;
  const setRuns = (value: () => string | undefined) => (runs = Number(value()));
  parseFlags(argv, { usage: 'usage: node dist/bench/boot.js [--runs N]   (default 5)', flags: { '--runs': setRuns, '-n': setRuns } });
  return intInRange('--runs', runs, 1, 100);
}

const statLine = (label: string, values: readonly number[]): string => minMedianMaxLine(label, values, { labelWidth: 34, width: 8, format: wholeMs });

/** VmRSS of a process in MiB, from /proc/<pid>/status. */
function rssMiB(pid: number | undefined): string {
  if (pid === undefined) return 'n/a (no pid)';
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? `${(Number(m[1]) / 1024).toFixed(1)} MiB (pid ${pid})` : `n/a (pid ${pid}: no VmRSS)`;
  } catch {
    return `n/a (pid ${pid} gone)`;
  }
}

// ---------------------------------------------------------------------------------------------
// raw QEMU

const liveRaw = new ChildSet();

/** Boots raw QEMU and resolves at the marker line, still running (the caller kills it, after RSS readings). */
async function rawBoot(args: readonly string[]): Promise<{ markerMs: number; proc: ChildProcess }> {
  const { ms, proc } = await bootRawQemu(args, { line: DEMO_MARKER, what: 'marker', timeoutMs: BOOT_TIMEOUT_MS, stderrTail: 2000, children: liveRaw });
  return { markerMs: ms, proc };
}

// ---------------------------------------------------------------------------------------------
// hypercore

const VM_ID = /^[0-9a-f]{16}$/m;
const liveCli = new ChildSet();

/** Runs the CLI; `idMs` is the time from `t0` to its stdout carrying a VM id. */
async function runCli(daemon: TestDaemon, args: readonly string[], t0 = performance.now()): Promise<RunResult & { idMs?: number }> {
  let idMs: number | undefined;
  const onStdout = (stdout: string) => {
    if (idMs === undefined && VM_ID.test(stdout)) idMs = performance.now() - t0;
  };
  const r = await runHypercore(daemon, args, { timeoutMs: CLI_TIMEOUT_MS, children: liveCli, t0, onStdout });
  return { ...r, ...(idMs === undefined ? {} : { idMs }) };
}

/**
 * Polls <root>/vms/<dir>/console.log every 20 ms until the marker appears; resolves with the time
 * since `t0`. There is one VM at a time, so any VM directory is the one being booted (which means
 * polling can start before the CLI has printed the id).
 */
function waitForConsoleMarker(root: string, t0: number, abort: { reason?: string }): Promise<number> {
  return waitForConsoleLine(root, DEMO_MARKER, {
    t0,
    timeoutMs: BOOT_TIMEOUT_MS,
    pollMs: POLL_MS,
    abort,
    timeoutMessage: (logs) => {
      const tail = logs.map((log) => (existsSync(log) ? readFileSync(log, 'latin1').slice(-1500) : '')).join('\n');
      return `hypercore: no marker in the console log within ${BOOT_TIMEOUT_MS} ms; console tail:\n${tail}`;
    },
  });
}

async function removeVm(daemon: TestDaemon, id: string): Promise<void> {
  const r = await runCli(daemon, ['rm', '-f', id]);
  if (r.code !== 0) throw new Error(`hypercore rm -f ${id} failed (${r.code}): ${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const runs = parseRuns(process.argv.slice(2));
  const daemon = new TestDaemon('hc-bench-boot-');
  let keptVmId: string | undefined;
  const guard = guardCleanup(async () => {
    await liveRaw.killAllHard();
    liveCli.killAll();
    await daemon.cleanup();
  });

  try {
    const baseDrive = join(daemon.dir, 'rootfs-base.ext4');
    await buildDemoRootfs({ output: baseDrive });
    const hacFile = join(daemon.dir, 'hac.toml');
    writeFileSync(
      hacFile,
      `[spacecore]\nname = "bench"\n[hardware]\ncores = ${CORES}\nmemory = ${MEMORY_MIB}\ndrive = "rootfs-base.ext4"\n` +
        `[hypervisor]\nprovider = "qemu"\n[hypervisor.qemu]\naccel = "tcg"\n[network]\nmode = "none"\n`,
    );
    let driveSeq = 0;
    /** A fresh copy of the demo rootfs for one boot (SIGKILLed guests leave the ext4 dirty). */
    const freshDrive = (): string => {
      const p = join(daemon.dir, `drive-${++driveSeq}.ext4`);
      copyFileSync(baseDrive, p);
      return p;
    };
    const loadSpec = (drive: string, name: string) => loadHacFile(hacFile, { hostCpus: hostCpuCount(), overrides: { drive, name }, cwd: daemon.dir });
    /** The provider's command line for the spec, accel TCG, in the foreground. */
    const rawArgs = (spec: VmSpec, vmId: string) => rawQemuArguments({ vmId, spec, rootDisk: { path: spec.drive!, readOnly: spec.driveReadOnly }, accel: 'tcg' });


    console.log('hypercore boot benchmark');
    console.log(`  host: ${hostCpuCount()} CPUs, TSC ${hostTscKhz() ?? '?'} kHz, ${qemuVersion()}`);
    console.log(`  guest: kernel ${kernelVersion()} + stage-1 initrd (${bootDir}), demo busybox rootfs, ${CORES} vCPU, ${MEMORY_MIB} MiB, -M microvm`);
    console.log('  accel: TCG on both sides, explicitly (-accel tcg,tb-size=64; hac.toml accel = "tcg": no accel probe); KVM is unusable on this host');
    console.log(`  runs: ${runs}, interleaved raw/hypercore, fresh rootfs copy per boot, ${BOOT_TIMEOUT_MS / 1000} s timeout per boot`);
    console.log(`  marker: "${DEMO_MARKER}"`);

    // Starting the daemon before the raw boots keeps the host state the same for both sides.
    await daemon.start();
    console.log(`  hypercored pid ${daemon.pid}, root ${daemon.root}`);

    // Warm-up (not counted): page cache for kernel/initrd/QEMU, and a raw QEMU RSS reading.
    {
      const drive = freshDrive();
      const args = rawArgs(await loadSpec(drive, 'bench-warmup'), 'bench-warmup');
      console.log(`\nraw QEMU command line: ${rawQemuCommandLine(args)}`);
      const boot = await rawBoot(args);
      await sleep(RSS_SETTLE_MS);
      const rawRss = rssMiB(boot.proc.pid);
      await killHard(boot.proc);
      rmSync(drive, { force: true });
      console.log(`warm-up raw boot (not counted): ${wholeMs(boot.markerMs)}; raw QEMU RSS ${RSS_SETTLE_MS / 1000} s after marker: ${rawRss}`);
    }

    const raw: number[] = [];
    const hcMarker: number[] = [];
    const hcSpawn: number[] = [];
    console.log('\nper run:');
    for (let i = 1; i <= runs; i++) {
      // raw QEMU
      const rawDrive = freshDrive();
      const args = rawArgs(await loadSpec(rawDrive, `bench-raw-${i}`), `bench-raw-${i}`);
      const boot = await rawBoot(args);
      await killHard(boot.proc);
      rmSync(rawDrive, { force: true });
      raw.push(boot.markerMs);

      // hypercore via the CLI
      if (daemon.vmDirs().length > 0) throw new Error(`VM directories left from an earlier run: ${daemon.vmDirs().join(', ')}`);
      const hcDrive = freshDrive();
      const abort: { reason?: string } = {};
      const t0 = performance.now();
      const cli = runCli(daemon, ['spawn', '--hac', hacFile, '--name', `bench-${i}`, '--drive', hcDrive], t0);
      void cli.then((r) => {
        if (r.code !== 0) abort.reason = `hypercore spawn failed (${r.code}): ${r.stderr}\n${daemon.log().slice(-3000)}`;
      });
      let markerMs: number;
      try {
        markerMs = await waitForConsoleMarker(daemon.root, t0, abort);
      } finally {
        const r = await cli;
        const id = VM_ID.exec(r.stdout)?.[0];
        if (id) {
          await removeVm(daemon, id);
          if (r.idMs !== undefined) hcSpawn.push(r.idMs);
        }
        rmSync(hcDrive, { force: true });
      }
      hcMarker.push(markerMs);
      console.log(
        `  run ${i}: raw qemu boot→marker ${wholeMs(boot.markerMs).padStart(8)}   hypercore spawn→marker ${wholeMs(markerMs).padStart(8)}   hypercore spawn CLI→id ${wholeMs(hcSpawn.at(-1) ?? NaN).padStart(8)}`,
      );
    }

    await sleep(1_000);
    const idleRss0 = rssMiB(daemon.pid);

    // The HTTP API alone: POST /v1/vms until the 201 (state running); then the marker, for reference.
    const apiRunning: number[] = [];
    const apiMarker: number[] = [];
    const client = new HypercoreClient({ socketPath: daemon.socket });
    let qemuRss = 'n/a';
    let idleRss1 = 'n/a';
    console.log('\nAPI alone (POST /v1/vms over the unix socket, in-process client):');
    for (let i = 1; i <= runs; i++) {
      const drive = freshDrive();
      const spec = await loadSpec(drive, `bench-api-${i}`);
      const t0 = performance.now();
      const vm: Vm = await client.createVm(spec);
      const runningMs = performance.now() - t0;
      keptVmId = vm.id;
      if (vm.state !== 'running') throw new Error(`API create returned state ${vm.state}`);
      const markerMs = await waitForConsoleMarker(daemon.root, t0, {});
      apiRunning.push(runningMs);
      apiMarker.push(markerMs);
      console.log(`  run ${i}: POST /v1/vms→running ${wholeMs(runningMs).padStart(8)}   POST→marker ${wholeMs(markerMs).padStart(8)}`);
      if (i === runs) {
        // Keep the last VM for the RSS readings.
        await sleep(RSS_SETTLE_MS);
        if (!isAlive(vm.pid ?? -1)) throw new Error('the VM kept for RSS readings is not running');
        qemuRss = rssMiB(vm.pid);
        idleRss1 = rssMiB(daemon.pid);
      }
      await removeVm(daemon, vm.id);
      keptVmId = undefined;
      rmSync(drive, { force: true });
    }

    const ratio = median(hcMarker) / median(raw);
    console.log('\nsummary (accel tcg on both sides):');
    console.log(statLine('raw qemu boot→marker', raw));
    console.log(statLine('hypercore spawn→marker', hcMarker));
    console.log(statLine('hypercore spawn CLI→VM id', hcSpawn));
    console.log(statLine('API POST /v1/vms→running', apiRunning));
    console.log(statLine('API POST /v1/vms→marker', apiMarker));
    console.log(`ratio hypercore/raw (median): ${ratio.toFixed(2)}`);
    console.log(`overhead hypercore−raw (median): ${wholeMs(median(hcMarker) - median(raw))}`);
    console.log(`hypercored RSS, idle, 0 VMs:      ${idleRss0}`);
    console.log(`hypercored RSS, 1 running VM:     ${idleRss1}`);
    console.log(`QEMU RSS, 1 VM ${RSS_SETTLE_MS / 1000} s after marker:  ${qemuRss}`);
  } finally {
    if (keptVmId) await runCli(daemon, ['rm', '-f', keptVmId]).catch(() => undefined);
    await guard.finish();
  }
}

runBench(main);
