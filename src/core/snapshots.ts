/**
 * Taking and removing snapshots. A snapshot is the guest's memory and device state (written by the
 * provider) and its disks, all of one instant: the guest is paused from before the provider saves
 * until the writable disks are copied, then runs on (unless asked to stay paused). How long that
 * pause lasted is recorded: it is what a user of the VM sees.
 */
import { basename, join } from 'node:path';
import { asHypercoreError, InvalidArgumentError, SnapshotNotFoundError, SnapshotUnsupportedError, VmStateConflictError } from './errors.js';
import { findByRef } from './find-ref.js';
import type { VmDisk } from './image.js';
import type { IdGenerator, Provider, SnapshotFiles, SnapshotStore } from './ports.js';
import type { LaunchRecord, Snapshot } from './snapshot.js';
import type { VmRecords } from './vm-records.js';
import type { VmRuntime } from './vm-runtime.js';
import type { Vm } from './vm.js';

export interface TakeOptions {
  name?: string;
  /** Keep the VM paused afterwards (a running VM becomes `paused`). */
  leavePaused?: boolean;
}

/** Snapshot names: as VM names, letters, digits and `._-`, starting with a letter or digit. */
const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export class VmSnapshots {
  constructor(
    private readonly store: SnapshotStore,
    private readonly files: SnapshotFiles,
    private readonly records: VmRecords,
    private readonly runtime: VmRuntime,
    private readonly ids: IdGenerator,
  ) {}

  list(): Snapshot[] {
    return this.store.list();
  }

  /** By exact id, exact name, or unique id prefix. */
  find(ref: string): Snapshot {
    return findByRef(ref, this.store, () => new SnapshotNotFoundError(ref));
  }

  dir(snapshot: Snapshot): string {
    return this.files.dir(snapshot.id);
  }

  /** Digests of images that snapshots read, so `image prune` keeps their block images. */
  imageDigests(): Set<string> {
    return new Set(this.store.list().flatMap((s) => (s.imageDigest ? [s.imageDigest] : [])));
  }

  /**
   * Snapshots a running or paused VM (the caller holds its lock). On failure nothing is left: the
   * directory is removed and a VM this call paused runs again.
   */
  async take(vm: Vm, options: TakeOptions = {}): Promise<Snapshot> {
    const provider = this.runtime.providerOf(vm);
    if (!provider.capabilities.snapshot || !provider.saveSnapshot || !provider.pause || !provider.resume) {
      throw new SnapshotUnsupportedError(`VM ${vm.name} runs on ${provider.name}, which cannot take snapshots`);
    }
    if (vm.state !== 'running' && vm.state !== 'paused') throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; only a running or paused VM can be snapshotted`);
    if (!vm.launch || vm.pid === undefined) throw new SnapshotUnsupportedError(`VM ${vm.name} was launched by an older hypercored that did not record its boot; stop and start it first`);
    const name = options.name ?? `${vm.name}-${this.records.now().replace(/[-:]/g, '').replace(/\..*$/, '')}`;
    this.checkName(name);
    const id = this.ids.newSnapshotId?.() ?? this.ids.newVmId();
    const dir = await this.files.create(id);
    const paths = this.runtime.paths(vm.id);
    const wasPaused = vm.state === 'paused';
    let paused = false;
    const started = performance.now();
    try {
      if (!wasPaused) {
        await provider.pause(vm.id, paths, vm.pid);
        paused = true;
      }
      const vmm = await provider.saveSnapshot(vm.id, paths, vm.pid, dir);
      const launch = await this.keepLaunch(vm.launch, dir);
      const disks = await Promise.all((vm.disks ?? []).map((d) => this.keepDisk(d, dir)));
      if (paused && !options.leavePaused) await provider.resume(vm.id, paths, vm.pid);
      const pauseMs = wasPaused ? 0 : Math.round((performance.now() - started) * 10) / 10;
      if (paused && options.leavePaused) this.records.transition(vm, 'paused');
      const snapshot: Snapshot = {
        id,
        name,
        vmId: vm.id,
        vmName: vm.name,
        createdAt: this.records.now(),
        provider: provider.name,
        vmm,
        spec: vm.spec,
        ...(vm.imageDigest ? { imageDigest: vm.imageDigest } : {}),
        launch,
        disks,
        pauseMs,
        sizeBytes: await this.files.sizeOf(id),
      };
      this.store.insert(snapshot);
      this.records.log(vm).info({ snapshot: id, name, pauseMs, sizeBytes: snapshot.sizeBytes }, 'snapshot taken');
      return snapshot;
    } catch (err) {
      if (paused && vm.state !== 'paused') await this.resumeAfterFailure(provider, vm);
      await this.files.remove(id);
      throw err;
    }
  }

  /** Removes a snapshot's record and files. VMs restored from it run on (their VMMs hold what they use). */
  async remove(ref: string): Promise<Snapshot> {
    const snapshot = this.find(ref);
    await this.files.remove(snapshot.id);
    this.store.delete(snapshot.id);
    return snapshot;
  }

  private checkName(name: string): void {
    if (!SNAPSHOT_NAME.test(name)) {
      throw new InvalidArgumentError(`snapshot name "${name}": use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`, [{ path: 'name', message: 'invalid snapshot name', value: name }]);
    }
    const taken = this.store.findByName(name);
    if (taken) throw new InvalidArgumentError(`the snapshot name "${name}" is already used by snapshot ${taken.id}; choose another with --name`, [{ path: 'name', message: 'taken', value: name }]);
  }

  /** The boot disk as launched: a writable one is copied, a shared read-only one (the guest system image) kept. */
  private async keepLaunch(launch: LaunchRecord, dir: string): Promise<LaunchRecord> {
    if (!launch.rootDisk) return launch;
    const target = join(dir, `root-${basename(launch.rootDisk.path)}`);
    if (launch.rootDisk.readOnly) await this.files.keep(launch.rootDisk.path, target);
    else await this.files.copyDisk(launch.rootDisk.path, target);
    return { ...launch, rootDisk: { ...launch.rootDisk, path: target } };
  }

  /**
   * A writable disk (scratch, qcow2 overlay) is copied as it is at this instant; a read-only one is
   * an image's shared block image, kept by its digest (see imageDigests), so it is referenced as is.
   */
  private async keepDisk(disk: VmDisk, dir: string): Promise<VmDisk> {
    if (disk.readOnly) return disk;
    const target = join(dir, `disk-${disk.name}.${disk.format}`);
    await this.files.copyDisk(disk.path, target);
    return { ...disk, path: target };
  }

  private async resumeAfterFailure(provider: Provider, vm: Vm): Promise<void> {
    await provider.resume!(vm.id, this.runtime.paths(vm.id), vm.pid!).catch((err: unknown) => this.records.log(vm).error({ err: asHypercoreError(err).message }, 'could not resume the VM after a failed snapshot'));
  }
}
