/**
 * Step "launch": the VMM runs, detached, and its pid is recorded. If a VMM for this VM already
 * runs (the daemon died after launching it, before recording it), it is adopted, never launched twice.
 */
import { ProviderUnavailableError } from '../../errors.js';
import type { AgentChannel } from '../../ports.js';
import { machineId } from '../../identity.js';
import { vmKind } from '../../vm.js';
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

async function rootDisk({ vm, services }: PlanContext): Promise<{ path: string; readOnly: boolean } | undefined> {
  switch (vmKind(vm.spec)) {
    case 'drive':
      return { path: vm.spec.drive!, readOnly: vm.spec.driveReadOnly };
    case 'image':
      if (!services.guest) throw new ProviderUnavailableError('this hypercored cannot run image workloads (no guest system image configured)');
      // The system image is shared by all agent VMs, so it is always attached read-only.
      return { path: await services.guest.rootDisk(), readOnly: true };
    case 'kernel':
      return undefined;
  }
}

/** The channel the provider offers the agent: the first it prefers (its capabilities decide, not its name). */
function agentChannel({ provider, vm }: PlanContext): AgentChannel {
  const channel = provider.capabilities.agentChannels[0];
  if (!channel) throw new ProviderUnavailableError(`provider ${provider.name} offers no agent channel, which VM ${vm.name} needs to run its image`);
  return channel;
}

export const launchStep: Step<PlanContext> = {
  name: 'launch',
  isDone: async ({ vm, provider, services }) => {
    const found = await provider.status(vm.id, services.runtime.paths(vm.id), undefined);
    if (found.status === 'gone' || found.pid === undefined) return false;
    services.records.log(vm).warn({ vmmPid: found.pid }, 'adopting a VMM that was launched but not recorded');
    services.records.save(vm, { pid: found.pid });
    return true;
  },
  run: async (ctx) => {
    const { vm, provider, services, agent, attachment } = ctx;
    await provider.checkAvailable(vm.spec);
    const root = await rootDisk(ctx);
    const boot = services.boot.plan({
      spec: vm.spec,
      kernelFormats: provider.capabilities.kernelFormats,
      ...(root ? { rootDisk: { readOnly: root.readOnly } } : {}),
      ...(attachment ? { network: attachment } : {}),
      ...(agent ? { agentChannel: agentChannel(ctx), machineId: machineId(vm.id) } : {}),
    });
    const vmm = await provider.launch({
      vmId: vm.id,
      spec: vm.spec,
      paths: services.runtime.paths(vm.id),
      boot,
      ...(root ? { rootDisk: root } : {}),
      disks: vm.disks ?? [],
      agent,
      ...(attachment ? { network: attachment } : {}),
    });
    // A cold boot: the VM no longer runs from a snapshot's memory.
    services.records.save(vm, { pid: vmm.pid, startedAt: services.records.now(), launch: { boot, ...(root ? { rootDisk: root } : {}) }, restoredFrom: undefined });
  },
  undo: async ({ vm, provider, services }) => {
    services.runtime.unwatch(vm.id);
    await provider.kill(vm.id, services.runtime.paths(vm.id), vm.pid);
    await services.runtime.released(vm);
  },
};
