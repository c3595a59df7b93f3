/**
 * `delete` calls that found no hypercored. containerd runs the shim's `delete` as soon as
 * hypercored's connection drops (it takes the shim for dead) and allows it 5 s; a hypercored that
 * is not back by then would never hear of the task, and its pod VM would run on with nobody to
 * remove it. So the shim binary leaves the call in a directory next to hypercored's socket (both
 * sides know the socket, nothing else), and hypercored makes the calls once it is up again.
 *
 * The directory is root's (0700), each file 0600; hypercored reads only regular files of bounded
 * size, never follows a link, and checks each call as it checks one from the socket.
 */
import { createHash } from 'node:crypto';
import { constants, mkdirSync, openSync, closeSync, fstatSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PendingDelete {
  namespace: string;
  id: string;
  bundle: string;
  address: string;
}

/** Larger files are not calls the shim wrote. */
const MAX_FILE_BYTES = 64 * 1024;
/** At most this many calls are taken at once (each names one task). */
const MAX_FILES = 4096;

export function pendingDeletesDir(socket: string): string {
  return `${socket}.shim-deletes`;
}

/** Called by the shim binary: one file per task (a second delete of the same task replaces it). */
export function recordPendingDelete(socket: string, call: PendingDelete): void {
  const dir = pendingDeletesDir(socket);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = createHash('sha256').update(`${call.address}\n${call.namespace}\n${call.id}`).digest('hex').slice(0, 32);
  // Written aside and renamed: hypercored never reads half a file.
  const tmp = join(dir, `.${name}.${process.pid}`);
  writeFileSync(tmp, JSON.stringify(call), { mode: 0o600 });
  renameSync(tmp, join(dir, `${name}.json`));
}

/** Called by hypercored: the recorded calls, each removed as it is read; files that are no call are removed too. */
export function takePendingDeletes(socket: string, onBadFile: (file: string, reason: string) => void): PendingDelete[] {
  const dir = pendingDeletesDir(socket);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).slice(0, MAX_FILES);
  } catch {
    return [];
  }
  const calls: PendingDelete[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      const call = readCall(file);
      if (call) calls.push(call);
      else onBadFile(file, 'not a delete call');
    } catch (err) {
      onBadFile(file, (err as Error).message);
    } finally {
      try {
        rmSync(file, { force: true });
      } catch {
        // A directory: not the shim's; it stays (and is named again at the next start).
      }
    }
  }
  return calls;
}

function readCall(file: string): PendingDelete | undefined {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
    const value: unknown = JSON.parse(readFileSync(fd, 'utf8'));
    if (typeof value !== 'object' || value === null) return undefined;
    const v = value as Record<string, unknown>;
    const fields = ['namespace', 'id', 'bundle', 'address'] as const;
    if (!fields.every((f) => typeof v[f] === 'string')) return undefined;
    return { namespace: v['namespace'] as string, id: v['id'] as string, bundle: v['bundle'] as string, address: v['address'] as string };
  } finally {
    closeSync(fd);
  }
}
