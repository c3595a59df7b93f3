/**
 * Paths inside a container's root filesystem, resolved as the container will see them: symlinks
 * (absolute ones too) are followed relative to the container's root, and `..` never climbs above
 * it. Image content is hostile: a link to `/etc/shadow` must name the image's own file, never the
 * guest's, and a loop of links must end in an error instead of a hang.
 */
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';

/** Most symlinks followed while resolving one path (Linux's MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * The host path of `path` (absolute in the container) under `root`, with every symlink followed
 * within `root`. Undefined when a component is missing or the links loop.
 */
export function resolveInRoot(root: string, path: string): string | undefined {
  const pending = path.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = join(root, ...done, part);
    let isLink: boolean;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      return undefined;
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) return undefined;
    const target = readlinkSync(candidate);
    // An absolute target starts again at the container's root; a relative one from the link's folder.
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return join(root, ...done);
}

/** x86-64 in an ELF header's e_machine. */
const EM_X86_64 = 62;

/** Why `file` (a resolved host path) cannot be executed in this guest, or undefined if it can. */
function notExecutable(file: string, bytes: Buffer): string | undefined {
  let st;
  try {
    st = statSync(file);
  } catch {
    return 'no such file or directory';
  }
  if (!st.isFile()) return 'is not a regular file';
  if ((st.mode & 0o111) === 0) return 'permission denied (not executable)';
  if (bytes.length >= 20 && bytes.readUInt32BE(0) === 0x7f454c46) {
    const machine = bytes[5] === 2 ? bytes.readUInt16BE(18) : bytes.readUInt16LE(18);
    if (machine !== EM_X86_64) return `exec format error (an ELF binary for machine ${machine}; this guest runs x86-64)`;
  }
  return undefined;
}

export interface Executable {
  /** The host path the container's file resolved to. */
  hostPath: string;
}

/**
 * Looks `command` up in the container as execvp would (PATH entries for a bare name, relative
 * names against `cwd`) and checks it can run here. Throws an Error naming the command otherwise,
 * in the words runc uses, so containerd and CRI show a familiar message.
 */
export function findExecutable(root: string, command: string, pathEnv: string, cwd: string, readHead: (file: string) => Buffer): Executable {
  const candidates = command.includes('/') ? [posix.resolve(cwd || '/', command)] : pathEnv.split(':').filter((d) => d !== '').map((d) => posix.join(d, command));
  let reason: string | undefined;
  for (const candidate of candidates) {
    const hostPath = resolveInRoot(root, candidate);
    if (!hostPath) continue;
    const why = notExecutable(hostPath, safeHead(readHead, hostPath));
    if (!why) return { hostPath };
    reason ??= `${candidate}: ${why}`;
  }
  if (reason) throw new Error(`exec: "${command}": ${reason}`);
  throw new Error(command.includes('/') ? `exec: "${command}": stat ${command}: no such file or directory` : `exec: "${command}": executable file not found in $PATH`);
}

function safeHead(readHead: (file: string) => Buffer, file: string): Buffer {
  try {
    return readHead(file);
  } catch {
    return Buffer.alloc(0);
  }
}
