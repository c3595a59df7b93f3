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
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ApiClient } from '../src/cli/api-client.js';
import { loadHacFile } from '../src/config/index.js';
import type { Vm, VmSpec } from '../src/core/vm.js';
import { buildDemoRootfs, DEMO_MARKER } from '../src/guest/demo-rootfs.js';
import { qemuArguments } from '../src/providers/qemu/command-line.js';
import { DEFAULT_QEMU_BINARY } from '../src/providers/qemu/qemu-provider.js';
import { hostCpuCount, hostTscKhz } from '../src/system/host.js';
import { bootDir, isAlive, repoRoot, sleep, TestDaemon } from '../test/e2e/harness.js';

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
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs' || a === '-n') runs = Number(argv[++i]);
    else if (a.startsWith('--runs=')) runs = Number(a.slice('--runs='.length));
    else if (a === '--help' || a === '-h') {
      console.log('usage: node dist/bench/boot.js [--runs N]   (default 5)');
      process.exit(0);
    } else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
    console.error('--runs must be an integer from 1 to 100');
    process.exit(2);
  }
  return runs;
}

interface Stats {
  min: number;
  median: number;
  max: number;
  n: number;
}

function stats(values: readonly number[]): Stats {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s.at(-1)!, n: s.length };
}

const ms = (v: number): string => `${Math.round(v)} ms`;

function statLine(label: string, values: readonly number[]): string {
  const s = stats(values);
  return `${label.padEnd(34)} min ${ms(s.min).padStart(8)}  median ${ms(s.median).padStart(8)}  max ${ms(s.max).padStart(8)} (n=${s.n})`;
}

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

function killHard(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    proc.kill('SIGKILL');
  } catch {
    // already gone
  }
  return Promise.race([exited, sleep(5_000)]);
}

// ---------------------------------------------------------------------------------------------
// raw QEMU

/** The provider's command line, turned into a foreground one with the console on stdout. */
function rawQemuArguments(spec: VmSpec, vmId: string): string[] {
  const tscKhz = hostTscKhz();
  const full = qemuArguments({
    vmId,
    spec,
    rootDisk: { path: spec.drive!, readOnly: spec.driveReadOnly },
    accel: 'tcg',
    boot: { kernel: join(bootDir, 'vmlinuz'), initrd: join(bootDir, 'initrd.img') },
    consoleLog: '/dev/null',
    qmpSocket: '/dev/null',
    controlSocket: '/dev/null',
    pidFile: '/dev/null',
    ...(tscKhz ? { tscKhz } : {}),
  });
  const out: string[] = [];
  for (let i = 0; i < full.length; i++) {
    const a = full[i]!;
    if (a === '-daemonize') continue;
    if (a === '-chardev' || a === '-qmp' || a === '-pidfile') {
      i++; // drop the option and its value
      continue;
    }
    if (a === '-serial') {
      out.push('-serial', 'stdio');
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

const liveRaw = new Set<ChildProcess>();

interface RawBoot {
  markerMs: number;
  /** Still running (caller kills it), for RSS readings. */
  proc: ChildProcess;
}

/** Boots raw QEMU and resolves at the marker line; on timeout or early exit, kills it and throws. */
function rawBoot(args: readonly string[]): Promise<RawBoot> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const proc = spawn('setpriv', ['--pdeathsig', 'KILL', '--', DEFAULT_QEMU_BINARY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    liveRaw.add(proc);
    proc.once('exit', () => liveRaw.delete(proc));
    let out = '';
    let err = '';
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => {
      finish(() => {
        void killHard(proc);
        reject(new Error(`raw QEMU: no marker within ${BOOT_TIMEOUT_MS} ms; stderr: ${err.slice(-2000)}; console tail: ${out.slice(-2000)}`));
      });
    }, BOOT_TIMEOUT_MS);
    proc.stdout!.on('data', (c: Buffer) => {
      if (done) return;
      out += c.toString('latin1');
      if (out.includes(DEMO_MARKER)) {
        const markerMs = performance.now() - t0;
        finish(() => resolve({ markerMs, proc }));
      }
    });
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    proc.once('error', (e) => finish(() => reject(new Error(`raw QEMU: cannot start setpriv/QEMU: ${e.message}`))));
    proc.once('exit', (code, signal) =>
      finish(() => reject(new Error(`raw QEMU exited (${code ?? signal}) before the marker; stderr: ${err.slice(-2000)}; console tail: ${out.slice(-2000)}`))),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// hypercore

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** ms from spawning the CLI to its stdout carrying the VM id. */
  idMs?: number;
}

const liveCli = new Set<ChildProcess>();

function runCli(daemon: TestDaemon, args: readonly string[], t0 = performance.now()): Promise<CliRun> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], { env: daemon.env, stdio: ['ignore', 'pipe', 'pipe'] });
    liveCli.add(p);
    let stdout = '';
    let stderr = '';
    let idMs: number | undefined;
    const timer = setTimeout(() => {
      stderr += `\n[bench] CLI timed out after ${CLI_TIMEOUT_MS} ms; killed`;
      p.kill('SIGKILL');
    }, CLI_TIMEOUT_MS);
    p.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (idMs === undefined && /^[0-9a-f]{16}$/m.test(stdout)) idMs = performance.now() - t0;
    });
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', (e) => (stderr += `\n[bench] ${e.message}`));
    p.on('close', (code) => {
      clearTimeout(timer);
      liveCli.delete(p);
      resolve({ code: code ?? -1, stdout, stderr, ...(idMs === undefined ? {} : { idMs }) });
    });
  });
}

