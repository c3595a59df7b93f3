/** Step "image-disk": the image is stored (pulled and built if missing) and the VM has its own disk over it. */
import { ProviderUnavailableError } from '../../errors.js';
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
    const image = await services.images.ensure(vm.spec.image!, ctx.onProgress);
    ctx.image = image;
    const disks = await services.images.createVmDisk(image, services.files.paths(vm.id).stateDir, provider.capabilities.diskFormats);
    services.records.save(vm, { disks, imageDigest: image.digest });
  },
  // The disk is in the VM's state dir: the directories step's undo removes it.
};
