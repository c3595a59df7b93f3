/**
 * Exec benchmark: what does `hypercore exec` cost on top of the bare agent round trip, and how does
 * spawning an agent VM compare with a raw QEMU boot of the same guest?
 *
 *   node dist/bench/exec.js [--runs N] [--exec-runs N] [--agent-runs N] [--spawn-runs R]
 *
 *   --runs N        sets both --exec-runs and --agent-runs
 *   --exec-runs N   `hypercore exec ID -- true` via the CLI and via in-process gRPC (default 50)
 *   --agent-runs N  bare agent hello() and createProcess+wait, daemon stopped (default 200)
 *   --spawn-runs R  `hypercore spawn` vs raw QEMU boot to agent ready (default 3)
 *
 * Set-up: an isolated hypercored (TestDaemon, fresh root); the guest system image is built (or found)
 * by this process in `<root>/guest` before the daemon starts, so that no spawn below pays for it; a
 * busybox OCI image built in code is written as an OCI layout tar and `hypercore image import`ed;
 * one agent VM runs `sh -c "exec sleep 100000"` (accel auto, 1 vCPU, 256 MiB).
 *
 *  1. exec latency: `hypercore exec ID -- true` (a new CLI process each run), CLI start → exit; and
 *     the same over one long-lived in-process gRPC client (Exec bidi stream: start, closeStdin →
 *     the `exited` message), which leaves out the CLI's node start-up.
 *  2. bare agent round trip on the same virtio-serial channel: QEMU's chardev serves one client, so
 *     the daemon is stopped (SIGTERM; VMs keep running), a TtrpcAgentConnector connects to
 *     `<run-dir>/vms/<id>/agent.sock`, and times hello() and createProcess({args:['true']}, true) +
 *     wait() (an exec in the workload's container, no daemon). Then the daemon is started again and
 *     re-adopts the VM (timed until an exec works again).
 *  3. spawn vs raw boot, interleaved per run: `hypercore spawn` of a fresh VM (waits for agent and
 *     workload) → CLI return, plus the agent's ready line in its console.log (polled every 20 ms);
 *     raw QEMU (the provider's command line for the same spec: same kernel/initrd, the system image
 *     read-only as root, the same virtio-serial agent device on a socket in a temp dir, `-serial
 *     stdio`, no -daemonize/-qmp/-pidfile, under `setpriv --pdeathsig KILL`) → `[hypercore-agent]
 *     ready` on stdout. The raw boot uses the accel the daemon chose (TCG on this host). One warm-up
 *     pair is not counted (the restarted daemon re-runs its accel probe on its first launch).
 *
 * Prints numbers only, no assertions. Everything (daemon, VMs, raw QEMUs, CLI children, temp dirs)
 * is removed in `finally` and on SIGINT/SIGTERM; loops stop early at their time budget and a
 * watchdog bounds the whole run to 6 minutes.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TtrpcAgentConnector } from '../src/agent-client/agent-session.js';
import { READY_LINE } from '../src/agent/log.js';
import { loadVmServiceDefinition } from '../src/api/proto.js';
import type { ProcessInput, ProcessOutput } from '../src/api/process-session.js';
import { loadHacFile } from '../src/config/index.js';
import type { AgentSession } from '../src/core/agent.js';
import type { Vm } from '../src/core/vm.js';
import { ensureSystemImage, type SystemImage } from '../src/guest/system-image.js';
import { buildImage, buildLayer, writeOciLayoutTar, type LayerEntry } from '../src/images/testing/oci-builder.js';
import { qemuArguments } from '../src/providers/qemu/command-line.js';
import { DEFAULT_QEMU_BINARY } from '../src/providers/qemu/qemu-provider.js';
import { hostCpuCount, hostTscKhz } from '../src/system/host.js';
import { bootDir, isAlive, repoRoot, sleep, TestDaemon } from '../test/e2e/harness.js';

const WATCHDOG_MS = 355_000;
const CLI_TIMEOUT_MS = 120_000;
const EXEC_TIMEOUT_MS = 30_000;
const BOOT_TIMEOUT_MS = 90_000;
const AGENT_CONNECT_TIMEOUT_MS = 30_000;
const READOPT_TIMEOUT_MS = 60_000;
const POLL_MS = 20;
const CORES = 1;
const MEMORY_MIB = 256;
const IMAGE_REF = 'bench.local/hc/busybox:1';
const WARMUP = 3;
/** Per-phase time budgets (ms): a loop stops starting new iterations once its budget is spent. */
const BUDGET = { execCli: 50_000, execGrpc: 25_000, hello: 15_000, createProcess: 40_000, spawn: 110_000 };

