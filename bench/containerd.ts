/**
 * containerd shim benchmark: what running containers through containerd's Hypercore runtime costs
 * against Hypercore's own CLI, for the same image in the same run.
 *
 *   node dist/bench/containerd.js [--runs N] [--pods N]     (defaults 3 and 3)
 *
 * Set-up (the shim's end-to-end node, see test/e2e/containerd/cri-node.ts): a local
 * docker-registry with a busybox image, an isolated hypercored, a private containerd 1.6 with the
 * CRI plugin inside a network namespace made for the run, CNI bridge + host-local there. One VM
 * and one container of each kind first, not counted (guest system image, image caches).
 *  1. `ctr run --rm IMAGE ID true` with runtime io.containerd.hypercore.v2 against
 *     `hypercore run --rm --network none IMAGE -- true` (each a new process, to its exit; taken in
 *     turn, N of each);
 *  2. CRI as kubelet calls it: RunPodSandbox then Create + StartContainer of a first container (the
 *     pod's VM boots), then Create + StartContainer of a second one (joins the running VM), against
 *     `hypercore spawn --hac` of the same image (1 vCPU, 256 MiB, no network) to its return;
 *  3. host memory per pod beyond its VM: hypercored's PSS and RSS with no pod, 1 pod and N pods
 *     (each a sandbox plus one container), containerd's RSS beside it, and every host process
 *     under hypercored or containerd other than the VMs' QEMU (a shim process outliving `start`
 *     would show there), against the aim of ≤ 5 MiB per pod; and the shim keeper (one process per
 *     host holding containerd's connections for all pods): its own PSS and RSS, and what it grows
 *     per pod, counted in the per-pod figure.
 * Numbers only, no assertions; everything is removed in `finally`, on SIGINT/SIGTERM and by a
 * watchdog.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HypercoreClient } from '../sdk/src/index.js';
import { hostCpuCount } from '../src/system/host.js';
import { containerConfig, CriNode, CRI_NAMESPACE, CTR_NAMESPACE, HYPERCORE_RUNTIME, sandboxConfig } from '../test/e2e/containerd/cri-node.js';
import { lastLine, TestDaemon } from '../test/e2e/harness.js';
import { intInRange, parseFlags } from './lib/args.js';
import { fmtMiB, fmtMs, minMedianMaxLine } from './lib/format.js';
import { guardCleanup, runBench } from './lib/lifecycle.js';
import { pss, rss } from './lib/memory.js';
import { ChildSet, runCli, runProcess, type RunResult } from './lib/processes.js';
import { median } from './lib/stats.js';

const WATCHDOG_MS = 1_800_000;
const RUN_TIMEOUT_MS = 240_000;
/** The shim's binary name: a process with it in its command line that outlives `start` is per-pod cost. */
const SHIM = 'containerd-shim-hypercore-v2';
/** Memory is read this many times, a second apart, and the median kept (the daemon's heap breathes). */
const MEMORY_SAMPLES = 5;

function parseArgs(argv: readonly string[]): { runs: number; pods: number } {
  const o = { runs: 3, pods: 3 };
  parseFlags(argv, {
    usage: 'usage: node dist/bench/containerd.js [--runs N] [--pods N]   (defaults 3, 3)',
    usageOnUnknown: true,
    flags: {
      '--runs': (value) => (o.runs = intInRange('--runs', value(), 1, 20)),
      '--pods': (value) => (o.pods = intInRange('--pods', value(), 1, 10)),
    },
  });
  return o;
}

const line = (label: string, values: readonly number[]) => minMedianMaxLine(label, values, { labelWidth: 40, width: 9, format: fmtMs, beforeCount: '  ', empty: '(no samples)' });

