/**
 * Warm start benchmark: for the same image in the same run, how long until a VM takes an exec when
 * it boots cold, when it resumes from a snapshot, and when it is cloned from a running VM; how long
 * a snapshot pauses its VM; and what 5 clones cost in memory against 5 cold VMs.
 *
 *   node dist/bench/warm-start.js [--runs N]     (default 3 runs of each timing)
 *
 * Set-up: an isolated hypercored (TestDaemon, fresh root, no network); a busybox OCI image built in
 * code is `hypercore image import`ed; the guest system image is built once by a first cold VM that
 * is not counted. Every VM: 1 vCPU, 256 MiB, workload `sleep`, accel as the daemon picks it (TCG on
 * a host without KVM). Timings go through one in-process API client (HTTP for the lifecycle, gRPC
 * for exec), so no CLI start-up is counted:
 *  - cold: CreateVm (returns once the workload runs) → first `exec true` exits;
 *  - restore: RestoreSnapshot of a snapshot of a running VM → first `exec true` exits;
 *  - clone: CloneVm count 1 of a running VM (snapshot + restore; the clone's snapshot is removed
 *    afterwards, inside the call) → first `exec true` in the clone exits;
 *  - snapshot pause: the pause the snapshotted VM's guest saw, as the daemon measured it;
 *  - memory: sum of PSS (/proc/PID/smaps_rollup) of the QEMU processes of 5 cold VMs, then of 5
 *    clones of one VM (the source not counted), each set idle and exec-ready when measured.
 * Goals printed beside the figures: restore ≤ 0.1× cold, clone ≤ 500 ms, 5 clones ≤ 0.5× the memory
 * of 5 cold VMs. Numbers only, no assertions; everything is removed in `finally` and on a signal.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadHacFile } from '../src/config/index.js';
import type { VmSpec } from '../src/core/vm.js';
import { HypercoreClient, type Vm } from '../sdk/src/index.js';
import { buildImage, buildLayer, busyboxLayerEntries, writeOciLayoutTar } from '../src/images/testing/oci-builder.js';
import { hostCpuCount } from '../src/system/host.js';
import { TestDaemon } from '../test/e2e/harness.js';
import { intInRange, parseFlags } from './lib/args.js';
import { fmtMiB, fmtMs, minMedianMaxLine } from './lib/format.js';
import { grpcExec, newExecClient, type ExecClient } from './lib/grpc-exec.js';
import { guardCleanup, runBench } from './lib/lifecycle.js';
import { pss } from './lib/memory.js';
import { median } from './lib/stats.js';

const WATCHDOG_MS = 590_000;
const EXEC_TIMEOUT_MS = 60_000;
const MEMORY_VMS = 5;
const IMAGE_REF = 'bench.local/hc/busybox:1';

function parseArgs(argv: readonly string[]): { runs: number } {
  const o = { runs: 3 };
  parseFlags(argv, {
    usage: 'usage: node dist/bench/warm-start.js [--runs N]   (default 3)',
    usageOnUnknown: true,
    flags: { '--runs': (value) => (o.runs = intInRange('--runs', value(), 1, 20)) },
  });
  return o;
}

const line = (label: string, values: readonly number[]) => minMedianMaxLine(label, values, { labelWidth: 34, width: 9, format: fmtMs, beforeCount: '  ', empty: '(no samples)' });

async function main(): Promise<void> {
  const { runs } = parseArgs(process.argv.slice(2));
  const daemon = new TestDaemon('hc-bench-warm-');
  let exec: ExecClient | undefined;
  let api: HypercoreClient | undefined;
  const guard = guardCleanup(
    async () => {
      exec?.close();
      await api?.close().catch(() => undefined);
      await daemon.cleanup();
    },
    { watchdog: { ms: WATCHDOG_MS, message: `[bench] watchdog: over ${WATCHDOG_MS / 1000} s, giving up` } },
  );
  try {
    await daemon.start();
    api = new HypercoreClient({ socketPath: daemon.socket });
    exec = newExecClient(daemon.socket);
    const tar = join(daemon.dir, 'busybox.tar');
    await writeOciLayoutTar(buildImage([await buildLayer(busyboxLayerEntries())], { cmd: ['/bin/sh'] }), tar, IMAGE_REF);
    const imported = daemon.cli(['image', 'import', tar]);
    if (imported.code !== 0) throw new Error(`image import failed: ${imported.stderr}`);
    const hac = join(daemon.dir, 'warm.toml');
    writeFileSync(hac, `[spacecore]\nname = "warm"\n[hardware]\ncores = 1\nmemory = 256\nref = "${IMAGE_REF}"\n[workload]\ncommand = ["sleep", "1000000"]\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
    const base = await loadHacFile(hac, { hostCpus: hostCpuCount(), cwd: daemon.dir });
    const spec = (name: string): VmSpec => ({ ...base, name });
    const c = api;
    const e = exec;
    const untilExec = async (vm: Vm, t0: number): Promise<number> => {
      const r = await grpcExec(e, vm.id, ['true'], EXEC_TIMEOUT_MS);
      if (r.exitCode !== 0) throw new Error(`exec true in ${vm.name} exited ${r.exitCode}`);
      return performance.now() - t0;
    };

    console.log(`warm-start bench: ${runs} run(s) each; 1 vCPU, 256 MiB, busybox workload; host ${hostCpuCount()} CPUs`);
    // Not counted: builds the guest system image and warms the caches.
    const source = await c.createVm(spec('warm-source'));
    await untilExec(source, performance.now());

    const cold: number[] = [];
    const restore: number[] = [];
    const clone: number[] = [];
    const pause: number[] = [];
    // Where a restore's time goes: the daemon's own steps (the VM's lastStart trace), the call as the
    // client saw it, and the first exec after the call returned.
    const restoreCall: number[] = [];
    const restoreExec: number[] = [];
    const restoreSteps: Record<string, number[]> = {};
    for (let i = 0; i < runs; i++) {
      let t0 = performance.now();
      const vm = await c.createVm(spec(`cold-${i}`));
      cold.push(await untilExec(vm, t0));
      await c.deleteVm(vm.id, { force: true });

      const snap = await c.createSnapshot(source.id, { name: `snap-${i}` });
      pause.push(snap.pauseMs);
      t0 = performance.now();
      const restored = await c.restoreSnapshot(snap.id, { name: `restored-${i}` });
      const returned = performance.now() - t0;
      restore.push(await untilExec(restored, t0));
      restoreCall.push(returned);
      restoreExec.push(restore.at(-1)! - returned);
      for (const { step, ms } of (await c.getVm(restored.id)).lastStart?.steps ?? []) (restoreSteps[step] ??= []).push(ms);
      await c.deleteVm(restored.id, { force: true });
      await c.deleteSnapshot(snap.id);

      t0 = performance.now();
      const [copy] = await c.cloneVm(source.id, 1);
      clone.push(await untilExec(copy!, t0));
      await c.deleteVm(copy!.id, { force: true });
    }
    console.log(line('cold spawn → exec-ready', cold));
    console.log(line('restore → exec-ready', restore));
    console.log(line('  restore call returned', restoreCall));
    for (const [step, values] of Object.entries(restoreSteps)) console.log(line(`    step ${step}`, values));
    console.log(line('  then the first exec', restoreExec));
    console.log(line('clone → exec-ready', clone));
    console.log(line('snapshot: pause the VM saw', pause));

    const memoryOf = (vms: readonly Vm[]) => vms.reduce((sum, vm) => sum + pss(vm.pid!), 0);
    const colds: Vm[] = [];
    for (let i = 0; i < MEMORY_VMS; i++) colds.push(await c.createVm(spec(`mem-cold-${i}`)));
    for (const vm of colds) await untilExec(vm, 0);
    const coldPss = memoryOf(colds);
    for (const vm of colds) await c.deleteVm(vm.id, { force: true });
    const clones = await c.cloneVm(source.id, MEMORY_VMS);
    for (const vm of clones) await untilExec(vm, 0);
    const clonePss = memoryOf(clones);

    const ratio = (a: number, b: number) => (a / b).toFixed(3);
    console.log(`memory (sum of PSS)                ${MEMORY_VMS} cold VMs ${fmtMiB(coldPss)}   ${MEMORY_VMS} clones ${fmtMiB(clonePss)}`);
    console.log('');
    console.log(`goal restore ≤ 0.1× cold:          ${ratio(median(restore), median(cold))}× (medians ${fmtMs(median(restore))} / ${fmtMs(median(cold))})`);
    console.log(`goal clone ≤ 500 ms under TCG:     median ${fmtMs(median(clone))}`);
    console.log(`goal 5 clones ≤ 0.5× memory:       ${ratio(clonePss, coldPss)}×`);
  } finally {
    await guard.finish();
  }
}

runBench(main);
