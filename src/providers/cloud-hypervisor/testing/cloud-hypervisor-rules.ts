/**
 * Cloud Hypervisor's rules for the contract-test VMM, as its API and code define them: one VM per
 * VMM, `vm.create` before `vm.boot`, pause only when running, resume only when paused, shutdown
 * only when booted; vm.info answers 404 while no VM exists. At boot it opens the files the VM names
 * as Cloud Hypervisor does, including its reading of disk formats: a disk without `image_type` is
 * detected from its first bytes, and a qcow2 disk's backing file is opened only with
 * `backing_files` (every file opened is listed, so a test sees a backing file being followed).
 */
import { accessSync, closeSync, constants, existsSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ContractOperation } from '../../shared/openapi-contract.js';
import { RuleViolation, type RuleReply, type VmmRules } from '../../shared/fake-vmm.js';
import type { CloudHypervisorVersion } from '../version.js';

export type FakeVmState = 'NotCreated' | 'Created' | 'Running' | 'Paused' | 'Shutdown';

type Body = Record<string, unknown>;

/** What the fake does on the VM's and the VMM's events; the process entry point wires them. */
export interface CloudHypervisorHooks {
  onBoot?(config: Body): void;
  onPowerButton?(): void;
  /** The VM stopped (vm.shutdown): the guest is gone, the VMM stays. */
  onVmShutdown?(): void;
  /** vmm.shutdown: the process exits once the reply is sent. */
  onVmmShutdown?(): void;
}

const QCOW2_MAGIC = 0x514649fb;

export class CloudHypervisorRules implements VmmRules {
  state: FakeVmState = 'NotCreated';
  config?: Body;
  /** Every file the VM's boot opened, in order (kernel, initramfs, disks, backing files). */
  readonly opened: string[] = [];

  constructor(
    readonly version: CloudHypervisorVersion,
    private readonly hooks: CloudHypervisorHooks = {},
  ) {}

  errorBody(message: string): unknown {
    return [message];
  }

  handle(op: ContractOperation, raw: unknown): RuleReply {
    const body = (raw ?? {}) as Body;
    switch (op.template) {
      case '/vmm.ping':
        return { status: 200, body: { build_version: this.version.text, version: this.version.text.replace(/^v/, '').split('-')[0], pid: process.pid, features: ['kvm'] } };
      case '/vmm.shutdown':
        this.hooks.onVmmShutdown?.();
        return noContent;
      case '/vm.create':
        if (this.state !== 'NotCreated') throw new RuleViolation('Error creating VM: VM is already created');
        validateConfig(body);
        this.config = body;
        this.state = 'Created';
        return noContent;
      case '/vm.boot':
        this.mustExist();
        if (this.state === 'Running' || this.state === 'Paused') throw new RuleViolation(`Error booting VM: the VM is already booted (${this.state})`, 405);
        this.openFiles(this.config!);
        this.state = 'Running';
        this.hooks.onBoot?.(this.config!);
        return noContent;
      case '/vm.pause':
        this.mustExist();
        if (this.state !== 'Running') throw new RuleViolation(`Error pausing VM: invalid transition from ${this.state} to Paused`, 405);
        this.state = 'Paused';
        return noContent;
      case '/vm.resume':
        this.mustExist();
        if (this.state !== 'Paused') throw new RuleViolation(`Error resuming VM: invalid transition from ${this.state} to Running`, 405);
        this.state = 'Running';
        return noContent;
      case '/vm.shutdown':
        this.mustExist();
        if (this.state !== 'Running' && this.state !== 'Paused') throw new RuleViolation(`Error shutting down VM: invalid transition from ${this.state} to Shutdown`, 405);
        this.state = 'Shutdown';
        this.hooks.onVmShutdown?.();
        return noContent;
      case '/vm.power-button':
        this.mustExist();
        if (this.state !== 'Running') throw new RuleViolation(`Error activating power button: the VM is ${this.state}`, 405);
        this.hooks.onPowerButton?.();
        return noContent;
      case '/vm.info':
        // Not a violation: asking is how a caller learns that no VM exists.
        if (this.state === 'NotCreated') return { status: 404, body: this.errorBody('Error getting VM info: VM is not created') };
        return { status: 200, body: { config: this.config, state: this.state } };
      case '/vm.delete':
        if (this.state === 'Running' || this.state === 'Paused') this.hooks.onVmShutdown?.();
        this.state = 'NotCreated';
        delete this.config;
        return noContent;
      default:
        throw new RuleViolation(`${op.method} ${op.template} is not something the fake Cloud Hypervisor serves (Hypercore does not use it)`, 500);
    }
  }

  private mustExist(): void {
    if (this.state === 'NotCreated') throw new RuleViolation('the VM is not created (vm.create comes first)', 404);
  }