function succeeded(what: string, r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.slice(-2000)}`);
  return r;
}

/** Parent pid of every process on the host. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      out.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/**
 * Host processes below `roots` (not the roots themselves) outside the subtrees of `vmms`, plus any
 * process anywhere running the shim: what a pod costs on the host besides its VM.
 */
function hostProcesses(roots: readonly number[], vmms: ReadonlySet<number>): { pid: number; command: string }[] {
  const ppid = parents();
  const below = (pid: number, set: ReadonlySet<number>): boolean => {
    for (let p = ppid.get(pid); p !== undefined && p > 1; p = ppid.get(p)) if (set.has(p)) return true;
    return false;
  };
  const rootSet = new Set(roots);
  return [...ppid.keys()]
    .filter((pid) => pid !== process.pid && ((below(pid, rootSet) && !vmms.has(pid) && !below(pid, vmms)) || commandLine(pid).includes(SHIM)))
    .map((pid) => ({ pid, command: commandLine(pid).slice(0, 120) }));
}

async function sampled(read: () => number): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < MEMORY_SAMPLES; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 1000));
    values.push(read());
  }
  return median(values);
}

async function main(): Promise<void> {
  const { runs, pods } = parseArgs(process.argv.slice(2));
  const daemon = new TestDaemon('hc-bench-containerd-');
  const node = new CriNode(daemon, { netnsPrefix: 'hc-bench-node', subnet: '10.231.9' });
  const children = new ChildSet();
  let api: HypercoreClient | undefined;
  const guard = guardCleanup(
    async () => {
      await children.killAllHard();
      await api?.close().catch(() => undefined);
      await node.stop();
    },
    { watchdog: { ms: WATCHDOG_MS, message: `[bench] watchdog: over ${WATCHDOG_MS / 1000} s, giving up` } },
  );
  try {
    process.env['HYPERCORE_AGENT_TIMEOUT'] = '120';
    await node.start();
    const image = await node.addImage('NAME="Hypercore shim bench"\nID=hcbench\n', [CRI_NAMESPACE, CTR_NAMESPACE]);
    api = new HypercoreClient({ socketPath: daemon.socket });
    const c = api;
    const { containerd, cri } = node;
    const fifoDir = join(containerd.dir, 'fifo');
    const ctrRun = (id: string) =>
      runProcess('ctr', ['--address', containerd.socket, '-n', CTR_NAMESPACE, 'run', '--rm', '--fifo-dir', fifoDir, '--runtime', HYPERCORE_RUNTIME, image, id, 'true'], { timeoutMs: RUN_TIMEOUT_MS, children });
    const hcRun = () => runCli(daemon, ['run', '--rm', '--network', 'none', image, '--', 'true'], { timeoutMs: RUN_TIMEOUT_MS, children });
    const hac = join(daemon.dir, 'spawn.toml');
    writeFileSync(hac, `[spacecore]\nname = "bench"\n[hardware]\ncores = 1\nmemory = 256\nref = "${image}"\n[workload]\ncommand = ["sleep", "1000000"]\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
    const timedSpawn = async (name: string): Promise<number> => {
      const r = succeeded('hypercore spawn', await runCli(daemon, ['spawn', '--hac', hac, '--name', name], { timeoutMs: RUN_TIMEOUT_MS, children }));
      await c.deleteVm(lastLine(r.stdout), { force: true });
      return r.ms;
    };
    let podSeq = 0;
    /** RunPodSandbox, then each command as a container started in turn; the time of each step. */
    const runPod = async (commands: readonly string[][]): Promise<{ id: string; sandboxMs: number; containerMs: number[] }> => {
      const name = `bench-pod-${podSeq++}`;
      const sandbox = sandboxConfig(name, node.logDirectory(name));
      const t0 = performance.now();
      const id = await cri.runPodSandbox(sandbox, 'hypercore');
      const sandboxMs = performance.now() - t0;
      const containerMs: number[] = [];
      for (const [i, command] of commands.entries()) {
        const t = performance.now();
        await cri.startContainer(await cri.createContainer(id, containerConfig(`c${i}`, command, image), sandbox));
        containerMs.push(performance.now() - t);
      }
      return { id, sandboxMs, containerMs };
    };
    const removePod = async (id: string): Promise<void> => {
      await cri.stopPodSandbox(id);
      await cri.removePodSandbox(id);
    };
    const sleeper = ['sleep', '1000000'];

    console.log(`containerd shim bench: ${runs} run(s) each, ${pods} pod(s) for memory; busybox image; host ${hostCpuCount()} CPUs, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    // Not counted: the guest system image, the image's ext4 caches on both paths.
    succeeded('ctr run (warm-up)', await ctrRun('bench-warm'));
    succeeded('hypercore run (warm-up)', await hcRun());
    await removePod((await runPod([sleeper])).id);
    await timedSpawn('bench-warm');

    const ctr: number[] = [];
    const hc: number[] = [];
    const sandboxOnly: number[] = [];
    const first: number[] = [];
    const second: number[] = [];
    const spawned: number[] = [];
    for (let i = 0; i < runs; i++) {
      ctr.push(succeeded('ctr run', await ctrRun(`bench-${i}`)).ms);
      hc.push(succeeded('hypercore run', await hcRun()).ms);
      const pod = await runPod([sleeper, sleeper]);
      sandboxOnly.push(pod.sandboxMs);
      first.push(pod.sandboxMs + pod.containerMs[0]!);
      second.push(pod.containerMs[1]!);
      await removePod(pod.id);
      spawned.push(await timedSpawn(`bench-${i}`));
    }
    console.log(line('ctr run --rm (hypercore runtime) true', ctr));
    console.log(line('hypercore run --rm true', hc));
    console.log(line('CRI: RunPodSandbox', sandboxOnly));
    console.log(line('CRI: pod + first container started', first));
    console.log(line('CRI: second container started', second));
    console.log(line('hypercore spawn (returns booted)', spawned));

    // Memory: no pod (after the pods above, so the daemon's code paths are loaded), 1, then N.
    const vmmPids = async (): Promise<Set<number>> => new Set((await c.listVms()).flatMap((vm) => (vm.pid ? [vm.pid] : [])));
    const daemonPid = daemon.pid!;
    const containerdPid = containerd.pid!;
    // The keeper is detached (it outlives hypercored), so it is found by its control socket.
    const keeperControl = join(daemon.runDir, 'shim', 'keeper.sock');
    const keeperPid = (): number => {
      const found = [...parents().keys()].filter((pid) => commandLine(pid).includes(keeperControl));
      if (found.length !== 1) throw new Error(`expected one shim keeper process, found ${found.length}`);
      return found[0]!;
    };
    const measure = async (label: string) => {
      const procs = hostProcesses([daemonPid, containerdPid], await vmmPids());
      const keeper = keeperPid();
      const m = { label, pss: await sampled(() => pss(daemonPid)), rss: await sampled(() => rss(daemonPid)), keeperPss: await sampled(() => pss(keeper)), keeperRss: await sampled(() => rss(keeper)), containerdRss: await sampled(() => rss(containerdPid)), procs };
      console.log(`${label.padEnd(10)} hypercored PSS ${fmtMiB(m.pss).padStart(10)}  RSS ${fmtMiB(m.rss).padStart(10)}   shim keeper PSS ${fmtMiB(m.keeperPss).padStart(10)}  RSS ${fmtMiB(m.keeperRss).padStart(10)}   containerd RSS ${fmtMiB(m.containerdRss).padStart(10)}   other host processes ${procs.length}${procs.map((p) => `\n             pid ${p.pid}: ${p.command}`).join('')}`);
      return m;
    };
    const live: string[] = [];
    const none = await measure('0 pods');
    live.push((await runPod([sleeper])).id);
    const one = await measure('1 pod');
    while (live.length < pods) live.push((await runPod([sleeper])).id);
    const many = pods > 1 ? await measure(`${pods} pods`) : one;
    for (const id of live) await removePod(id);

    const perPod = (a: number, b: number, n: number) => fmtMiB((b - a) / n);
    console.log('');
    console.log(`per pod beyond its VM, hypercored PSS:   1 pod ${perPod(none.pss, one.pss, 1)}   ${pods} pods ${perPod(none.pss, many.pss, pods)} each`);
    console.log(`per pod beyond its VM, hypercored RSS:   1 pod ${perPod(none.rss, one.rss, 1)}   ${pods} pods ${perPod(none.rss, many.rss, pods)} each`);
    console.log(`per pod beyond its VM, shim keeper RSS:  1 pod ${perPod(none.keeperRss, one.keeperRss, 1)}   ${pods} pods ${perPod(none.keeperRss, many.keeperRss, pods)} each`);
    console.log(`shim keeper, once per host (0 pods):     RSS ${fmtMiB(none.keeperRss)}, PSS ${fmtMiB(none.keeperPss)}`);
    console.log(`per pod, containerd RSS (for reference): 1 pod ${perPod(none.containerdRss, one.containerdRss, 1)}   ${pods} pods ${perPod(none.containerdRss, many.containerdRss, pods)} each`);
    console.log(`host processes per pod besides QEMU:     ${(many.procs.length - none.procs.length) / pods} (shim processes alive: ${many.procs.filter((p) => p.command.includes(SHIM)).length})`);
    // Both: PSS splits node's shared pages among every node process on the host, so it moves when
    // other node processes come and go; RSS does not, but counts those pages whole.
    console.log(`aim ≤ 5 MiB per pod (Kata: 20 MiB+):     hypercored + keeper RSS ${perPod(none.rss + none.keeperRss, many.rss + many.keeperRss, pods)}, PSS ${perPod(none.pss + none.keeperPss, many.pss + many.keeperPss, pods)} per pod with ${pods}; plus the keeper's ${fmtMiB(none.keeperRss)} RSS once per host`);
    console.log(`ctr run / hypercore run:                 ${(median(ctr) / median(hc)).toFixed(2)}× (medians)`);
    console.log(`pod + first container / spawn:           ${(median(first) / median(spawned)).toFixed(2)}× (medians)`);
  } finally {
    await guard.finish();
  }
}

runBench(main);
