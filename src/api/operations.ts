/**
 * The API's operations, written once and called by both transports (gRPC and HTTP/JSON), so the two
 * cannot drift apart: same names, same fields, same validation, same errors.
 */
import { dirname, isAbsolute } from 'node:path';
import { ErrorCodes, HypercoreError, InvalidArgumentError, PermissionDeniedError } from '../core/errors.js';
import type { MetadataValues } from '../core/metadata.js';
import type { Logger, ProviderReport } from '../core/ports.js';
import type { Vm, VmEvent } from '../core/vm.js';
import { HYPERCORE_VERSION, type GuestKernelReport, type VersionReport } from '../core/version.js';
import type { Snapshot } from '../core/snapshot.js';
import { DEFAULT_STOP_TIMEOUT_MS, type VmService } from '../core/vm-service.js';
import { MAX_HAC_TEXT_CHARS } from '../config/hac-text-limit.js';
import { overrideTargets, type HacOverrides } from '../config/overrides.js';
import { parseHac } from '../config/parse.js';
import { readConsoleLog } from '../providers/console-log.js';
import type { HostPathPolicy } from './auth/host-paths.js';
import { publicMetadata, publicVm, type PublicVm } from './redaction.js';
import { validateVmName, validateVmSpec } from './spec-validation.js';

export interface ApiContext {
  service: VmService;
  hostCpus: number;
  logger: Logger;
  /** The default guest kernel, for Version (the daemon reads its boot dir's manifest). */
  guestKernel?: () => Promise<GuestKernelReport>;
  /** Host files the callers of these operations may name (default: any, as on the unix socket). */
  hostPaths?: HostPathPolicy;
}

export interface StopVmRequest {
  id: string;
  timeoutSeconds?: number;
  force?: boolean;
}

const MAX_STOP_TIMEOUT_S = 3600;

/** The body of `POST /v1/vms/hac-file`. */
export interface HacFileCreateRequest {
  hac?: unknown;
  file?: unknown;
  cwd?: unknown;
  overrides?: unknown;
  start?: boolean;
  detach?: boolean;
  pull?: boolean;
}

/** The hac.toml text of a request, bounded. */
function hacText(hac: unknown): string {
  if (typeof hac !== 'string' || hac.trim() === '') throw new InvalidArgumentError('hac is required: the text of a hac.toml', [{ path: 'hac', message: 'required' }]);
  if (hac.length > MAX_HAC_TEXT_CHARS) throw new InvalidArgumentError(`hac is ${hac.length} characters; at most ${MAX_HAC_TEXT_CHARS}`, [{ path: 'hac', message: 'too long' }]);
  return hac;
}

/** An optional absolute path (`file`, `cwd` of a hac-file create). */
function absolutePathField(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !isAbsolute(value) || value.length > 4096 || value.includes('\0')) {
    throw new InvalidArgumentError(`${field} = ${JSON.stringify(value)}: expected an absolute path`, [{ path: field, message: 'an absolute path', value }]);
  }
  return value;
}

/** The CLI flags of a hac create (HacOverrides): known keys only; the hac.toml schema judges the values. */
function overridesField(value: unknown): HacOverrides | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError('overrides must be an object of hac.toml overrides', [{ path: 'overrides', message: 'an object' }]);
  for (const [key, v] of Object.entries(value)) {
    if (!Object.hasOwn(overrideTargets, key)) throw new InvalidArgumentError(`overrides.${key}: no such override; known: ${Object.keys(overrideTargets).join(', ')}`, [{ path: `overrides.${key}`, message: 'unknown override' }]);
    const plain = ['string', 'number', 'boolean'].includes(typeof v) || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
    if (!plain) throw new InvalidArgumentError(`overrides.${key}: expected a string, number, boolean or list of strings`, [{ path: `overrides.${key}`, message: 'a plain value', value: v }]);
  }
  return value as HacOverrides;
}

function requireId(id: unknown, what = 'a VM id, unique id prefix, or name'): string {
  if (typeof id !== 'string' || id.length === 0) throw new InvalidArgumentError(`id is required (${what})`, [{ path: 'id', message: 'required' }]);
  return id;
}

/** A snapshot as the API shows it (the record's spec, disks and files stay inside the daemon). */
export interface SnapshotView {
  id: string;
  name: string;
  vmId: string;
  vmName: string;
  createdAt: string;
  provider: string;
  vmmVersion: string;
  imageDigest?: string;
  sizeBytes: number;
  pauseMs: number;
  memoryMib: number;
}

function snapshotView(s: Snapshot): SnapshotView {
  return {
    id: s.id,
    name: s.name,
    vmId: s.vmId,
    vmName: s.vmName,
    createdAt: s.createdAt,
    provider: s.provider,
    vmmVersion: s.vmm.vmmVersion,
    ...(s.imageDigest ? { imageDigest: s.imageDigest } : {}),
    sizeBytes: s.sizeBytes,
    pauseMs: s.pauseMs,
    memoryMib: s.spec.memoryMib,
  };
}