/**
 * Polls <root>/vms/<dir>/console.log every 20 ms until the marker appears; resolves with the time
 * since `t0`. There is one VM at a time, so any VM directory is the one being booted (which means
 * polling can start before the CLI has printed the id).
 */
async function waitForConsoleMarker(root: string, t0: number, abort: { reason?: string }): Promise<number> {
  const vmsDir = join(root, 'vms');
  const deadline = t0 + BOOT_TIMEOUT_MS;
  for (;;) {
    if (abort.reason) throw new Error(abort.reason);
    let dirs: string[] = [];
    try {
      dirs = readdirSync(vmsDir);
    } catch {
      // not created yet
    }
    for (const d of dirs) {
      try {
        if (readFileSync(join(vmsDir, d, 'console.log'), 'latin1').includes(DEMO_MARKER)) return performance.now() - t0;
      } catch {
        // not created yet
      }
    }
    if (performance.now() > deadline) {
      const tail = dirs.map((d) => (existsSync(join(vmsDir, d, 'console.log')) ? readFileSync(join(vmsDir, d, 'console.log'), 'latin1').slice(-1500) : '')).join('\n');
      throw new Error(`hypercore: no marker in the console log within ${BOOT_TIMEOUT_MS} ms; console tail:\n${tail}`);
    }
    await sleep(POLL_MS);
  }
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
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await Promise.all([...liveRaw].map((p) => killHard(p)));
      for (const p of liveCli) p.kill('SIGKILL');
      await daemon.cleanup();
    })());
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`\n[bench] ${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const baseDrive = join(daemon.dir, 'rootfs-base.ext4');
    await buildDemoRootfs({ output: baseDrive });
    const hacFile = join(daemon.dir, 'hac.toml');
    writeFileSync(
      hacFile,
      `[spacecore]\nname = "bench"\n[hardware]\ncores = ${CORES}\nmemory = ${MEMORY_MIB}\ndrive = "rootfs-base.ext4"\n` +
        `[hypervisor]\nprovider = "qemu"\n[hypervisor.qemu]\naccel = "tcg"\n`,
    );
    let driveSeq = 0;
    /** A fresh copy of the demo rootfs for one boot (SIGKILLed guests leave the ext4 dirty). */
    const freshDrive = (): string => {
      const p = join(daemon.dir, `drive-${++driveSeq}.ext4`);
      copyFileSync(baseDrive, p);
      return p;
    };
    const loadSpec = (drive: string, name: string) => loadHacFile(hacFile, { hostCpus: hostCpuCount(), overrides: { drive, name }, cwd: daemon.dir });

    const qemuVersion = await new Promise<string>((r) => {
      const p = spawn(DEFAULT_QEMU_BINARY, ['--version']);
      let s = '';
      p.stdout.on('data', (c: Buffer) => (s += c.toString()));
      p.on('close', () => r(s.split('\n')[0] ?? '?'));
      p.on('error', () => r('?'));
    });
    let kernelVersion = '?';
    try {
      kernelVersion = (JSON.parse(readFileSync(join(bootDir, 'manifest.json'), 'utf8')) as { kernelVersion?: string }).kernelVersion ?? '?';
    } catch {
      // no manifest
    }

    console.log('hypercore boot benchmark');
    console.log(`  host: ${hostCpuCount()} CPUs, TSC ${hostTscKhz() ?? '?'} kHz, ${qemuVersion}`);
    console.log(`  guest: kernel ${kernelVersion} + stage-1 initrd (${bootDir}), demo busybox rootfs, ${CORES} vCPU, ${MEMORY_MIB} MiB, -M microvm`);
    console.log('  accel: TCG on both sides, explicitly (-accel tcg,tb-size=64; hac.toml accel = "tcg": no accel probe); KVM is unusable on this host');
    console.log(`  runs: ${runs}, interleaved raw/hypercore, fresh rootfs copy per boot, ${BOOT_TIMEOUT_MS / 1000} s timeout per boot`);
    console.log(`  marker: "${DEMO_MARKER}"`);

    // Starting the daemon before the raw boots keeps the host state the same for both sides.
    await daemon.start();
    console.log(`  hypercored pid ${daemon.pid}, root ${daemon.root}`);

    // Warm-up (not counted): page cache for kernel/initrd/QEMU, and a raw QEMU RSS reading.
    {
      const drive = freshDrive();
      const args = rawQemuArguments(await loadSpec(drive, 'bench-warmup'), 'bench-warmup');
      console.log(`\nraw QEMU command line: setpriv --pdeathsig KILL -- ${DEFAULT_QEMU_BINARY} ${args.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
      const boot = await rawBoot(args);
      await sleep(RSS_SETTLE_MS);
      const rawRss = rssMiB(boot.proc.pid);
      await killHard(boot.proc);
      rmSync(drive, { force: true });
      console.log(`warm-up raw boot (not counted): ${ms(boot.markerMs)}; raw QEMU RSS ${RSS_SETTLE_MS / 1000} s after marker: ${rawRss}`);
    }

    const raw: number[] = [];
    const hcMarker: number[] = [];
    const hcSpawn: number[] = [];
    console.log('\nper run:');
    for (let i = 1; i <= runs; i++) {
      // raw QEMU
      const rawDrive = freshDrive();
      const args = rawQemuArguments(await loadSpec(rawDrive, `bench-raw-${i}`), `bench-raw-${i}`);
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
        const id = /^[0-9a-f]{16}$/m.exec(r.stdout)?.[0];
        if (id) {
          await removeVm(daemon, id);
          if (r.idMs !== undefined) hcSpawn.push(r.idMs);
        }
        rmSync(hcDrive, { force: true });
      }
      hcMarker.push(markerMs);
      console.log(
        `  run ${i}: raw qemu boot→marker ${ms(boot.markerMs).padStart(8)}   hypercore spawn→marker ${ms(markerMs).padStart(8)}   hypercore spawn CLI→id ${ms(hcSpawn.at(-1) ?? NaN).padStart(8)}`,
      );
    }

    await sleep(1_000);
    const idleRss0 = rssMiB(daemon.pid);

    // The HTTP API alone: POST /v1/vms until the 201 (state running); then the marker, for reference.
    const apiRunning: number[] = [];
    const apiMarker: number[] = [];
    const client = new ApiClient(daemon.socket);
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
      console.log(`  run ${i}: POST /v1/vms→running ${ms(runningMs).padStart(8)}   POST→marker ${ms(markerMs).padStart(8)}`);
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

    const ratio = stats(hcMarker).median / stats(raw).median;
    console.log('\nsummary (accel tcg on both sides):');
    console.log(statLine('raw qemu boot→marker', raw));
    console.log(statLine('hypercore spawn→marker', hcMarker));
    console.log(statLine('hypercore spawn CLI→VM id', hcSpawn));
    console.log(statLine('API POST /v1/vms→running', apiRunning));
    console.log(statLine('API POST /v1/vms→marker', apiMarker));
    console.log(`ratio hypercore/raw (median): ${ratio.toFixed(2)}`);
    console.log(`overhead hypercore−raw (median): ${ms(stats(hcMarker).median - stats(raw).median)}`);
    console.log(`hypercored RSS, idle, 0 VMs:      ${idleRss0}`);
    console.log(`hypercored RSS, 1 running VM:     ${idleRss1}`);
    console.log(`QEMU RSS, 1 VM ${RSS_SETTLE_MS / 1000} s after marker:  ${qemuRss}`);
  } finally {
    if (keptVmId) await runCli(daemon, ['rm', '-f', keptVmId]).catch(() => undefined);
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
