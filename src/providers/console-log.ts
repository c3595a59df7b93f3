/**
 * Serial console logs. Every VMM appends the guest's serial output to one file per VM. The daemon
 * caps it the way logrotate's copytruncate does (copy to `.1`, truncate the live file), which works
 * while the VMM keeps the file open in append mode; `read` streams `.1` then the live file.
 * Files only the daemon writes (the workload's log) rotate by rename instead, and every write of the
 * daemon's goes through `appendCapped`, which rotates before the cap would be passed, so the daemon's
 * own writes never take a live file over its cap.
 */
import { copyFile, open, rename, stat, truncate } from 'node:fs/promises';

export const DEFAULT_CONSOLE_LOG_CAP_BYTES = 1024 * 1024;

export function rotatedPath(path: string): string {
  return `${path}.1`;
}

/**
 * How a live file becomes `.1`: `copy-truncate` while another process (the VMM) appends to it, `rename`
 * when only the daemon writes it (cheaper: no copy).
 */
export type Rotation = 'copy-truncate' | 'rename';

async function rotate(path: string, rotation: Rotation): Promise<void> {
  if (rotation === 'rename') {
    await rename(path, rotatedPath(path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    return;
  }
  await copyFile(path, rotatedPath(path));
  await truncate(path, 0);
}

/** Rotates when the live file passes `capBytes`; disk use stays under about twice the cap. */
export async function rotateIfNeeded(path: string, capBytes: number, rotation: Rotation = 'copy-truncate'): Promise<boolean> {
  const size = await fileSize(path);
  if (size === undefined || size <= capBytes) return false;
  await rotate(path, rotation);
  return true;
}

/**
 * Appends so that the live file stays within `capBytes`: when the bytes would not fit, the live file is
 * rotated first; bytes longer than the cap keep only their newest `capBytes`. Disk use: at most twice
 * the cap (live + `.1`). Callers serialise writes to one file.
 */
export async function appendCapped(path: string, data: Uint8Array, capBytes: number, rotation: Rotation): Promise<void> {
  if (data.length === 0) return;
  const bytes = data.length > capBytes ? data.subarray(data.length - capBytes) : data;
  const size = (await fileSize(path)) ?? 0;
  if (size > 0 && size + bytes.length > capBytes) await rotate(path, rotation);
  await appendConsoleLog(path, bytes);
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

export interface ReadOptions {
  follow: boolean;
  signal?: AbortSignal;
  /** How often a follower looks for new output. */
  pollMs?: number;
}

/** Streams the console log (rotated part first); with `follow`, keeps yielding new output until aborted. */
export async function* readConsoleLog(path: string, options: ReadOptions): AsyncGenerator<Buffer> {
  const pollMs = options.pollMs ?? 200;
  yield* readRange(rotatedPath(path), 0, Infinity);
  let offset = 0;
  for (;;) {
    const size = (await fileSize(path)) ?? 0;
    // A size below our offset means the file was truncated by a rotation: continue from its start.
    if (size < offset) offset = 0;
    if (size > offset) {
      for await (const chunk of readRange(path, offset, size)) {
        offset += chunk.length;
        yield chunk;
      }
    }
    if (!options.follow || options.signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      // The listener is removed on every poll, or a long follow would pile one up every 200 ms.
      const timer = setTimeout(() => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve();
      }, pollMs);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
    if (options.signal?.aborted) return;
  }
}

async function* readRange(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return;
  }
  try {
    const buffer = Buffer.alloc(64 * 1024);
    let position = start;
    while (position < end) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position), position);
      if (bytesRead === 0) break;
      position += bytesRead;
      yield Buffer.from(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}

/** Appends bytes (workload output) to the live log; O_APPEND keeps it safe next to the VMM's writes. */
export async function appendConsoleLog(path: string, data: Uint8Array): Promise<void> {
  const handle = await open(path, 'a', 0o600);
  try {
    await handle.write(data);
  } finally {
    await handle.close();
  }
}

/** The last `bytes` of the log (live part, else the rotated one), as text. */
export async function tailConsoleLog(path: string, bytes: number): Promise<string> {
  for (const file of [path, rotatedPath(path)]) {
    const size = await fileSize(file);
    if (!size) continue;
    const chunks: Buffer[] = [];
    for await (const chunk of readRange(file, Math.max(0, size - bytes), size)) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  }
  return '';
}
