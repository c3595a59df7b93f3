/**
 * One transfer per digest, however many callers want that blob at once. Callers may ask for
 * different destination paths (each pull downloads to its own temp file): the blob is fetched once
 * into a staging file, then every caller gets its own file (hard link, or a copy across
 * filesystems), atomically, and the staging file is removed.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { DownloadedBlob } from './blobs.js';

interface Waiter {
  resolve(result: DownloadedBlob): void;
  reject(err: unknown): void;
}

interface Flight {
  /** Destination path → callers wanting it (the same path asked twice is delivered once). */
  destinations: Map<string, Waiter[]>;
  listeners: Set<(bytes: number) => void>;
  last?: number;
}

/** Places `source`'s content at `dest` atomically: link (or copy + fsync) to a temp name, then rename. */
async function placeCopy(source: string, dest: string): Promise<void> {
  const tmp = join(dirname(dest), `.${basename(dest)}.${randomBytes(6).toString('hex')}.partial`);
  try {
    try {
      await link(source, tmp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
      await copyFile(source, tmp);
      const handle = await open(tmp, 'r');
      await handle.sync().finally(() => handle.close());
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** De-duplicates concurrent downloads of the same digest (see the file comment). */
export class SharedDownloads {
  private readonly flights = new Map<string, Flight>();

  /** Digests being downloaded right now. */
  get size(): number {
    return this.flights.size;
  }

  /**
   * Gets `digest` to `destPath`, joining a running download of the same digest if there is one.
   * `download(staging, report)` must write the verified blob to `staging` (or throw, leaving nothing).
   */
  run(digest: string, destPath: string, download: (staging: string, report: (bytes: number) => void) => Promise<DownloadedBlob>, onProgress?: (bytes: number) => void): Promise<DownloadedBlob> {
    return new Promise<DownloadedBlob>((resolve, reject) => {
      const waiter = { resolve, reject };
      const existing = this.flights.get(digest);
      if (existing) {
        const list = existing.destinations.get(destPath) ?? [];
        list.push(waiter);
        existing.destinations.set(destPath, list);
        if (onProgress) {
          existing.listeners.add(onProgress);
          // A late joiner sees where the shared transfer already is.
          if (existing.last !== undefined) onProgress(existing.last);
        }
        return;
      }
      const flight: Flight = { destinations: new Map([[destPath, [waiter]]]), listeners: new Set(onProgress ? [onProgress] : []) };
      this.flights.set(digest, flight);
      const report = (bytes: number): void => {
        flight.last = bytes;
        for (const listener of flight.listeners) listener(bytes);
      };
      const staging = join(dirname(destPath), `.${digest.replace(':', '-')}.${randomBytes(6).toString('hex')}.shared`);
      void this.fly(digest, flight, staging, () => download(staging, report));
    });
  }

  private async fly(digest: string, flight: Flight, staging: string, download: () => Promise<DownloadedBlob>): Promise<void> {
    let blob: DownloadedBlob;
    try {
      blob = await download();
    } catch (err) {
      this.flights.delete(digest);
      for (const waiters of flight.destinations.values()) for (const w of waiters) w.reject(err);
      return;
    }
    // Callers are answered only after the staging file is gone, so none of them sees it.
    const answers: Array<() => void> = [];
    try {
      // Callers may still join while earlier ones are served: loop until none is left, and
      // forget the flight in the same synchronous step, so nobody joins a finished flight.
      for (;;) {
        const next = flight.destinations.entries().next();
        if (next.done) {
          this.flights.delete(digest);
          break;
        }
        const [path, waiters] = next.value;
        flight.destinations.delete(path);
        try {
          await placeCopy(staging, path);
          answers.push(() => waiters.forEach((w) => w.resolve({ ...blob, path })));
        } catch (err) {
          answers.push(() => waiters.forEach((w) => w.reject(err)));
        }
      }
    } finally {
      this.flights.delete(digest);
      await rm(staging, { force: true }).catch(() => undefined);
      for (const answer of answers) answer();
    }
  }
}
