/**
 * What runs for a VM on the host: its VMM (watched while it runs), its agent session and its
 * network. Halting and tearing down go through here so that every path (stop, a failed start,
 * a VMM that died, rm, reconcile) releases the same things in the same order and logs, rather
 * than swallows, what it could not release.
 */
import type { AgentSupervisor } from './agent-supervisor.js';
import { ProviderUnavailableError, asHypercoreError } from './errors.js';
import type { Provider, ProviderRegistry, VmFiles, VmmExit, VmNetworks, VmPaths } from './ports.js';
import type { VmRecords } from './vm-records.js';
import { vmKind, type Vm, type VmSpec } from './vm.js';

/** Image and pod VMs boot the guest system image and its agent; drive and kernel VMs run none. */
export function usesAgent(spec: VmSpec): boolean {
  const kind = vmKind(spec);
  return kind === 'image' || kind === 'pod';
}

export interface HaltOptions {
  /** How long the guest gets to power off before the VMM is killed. */
  timeoutMs: number;
  /** Skip the graceful phase. */
  force: boolean;
}

export class VmRuntime {
  private readonly watchers = new Map<string, () => void>();

  constructor(
    private readonly records: VmRecords,
    private readonly providers: ProviderRegistry,
    private readonly files: VmFiles,
    private readonly networks: VmNetworks | undefined,
    private readonly supervisor: AgentSupervisor | undefined,
  ) {}

  paths(vmId: string): VmPaths {
    return this.files.paths(vmId);
  }

  providerOf(vm: Vm): Provider {
    const provider = this.providers.get(vm.provider);
    if (!provider) throw new ProviderUnavailableError(`VM ${vm.name} uses provider "${vm.provider}", which this hypercored lacks`);
    return provider;
  }

  /** Watches the VM's VMM; `onExit` runs once if it goes away without being asked to. */
  watch(vm: Vm, onExit: (exit: VmmExit) => void): void {
    this.unwatch(vm.id);
    if (vm.pid === undefined) return;
    const unwatch = this.providerOf(vm).watch(vm.id, this.paths(vm.id), vm.pid, (exit) => {
      this.watchers.delete(vm.id);
      onExit(exit);
    });
    this.watchers.set(vm.id, unwatch);
  }

  unwatch(vmId: string): void {
    this.watchers.get(vmId)?.();
    this.watchers.delete(vmId);
  }

  /** Stops watching every VMM (they keep running) and drops agent sessions, so the daemon can exit. */
  detachAll(): void {
    for (const unwatch of this.watchers.values()) unwatch();
    this.watchers.clear();
    this.supervisor?.forgetAll();
  }

  /**
   * Ends the VM's VMM: for an agent VM the agent is asked to sync and power off, then the power
   * button, then a kill after `timeoutMs` (at once with `force`). Resolves only once the VMM is
   * gone and its runtime files and port forwards are released; rejects only if even the kill failed.
   */
  async halt(vm: Vm, options: HaltOptions): Promise<void> {
    const provider = this.providerOf(vm);
    const paths = this.paths(vm.id);
    const log = this.records.log(vm);
    this.unwatch(vm.id);
    if (!options.force && usesAgent(vm.spec) && this.supervisor) {
      try {
        await this.supervisor.session(vm).shutdown();
      } catch (err) {
        log.warn({ err: asHypercoreError(err).message }, 'the agent could not power the guest off; using the power button');
      }
    }
    this.supervisor?.forget(vm.id);
    let exited = false;
    if (!options.force && vm.pid !== undefined) {
      try {
        exited = await provider.shutdown(vm.id, paths, vm.pid, options.timeoutMs);
      } catch (err) {
        log.warn({ err: asHypercoreError(err).message }, 'graceful power-off failed; killing the VMM');
      }
    }
    if (!exited) await provider.kill(vm.id, paths, vm.pid);
    await this.released(vm);
  }

  /**
   * After the VMM is gone: its runtime files, the agent session, and what only a running VM holds
   * on the network (TAP, port forwards, MAC; the address lease stays). Failures are logged, not fatal.
   */
  async released(vm: Vm): Promise<void> {
    const log = this.records.log(vm);
    this.supervisor?.forget(vm.id);
    await this.providerOf(vm)
      .cleanup(vm.id, this.paths(vm.id))
      .catch((err: unknown) => log.warn({ err: asHypercoreError(err).message }, 'removing the VMM runtime files failed'));
    await this.networks?.release(vm.id).catch((err: unknown) => log.warn({ err: asHypercoreError(err).message }, 'releasing the network of a stopped VM failed'));
  }

  /**
   * Writes a running VM's network again (TAP, rules) after a daemon restart: a firewall reload
   * or an upgrade may have removed them. Attaching is idempotent.
   */
  async restoreNetwork(vm: Vm): Promise<void> {
    if (!vm.spec.network || !this.networks) return;
    await this.networks.attach(vm.id, vm.spec.network, vm.spec.hostInterface).catch((err: unknown) => this.records.log(vm).warn({ err: asHypercoreError(err).message }, 'could not restore the network of a running VM'));
  }

  /**
   * Kills the VMM if any and removes everything the VM owns: network, files, record. A VM that
   * `neverStarted` (defined, never booted) has no VMM, runtime file or network to look for.
   */
  async destroy(vm: Vm, options: { neverStarted?: boolean } = {}): Promise<void> {
    this.unwatch(vm.id);
    this.supervisor?.forget(vm.id);
    const provider = this.providers.get(vm.provider);
    if (provider && options.neverStarted !== true) {
      // A VMM that cannot be killed keeps its record ('deleting'), so rm can be retried.
      await provider.kill(vm.id, this.paths(vm.id), vm.pid);
      await this.released(vm);
    }
    if (options.neverStarted !== true) await this.networks?.detach(vm.id);
    await this.files.remove(vm.id);
    this.records.forget(vm);
  }
}
