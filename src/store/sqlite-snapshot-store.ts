/** Snapshot records on the daemon's SQLite database (the same file as the VMs). */
import type Database from 'better-sqlite3';
import { HypercoreError, ErrorCodes } from '../core/errors.js';
import type { SnapshotStore } from '../core/ports.js';
import type { Snapshot } from '../core/snapshot.js';

interface SnapshotRow {
  id: string;
  name: string;
  vm_id: string;
  created_at: string;
  snapshot_json: string;
}

const toRow = (s: Snapshot): SnapshotRow => ({ id: s.id, name: s.name, vm_id: s.vmId, created_at: s.createdAt, snapshot_json: JSON.stringify(s) });
const toSnapshot = (row: SnapshotRow): Snapshot => JSON.parse(row.snapshot_json) as Snapshot;

export class SqliteSnapshotStore implements SnapshotStore {
  private readonly stmts;

  constructor(db: Database.Database) {
    this.stmts = {
      insert: db.prepare<SnapshotRow>('INSERT INTO snapshots (id, name, vm_id, created_at, snapshot_json) VALUES (@id, @name, @vm_id, @created_at, @snapshot_json)'),
      update: db.prepare<SnapshotRow>('UPDATE snapshots SET name=@name, vm_id=@vm_id, snapshot_json=@snapshot_json WHERE id=@id'),
      get: db.prepare<[string], SnapshotRow>('SELECT * FROM snapshots WHERE id = ?'),
      byName: db.prepare<[string], SnapshotRow>('SELECT * FROM snapshots WHERE name = ?'),
      byPrefix: db.prepare<[{ p: string }], SnapshotRow>('SELECT * FROM snapshots WHERE substr(id, 1, length(@p)) = @p ORDER BY created_at'),
      list: db.prepare<[], SnapshotRow>('SELECT * FROM snapshots ORDER BY created_at, id'),
      delete: db.prepare<[string]>('DELETE FROM snapshots WHERE id = ?'),
    };
  }

  insert(snapshot: Snapshot): void {
    try {
      this.stmts.insert.run(toRow(snapshot));
    } catch (err) {
      if (err instanceof Error && /UNIQUE constraint failed: snapshots\.name/.test(err.message)) {
        throw new HypercoreError(ErrorCodes.invalidArgument, `the snapshot name "${snapshot.name}" is already used; choose another with --name`);
      }
      throw err;
    }
  }

  update(snapshot: Snapshot): void {
    this.stmts.update.run(toRow(snapshot));
  }

  get(id: string): Snapshot | undefined {
    const row = this.stmts.get.get(id);
    return row ? toSnapshot(row) : undefined;
  }

  findByName(name: string): Snapshot | undefined {
    const row = this.stmts.byName.get(name);
    return row ? toSnapshot(row) : undefined;
  }

  findByIdPrefix(prefix: string): Snapshot[] {
    return this.stmts.byPrefix.all({ p: prefix }).map(toSnapshot);
  }

  list(): Snapshot[] {
    return this.stmts.list.all().map(toSnapshot);
  }

  delete(id: string): void {
    this.stmts.delete.run(id);
  }
}
