/**
 * Step "snapshot-disks" of a restore: the VM gets its own copies of the snapshot's writable disks
 * (so several VMs restored from one snapshot never share a writable file), and the shared read-only
 * ones as they are: the image's block image, and the boot disk the snapshot kept.
 */
import { basename, join } from 'node:path';
import { InternalError } from '../../errors.js';
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

/** The disk's own name, without the `disk-` / `root-` prefix the snapshot gave its copy. */
const ownName = (path: string) => basename(path).replace(/^(disk|root)-/, '');

export const snapshotDisksStep: Step<PlanContext> = {
  name: 'snapshot-disks',
  run: async (ctx) => {
    const { vm, services, restore } = ctx;
    if (!restore) throw new InternalError('the snapshot-disks step runs only in a restore');
    const stateDir = services.files.paths(vm.id).stateDir;
    const copy = async (path: string) => {
      const target = join(stateDir, ownName(path));
      await services.snapshotFiles!.copyDisk(path, target);
      return target;
    };
    const disks = await Promise.all(restore.snapshot.disks.map(async (d) => (d.readOnly ? d : { ...d, path: await copy(d.path) })));
    const root = restore.snapshot.launch.rootDisk;
    if (root) ctx.restoredRoot = root.readOnly ? root : { ...root, path: await copy(root.path) };
    // A restored drive VM boots its own copy of the drive from now on.
    const spec = root && !root.readOnly && vm.spec.drive !== undefined ? { ...vm.spec, drive: ctx.restoredRoot!.path } : vm.spec;
    services.records.save(vm, { disks, spec, ...(restore.snapshot.imageDigest ? { imageDigest: restore.snapshot.imageDigest } : {}) });
  },
  // The copies are in the VM's state dir: the directories step's undo removes them.
};