// ---------------------------------------------------------------------------------------------
// arguments, statistics, formatting

interface Options {
  execRuns: number;
  agentRuns: number;
  spawnRuns: number;
}

function usage(code: number): never {
  console.log('usage: node dist/bench/exec.js [--runs N] [--exec-runs N] [--agent-runs N] [--spawn-runs R]   (defaults: exec 50, agent 200, spawn 3)');
  process.exit(code);
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { execRuns: 50, agentRuns: 200, spawnRuns: 3 };
  const int = (name: string, v: string | undefined, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      console.error(`${name} must be an integer from 1 to ${max}`);
      process.exit(2);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.startsWith('--') && argv[i]!.includes('=') ? argv[i]!.split('=', 2) : [argv[i]!, undefined];
    const value = () => inline ?? argv[++i];
    if (flag === '--runs' || flag === '-n') {
      const n = int('--runs', value(), 2000);
      o.execRuns = n;
      o.agentRuns = n;
    } else if (flag === '--exec-runs') o.execRuns = int(flag, value(), 2000);
    else if (flag === '--agent-runs') o.agentRuns = int(flag, value(), 2000);
    else if (flag === '--spawn-runs') o.spawnRuns = int(flag, value(), 10);
    else if (flag === '--help' || flag === '-h') usage(0);
    else {
      console.error(`unknown argument: ${argv[i]}`);
      usage(2);
    }
  }
  return o;
}

/** Nearest-rank percentile. */
function pct(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
}

