/** Pod containers in SQLite: one row per container, its record as JSON (see core/pod.ts). */
import type Database from 'better-sqlite3';
import type { ContainerStore, PodContainer } from '../core/pod.js';

interface Row {
  container_json: string;
}

export class SqliteContainerStore implements ContainerStore {
  private readonly upsert: Database.Statement;
  private readonly one: Database.Statement;
  private readonly byVm: Database.Statement;
  private readonly all: Database.Statement;
  private readonly remove: Database.Statement;

  constructor(db: Database.Database) {
    this.upsert = db.prepare('INSERT INTO pod_containers (vm_id, id, container_json) VALUES (?, ?, ?) ON CONFLICT (vm_id, id) DO UPDATE SET container_json = excluded.container_json');
    this.one = db.prepare('SELECT container_json FROM pod_containers WHERE vm_id = ? AND id = ?');
    this.byVm = db.prepare('SELECT container_json FROM pod_containers WHERE vm_id = ? ORDER BY rowid');
    this.all = db.prepare('SELECT container_json FROM pod_containers ORDER BY rowid');
    this.remove = db.prepare('DELETE FROM pod_containers WHERE vm_id = ? AND id = ?');
  }

  put(container: PodContainer): void {
    this.upsert.run(container.vmId, container.id, JSON.stringify(container));
  }

  get(vmId: string, id: string): PodContainer | undefined {
    const row = this.one.get(vmId, id) as Row | undefined;
    return row ? (JSON.parse(row.container_json) as PodContainer) : undefined;
  }

  list(vmId?: string): PodContainer[] {
    const rows = (vmId === undefined ? this.all.all() : this.byVm.all(vmId)) as Row[];
    return rows.map((r) => JSON.parse(r.container_json) as PodContainer);
  }

  delete(vmId: string, id: string): void {
    this.remove.run(vmId, id);
  }
}