  /** Opens what the VM names, as Cloud Hypervisor does when it boots. */
  private openFiles(config: Body): void {
    const payload = (config['payload'] ?? {}) as Body;
    this.open(String(payload['kernel']), 'payload.kernel', false);
    if (payload['initramfs'] !== undefined) this.open(String(payload['initramfs']), 'payload.initramfs', false);
    for (const disk of (config['disks'] ?? []) as Body[]) {
      const path = String(disk['path']);
      this.open(path, `disk ${String(disk['id'])}`, disk['readonly'] !== true);
      const declared = (disk['image_type'] as string | undefined) ?? 'Unknown';
      const qcow2 = declared === 'Qcow2' || (declared === 'Unknown' && isQcow2(path));
      if (declared === 'Qcow2' && !isQcow2(path)) throw new RuleViolation(`disk ${path} is declared Qcow2 but has no qcow2 header`);
      if (!qcow2) continue;
      const backing = qcow2BackingFile(path);
      if (backing === undefined) continue;
      if (disk['backing_files'] !== true) throw new RuleViolation(`disk ${path} has a backing file (${backing}) and backing_files is off`);
      this.open(backing, `the backing file of ${path}`, false);
    }
  }

  private open(path: string, what: string, writable: boolean): void {
    try {
      if (!statSync(path).isFile()) throw new Error('not a regular file');
      accessSync(path, writable ? constants.R_OK | constants.W_OK : constants.R_OK);
    } catch (err) {
      throw new RuleViolation(`${what}: ${path} cannot be opened${writable ? ' for writing' : ''}: ${(err as Error).message}`);
    }
    this.opened.push(path);
  }
}

const noContent: RuleReply = { status: 204 };

/** The checks of Cloud Hypervisor's VmConfig validation that Hypercore's configuration could break. */
function validateConfig(config: Body): void {
  const payload = (config['payload'] ?? {}) as Body;
  if (payload['kernel'] === undefined && payload['firmware'] === undefined && payload['igvm'] === undefined) throw new RuleViolation('Error creating VM: no kernel, firmware or igvm in the payload');
  const cpus = config['cpus'] as Body | undefined;
  if (cpus && Number(cpus['boot_vcpus']) > Number(cpus['max_vcpus'])) throw new RuleViolation('Error creating VM: max_vcpus is lower than boot_vcpus');
  const memory = config['memory'] as Body | undefined;
  if (memory && Number(memory['size']) % 4096 !== 0) throw new RuleViolation('Error creating VM: the memory size is not a multiple of the page size');
  for (const key of ['serial', 'console'] as const) {
    const device = config[key] as Body | undefined;
    if (device?.['mode'] === 'File' && typeof device['file'] !== 'string') throw new RuleViolation(`Error creating VM: ${key} mode File needs a file`);
    if (device?.['mode'] === 'Socket' && typeof device['socket'] !== 'string') throw new RuleViolation(`Error creating VM: ${key} mode Socket needs a socket`);
  }
  const ids = new Set<string>();
  for (const disk of (config['disks'] ?? []) as Body[]) {
    if (typeof disk['path'] !== 'string') throw new RuleViolation('Error creating VM: a disk without a path');
    const id = disk['id'];
    if (typeof id === 'string') {
      if (ids.has(id)) throw new RuleViolation(`Error creating VM: the identifier ${id} is used twice`, 409);
      ids.add(id);
    }
    if (typeof disk['serial'] === 'string' && Buffer.byteLength(disk['serial']) > 20) throw new RuleViolation(`disk ${id}: a virtio-blk serial holds at most 20 bytes`);
  }
  const vsock = config['vsock'] as Body | undefined;
  if (vsock) {
    const socket = String(vsock['socket']);
    if (!existsSync(dirname(socket))) throw new RuleViolation(`the directory of the vsock socket ${socket} does not exist`);
    if (existsSync(socket)) throw new RuleViolation(`the vsock socket ${socket} exists already (Address in use)`);
  }
}

function readHead(path: string, length: number, position = 0): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const n = readSync(fd, buffer, 0, length, position);
    return buffer.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function isQcow2(path: string): boolean {
  const head = readHead(path, 4);
  return head.length === 4 && head.readUInt32BE(0) === QCOW2_MAGIC;
}

/** The backing file a qcow2 header names (offset at byte 8, length at byte 16), if any. */
function qcow2BackingFile(path: string): string | undefined {
  const header = readHead(path, 20);
  if (header.length < 20) return undefined;
  const offset = Number(header.readBigUInt64BE(8));
  const size = header.readUInt32BE(16);
  if (offset === 0 || size === 0 || size > 1023) return undefined;
  return readHead(path, size, offset).toString('utf8');
}