const fmt = (v: number): string => (v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(v >= 10 ? 1 : 2)} ms`);

function pLine(label: string, values: readonly number[], wanted: number): string {
  if (values.length === 0) return `${label.padEnd(44)} (no samples)`;
  const short = values.length < wanted ? `  [stopped at the time budget: ${values.length}/${wanted}]` : '';
  return (
    `${label.padEnd(44)} p50 ${fmt(pct(values, 50)).padStart(9)}  p99 ${fmt(pct(values, 99)).padStart(9)}  ` +
    `min ${fmt(Math.min(...values)).padStart(9)}  max ${fmt(Math.max(...values)).padStart(9)}  (n=${values.length})${short}`
  );
}

function mLine(label: string, values: readonly number[]): string {
  if (values.length === 0) return `${label.padEnd(44)} (no samples)`;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return `${label.padEnd(44)} min ${fmt(s[0]!).padStart(9)}  median ${fmt(median).padStart(9)}  max ${fmt(s.at(-1)!).padStart(9)}  (n=${s.length})`;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------------------
// processes

const liveChildren = new Set<ChildProcess>();

function track(p: ChildProcess): ChildProcess {
  liveChildren.add(p);
  p.once('exit', () => liveChildren.delete(p));
  return p;
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

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the real CLI (a new node process) and times start → exit. */
function runCli(daemon: TestDaemon, args: readonly string[], timeoutMs = CLI_TIMEOUT_MS): Promise<CliRun> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = track(spawn(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], { env: daemon.env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      stderr += `\n[bench] CLI timed out after ${timeoutMs} ms; killed`;
      p.kill('SIGKILL');
    }, timeoutMs);
    p.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', (e) => (stderr += `\n[bench] ${e.message}`));
    p.on('close', (code) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, ms });
    });
  });
}

async function cliOk(daemon: TestDaemon, args: readonly string[]): Promise<CliRun> {
  const r = await runCli(daemon, args);
  if (r.code !== 0) throw new Error(`hypercore ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log tail ---\n${daemon.log().slice(-3000)}`);
  return r;
}

const lastLine = (text: string): string => text.trim().split('\n').at(-1) ?? '';

// ---------------------------------------------------------------------------------------------
// gRPC exec, in process

type ExecClient = grpc.Client & { Exec(): grpc.ClientDuplexStream<ProcessInput, ProcessOutput> };

function newExecClient(socket: string): ExecClient {
  const Client = loadVmServiceDefinition();
  return new Client(`unix:${socket}`, grpc.credentials.createInsecure()) as unknown as ExecClient;
}

/** One Exec stream: start, closeStdin, until the `exited` message; resolves to ms and exit code. */
function grpcExec(client: ExecClient, id: string, args: string[]): Promise<{ ms: number; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const call = client.Exec();
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => done(() => (call.cancel(), reject(new Error(`gRPC Exec timed out after ${EXEC_TIMEOUT_MS} ms`)))), EXEC_TIMEOUT_MS);
    call.on('data', (out: ProcessOutput) => {
      if (!out.exited) return;
      const ms = performance.now() - t0;
      done(() => {
        call.end();
        resolve({ ms, exitCode: out.exitCode ?? 0 });
      });
    });
    call.on('error', (err: grpc.ServiceError) => done(() => reject(new Error(`gRPC Exec failed: ${err.details || err.message}`))));
    call.on('end', () => done(() => reject(new Error('gRPC Exec stream ended without an exited message'))));
    call.write({ start: { id, args } });
    call.write({ closeStdin: true });
  });
}

// ---------------------------------------------------------------------------------------------
// daemon log, guest files

interface LogLine {
  msg?: string;
  vmId?: string;
  accel?: string;
  accelReason?: string;
  args?: string[];
}

function logLines(daemon: TestDaemon): LogLine[] {
  const out: LogLine[] = [];
  for (const line of daemon.log().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // partial line
    }
  }
  return out;
}

function launchOf(daemon: TestDaemon, vmId: string): LogLine | undefined {
  return logLines(daemon).find((l) => l.msg === 'launching QEMU' && l.vmId === vmId);
}

function busyboxLayer(): LayerEntry[] {
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  return [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', content: readFileSync('/bin/busybox'), mode: 0o755 },
    ...applets.map((a): LayerEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/os-release', content: 'NAME="Hypercore exec bench"\nID=hcbench\n' },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'root', mode: 0o700 },
  ];
}

/** Polls the console.log of VM directories not in `exclude` for the agent's ready line. */
async function waitForReadyInConsole(root: string, exclude: ReadonlySet<string>, t0: number, abort: { reason?: string }): Promise<number> {
  const vmsDir = join(root, 'vms');
  for (;;) {
    if (abort.reason) throw new Error(abort.reason);
    let dirs: string[] = [];
    try {
      dirs = readdirSync(vmsDir).filter((d) => !exclude.has(d));
    } catch {
      // not there yet
    }
    for (const d of dirs) {
      try {
        if (readFileSync(join(vmsDir, d, 'console.log'), 'latin1').includes(READY_LINE)) return performance.now() - t0;
      } catch {
        // not created yet
      }
    }
    if (performance.now() - t0 > BOOT_TIMEOUT_MS) throw new Error(`no "${READY_LINE}" in a new VM's console.log within ${BOOT_TIMEOUT_MS} ms`);
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// raw QEMU

