/** Step "image-disk": the image is stored (pulled and built if missing) and the VM has its own disk over it. */
import { ProviderUnavailableError } from '../../errors.js';
import type { Image, VmDisk } from '../../image.js';
import { DEFAULT_DISK_SIZE_MIB } from '../../vm.js';
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

export const imageDiskStep: Step<PlanContext> = {
  name: 'image-disk',
  // The digest is recorded only once the disk exists.
  isDone: async (ctx) => {
    const { vm, services } = ctx;
    if (vm.spec.image === undefined) return true;
    if (vm.imageDigest === undefined) return false;
    const image = services.images?.find(vm.spec.image);
    if (image) ctx.image = image;
    return true;
  },
  run: async (ctx) => {
    const { vm, services, provider } = ctx;
    if (!services.images) throw new ProviderUnavailableError('this hypercored has no image support configured');
    const disk = { formats: provider.capabilities.diskFormats, sizeMib: vm.spec.diskSizeMib ?? DEFAULT_DISK_SIZE_MIB, workload: vm.spec.drive === undefined };
    // Recorded inside the image store's lock, so an image prune never sees the image unused in between.
    const record = (image: Image, disks: VmDisk[]) => void services.records.save(vm, { disks, imageDigest: image.digest });
    ctx.image = await services.images.provision(vm.spec.image!, services.files.paths(vm.id).stateDir, disk, record, ctx.onProgress);
  },
  // The disk is in the VM's state dir: the directories step's undo removes it.
};
