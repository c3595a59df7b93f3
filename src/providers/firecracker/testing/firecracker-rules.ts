/**
 * Firecracker's ordering rules for the contract-test VMM, as its API documents them: configuration
 * calls only before `InstanceStart`, runtime calls only after; one start; a kernel before the start;
 * ids in the body equal to the path's; the files a call names must exist (Firecracker opens them
 * when the call arrives); the logger once; `PUT /serial` only from 1.14.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ContractOperation } from '../../shared/openapi-contract.js';
import { RuleViolation, type RuleReply, type VmmRules } from '../../shared/fake-vmm.js';
import { atLeast, SERIAL_API_VERSION, type FirecrackerVersion } from '../version.js';

export type FakeState = 'Not started' | 'Running' | 'Paused';

/** `METHOD /template` of calls allowed only before the VM starts. */
const PRE_BOOT = new Set([
  'PUT /logger', 'PUT /metrics', 'PUT /machine-config', 'PATCH /machine-config', 'PUT /cpu-config', 'PUT /boot-source',
  'PUT /drives/{drive_id}', 'PUT /network-interfaces/{iface_id}', 'PUT /vsock', 'PUT /entropy', 'PUT /serial',
  'PUT /balloon', 'PUT /mmds/config', 'PUT /pmem/{id}', 'PUT /hotplug/memory', 'PUT /snapshot/load',
]);
/** Calls allowed only once the VM runs. */
const POST_BOOT = new Set(['PATCH /vm', 'PATCH /drives/{drive_id}', 'PATCH /network-interfaces/{iface_id}', 'PATCH /pmem/{id}', 'PUT /snapshot/create', 'PATCH /hotplug/memory']);

type Body = Record<string, unknown>;

/** What the fake does when the VM starts or is asked to stop; the process entry point wires them. */
export interface FirecrackerHooks {
  onStart?(config: FakeConfiguration): void;
  onCtrlAltDel?(): void;
}

/** What the provider configured, as the fake saw it. */
export interface FakeConfiguration {
  bootSource?: Body;
  machine?: Body;
  drives: Map<string, Body>;
  interfaces: Map<string, Body>;
  vsock?: Body;
  serial?: Body;
  entropy?: Body;
}

export class FirecrackerRules implements VmmRules {
  state: FakeState = 'Not started';
  readonly config: FakeConfiguration = { drives: new Map(), interfaces: new Map() };
  private loggerSet = false;
  private configured = false;

  constructor(
    readonly version: FirecrackerVersion,
    private readonly id: string,
    private readonly hooks: FirecrackerHooks = {},
  ) {}

  errorBody(message: string): unknown {
    return { fault_message: message };
  }

  handle(op: ContractOperation, raw: unknown): RuleReply {
    const body = (raw ?? {}) as Body;
    const key = `${op.method} ${op.template}`;
    if (PRE_BOOT.has(key) && this.state !== 'Not started') throw new RuleViolation(`${key} is a pre-boot call; the VM is ${this.state}`);
    if (POST_BOOT.has(key) && this.state === 'Not started') throw new RuleViolation(`${key} is only valid after InstanceStart`);
    if (key !== 'PUT /logger' && key !== 'PUT /metrics' && op.method !== 'GET') {
      if (key === 'PUT /snapshot/load' && this.configured) throw new RuleViolation('PUT /snapshot/load must come before any other configuration');
      this.configured = true;
    }
    switch (key) {
      case 'GET /':
        return { status: 200, body: { app_name: 'Firecracker', id: this.id, state: this.state, vmm_version: this.version.text } };
      case 'GET /version':
        return { status: 200, body: { firecracker_version: this.version.text } };
      case 'PUT /logger':
        if (this.loggerSet) throw new RuleViolation('the logger can be configured only once');
        this.loggerSet = true;
        return noContent;
      case 'PUT /machine-config': {
        const vcpus = Number(body['vcpu_count']);
        if (body['smt'] === true && vcpus > 1 && vcpus % 2 !== 0) throw new RuleViolation('with SMT, vcpu_count must be 1 or even');
        if (vcpus < 1 || vcpus > 32) throw new RuleViolation(`vcpu_count ${vcpus} is outside 1..32`);
        this.config.machine = body;
        return noContent;
      }
      case 'PUT /boot-source':
        mustBeFile(String(body['kernel_image_path']), 'kernel_image_path', false);
        if (body['initrd_path'] !== undefined) mustBeFile(String(body['initrd_path']), 'initrd_path', false);
        this.config.bootSource = body;
        return noContent;
      case 'PUT /drives/{drive_id}':
        sameId(op, 'drive_id', body);
        mustBeFile(String(body['path_on_host']), 'path_on_host', body['is_read_only'] !== true);
        this.config.drives.set(op.pathParams['drive_id']!, body);
        return noContent;
      case 'PUT /network-interfaces/{iface_id}':
        sameId(op, 'iface_id', body);
        this.config.interfaces.set(op.pathParams['iface_id']!, body);
        return noContent;
      case 'PUT /vsock': {
        const path = String(body['uds_path']);
        if (Number(body['guest_cid']) < 3) throw new RuleViolation('guest_cid must be 3 or more');
        if (!existsSync(dirname(path))) throw new RuleViolation(`the directory of uds_path ${path} does not exist`);
        if (existsSync(path)) throw new RuleViolation(`uds_path ${path} exists already (Address in use)`);
        this.config.vsock = body;
        return noContent;
      }
      case 'PUT /entropy':
        this.config.entropy = body;
        return noContent;
      case 'PUT /serial':
        if (!atLeast(this.version, SERIAL_API_VERSION)) throw new RuleViolation(`Firecracker ${this.version.text} has no PUT /serial (it came with 1.14)`);
        if (!existsSync(dirname(String(body['serial_out_path'])))) throw new RuleViolation('the directory of serial_out_path does not exist');
        this.config.serial = body;
        return noContent;
      case 'PUT /actions':
        return this.action(String(body['action_type']));
      case 'PATCH /vm':
        this.state = body['state'] === 'Paused' ? 'Paused' : 'Running';
        return noContent;
      case 'PUT /snapshot/create':
        if (this.state !== 'Paused') throw new RuleViolation('a snapshot needs a paused VM');
        return noContent;
      default:
        return noContent;
    }
  }

  private action(type: string): RuleReply {
    if (type === 'InstanceStart') {
      if (this.state !== 'Not started') throw new RuleViolation('InstanceStart was already sent');
      if (!this.config.bootSource) throw new RuleViolation('InstanceStart without a boot source (PUT /boot-source)');
      this.state = 'Running';
      this.hooks.onStart?.(this.config);
      return noContent;
    }
    if (type === 'SendCtrlAltDel') {
      if (this.state === 'Not started') throw new RuleViolation('SendCtrlAltDel before InstanceStart');
      this.hooks.onCtrlAltDel?.();
      return noContent;
    }
    if (type === 'FlushMetrics') return noContent;
    throw new RuleViolation(`unknown action ${type}`);
  }
}

const noContent: RuleReply = { status: 204 };

function sameId(op: ContractOperation, field: string, body: Body): void {
  if (body[field] !== op.pathParams[field]) throw new RuleViolation(`the ${field} in the body (${String(body[field])}) differs from the path's (${op.pathParams[field]})`);
}

function mustBeFile(path: string, field: string, writable: boolean): void {
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    accessSync(path, writable ? constants.R_OK | constants.W_OK : constants.R_OK);
  } catch (err) {
    throw new RuleViolation(`${field} ${path} cannot be opened${writable ? ' for writing' : ''}: ${(err as Error).message}`);
  }
}
