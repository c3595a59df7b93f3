/**
 * Content-addressed blob store: `<dir>/sha256/<hex>`. Blobs are written to a temp file beside
 * their final name and renamed only after their digest was verified, so a crash or a bad download
 * never leaves a file under a digest it does not have.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HypercoreError, ErrorCodes, InvalidArgumentError } from '../core/errors.js';

const DIGEST_PATTERN = /^sha256:([a-f0-9]{64})$/;

export function digestHex(digest: string): string {
  const match = DIGEST_PATTERN.exec(digest);
  if (!match) throw new InvalidArgumentError(`unsupported digest "${digest}": expected sha256:<64 hex digits>`);
  return match[1]!;
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export class ContentStore {
  constructor(readonly dir: string) {}

  path(digest: string): string {
    return join(this.dir, 'sha256', digestHex(digest));
  }

  /** A temp path in the same directory as the final blob, so the final rename is atomic. */
  tempPath(digest: string): string {
    return `${this.path(digest)}.partial-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  }

  async has(digest: string): Promise<boolean> {
    try {
      await access(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  async size(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(digest))).size;
    } catch {
      return undefined;
    }
  }

  /** Stores bytes under their digest after checking they match it. */
  async put(digest: string, data: Buffer): Promise<void> {
    const actual = sha256Digest(data);
    if (actual !== digest) throw new HypercoreError(ErrorCodes.imageDigestMismatch, `content does not match its digest: expected ${digest}, got ${actual}`);
    if (await this.has(digest)) return;
    await mkdir(join(this.dir, 'sha256'), { recursive: true });
    const temp = this.tempPath(digest);
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.path(digest));
  }

  /** Moves an already-verified temp file into place. */
  async commit(tempPath: string, digest: string): Promise<void> {
    await mkdir(join(this.dir, 'sha256'), { recursive: true });
    await rename(tempPath, this.path(digest));
  }

  read(digest: string): Promise<Buffer> {
    return readFile(this.path(digest));
  }

  open(digest: string): NodeJS.ReadableStream {
    return createReadStream(this.path(digest));
  }

  async delete(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }

  /** Every stored digest (for garbage collection). */
  async list(): Promise<string[]> {
    try {
      const names = await readdir(join(this.dir, 'sha256'));
      return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
    } catch {
      return [];
    }
  }

  /** Removes temp files a crashed download left behind. */
  async removePartials(): Promise<void> {
    try {
      for (const name of await readdir(join(this.dir, 'sha256'))) {
        if (name.includes('.partial-')) await rm(join(this.dir, 'sha256', name), { force: true });
      }
    } catch {
      // no store yet
    }
  }
}
