/**
 * A writer for the "newc" cpio format (SVR4 without CRC, `cpio -H newc`), the only format the
 * Linux initramfs unpacker reads. Writing it in TypeScript keeps the stage-1 initramfs build free of
 * a `cpio` dependency and of a staging tree on disk, lets it hold device nodes (`/dev/console`)
 * without root privileges, and makes the output reproducible (fixed mtime, inode numbers, owners).
 */

/** One archive member. Paths are relative (`bin/busybox`), parents must come before children. */
export type NewcEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Buffer; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`cpio field out of range: ${value}`);
  return value.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

interface RawMember {
  name: string;
  mode: number;
  nlink: number;
  data: Buffer;
  rdevMajor: number;
  rdevMinor: number;
}

function header(ino: number, m: RawMember, nameSize: number): string {
  // Field order of the newc header: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
  // devminor, rdevmajor, rdevminor, namesize, check. Owners are root and mtime is 0 on purpose.
  return (
    '070701' +
    [ino, m.mode, 0, 0, m.nlink, 0, m.data.length, 0, 0, m.rdevMajor, m.rdevMinor, nameSize, 0].map(hex8).join('')
  );
}

function toRaw(entry: NewcEntry): RawMember {
  const name = entry.path.replace(/^\/+/, '');
  if (name === '' || name.split('/').includes('..')) throw new RangeError(`invalid cpio path: "${entry.path}"`);
  switch (entry.type) {
    case 'dir':
      return { name, mode: S_IFDIR | (entry.mode ?? 0o755), nlink: 2, data: Buffer.alloc(0), rdevMajor: 0, rdevMinor: 0 };
    case 'file':
      return { name, mode: S_IFREG | (entry.mode ?? 0o644), nlink: 1, data: entry.data, rdevMajor: 0, rdevMinor: 0 };
    case 'symlink':
      return { name, mode: S_IFLNK | 0o777, nlink: 1, data: Buffer.from(entry.target), rdevMajor: 0, rdevMinor: 0 };
    case 'chardev':
      return { name, mode: S_IFCHR | (entry.mode ?? 0o600), nlink: 1, data: Buffer.alloc(0), rdevMajor: entry.major, rdevMinor: entry.minor };
  }
}

/** Encodes `entries` (in the given order) plus the trailer into one newc archive. */
export function encodeNewc(entries: readonly NewcEntry[]): Buffer {
  const parts: Buffer[] = [];
  const members = entries.map(toRaw);
  members.push({ name: TRAILER, mode: 0, nlink: 1, data: Buffer.alloc(0), rdevMajor: 0, rdevMinor: 0 });
  members.forEach((m, i) => {
    const name = Buffer.from(`${m.name}\0`);
    // Unique inode numbers stop the unpacker from treating members as hard links of each other.
    const head = Buffer.from(header(m.name === TRAILER ? 0 : i + 1, m, name.length), 'ascii');
    parts.push(head, name, pad4(head.length + name.length), m.data, pad4(m.data.length));
  });
  return Buffer.concat(parts);
}
