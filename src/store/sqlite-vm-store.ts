import Database from 'better-sqlite3';
import type { VmStore } from '../core/ports.js';
import type { ProviderName, Vm, VmError, VmSpec, VmState } from '../core/vm.js';
import { VmNameTakenError } from '../core/errors.js';
import { openDatabase } from './database.js';

interface VmRow {
  id: string;
  name: string;
  state: string;
  provider: string;
  pid: number | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  spec_json: string;
  error_json: string | null;
  extra_json: string | null;
}

/** Fields of Vm stored together in extra_json. */
interface VmExtra {
  disks?: Vm['disks'];
  imageDigest?: string;
  workloadExit?: Vm['workloadExit'];
  network?: Vm['network'];
  providerReason?: string;
  lastStart?: Vm['lastStart'];
  launch?: Vm['launch'];
  restoredFrom?: string;
  defineOnly?: true;
}

function toVm(row: VmRow): Vm {
  const vm: Vm = {
    id: row.id,
    name: row.name,
    state: row.state as VmState,
    provider: row.provider as ProviderName,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    spec: JSON.parse(row.spec_json) as VmSpec,
  };
  if (row.pid !== null) vm.pid = row.pid;
  if (row.started_at !== null) vm.startedAt = row.started_at;
  if (row.error_json !== null) vm.error = JSON.parse(row.error_json) as VmError;
  const extra: VmExtra = row.extra_json === null ? {} : (JSON.parse(row.extra_json) as VmExtra);
  // Always an array, as the API's repeated field is on both transports.
  vm.disks = extra.disks ?? [];
  if (extra.imageDigest) vm.imageDigest = extra.imageDigest;
  if (extra.workloadExit) vm.workloadExit = extra.workloadExit;
  if (extra.network) vm.network = extra.network;
  if (extra.providerReason) vm.providerReason = extra.providerReason;
  if (extra.lastStart) vm.lastStart = extra.lastStart;
  if (extra.launch) vm.launch = extra.launch;
  if (extra.restoredFrom) vm.restoredFrom = extra.restoredFrom;
  if (extra.defineOnly) vm.defineOnly = true;
  return vm;
}

function toRow(vm: Vm): VmRow {
  return {
    id: vm.id,
    name: vm.name,
    state: vm.state,
    provider: vm.provider,
    pid: vm.pid ?? null,
    created_at: vm.createdAt,
    updated_at: vm.updatedAt,
    started_at: vm.startedAt ?? null,
    spec_json: JSON.stringify(vm.spec),
    error_json: vm.error ? JSON.stringify(vm.error) : null,
    extra_json:
      vm.disks?.length || vm.imageDigest || vm.workloadExit || vm.network || vm.providerReason || vm.launch || vm.restoredFrom || vm.lastStart || vm.defineOnly
        ? JSON.stringify({ disks: vm.disks, imageDigest: vm.imageDigest, workloadExit: vm.workloadExit, network: vm.network, providerReason: vm.providerReason, launch: vm.launch, restoredFrom: vm.restoredFrom, lastStart: vm.lastStart, defineOnly: vm.defineOnly } satisfies VmExtra)
        : null,
  };
}

