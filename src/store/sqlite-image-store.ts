import type Database from 'better-sqlite3';
import type { Image } from '../core/image.js';
import type { ImageStore } from '../core/ports.js';

interface ImageRow {
  reference: string;
  digest: string;
  created_at: string;
  image_json: string;
}

/** Image records (reference → manifest digest and metadata) in the shared state database. */
export class SqliteImageStore implements ImageStore {
  private readonly stmts;

  constructor(db: Database.Database) {
    this.stmts = {
      put: db.prepare<ImageRow>(
        `INSERT INTO images (reference, digest, created_at, image_json) VALUES (@reference, @digest, @created_at, @image_json)
         ON CONFLICT(reference) DO UPDATE SET digest=excluded.digest, created_at=excluded.created_at, image_json=excluded.image_json`,
      ),
      get: db.prepare<[string], ImageRow>('SELECT * FROM images WHERE reference = ?'),
      byDigest: db.prepare<[string], ImageRow>('SELECT * FROM images WHERE digest = ? ORDER BY reference'),
      list: db.prepare<[], ImageRow>('SELECT * FROM images ORDER BY reference'),
      delete: db.prepare<[string]>('DELETE FROM images WHERE reference = ?'),
    };
  }

  put(image: Image): void {
    this.stmts.put.run({ reference: image.reference, digest: image.digest, created_at: image.createdAt, image_json: JSON.stringify(image) });
  }

  get(reference: string): Image | undefined {
    const row = this.stmts.get.get(reference);
    return row ? (JSON.parse(row.image_json) as Image) : undefined;
  }

  findByDigest(digest: string): Image[] {
    return this.stmts.byDigest.all(digest).map((r) => JSON.parse(r.image_json) as Image);
  }

  list(): Image[] {
    return this.stmts.list.all().map((r) => JSON.parse(r.image_json) as Image);
  }

  delete(reference: string): void {
    this.stmts.delete.run(reference);
  }
}
