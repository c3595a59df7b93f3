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
      vm.disks?.length || vm.imageDigest || vm.workloadExit || vm.network || vm.providerReason || vm.launch || vm.restoredFrom || vm.lastStart
        ? JSON.stringify({ disks: vm.disks, imageDigest: vm.imageDigest, workloadExit: vm.workloadExit, network: vm.network, providerReason: vm.providerReason, launch: vm.launch, restoredFrom: vm.restoredFrom, lastStart: vm.lastStart } satisfies VmExtra)
        : null,
  };
}

/** The VM store on embedded SQLite (WAL mode; statements prepared once at open). */
export class SqliteVmStore implements VmStore {
  private readonly db: Database.Database;
  private readonly stmts;

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
  }

  update(vm: Vm): Vm {
    this.stmts.update.run(toRow(vm));
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

  list(): Vm[] {
    return this.stmts.list.all().map(toVm);
  }

  delete(id: string): void {
    this.stmts.delete.run(id);
  }

  close(): void {
    this.db.close();
  }
}
