/**
 * Extracts an image archive (docker save / OCI layout tar) into a scratch directory. Only regular
 * files and directories with plain relative names are accepted: an archive is data, not a rootfs.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';

export const MAX_ARCHIVE_BYTES = 64 * 1024 * 1024 * 1024;

function safeName(name: string): string | undefined {
  const normal = posix.normalize(name.replace(/^\.\//, ''));
  if (normal === '.' || normal === '') return undefined;
  if (normal.startsWith('/') || normal === '..' || normal.startsWith('../')) return undefined;
  return normal.replace(/\/$/, '');
}

/** Extracts `archive` (plain or gzip tar) into `dest`; returns the file names it wrote. */
export async function extractImageArchive(archive: string, dest: string): Promise<Set<string>> {
  const files = new Set<string>();
  const extract = tar.extract();
  let total = 0;
  extract.on('entry', (header, stream, next) => {
    const name = safeName(header.name);
    const done = (err?: unknown) => (err ? next(err as Error) : next());
    if (header.type === 'directory' || (name === undefined && header.type !== 'file')) {
      stream.resume();
      stream.on('end', () => done());
      return;
    }
    if (name === undefined || header.type !== 'file') {
      stream.resume();
      done(new HypercoreError(ErrorCodes.imageUnsupported, `image archive entry "${header.name}" is not a plain file with a relative name`));
      return;
    }
    total += header.size ?? 0;
    if (total > MAX_ARCHIVE_BYTES) {
      stream.resume();
      done(new HypercoreError(ErrorCodes.imageLimitExceeded, `image archive is larger than ${MAX_ARCHIVE_BYTES} bytes`));
      return;
    }
    const target = join(dest, name);
    mkdir(dirname(target), { recursive: true })
      .then(() => pipeline(stream, createWriteStream(target, { mode: 0o600 })))
      .then(() => {
        files.add(name);
        done();
      }, done);
  });
  const input = createReadStream(archive);
  const head = await readHead(archive);
  const source = head[0] === 0x1f && head[1] === 0x8b ? input.pipe(createGunzip()) : input;
  try {
    await pipeline(source, extract);
  } catch (err) {
    if (err instanceof HypercoreError) throw err;
    throw new HypercoreError(ErrorCodes.imageUnsupported, `cannot read image archive ${archive}: ${(err as Error).message}`, { cause: err });
  }
  return files;
}

async function readHead(path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of createReadStream(path, { start: 0, end: 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