export class VmOperations {
  /** JSON of listed records, by record (see listVmsJson). */
  private readonly listedJson = new WeakMap<Vm, string>();

  constructor(private readonly ctx: ApiContext) {}

  /** The same operations for callers restricted to `hostPaths` (the remote listener's). */
  withHostPaths(hostPaths: HostPathPolicy): VmOperations {
    return new VmOperations({ ...this.ctx, hostPaths });
  }

  /** The service, for the streaming operations (exec, attach) that relay IO. */
  get service(): VmService {
    return this.ctx.service;
  }

  // Every VM leaves through publicVm: no response shows a secret.

  /** `hac` (not a field of CreateVm's request): what only a create from hac.toml text may ask. */
  async createVm(req: { spec?: unknown; detach?: boolean; start?: boolean }, hac: { pull?: boolean } = {}): Promise<PublicVm> {
    const spec = validateVmSpec(req.spec, this.ctx.hostCpus, this.ctx.hostPaths);
    return publicVm(await this.ctx.service.create(spec, { detach: req.detach === true, start: req.start !== false, ...(hac.pull === false ? { pull: false } : {}) }));
  }

  /**
   * Creates a VM from hac.toml text (`POST /v1/vms/hac`, the web console's spawn form); boots it in
   * the background unless `start: false`. Problems come back as one HC_CONFIG_INVALID error, each
   * with its `hac.toml:line:column`. Host files are checked only by the spec validation (after the
   * host-path policy), so a refused caller learns nothing of them.
   */
  async createVmFromHac(req: { hac?: unknown; start?: boolean }): Promise<PublicVm> {
    const spec = parseHac(hacText(req.hac), { file: 'hac.toml', hostCpus: this.ctx.hostCpus, cwd: '/', fileExists: () => true });
    return this.createVm({ spec, detach: true, ...(req.start !== undefined ? { start: req.start } : {}) });
  }

  /**
   * Creates a VM from the text of a hac.toml file of the daemon's own host (`POST
   * /v1/vms/hac-file`: `hypercore spawn` and `create` on the local socket, which so never load the
   * schema): read as the CLI would read the file itself. `file` is its absolute path (messages name
   * it, its relative paths start from its directory, the files it names must exist), `cwd` the base
   * of relative override paths, `overrides` the CLI's flags (errors name the flag). `pull: false`:
   * an image the daemon lacks fails at once with HC_IMAGE_NOT_FOUND, nothing made. Its own route,
   * so that a daemon older than it answers 404 instead of ignoring the fields. Callers of the
   * remote listener are refused: the paths are of the caller's host.
   */
  async createVmFromHacFile(req: HacFileCreateRequest): Promise<PublicVm> {
    if (this.ctx.hostPaths !== undefined) throw new PermissionDeniedError("a hac.toml file names paths of the caller's host: only callers on the local socket may create from one; send its text to POST /v1/vms/hac");
    const text = hacText(req.hac);
    const file = absolutePathField(req.file, 'file');
    if (file === undefined) throw new InvalidArgumentError('file is required: the absolute path of the hac.toml', [{ path: 'file', message: 'required' }]);
    const cwd = absolutePathField(req.cwd, 'cwd');
    const spec = parseHac(text, { file, hostCpus: this.ctx.hostCpus, cwd: cwd ?? dirname(file), overrides: overridesField(req.overrides) });
    return this.createVm({ spec, detach: req.detach === true, start: req.start !== false }, req.pull === false ? { pull: false } : {});
  }

  getVm(req: { id?: string }): PublicVm {
    return publicVm(this.ctx.service.get(requireId(req.id)));
  }

  listVms(): { vms: PublicVm[] } {
    return { vms: this.ctx.service.list().map(publicVm) };
  }

  /**
   * `listVms` as the JSON text HTTP sends, byte for byte `JSON.stringify(listVms())`. A frozen record
   * (the store hands out the same one until it changes) keeps its JSON, so a list serializes only
   * the VMs that changed since the last one.
   */
  listVmsJson(): string {
    const parts = this.ctx.service.list().map((vm) => {
      let json = this.listedJson.get(vm);
      if (json === undefined) {
        json = JSON.stringify(publicVm(vm));
        if (Object.isFrozen(vm)) this.listedJson.set(vm, json);
      }
      return json;
    });
    return `{"vms":[${parts.join(',')}]}`;
  }

  async startVm(req: { id?: string }): Promise<PublicVm> {
    return publicVm(await this.ctx.service.start(requireId(req.id)));
  }

  async pauseVm(req: { id?: string }): Promise<PublicVm> {
    return publicVm(await this.ctx.service.pause(requireId(req.id)));
  }

  async resumeVm(req: { id?: string }): Promise<PublicVm> {
    return publicVm(await this.ctx.service.resume(requireId(req.id)));
  }

