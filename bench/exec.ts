/**
 * Exec benchmark: what does `hypercore exec` cost on top of the bare agent round trip, and how does
 * spawning an agent VM compare with a raw QEMU boot of the same guest?
 *
 *   node dist/bench/exec.js [--runs N] [--exec-runs N] [--agent-runs N] [--spawn-runs R]
 *
 *   --runs N        sets both --exec-runs and --agent-runs
 *   --exec-runs N   `hypercore exec ID -- true` via the CLI and via in-process gRPC (default 50)
 *   --agent-runs N  bare agent hello() and createProcess+wait, daemon stopped (default 200)
 *   --spawn-runs R  `hypercore spawn` vs raw QEMU boot to agent ready (default 3; 0 skips section 3)
 *
 * Set-up: an isolated hypercored (TestDaemon, fresh root); the guest system image is built (or found)
 * by this process in `<root>/guest` before the daemon starts, so that no spawn below pays for it; a
 * busybox OCI image built in code is written as an OCI layout tar and `hypercore image import`ed;
 * one agent VM runs `sh -c "exec sleep 100000"` (accel auto, 1 vCPU, 256 MiB).
 *
 *  1. exec latency: `hypercore exec ID -- true` (a new CLI process each run), CLI start → exit; the
 *     same over one long-lived in-process gRPC client (Exec bidi stream: start, closeStdin → the
 *     `exited` message), and over in-process WebSockets (what the CLI uses), which leave out the
 *     CLI's node start-up. Pipe and terminal execs are both forks of the workload's exec helper; an
 *     exec with a tty is timed over WebSockets for reference.
 *  2. bare agent round trip on the same virtio-serial channel: QEMU's chardev serves one client, so
 *     the daemon is stopped (SIGTERM; VMs keep running), a TtrpcAgentConnector connects to
 *     `<run-dir>/vms/<id>/agent.sock`, and times hello() and createProcess({args:['true']}, true) +
 *     wait() (an exec in the workload's container, no daemon), and the same outside the container
 *     (a process of the VM, spawned by the agent's node). Then the daemon is started again and
 *     re-adopts the VM (timed until an exec works again).
 *  3. spawn vs raw boot, interleaved per run: `hypercore spawn` of a fresh VM (waits for agent and
 *     workload) → CLI return, plus the agent's ready line in its console.log (polled every 20 ms);
 *     raw QEMU (the provider's command line for the same spec: same kernel/initrd, the system image
 *     read-only as root, the image's block image and a scratch overlay as the spawned VMs get them,
 *     the same virtio-serial agent device on a socket in a temp dir, `-serial stdio`, no
 *     -daemonize/-qmp/-pidfile, under `setpriv --pdeathsig KILL`) → `[hypercore-agent] ready` on
 *     stdout. The raw boot uses the accel the daemon chose (TCG on this host). One warm-up pair is
 *     not counted (the restarted daemon re-runs its accel probe on its first launch). Each spawned
 *     VM's last start (`inspect --json`) gives the daemon's time per step.
 *
 * Targets (issue 11): exec via gRPC ≤ 3x the bare hello (p50); spawn → agent ready ≤ 1.05x and
 * spawn → CLI returned ≤ 1.15x the raw boot (medians).
 *
 * Prints numbers only, no assertions. Everything (daemon, VMs, raw QEMUs, CLI children, temp dirs)
 * is removed in `finally` and on SIGINT/SIGTERM; loops stop early at their time budget and a
 * watchdog bounds the whole run to 6 minutes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TtrpcAgentConnector, type TtrpcAgentSession } from '../src/agent-client/agent-session.js';
import { READY_LINE } from '../src/agent/log.js';
import { loadHacFile } from '../src/config/index.js';
import type { VmDisk } from '../src/core/image.js';
import type { Vm } from '../src/core/vm.js';
import { ensureSystemImage, type SystemImage } from '../src/guest/system-image.js';
import { writeQcow2Overlay } from '../src/images/qcow2.js';
import { buildImage, buildLayer, busyboxLayerEntries, writeOciLayoutTar } from '../src/images/testing/oci-builder.js';
import { WebSocket } from 'ws';
import { hostCpuCount, hostTscKhz } from '../src/system/host.js';
import { bootDir, isAlive, lastLine, sleep, TestDaemon } from '../test/e2e/harness.js';
import { intInRange, parseFlags } from './lib/args.js';
import { columns, fmtMiB, fmtMs, minMedianMaxLine } from './lib/format.js';
import { kernelVersion, waitForConsoleLine } from './lib/guest.js';
import { guardCleanup, runBench } from './lib/lifecycle.js';
import { grpcExec as grpcExecFor, newExecClient, type ExecClient } from './lib/grpc-exec.js';
import { ChildSet, killHard, runCli as runHypercore, type RunResult } from './lib/processes.js';
import { bootRawQemu, qemuVersion, rawQemuArguments, rawQemuCommandLine } from './lib/raw-qemu.js';
import { median, percentile } from './lib/stats.js';
import { TraceSummary } from './lib/trace.js';

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
const BUDGET = { execCli: 50_000, execGrpc: 25_000, execWs: 25_000, execTty: 20_000, hello: 15_000, createProcess: 40_000, spawn: 110_000 };

// ---------------------------------------------------------------------------------------------
// arguments, formatting, the CLI

interface Options {
  execRuns: number;
  agentRuns: number;
  spawnRuns: number;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { execRuns: 50, agentRuns: 200, spawnRuns: 3 };
  const runs = (value: () => string | undefined) => {
    const n = intInRange('--runs', value(), 1, 2000);
    o.execRuns = n;
    o.agentRuns = n;
  };
  parseFlags(argv, {
    usage: 'usage: node dist/bench/exec.js [--runs N] [--exec-runs N] [--agent-runs N] [--spawn-runs R]   (defaults: exec 50, agent 200, spawn 3)',
    usageOnUnknown: true,
    flags: {
      '--runs': runs,
      '-n': runs,
      '--exec-runs': (value) => (o.execRuns = intInRange('--exec-runs', value(), 1, 2000)),
      '--agent-runs': (value) => (o.agentRuns = intInRange('--agent-runs', value(), 1, 2000)),
      '--spawn-runs': (value) => (o.spawnRuns = intInRange('--spawn-runs', value(), 0, 10)),
    },
  });
  return o;
}

/** `label  p50 X  p99 Y  min Z  max W  (n=N)`, noting a loop that stopped at its time budget. */
function pLine(label: string, values: readonly number[], wanted: number): string {
  if (values.length === 0) return `${label.padEnd(44)} (no samples)`;
  const short = values.length < wanted ? `  [stopped at the time budget: ${values.length}/${wanted}]` : '';
  const cols = columns([['p50', percentile(values, 0.5)], ['p99', percentile(values, 0.99)], ['min', Math.min(...values)], ['max', Math.max(...values)]], fmtMs, 9);
  return `${label.padEnd(44)} ${cols}  (n=${values.length})${short}`;
}

