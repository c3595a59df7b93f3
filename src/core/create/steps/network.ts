/** Step "network": the VM's address lease and TAP (and, in nat mode, its port forwards). */
import { ProviderUnavailableError } from '../../errors.js';
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

export const networkStep: Step<PlanContext> = {
  name: 'network',
  // Attaching is idempotent (a repeat gets the same lease and TAP), so there is no separate check.
  run: async (ctx) => {
    const { vm, services } = ctx;
    if (!vm.spec.network) return;
    if (!services.networks) throw new ProviderUnavailableError('this hypercored has no network support configured');
    const a = await services.networks.attach(vm.id, vm.spec.network, vm.spec.hostInterface);
    ctx.attachment = a;
    services.records.save(vm, { network: { ip: a.ip, mac: a.mac, tap: a.tap, gateway: a.gateway } });
  },
  undo: async ({ vm, services }) => services.networks?.detach(vm.id),
};