  async stopVm(req: Partial<StopVmRequest>): Promise<PublicVm> {
    const timeout = req.timeoutSeconds;
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 0 || timeout > MAX_STOP_TIMEOUT_S)) {
      throw new InvalidArgumentError(`timeoutSeconds = ${String(timeout)}: must be an integer from 0 to ${MAX_STOP_TIMEOUT_S}`, [
        { path: 'timeoutSeconds', message: `an integer from 0 to ${MAX_STOP_TIMEOUT_S}`, value: timeout },
      ]);
    }
    return publicVm(
      await this.ctx.service.stop(requireId(req.id), {
        timeoutMs: timeout === undefined ? DEFAULT_STOP_TIMEOUT_MS : timeout * 1000,
        force: req.force === true,
      }),
    );
  }

  /** Secrets shown as "<secret>"; with `key`, only that key. */
  getMetadata(req: { id?: string; key?: string }): MetadataValues {
    const metadata = publicMetadata(this.ctx.service.getMetadata(requireId(req.id)));
    if (req.key === undefined || req.key === '') return metadata;
    const only = (table: Record<string, string>) => (Object.hasOwn(table, req.key!) ? { [req.key!]: table[req.key!]! } : {});
    const one = { values: only(metadata.values), secrets: only(metadata.secrets) };
    if (Object.keys(one.values).length + Object.keys(one.secrets).length === 0) {
      throw new HypercoreError(ErrorCodes.notFound, `VM ${req.id} has no metadata key ${JSON.stringify(req.key.slice(0, 128))}`);
    }
    return one;
  }

  async setMetadata(req: { id?: string; values?: unknown; secret?: unknown }): Promise<MetadataValues> {
    const id = requireId(req.id);
    if (typeof req.values !== 'object' || req.values === null || Array.isArray(req.values) || !Object.values(req.values).every((v) => typeof v === 'string')) {
      throw new InvalidArgumentError('values must be an object of "key": "value" strings', [{ path: 'values', message: 'an object of strings' }]);
    }
    if (req.secret !== undefined && typeof req.secret !== 'boolean') throw new InvalidArgumentError('secret must be true or false', [{ path: 'secret', message: 'a boolean' }]);
    const entries = Object.fromEntries(Object.entries(req.values as Record<string, string>));
    return publicMetadata(await this.ctx.service.setMetadata(id, entries, req.secret === true));
  }

  async deleteVm(req: { id?: string; force?: boolean }): Promise<Record<string, never>> {
    await this.ctx.service.delete(requireId(req.id), { force: req.force === true });
    return {};
  }

  async createSnapshot(req: { id?: string; name?: string; leavePaused?: boolean }): Promise<SnapshotView> {
    return snapshotView(await this.ctx.service.snapshot(requireId(req.id), { ...(req.name !== undefined ? { name: req.name } : {}), leavePaused: req.leavePaused === true }));
  }

  getSnapshot(req: { id?: string }): SnapshotView {
    return snapshotView(this.ctx.service.getSnapshot(requireId(req.id, 'a snapshot id, unique id prefix, or name')));
  }

  listSnapshots(): { snapshots: SnapshotView[] } {
    return { snapshots: this.ctx.service.listSnapshots().map(snapshotView) };
  }

  async deleteSnapshot(req: { id?: string }): Promise<Record<string, never>> {
    await this.ctx.service.deleteSnapshot(requireId(req.id, 'a snapshot id, unique id prefix, or name'));
    return {};
  }

  async restoreSnapshot(req: { id?: string; name?: string }): Promise<PublicVm> {
    const id = requireId(req.id, 'a snapshot id, unique id prefix, or name');
    if (req.name !== undefined) validateVmName(req.name);
    return publicVm(await this.ctx.service.restore(id, req.name !== undefined ? { name: req.name } : {}));
  }

  async cloneVm(req: { id?: string; count?: number }): Promise<{ vms: PublicVm[] }> {
    return { vms: (await this.ctx.service.clone(requireId(req.id), { count: req.count ?? 1 })).map(publicVm) };
  }

  async pruneNetworks(): Promise<{ removed: string[] }> {
    return { removed: await this.ctx.service.pruneNetworks() };
  }

  async doctor(): Promise<{ problems: string[]; providers: ProviderReport[] }> {
    return { problems: this.ctx.service.doctor(), providers: await this.ctx.service.providerReports() };
  }

  async version(): Promise<VersionReport> {
    const [providers, guestKernel] = await Promise.all([this.ctx.service.providerReports(), this.ctx.guestKernel?.() ?? { bootDir: '', detail: 'this hypercored has no default guest kernel configured' }]);
    return { version: HYPERCORE_VERSION, nodeVersion: process.version, providers, guestKernel };
  }

  watchEvents(listener: (event: VmEvent) => void): () => void {
    return this.ctx.service.events.subscribe(listener);
  }

  /** Resolves the VM first, so an unknown id fails before any stream starts. */
  streamLogs(req: { id?: string; follow?: boolean }, signal: AbortSignal): AsyncGenerator<Buffer> {
    const vm = this.ctx.service.get(requireId(req.id));
    const path = this.ctx.service.paths(vm).consoleLog;
    return readConsoleLog(path, { follow: req.follow === true, signal });
  }
}