/** The provider's command line in the foreground: console on stdout, no -daemonize/-qmp/-pidfile. */
function foreground(full: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < full.length; i++) {
    const a = full[i]!;
    if (a === '-daemonize') continue;
    if (a === '-qmp' || a === '-pidfile') {
      i++;
      continue;
    }
    if (a === '-chardev' && full[i + 1]!.startsWith('file,id=console,')) {
      i++;
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

/** Boots raw QEMU; resolves at the agent's ready line on the console, then SIGKILLs it. */
function rawBootToReady(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const proc = track(spawn('setpriv', ['--pdeathsig', 'KILL', '--', DEFAULT_QEMU_BINARY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void killHard(proc).then(fn);
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`raw QEMU: no ready line within ${BOOT_TIMEOUT_MS} ms; stderr: ${err.slice(-1500)}; console tail: ${out.slice(-2000)}`))),
      BOOT_TIMEOUT_MS,
    );
    proc.stdout!.on('data', (c: Buffer) => {
      if (done) return;
      out += c.toString('latin1');
      if (out.includes(READY_LINE)) {
        const ms = performance.now() - t0;
        finish(() => resolve(ms));
      }
    });
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    proc.once('error', (e) => finish(() => reject(new Error(`raw QEMU: cannot start setpriv/QEMU: ${e.message}`))));
    proc.once('exit', (code, signal) =>
      finish(() => reject(new Error(`raw QEMU exited (${code ?? signal}) before the ready line; stderr: ${err.slice(-1500)}; console tail: ${out.slice(-2000)}`))),
    );
  });
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const benchStart = performance.now();
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '90';
  const daemon = new TestDaemon('hc-bench-exec-');
  const rawDir = join(daemon.dir, 'raw');
  let grpcClient: ExecClient | undefined;
  let agentSession: AgentSession | undefined;
  let vmId: string | undefined;
  const spawnedIds = new Set<string>();

  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      grpcClient?.close();
      agentSession?.close();
      await Promise.all([...liveChildren].map((p) => killHard(p)));
      // The daemon SIGTERMs; QEMUs (they mention the daemon's dir on their command line) are SIGKILLed.
      await daemon.cleanup();
    })());
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`\n[bench] ${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const watchdog = setTimeout(() => {
    console.error(`\n[bench] watchdog: still running after ${WATCHDOG_MS / 1000} s; cleaning up and exiting`);
    void cleanup().finally(() => process.exit(1));
  }, WATCHDOG_MS);

  try {
    const qemuVersion = (() => {
      try {
        return execFileSync(DEFAULT_QEMU_BINARY, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '?';
      } catch {
        return '?';
      }
    })();
    let kernelVersion = '?';
    try {
      kernelVersion = (JSON.parse(readFileSync(join(bootDir, 'manifest.json'), 'utf8')) as { kernelVersion?: string }).kernelVersion ?? '?';
    } catch {
      // no manifest
    }
    console.log('hypercore exec benchmark');
    console.log(`  host: ${hostCpuCount()} CPUs, TSC ${hostTscKhz() ?? '?'} kHz, ${qemuVersion}, node ${process.version}`);
    console.log(`  guest: kernel ${kernelVersion} + stage-1 initrd (${bootDir}), system image root (ro), busybox OCI workload, ${CORES} vCPU, ${MEMORY_MIB} MiB, -M microvm`);
    console.log(`  runs: exec ${opts.execRuns} (+${WARMUP} warm-up), agent ${opts.agentRuns} (+${WARMUP} warm-up), spawn/raw ${opts.spawnRuns} interleaved; watchdog ${WATCHDOG_MS / 1000} s`);

    // --- system image (before the daemon, so no spawn pays for building it) -----------------
    mkdirSync(daemon.root, { recursive: true, mode: 0o700 });
    const guestDir = join(daemon.root, 'guest');
    const preexisting = existsSync(guestDir) && readdirSync(guestDir).some((f) => /^system-[0-9a-f]{64}\.ext4$/.test(f));
    let buildNote = '';
    const sys: SystemImage = await ensureSystemImage({ cacheDir: guestDir, onBuild: (key) => (buildNote = `building system-${key.slice(0, 12)}….ext4`) });
    const sysStat = statSync(sys.path);
    console.log(`\nsystem image: ${sys.path}`);
    console.log(`  ${buildNote || 'cache hit'}; ${sys.built ? `built in this run in ${fmt(sys.buildMs)}` : `not built in this run (found in the cache; ${fmt(sys.buildMs)} to hash the inputs)`}${preexisting ? '' : ' (fresh daemon root)'}`);

    // --- image import, daemon, agent VM ------------------------------------------------------
    const tStart = performance.now();
    const image = buildImage([await buildLayer(busyboxLayer())], { cmd: ['/bin/sh'] });
    const tarPath = join(daemon.dir, 'busybox-oci.tar');
    await writeOciLayoutTar(image, tarPath, IMAGE_REF);
    const buildImageMs = performance.now() - tStart;
    await daemon.start();
    console.log(`\nhypercored pid ${daemon.pid}, root ${daemon.root}`);
    const imported = await cliOk(daemon, ['image', 'import', tarPath]);
    console.log(`busybox OCI image: built in code (${mib(statSync(tarPath).size)} OCI layout tar) in ${fmt(buildImageMs)}; image import → ${lastLine(imported.stdout)} in ${fmt(imported.ms)}`);

    const hacFile = join(daemon.dir, 'hac.toml');
    writeFileSync(
      hacFile,
      `[spacecore]\nname = "bench-exec"\n[hardware]\ncores = ${CORES}\nmemory = ${MEMORY_MIB}\nref = "${IMAGE_REF}"\n` +
        `[workload]\ncommand = ["sh", "-c", "exec sleep 100000"]\n[hypervisor]\nprovider = "qemu"\n`,
    );
    const spawned = await cliOk(daemon, ['spawn', '--hac', hacFile]);
    vmId = lastLine(spawned.stdout);
    spawnedIds.add(vmId);
    const vm = JSON.parse((await cliOk(daemon, ['inspect', '--json', vmId])).stdout) as Vm;
    const launch = launchOf(daemon, vmId);
    const accel = (launch?.accel === 'kvm' ? 'kvm' : launch?.accel === 'tcg' ? 'tcg' : undefined) ?? 'tcg';
    console.log(`agent VM ${vmId} (${vm.name}): state ${vm.state}, QEMU pid ${vm.pid}; spawn (first, incl. accel probe) ${fmt(spawned.ms)}`);
    console.log(`  accel (auto) → ${launch?.accel ?? '? (no "launching QEMU" log line)'}${launch?.accelReason ? `: ${launch.accelReason}` : ''}`);
    const rootArg = launch?.args?.find((a) => a.startsWith('id=root,'));
    if (rootArg && !rootArg.includes(sys.path)) console.log(`  WARNING: the daemon booted a different root (${rootArg}) than ${sys.path}`);
    const guestImages = readdirSync(guestDir).filter((f) => f.endsWith('.ext4'));
    if (guestImages.length !== 1) console.log(`  WARNING: ${guestImages.length} system images in ${guestDir}: ${guestImages.join(', ')}`);

    // --- 1. exec latency: CLI and in-process gRPC ---------------------------------------------
    const execCli: number[] = [];
    const tCli = performance.now();
    for (let i = 0; i < WARMUP + opts.execRuns; i++) {
      if (i >= WARMUP && performance.now() - tCli > BUDGET.execCli) break;
      const r = await runCli(daemon, ['exec', vmId, '--', 'true'], EXEC_TIMEOUT_MS);
      if (r.code !== 0) throw new Error(`hypercore exec ${vmId} -- true exited ${r.code}: ${r.stderr}`);
      if (i >= WARMUP) execCli.push(r.ms);
    }
    grpcClient = newExecClient(daemon.socket);
    const execGrpc: number[] = [];
    const tGrpc = performance.now();
    for (let i = 0; i < WARMUP + opts.execRuns; i++) {
      if (i >= WARMUP && performance.now() - tGrpc > BUDGET.execGrpc) break;
      const r = await grpcExec(grpcClient, vmId, ['true']);
      if (r.exitCode !== 0) throw new Error(`gRPC exec true exited ${r.exitCode}`);
      if (i >= WARMUP) execGrpc.push(r.ms);
    }
    grpcClient.close();
    grpcClient = undefined;
    const cliHelp: number[] = [];
    for (let i = 0; i < 1 + 5; i++) {
      const r = await runCli(daemon, ['--help']);
      if (i >= 1) cliHelp.push(r.ms);
    }
    console.log('\n1. exec latency (`true` in the workload container, VM idle):');
    console.log(pLine('hypercore exec ID -- true (CLI process)', execCli, opts.execRuns));
    console.log(pLine('gRPC Exec, in-process client (reused)', execGrpc, opts.execRuns));
    console.log(mLine('reference: hypercore --help (CLI start-up)', cliHelp));

    // --- 2. bare agent round trip, daemon stopped -----------------------------------------------
    await daemon.stop();
    if (!isAlive(vm.pid!)) throw new Error('the VM did not survive the daemon stop');
    const agentSocket = join(daemon.runDir, 'vms', vmId, 'agent.sock');
    const tConnect = performance.now();
    agentSession = await new TtrpcAgentConnector().connect({ kind: 'unix', path: agentSocket }, { timeoutMs: AGENT_CONNECT_TIMEOUT_MS });
    const connectMs = performance.now() - tConnect;
    const hello: number[] = [];
    let info = await agentSession.hello();
    const tHello = performance.now();
    for (let i = 0; i < WARMUP + opts.agentRuns; i++) {
      if (i >= WARMUP && performance.now() - tHello > BUDGET.hello) break;
      const t0 = performance.now();
      info = await agentSession.hello();
      if (i >= WARMUP) hello.push(performance.now() - t0);
    }
    const createWait: number[] = [];
    const tCreate = performance.now();
    for (let i = 0; i < WARMUP + opts.agentRuns; i++) {
      if (i >= WARMUP && performance.now() - tCreate > BUDGET.createProcess) break;
      const t0 = performance.now();
      const { processId } = await agentSession.createProcess({ args: ['true'] }, true);
      const exit = await agentSession.wait(processId);
      const ms = performance.now() - t0;
      if (exit.exitCode !== 0 || exit.signal) throw new Error(`agent createProcess true: exit ${exit.exitCode} ${exit.signal ?? ''}`);
      if (i >= WARMUP) createWait.push(ms);
    }
    agentSession.close();
    agentSession = undefined;
    console.log(`\n2. bare agent round trip (daemon stopped; own TTRPC client on ${agentSocket}):`);
    console.log(`  connect + HCSYNC handshake: ${fmt(connectMs)}; agent ${info.agentVersion}, guest uptime ${(info.uptimeMs / 1000).toFixed(1)} s, workload started: ${info.workloadStarted}`);
    console.log(pLine('agent hello()', hello, opts.agentRuns));
    console.log(pLine('agent createProcess(true, inWorkload)+wait', createWait, opts.agentRuns));

    // Daemon again: it re-adopts the VM and reconnects to the agent in the background.
    const tRestart = performance.now();
    await daemon.start();
    const daemonUpMs = performance.now() - tRestart;
    grpcClient = newExecClient(daemon.socket);
    let readoptMs: number | undefined;
    let lastErr = '';
    while (performance.now() - tRestart < READOPT_TIMEOUT_MS) {
      try {
        const r = await grpcExec(grpcClient, vmId, ['true']);
        if (r.exitCode === 0) {
          readoptMs = performance.now() - tRestart;
          break;
        }
      } catch (err) {
        lastErr = err instanceof Error ? err.message : String(err);
      }
      await sleep(100);
    }
    grpcClient.close();
    grpcClient = undefined;
    if (readoptMs === undefined) throw new Error(`after the daemon restart, exec did not work within ${READOPT_TIMEOUT_MS} ms: ${lastErr}`);
    console.log(`  daemon restarted (socket answers after ${fmt(daemonUpMs)}); first successful exec after ${fmt(readoptMs)} from the restart`);

    // --- 3. spawn vs raw QEMU boot ----------------------------------------------------------------
    mkdirSync(rawDir, { recursive: true });
    const rawAgentSocket = join(rawDir, 'agent.sock');
    const tsc = hostTscKhz();
    const rawArgsFor = async (i: number): Promise<string[]> => {
      const spec = await loadHacFile(hacFile, { hostCpus: hostCpuCount(), overrides: { name: `bench-raw-${i}` }, cwd: daemon.dir });
      return foreground(
        qemuArguments({
          vmId: `bench-raw-${i}`,
          spec,
          rootDisk: { path: sys.path, readOnly: true },
          agentSocket: rawAgentSocket,
          accel,
          boot: { kernel: join(bootDir, 'vmlinuz'), initrd: join(bootDir, 'initrd.img') },
          consoleLog: '/dev/null',
          qmpSocket: '/dev/null',
          controlSocket: '/dev/null',
          pidFile: '/dev/null',
          ...(tsc ? { tscKhz: tsc } : {}),
        }),
      );
    };
    {
      const a = await rawArgsFor(0);
      console.log(`\n3. spawn → agent vs raw QEMU boot → agent ready (accel ${accel} on both sides, as the daemon chose)`);
      console.log(`  raw QEMU command line: setpriv --pdeathsig KILL -- ${DEFAULT_QEMU_BINARY} ${a.map((x) => (/[\s"]/.test(x) ? JSON.stringify(x) : x)).join(' ')}`);
    }
    const rawReady: number[] = [];
    const hcSpawn: number[] = [];
    const hcReady: number[] = [];
    const hcRm: number[] = [];
    const spawnAccels = new Set<string>();
    /** One `hypercore spawn` of a fresh VM, timed to the ready line and to the CLI's return; then rm -f. */
    const hypercoreSpawn = async (name: string): Promise<{ readyMs: number; spawnMs: number; rmMs: number }> => {
      const abort: { reason?: string } = {};
      const exclude = new Set(spawnedIds);
      const t0 = performance.now();
      const cli = runCli(daemon, ['spawn', '--hac', hacFile, '--name', name]);
      void cli.then((r) => {
        if (r.code !== 0) abort.reason = `hypercore spawn failed (${r.code}): ${r.stderr}\n${daemon.log().slice(-3000)}`;
      });
      let readyMs: number | undefined;
      let readyErr: unknown;
      try {
        readyMs = await waitForReadyInConsole(daemon.root, exclude, t0, abort);
      } catch (err) {
        readyErr = err;
      }
      const r = await cli;
      const id = r.code === 0 ? lastLine(r.stdout) : undefined;
      let rmMs = NaN;
      if (id) {
        spawnedIds.add(id);
        const a = launchOf(daemon, id)?.accel;
        if (a) spawnAccels.add(a);
        rmMs = (await cliOk(daemon, ['rm', '-f', id])).ms;
        spawnedIds.delete(id);
      }
      if (readyErr) throw readyErr;
      if (r.code !== 0) throw new Error(abort.reason ?? `hypercore spawn failed (${r.code})`);
      return { readyMs: readyMs!, spawnMs: r.ms, rmMs };
    };
    // Warm-up, not counted: the restarted daemon's first launch re-runs the accel probe (cached per daemon process).
    {
      rmSync(rawAgentSocket, { force: true });
      const raw = await rawBootToReady(await rawArgsFor(0));
      const hc = await hypercoreSpawn('bench-spawn-warmup');
      console.log(`  warm-up (not counted; the daemon's first launch after its restart re-runs the accel probe): raw ${fmt(raw)}, spawn → ready ${fmt(hc.readyMs)}, → returned ${fmt(hc.spawnMs)}`);
    }
    const tSpawnPhase = performance.now();
    for (let i = 1; i <= opts.spawnRuns; i++) {
      if (i > 1 && performance.now() - tSpawnPhase > BUDGET.spawn) {
        console.log(`  stopped at the time budget after ${i - 1} runs`);
        break;
      }
      rmSync(rawAgentSocket, { force: true });
      const raw = await rawBootToReady(await rawArgsFor(i));
      rawReady.push(raw);
      const hc = await hypercoreSpawn(`bench-spawn-${i}`);
      hcSpawn.push(hc.spawnMs);
      hcReady.push(hc.readyMs);
      hcRm.push(hc.rmMs);
      console.log(
        `  run ${i}: raw qemu → agent ready ${fmt(raw).padStart(9)}   hypercore spawn → agent ready (console) ${fmt(hc.readyMs).padStart(9)}   → spawn returned ${fmt(hc.spawnMs).padStart(9)}   rm -f ${fmt(hc.rmMs).padStart(8)}`,
      );
    }
    if ([...spawnAccels].some((a) => a !== accel)) console.log(`  WARNING: spawned VMs used accel ${[...spawnAccels].join('/')}, raw used ${accel}`);

    // --- summary ----------------------------------------------------------------------------------
    const p50 = (v: readonly number[]) => (v.length ? pct(v, 50) : NaN);
    console.log('\nsummary:');
    console.log(`  accel: ${launch?.accel ?? '?'} (auto; from the daemon's 'launching QEMU' line)`);
    console.log(pLine('  exec via CLI', execCli, opts.execRuns));
    console.log(pLine('  exec via gRPC (in-process)', execGrpc, opts.execRuns));
    console.log(pLine('  bare agent hello()', hello, opts.agentRuns));
    console.log(pLine('  bare agent createProcess+wait (true)', createWait, opts.agentRuns));
    console.log(`  ratio exec gRPC p50 / bare hello p50:                 ${(p50(execGrpc) / p50(hello)).toFixed(2)}`);
    console.log(`  ratio exec gRPC p50 / bare createProcess+wait p50:    ${(p50(execGrpc) / p50(createWait)).toFixed(2)}`);
    console.log(`  ratio exec CLI p50 / exec gRPC p50:                   ${(p50(execCli) / p50(execGrpc)).toFixed(2)}`);
    console.log(mLine('  raw qemu boot → agent ready', rawReady));
    console.log(mLine('  hypercore spawn → agent ready (console)', hcReady));
    console.log(mLine('  hypercore spawn → CLI returned', hcSpawn));
    console.log(mLine('  hypercore rm -f (of those VMs)', hcRm));
    console.log(`  ratio spawn-returned / raw agent-ready (median):     ${(median(hcSpawn) / median(rawReady)).toFixed(2)}  (overhead ${fmt(median(hcSpawn) - median(rawReady))})`);
    console.log(`  ratio spawn agent-ready / raw agent-ready (median):  ${(median(hcReady) / median(rawReady)).toFixed(2)}  (overhead ${fmt(median(hcReady) - median(rawReady))})`);
    console.log(
      `  system image: ${mib(sysStat.size)} apparent, ${mib(sysStat.blocks * 512)} allocated (${sys.path.split('/').at(-1)!.slice(0, 19)}….ext4); built in this run: ${sys.built ? `yes (${fmt(sys.buildMs)})` : 'no (cache hit)'}`,
    );
    console.log(`  total bench time: ${((performance.now() - benchStart) / 1000).toFixed(1)} s`);
  } finally {
    clearTimeout(watchdog);
    // Removes the VMs through the daemon when it is up (graceful), then kills whatever is left.
    if (!cleaning) {
      for (const id of spawnedIds) await runCli(daemon, ['rm', '-f', id], 30_000).catch(() => undefined);
    }
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
