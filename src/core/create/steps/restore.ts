/**
 * Step "restore" (a restore's launch): a new VMM whose guest resumes from the snapshot, started as
 * the source's was (same boot files and devices) but on this VM's own disks, TAP and sockets.
 */
import { InternalError, SnapshotUnsupportedError } from '../../errors.js';
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';
import { launchStep } from './launch.js';

export const restoreStep: Step<PlanContext> = {
  name: 'restore',
  run: async (ctx) => {
    const { vm, provider, services, agent, attachment, restore, restoredRoot } = ctx;
    if (!restore) throw new InternalError('the restore step runs only in a restore');
    if (!provider.capabilities.snapshot || !provider.restore) throw new SnapshotUnsupportedError(`provider ${provider.name} cannot restore snapshots`);
    const boot = restore.snapshot.launch.boot;
    const vmm = await provider.restore({
      vmId: vm.id,
      spec: vm.spec,
      paths: services.runtime.paths(vm.id),
      boot,
      ...(restoredRoot ? { rootDisk: restoredRoot } : {}),
      disks: vm.disks ?? [],
      agent,
      ...(attachment ? { network: attachment } : {}),
      snapshot: { dir: restore.dir, vmm: restore.snapshot.vmm },
      ...(restore.beforeResume ? { beforeResume: restore.beforeResume } : {}),
    });
    services.records.save(vm, { pid: vmm.pid, startedAt: services.records.now(), launch: { boot, ...(restoredRoot ? { rootDisk: restoredRoot } : {}) } });
  },
  undo: launchStep.undo!,
};
