/** Test double of a Provider: VMMs are entries in a set instead of processes; every call is recorded. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { AgentEndpoint } from '../agent.js';
import type { ProviderName } from '../vm.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SnapshotIncompatibleError } from '../errors.js';
import type { GuestBoot, LaunchRequest, Provider, ProviderReport, ProviderCapabilities, RestoreRequest, VmmExit, VmmInfo, VmmSnapshot, VmPaths } from '../ports.js';

/** A provider double that records calls; VMMs are entries in a set instead of processes. */
export class FakeProvider implements Provider {
  readonly capabilities: ProviderCapabilities = { pause: true, snapshot: false, agentChannels: ['virtio-serial'], diskFormats: ['raw'], hotplug: false, kernelFormats: ['bzimage'] };
  readonly alive = new Set<string>();
  readonly calls: string[] = [];
  failLaunch: Error | undefined;
  unavailable: Error | undefined;
  shutdownWorks = true;
  private nextPid = 1000;
  private exitHandlers = new Map<string, (exit: VmmExit) => void>();
  /** The pid of each VMM, as a pidfile would give it. */
  readonly pids = new Map<string, number>();

  constructor(readonly name: ProviderName = 'qemu') {}

  async checkAvailable(): Promise<void> {
    if (this.unavailable) throw this.unavailable;
  }
  async describe(): Promise<ProviderReport> {
    return this.unavailable ? { name: this.name, usable: false, detail: this.unavailable.message } : { name: this.name, usable: true, version: 'fake 1.0', detail: 'fake' };
  }
  /** Every launch request, in order. */
  readonly requests: LaunchRequest[] = [];
  async launch(req: LaunchRequest) {
    this.calls.push(`launch ${req.vmId}`);
    this.requests.push(req);
    assert.ok(existsSync(req.paths.stateDir), 'directories exist before the VMM launches');
    this.alive.add(req.vmId);
    const pid = this.nextPid++;
    this.pids.set(req.vmId, pid);
    if (this.failLaunch) throw this.failLaunch;
    return { pid };
  }
  /** VMMs whose guest is frozen. */
  readonly paused = new Set<string>();
  async status(vmId: string): Promise<VmmInfo> {
    if (!this.alive.has(vmId)) return { status: 'gone' };
    return { status: this.paused.has(vmId) ? 'paused' : 'running', pid: this.pids.get(vmId)! };
  }
  async pause(vmId: string): Promise<void> {
    this.calls.push(`pause ${vmId}`);
    this.paused.add(vmId);
  }
  async resume(vmId: string): Promise<void> {
    this.calls.push(`resume ${vmId}`);
    this.paused.delete(vmId);
  }
  watch(vmId: string, _p: VmPaths, _pid: number, onExit: (exit: VmmExit) => void) {
    this.exitHandlers.set(vmId, onExit);
    return () => this.exitHandlers.delete(vmId);
  }
  async shutdown(vmId: string): Promise<boolean> {
    this.calls.push(`shutdown ${vmId}`);
    if (this.shutdownWorks) this.alive.delete(vmId);
    return this.shutdownWorks;
  }
  async kill(vmId: string): Promise<void> {
    this.calls.push(`kill ${vmId}`);
    this.alive.delete(vmId);
  }
  agentEndpoint(vmId: string): AgentEndpoint {
    return { kind: 'unix', path: `/nonexistent/${vmId}/agent.sock` };
  }
  async cleanup(vmId: string): Promise<void> {
    this.calls.push(`cleanup ${vmId}`);
  }
  /** Set to make saveSnapshot fail after writing part of the snapshot. */
  failSave: Error | undefined;
  /** The VMM version this fake restores (a snapshot of another is refused). */
  version = 'fake 1.0';
  /** Every restore request, in order. */
  readonly restores: RestoreRequest[] = [];
  /** When each restored guest resumed (hrtime). */
  readonly resumedAt: bigint[] = [];

  /** Lets this fake take and restore snapshots (capabilities.snapshot). */
  enableSnapshots(): this {
    this.capabilities.snapshot = true;
    return this;
  }
  async saveSnapshot(vmId: string, _paths: VmPaths, _pid: number, dir: string): Promise<VmmSnapshot> {
    this.calls.push(`save ${vmId}${this.paused.has(vmId) ? ' (paused)' : ''}`);
    await writeFile(join(dir, 'memory'), 'memory');
    if (this.failSave) throw this.failSave;
    await writeFile(join(dir, 'state'), 'state');
    return { vmmVersion: this.version, files: ['memory', 'state'] };
  }
  async restore(req: RestoreRequest) {
    if (req.snapshot.vmm.vmmVersion !== this.version) throw new SnapshotIncompatibleError(`saved by ${req.snapshot.vmm.vmmVersion}, this is ${this.version}`);
    this.restores.push(req);
    const vmm = await this.launch(req);
    this.calls[this.calls.length - 1] = `restore ${req.vmId}`;
    await req.beforeResume?.();
    this.resumedAt.push(process.hrtime.bigint());
    return vmm;
  }

  /** Simulates the VMM exiting on its own. */
  exit(vmId: string, exit: VmmExit): void {
    this.alive.delete(vmId);
    this.exitHandlers.get(vmId)?.(exit);
  }
}


/** A boot contract that needs no installed kernel: the plan names files that do not exist. */
export const fakeBoot: GuestBoot = { plan: ({ spec }) => ({ kernel: spec.kernel ?? '/nonexistent/vmlinuz', args: spec.kernelArgs ? [spec.kernelArgs] : [] }) };
