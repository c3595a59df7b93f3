import type Database from 'better-sqlite3';

/**
 * Schema migrations, applied in order inside one transaction each. The applied count lives in
 * SQLite's `user_version`, so opening an older database upgrades it and a newer one is refused.
 */
export const migrations: readonly string[] = [
  `CREATE TABLE vms (
     id          TEXT PRIMARY KEY,
     name        TEXT NOT NULL UNIQUE,
     state       TEXT NOT NULL,
     provider    TEXT NOT NULL,
     pid         INTEGER,
     created_at  TEXT NOT NULL,
     updated_at  TEXT NOT NULL,
     started_at  TEXT,
     spec_json   TEXT NOT NULL,
     error_json  TEXT
   ) STRICT;`,
  `CREATE TABLE images (
     reference   TEXT PRIMARY KEY,
     digest      TEXT NOT NULL,
     created_at  TEXT NOT NULL,
     image_json  TEXT NOT NULL
   ) STRICT;
   CREATE INDEX images_by_digest ON images (digest);`,
  // Disks and image digest of a VM, kept as JSON: read and written whole with the VM.
  `ALTER TABLE vms ADD COLUMN extra_json TEXT;`,
  // IP leases: one address per VM and subnet; the primary key makes double allocation impossible.
  `CREATE TABLE leases (
     subnet  TEXT NOT NULL,
     ip      TEXT NOT NULL,
     vm_id   TEXT NOT NULL,
     PRIMARY KEY (subnet, ip)
   ) STRICT;
   CREATE UNIQUE INDEX leases_by_vm ON leases (vm_id, subnet);`,
  // Snapshots: the rest of the record (spec, disks, VMM files) is read and written whole as JSON.
  `CREATE TABLE snapshots (
     id             TEXT PRIMARY KEY,
     name           TEXT NOT NULL UNIQUE,
     vm_id          TEXT NOT NULL,
     created_at     TEXT NOT NULL,
     snapshot_json  TEXT NOT NULL
   ) STRICT;`,
  // API tokens of the remote listener: the secret only as its SHA-256; revoked ones are kept (revoked_at) for `token ls`.
  `CREATE TABLE api_tokens (
     id            TEXT PRIMARY KEY,
     name          TEXT NOT NULL,
     scope         TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
     secret_sha256 TEXT NOT NULL,
     created_at    TEXT NOT NULL,
     revoked_at    TEXT,
     last_used_at  TEXT
   ) STRICT;`,
];

export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(`the state database has schema version ${current}, newer than this hypercored knows (${migrations.length}); use a newer hypercored`);
  }
  for (let version = current; version < migrations.length; version++) {
    db.transaction(() => {
      db.exec(migrations[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
