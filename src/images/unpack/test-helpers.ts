/**
 * Test helpers: layers built in memory with tar-stream (hostile ones included), hand-made headers
 * for entries whose data we never want to materialise, and sandboxes with a sentinel directory next
 * to the root so a test can prove nothing was written outside it.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar, { type Header } from 'tar-stream';

export interface TestEntry {
  name: string;
  type?: Header['type'];
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch. */
  mtime?: number;
  linkname?: string;
  data?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

export const T0 = 1_600_000_000;

/** A tar built with tar-stream; names are written as given (`../x` and `/x` included). */
export async function buildTar(entries: readonly TestEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date((e.mtime ?? T0) * 1000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      pax: e.pax,
    };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry(header, e.data ?? '', done);
      else pack.entry(header, done);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

export async function buildTarGz(entries: readonly TestEntry[]): Promise<Buffer> {
  return gzipSync(await buildTar(entries));
}

function octal(value: number, digits: number): string {
  return value.toString(8).padStart(digits, '0') + '\0';
}

/** A bare ustar header (no data follows): for entries that claim sizes we never want to produce. */
export function ustarHeader(name: string, size: number, typeflag = '0'): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(0o644, 7), 100, 'latin1');
  b.write(octal(0, 7), 108, 'latin1');
  b.write(octal(0, 7), 116, 'latin1');
  b.write(octal(size, 11), 124, 'latin1');
  b.write(octal(T0, 11), 136, 'latin1');
  b.write('        ', 148, 'latin1');
  b.write(typeflag, 156, 'latin1');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

/** A compressed source that records how much of it the unpacker actually pulled. */
export interface CountingSource extends AsyncIterable<Buffer> {
  readonly total: number;
  consumed: number;
}

/**
 * gzip members concatenated (valid gzip): `head` then `zerosMiB` MiB of zeros, each MiB its own
 * ~1 KiB member, so 1 GiB of zeros costs ~1 MB and no time to build.
 */
export function gzipBomb(head: Buffer, zerosMiB: number): CountingSource {
  const first = gzipSync(head);
  const mib = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  const source: CountingSource = {
    total: first.length + mib.length * zerosMiB,
    consumed: 0,
    async *[Symbol.asyncIterator]() {
      source.consumed += first.length;
      yield first;
      for (let i = 0; i < zerosMiB; i++) {
        source.consumed += mib.length;
        yield mib;
      }
    },
  };
  return source;
}

export interface Sandbox {
  base: string;
  root: string;
  sentinel: string;
  /** Everything under `base` except `root`: must not change while unpacking. */
  outside(): Promise<string[]>;
  cleanup(): Promise<void>;
}

/** `base/root` to unpack into, `base/sentinel/secret` next to it, both checked by `outside()`. */
export async function makeSandbox(): Promise<Sandbox> {
  const base = await mkdtemp(join(tmpdir(), 'hc-unpack-'));
  const root = join(base, 'root');
  const sentinel = join(base, 'sentinel');
  await mkdir(root, { mode: 0o755 });
  await mkdir(join(sentinel, 'etc'), { recursive: true });
  await writeFile(join(sentinel, 'secret'), 'do not touch\n', { mode: 0o600 });
  await writeFile(join(sentinel, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  return {
    base,
    root,
    sentinel,
    outside: async () => (await snapshotTree(base)).filter((line) => !line.startsWith('root/') && !line.startsWith('root ')),
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

/** One line per path below `dir`: type, mode, owner, size, mtime, and content hash or link target. */
export async function snapshotTree(dir: string, prefix = ''): Promise<string[]> {
  const lines: string[] = [];
  for (const name of (await readdir(join(dir, prefix))).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const path = join(dir, rel);
    const st = await lstat(path);
    let extra = '';
    if (st.isFile()) extra = createHash('sha256').update(await readFile(path)).digest('hex').slice(0, 16);
    else if (st.isSymbolicLink()) extra = `-> ${await readlink(path)}`;
    lines.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${extra}`);
    if (st.isDirectory()) lines.push(...(await snapshotTree(dir, rel)));
  }
  return lines;
}

/** Linux dev_t encoding (glibc's gnu_dev_major/minor). */
export function major(rdev: number): number {
  return ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}
export function minor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
}