const mLine = (label: string, values: readonly number[]): string => minMedianMaxLine(label, values, { labelWidth: 44, width: 9, format: fmtMs, beforeCount: '  ', empty: '(no samples)' });

const liveChildren = new ChildSet();

/** Runs the real CLI (a new node process) and times start → exit. */
function runCli(daemon: TestDaemon, args: readonly string[], timeoutMs = CLI_TIMEOUT_MS): Promise<RunResult> {
  return runHypercore(daemon, args, { timeoutMs, children: liveChildren });
}

async function cliOk(daemon: TestDaemon, args: readonly string[]): Promise<RunResult> {
  const r = await runCli(daemon, args);
  if (r.code !== 0) throw new Error(`hypercore ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log tail ---\n${daemon.log().slice(-3000)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// gRPC exec, in process

const grpcExec = (client: ExecClient, id: string, args: string[]) => grpcExecFor(client, id, args, EXEC_TIMEOUT_MS);

/** One exec over the daemon's WebSocket route (as the CLI does): start, closeStdin, until the socket closes. */
function wsExec(socket: string, id: string, args: string[], tty = false): Promise<{ ms: number; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const ws = new WebSocket(`ws+unix:${socket}:/v1/vms/${id}/exec`);
    let exitCode: number | undefined;
    const timer = setTimeout(() => (ws.terminate(), reject(new Error(`WebSocket exec timed out after ${EXEC_TIMEOUT_MS} ms`))), EXEC_TIMEOUT_MS);
    ws.on('open', () => {
      ws.send(JSON.stringify({ start: { args, tty } }));
      ws.send(JSON.stringify({ closeStdin: true }));
    });
    ws.on('message', (raw: Buffer) => {
      const m = JSON.parse(raw.toString('utf8')) as { exited?: boolean; exitCode?: number; error?: { message?: string } };
      if (m.error) reject(new Error(`WebSocket exec failed: ${m.error.message ?? '?'}`));
      if (m.exited) exitCode = m.exitCode ?? 0;
    });
    ws.on('close', () => {
      clearTimeout(timer);
      if (exitCode === undefined) reject(new Error('WebSocket exec ended without an exit'));
      else resolve({ ms: performance.now() - t0, exitCode });
    });
    ws.on('error', (err) => reject(err));
  });
}

/** Runs `op` WARMUP + runs times (fewer once `budgetMs` is spent) and returns the timed samples. */
async function sampled(runs: number, budgetMs: number, op: () => Promise<number>): Promise<number[]> {
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < WARMUP + runs; i++) {
    if (i >= WARMUP && performance.now() - t0 > budgetMs) break;
    const ms = await op();
    if (i >= WARMUP) samples.push(ms);
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------
// daemon log, console, raw QEMU

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

/** Polls the console.log of VM directories not in `exclude` for the agent's ready line. */
function waitForReadyInConsole(root: string, exclude: ReadonlySet<string>, t0: number, abort: { reason?: string }): Promise<number> {
  return waitForConsoleLine(root, READY_LINE, {
    t0,
    timeoutMs: BOOT_TIMEOUT_MS,
    pollMs: POLL_MS,
    abort,
    exclude,
    timeoutMessage: () => `no "${READY_LINE}" in a new VM's console.log within ${BOOT_TIMEOUT_MS} ms`,
  });
}

