/**
 * Snapshot directories, `<root>/snapshots/<id>`: what a snapshot holds besides its record. Disks are
 * copied sparse (a reflink where the filesystem can), shared read-only files are hard-linked so that
 * removing the original (a rebuilt guest system image) does not break the snapshot.
 */
import { link, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnapshotFiles } from '../core/ports.js';
import { sparseCopy } from '../system/sparse-copy.js';

export class SnapshotDirectories implements SnapshotFiles {
  constructor(private readonly rootDir: string) {}

  dir(snapshotId: string): string {
    return join(this.rootDir, 'snapshots', snapshotId);
  }

  async create(snapshotId: string): Promise<string> {
    const dir = this.dir(snapshotId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  async remove(snapshotId: string): Promise<void> {
    await rm(this.dir(snapshotId), { recursive: true, force: true });
  }

  async copyDisk(source: string, target: string): Promise<void> {
    await sparseCopy(source, target);
  }

  async keep(source: string, target: string): Promise<void> {
    try {
      await link(source, target);
    } catch (err) {
      // Another filesystem: a copy keeps it just as well.
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await sparseCopy(source, target);
    }
  }

  async sizeOf(snapshotId: string): Promise<number> {
    const dir = this.dir(snapshotId);
    let bytes = 0;
    for (const name of await readdir(dir)) bytes += (await stat(join(dir, name))).blocks * 512;
    return bytes;
  }
}
