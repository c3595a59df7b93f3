import type Database from 'better-sqlite3';
import type { LeaseStore } from '../core/ports.js';

interface LeaseRow {
  subnet: string;
  ip: string;
  vm_id: string;
}

/** IP leases in the state database; `claim` runs in one transaction so concurrent creates never share an address. */
export class SqliteLeaseStore implements LeaseStore {
  private readonly stmts;
  private readonly db: Database.Database;

  constructor(db: Database.Database) {
    this.db = db;
    this.stmts = {
      bySubnet: db.prepare<[string], LeaseRow>('SELECT * FROM leases WHERE subnet = ?'),
      byVm: db.prepare<[string], LeaseRow>('SELECT * FROM leases WHERE vm_id = ?'),
      insert: db.prepare<LeaseRow>('INSERT INTO leases (subnet, ip, vm_id) VALUES (@subnet, @ip, @vm_id)'),
      release: db.prepare<[string]>('DELETE FROM leases WHERE vm_id = ?'),
      all: db.prepare<[], LeaseRow>('SELECT * FROM leases ORDER BY subnet, ip'),
    };
  }

  claim(subnet: string, vmId: string, choose: (used: Set<string>) => string): string {
    return this.db.transaction(() => {
      const existing = this.stmts.byVm.all(vmId).find((l) => l.subnet === subnet);
      if (existing) return existing.ip;
      const ip = choose(new Set(this.stmts.bySubnet.all(subnet).map((l) => l.ip)));
      this.stmts.insert.run({ subnet, ip, vm_id: vmId });
      return ip;
    }).immediate();
  }

  release(vmId: string): void {
    this.stmts.release.run(vmId);
  }

  all(): { subnet: string; ip: string; vmId: string }[] {
    return this.stmts.all.all().map((l) => ({ subnet: l.subnet, ip: l.ip, vmId: l.vm_id }));
  }
}