/** Boots raw QEMU; resolves at the agent's ready line on the console, then SIGKILLs it. */
async function rawBootToReady(args: readonly string[]): Promise<number> {
  const { ms, proc } = await bootRawQemu(args, { line: READY_LINE, what: 'ready line', timeoutMs: BOOT_TIMEOUT_MS, stderrTail: 1500, children: liveChildren });
  await killHard(proc);
  return ms;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const benchStart = performance.now();
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '90';
  const daemon = new TestDaemon('hc-bench-exec-');
  const rawDir = join(daemon.dir, 'raw');
  let grpcClient: ExecClient | undefined;
  let agentSession: TtrpcAgentSession | undefined;
  let vmId: string | undefined;
  const spawnedIds = new Set<string>();

  const guard = guardCleanup(
    async () => {
      grpcClient?.close();
      agentSession?.close();
      await liveChildren.killAllHard();
      // The daemon SIGTERMs; QEMUs (they mention the daemon's dir on their command line) are SIGKILLed.
      await daemon.cleanup();
    },
    { watchdog: { ms: WATCHDOG_MS, message: `\n[bench] watchdog: still running after ${WATCHDOG_MS / 1000} s; cleaning up and exiting` } },
  );

  try {
    console.log('hypercore exec benchmark');
    console.log(`  host: ${hostCpuCount()} CPUs, TSC ${hostTscKhz() ?? '?'} kHz, ${qemuVersion()}, node ${process.version}`);
    console.log(`  guest: kernel ${kernelVersion()} + stage-1 initrd (${bootDir}), system image root (ro), busybox OCI workload, ${CORES} vCPU, ${MEMORY_MIB} MiB, -M microvm`);
    console.log(`  runs: exec ${opts.execRuns} (+${WARMUP} warm-up), agent ${opts.agentRuns} (+${WARMUP} warm-up), spawn/raw ${opts.spawnRuns} interleaved; watchdog ${WATCHDOG_MS / 1000} s`);

    // --- system image (before the daemon, so no spawn pays for building it) -----------------
    mkdirSync(daemon.root, { recursive: true, mode: 0o700 });
    const guestDir = join(daemon.root, 'guest');
    const preexisting = existsSync(guestDir) && readdirSync(guestDir).some((f) => /^system-[0-9a-f]{64}\.ext4$/.test(f));
    let buildNote = '';
    const sys: SystemImage = await ensureSystemImage({ cacheDir: guestDir, onBuild: (key) => (buildNote = `building system-${key.slice(0, 12)}….ext4`) });
    const sysStat = statSync(sys.path);
    console.log(`\nsystem image: ${sys.path}`);
    console.log(`  ${buildNote || 'cache hit'}; ${sys.built ? `built in this run in ${fmtMs(sys.buildMs)}` : `not built in this run (found in the cache; ${fmtMs(sys.buildMs)} to hash the inputs)`}${preexisting ? '' : ' (fresh daemon root)'}`);

    // --- image import, daemon, agent VM ------------------------------------------------------
    const tStart = performance.now();
    const image = buildImage([await buildLayer(busyboxLayerEntries('NAME="Hypercore exec bench"\nID=hcbench\n'))], { cmd: ['/bin/sh'] });
    const tarPath = join(daemon.dir, 'busybox-oci.tar');
    await writeOciLayoutTar(image, tarPath, IMAGE_REF);
    const buildImageMs = performance.now() - tStart;
    await daemon.start();
    console.log(`\nhypercored pid ${daemon.pid}, root ${daemon.root}`);
    const imported = await cliOk(daemon, ['image', 'import', tarPath]);
    console.log(`busybox OCI image: built in code (${fmtMiB(statSync(tarPath).size)} OCI layout tar) in ${fmtMs(buildImageMs)}; image import → ${lastLine(imported.stdout)} in ${fmtMs(imported.ms)}`);

    const hacFile = join(daemon.dir, 'hac.toml');
    writeFileSync(
      hacFile,
      `[spacecore]\nname = "bench-exec"\n[hardware]\ncores = ${CORES}\nmemory = ${MEMORY_MIB}\nref = "${IMAGE_REF}"\n` +
        `[workload]\ncommand = ["sh", "-c", "exec sleep 100000"]\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`,
    );
    const spawned = await cliOk(daemon, ['spawn', '--hac', hacFile]);
    vmId = lastLine(spawned.stdout);
    spawnedIds.add(vmId);
    const vm = JSON.parse((await cliOk(daemon, ['inspect', '--json', vmId])).stdout) as Vm;
    const launch = launchOf(daemon, vmId);
    const accel = (launch?.accel === 'kvm' ? 'kvm' : launch?.accel === 'tcg' ? 'tcg' : undefined) ?? 'tcg';
    console.log(`agent VM ${vmId} (${vm.name}): state ${vm.state}, QEMU pid ${vm.pid}; spawn (first, incl. accel probe) ${fmtMs(spawned.ms)}`);
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
    const execWs = await sampled(opts.execRuns, BUDGET.execWs, async () => {
      const r = await wsExec(daemon.socket, vmId!, ['true']);
      if (r.exitCode !== 0) throw new Error(`WebSocket exec true exited ${r.exitCode}`);
      return r.ms;
    });
    const execTty = await sampled(Math.min(opts.execRuns, 10), BUDGET.execTty, async () => (await wsExec(daemon.socket, vmId!, ['true'], true)).ms);
    const cliHelp: number[] = [];
    for (let i = 0; i < 1 + 5; i++) {
      const r = await runCli(daemon, ['--help']);
      if (i >= 1) cliHelp.push(r.ms);
    }
    console.log('\n1. exec latency (`true` in the workload container, VM idle):');
    console.log(pLine('hypercore exec ID -- true (CLI process)', execCli, opts.execRuns));
    console.log(pLine('gRPC Exec, in-process client (reused)', execGrpc, opts.execRuns));
    console.log(pLine('WebSocket exec, in-process', execWs, opts.execRuns));
    console.log(pLine('reference: WebSocket exec -t (helper, pty)', execTty, Math.min(opts.execRuns, 10)));
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
    const session = agentSession;
    const plainProcess = await sampled(Math.min(opts.agentRuns, 50), BUDGET.createProcess / 2, async () => {
      const t0 = performance.now();
      const { processId } = await session.createProcess({ args: ['true'] }, false);
      await session.wait(processId);
      return performance.now() - t0;
    });
    agentSession.close();
    agentSession = undefined;
    console.log(`\n2. bare agent round trip (daemon stopped; own TTRPC client on ${agentSocket}):`);
    console.log(`  connect + HCSYNC handshake: ${fmtMs(connectMs)}; agent ${info.agentVersion}, guest uptime ${(info.uptimeMs / 1000).toFixed(1)} s, workload started: ${info.workloadStarted}`);
    console.log(pLine('agent hello()', hello, opts.agentRuns));
    console.log(pLine('agent createProcess(true, inWorkload)+wait', createWait, opts.agentRuns));
    console.log(pLine('agent createProcess(true, in the VM)+wait', plainProcess, Math.min(opts.agentRuns, 50)));

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
    console.log(`  daemon restarted (socket answers after ${fmtMs(daemonUpMs)}); first successful exec after ${fmtMs(readoptMs)} from the restart`);

    // --- 3. spawn vs raw QEMU boot ----------------------------------------------------------------
    const rawReady: number[] = [];
    const hcSpawn: number[] = [];
    const hcReady: number[] = [];
    const hcRm: number[] = [];
    const traces = new TraceSummary();
    if (opts.spawnRuns > 0) {
      mkdirSync(rawDir, { recursive: true });
      const rawAgentSocket = join(rawDir, 'agent.sock');
      // The spawned VMs' disks: the image's block image, and a scratch overlay (a fresh one per raw boot).
      const scratchBacking = (vm.disks ?? []).find((d) => d.name === 'scratch');
      const scratchTemplate = scratchBacking?.format === 'qcow2' ? (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', scratchBacking.path], { encoding: 'utf8' })) as { 'backing-filename'?: string })['backing-filename'] : undefined;
      const rawDisks = async (i: number): Promise<VmDisk[]> =>
        Promise.all(
          (vm.disks ?? []).map(async (d) => {
            if (d.name !== 'scratch' || !scratchTemplate) return d;
            const path = join(rawDir, `scratch-${i}.qcow2`);
            rmSync(path, { force: true });
            await writeQcow2Overlay(path, { backingFile: scratchTemplate, backingFormat: 'raw', virtualSize: statSync(scratchTemplate).size, lazyRefcounts: true });
            return { ...d, path };
          }),
        );
      const rawArgsFor = async (i: number): Promise<string[]> => {
        const spec = await loadHacFile(hacFile, { hostCpus: hostCpuCount(), overrides: { name: `bench-raw-${i}` }, cwd: daemon.dir });
        return rawQemuArguments({ vmId: `bench-raw-${i}`, spec, rootDisk: { path: sys.path, readOnly: true }, disks: await rawDisks(i), agentSocket: rawAgentSocket, accel });
      };
      {
        const a = await rawArgsFor(0);
        console.log(`\n3. spawn → agent vs raw QEMU boot → agent ready (accel ${accel} on both sides, as the daemon chose)`);
        console.log(`  raw QEMU command line: ${rawQemuCommandLine(a)}`);
      }
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
          if (!name.includes('warmup')) traces.add((JSON.parse((await cliOk(daemon, ['inspect', '--json', id])).stdout) as Vm).lastStart);
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
        console.log(`  warm-up (not counted; the daemon's first launch after its restart re-runs the accel probe): raw ${fmtMs(raw)}, spawn → ready ${fmtMs(hc.readyMs)}, → returned ${fmtMs(hc.spawnMs)}`);
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
          `  run ${i}: raw qemu → agent ready ${fmtMs(raw).padStart(9)}   hypercore spawn → agent ready (console) ${fmtMs(hc.readyMs).padStart(9)}   → spawn returned ${fmtMs(hc.spawnMs).padStart(9)}   rm -f ${fmtMs(hc.rmMs).padStart(8)}`,
        );
      }
      if ([...spawnAccels].some((a) => a !== accel)) console.log(`  WARNING: spawned VMs used accel ${[...spawnAccels].join('/')}, raw used ${accel}`);
    }

    // --- summary ----------------------------------------------------------------------------------
    const p50 = (v: readonly number[]) => (v.length ? percentile(v, 0.5) : NaN);
    console.log('\nsummary:');
    console.log(`  accel: ${launch?.accel ?? '?'} (auto; from the daemon's 'launching QEMU' line)`);
    console.log(pLine('  exec via CLI', execCli, opts.execRuns));
    console.log(pLine('  exec via gRPC (in-process)', execGrpc, opts.execRuns));
    console.log(pLine('  exec via WebSocket (in-process)', execWs, opts.execRuns));
    console.log(pLine('  exec -t via WebSocket (helper, pty)', execTty, Math.min(opts.execRuns, 10)));
    console.log(pLine('  bare agent hello()', hello, opts.agentRuns));
    console.log(pLine('  bare agent createProcess+wait (true)', createWait, opts.agentRuns));
    console.log(pLine('  bare agent createProcess+wait, in the VM', plainProcess, Math.min(opts.agentRuns, 50)));
    const execRatio = p50(execGrpc) / p50(hello);
    console.log(`  ratio exec gRPC p50 / bare hello p50:                 ${execRatio.toFixed(2)}  target ≤ 3: ${execRatio <= 3 ? 'met' : 'NOT met'}`);
    console.log(`  ratio exec WebSocket p50 / bare hello p50:            ${(p50(execWs) / p50(hello)).toFixed(2)}`);
    console.log(`  ratio exec -t p50 / exec (pipes) p50:               ${(p50(execTty) / p50(execWs)).toFixed(2)}`);
    console.log(`  ratio exec gRPC p50 / bare createProcess+wait p50:    ${(p50(execGrpc) / p50(createWait)).toFixed(2)}`);
    console.log(`  ratio exec CLI p50 / exec gRPC p50:                   ${(p50(execCli) / p50(execGrpc)).toFixed(2)}`);
    if (opts.spawnRuns > 0) {
      console.log(mLine('  raw qemu boot → agent ready', rawReady));
      console.log(mLine('  hypercore spawn → agent ready (console)', hcReady));
      console.log(mLine('  hypercore spawn → CLI returned', hcSpawn));
      console.log(mLine('  hypercore rm -f (of those VMs)', hcRm));
      const returnedRatio = median(hcSpawn) / median(rawReady);
      const readyRatio = median(hcReady) / median(rawReady);
      console.log(`  ratio spawn-returned / raw agent-ready (median):     ${returnedRatio.toFixed(2)}  (overhead ${fmtMs(median(hcSpawn) - median(rawReady))})  target ≤ 1.15: ${returnedRatio <= 1.15 ? 'met' : 'NOT met'}`);
      console.log(`  ratio spawn agent-ready / raw agent-ready (median):  ${readyRatio.toFixed(2)}  (overhead ${fmtMs(median(hcReady) - median(rawReady))})  target ≤ 1.05: ${readyRatio <= 1.05 ? 'met' : 'NOT met'}`);
      console.log(`  daemon steps of those spawns: ${traces.line()}`);
    } else console.log('  spawn vs raw boot: skipped (--spawn-runs 0)');
    console.log(
      `  system image: ${fmtMiB(sysStat.size)} apparent, ${fmtMiB(sysStat.blocks * 512)} allocated (${sys.path.split('/').at(-1)!.slice(0, 19)}….ext4); built in this run: ${sys.built ? `yes (${fmtMs(sys.buildMs)})` : 'no (cache hit)'}`,
    );
    console.log(`  total bench time: ${((performance.now() - benchStart) / 1000).toFixed(1)} s`);
  } finally {
    guard.stopWatchdog();
    // Removes the VMs through the daemon when it is up (graceful), then kills whatever is left.
    if (!guard.started) {
      for (const id of spawnedIds) await runCli(daemon, ['rm', '-f', id], 30_000).catch(() => undefined);
    }
    await guard.finish();
  }
}

runBench(main);