/** Makes `value` and everything in it read-only: a listed record is shared by every caller. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Listing order: oldest first, the id breaking ties (as `ORDER BY created_at, id`). */
function byCreation(a: Vm, b: Vm): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The records `list` hands out, kept between calls: parsing every row's JSON at each `ls` costs
 * more than anything else a list does. It stays right as long as the database's `data_version`
 * (which moves when another connection, e.g. another process, commits) is the one it was read at;
 * this store's own writes mark their ids `stale`, and the next list reads those rows again. A write
 * is not trusted to have committed (a caller's transaction may roll back): the row is read back.
 */
interface ListCache {
  dataVersion: number;
  byId: Map<string, Vm>;
  stale: Set<string>;
  /** In listing order; undefined once a record was added, replaced or removed. */
  ordered?: Vm[];
}

/** The VM store on embedded SQLite (WAL mode; statements prepared once at open). */
export class SqliteVmStore implements VmStore {
  private readonly db: Database.Database;
  private readonly stmts;
  private cache?: ListCache;

  /** Takes a database path, or an open database shared with the other stores. */
  constructor(file: string | Database.Database) {
    this.db = typeof file === 'string' ? openDatabase(file) : file;
    this.stmts = {
      insert: this.db.prepare<VmRow>(
        `INSERT INTO vms (id, name, state, provider, pid, created_at, updated_at, started_at, spec_json, error_json, extra_json)
         VALUES (@id, @name, @state, @provider, @pid, @created_at, @updated_at, @started_at, @spec_json, @error_json, @extra_json)`,
      ),
      update: this.db.prepare<VmRow>(
        `UPDATE vms SET name=@name, state=@state, provider=@provider, pid=@pid, updated_at=@updated_at,
           started_at=@started_at, spec_json=@spec_json, error_json=@error_json, extra_json=@extra_json WHERE id=@id`,
      ),
      get: this.db.prepare<[string], VmRow>('SELECT * FROM vms WHERE id = ?'),
      byName: this.db.prepare<[string], VmRow>('SELECT * FROM vms WHERE name = ?'),
      byPrefix: this.db.prepare<[{ p: string }], VmRow>('SELECT * FROM vms WHERE substr(id, 1, length(@p)) = @p ORDER BY created_at'),
      list: this.db.prepare<[], VmRow>('SELECT * FROM vms ORDER BY created_at, id'),
      delete: this.db.prepare<[string]>('DELETE FROM vms WHERE id = ?'),
      dataVersion: this.db.prepare<[], number>('PRAGMA data_version').pluck(),
    };
  }

  insert(vm: Vm): void {
    try {
      this.stmts.insert.run(toRow(vm));
    } catch (err) {
      if (err instanceof Error && /UNIQUE constraint failed: vms\.name/.test(err.message)) {
        const other = this.findByName(vm.name);
        throw new VmNameTakenError(vm.name, other?.id ?? 'unknown');
      }
      throw err;
    }
    this.cache?.stale.add(vm.id);
  }

  update(vm: Vm): Vm {
    this.stmts.update.run(toRow(vm));
    this.cache?.stale.add(vm.id);
    return vm;
  }

  get(id: string): Vm | undefined {
    const row = this.stmts.get.get(id);
    return row ? toVm(row) : undefined;
  }

  findByName(name: string): Vm | undefined {
    const row = this.stmts.byName.get(name);
    return row ? toVm(row) : undefined;
  }

  findByIdPrefix(prefix: string): Vm[] {
    return this.stmts.byPrefix.all({ p: prefix }).map(toVm);
  }

  /** Every record, oldest first; each is frozen and may be the one an earlier call returned (see ListCache). */
  list(): Vm[] {
    const dataVersion = this.stmts.dataVersion.get()!;
    let cache = this.cache;
    if (cache?.dataVersion !== dataVersion) {
      const vms = this.stmts.list.all().map((row) => deepFreeze(toVm(row)));
      cache = this.cache = { dataVersion, byId: new Map(vms.map((vm) => [vm.id, vm])), stale: new Set(), ordered: vms };
    }
    if (cache.stale.size > 0) {
      for (const id of cache.stale) {
        const row = this.stmts.get.get(id);
        if (row) cache.byId.set(id, deepFreeze(toVm(row)));
        else cache.byId.delete(id);
      }
      cache.stale.clear();
      cache.ordered = undefined;
    }
    cache.ordered ??= [...cache.byId.values()].sort(byCreation);
    // The caller may sort or filter the array; the records in it cannot change.
    return cache.ordered.slice();
  }

  delete(id: string): void {
    this.stmts.delete.run(id);
    this.cache?.stale.add(id);
  }

  close(): void {
    this.db.close();
  }
}
