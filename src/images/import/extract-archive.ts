/**
 * Extracts an image archive (docker save / OCI layout tar) into a scratch directory. Only regular
 * files and directories with plain relative names are accepted: an archive is data, not a rootfs.
 * Names the archive's own documents mention (manifest.json's Config and Layers, index.json's
 * digests) resolve only to files this extractor wrote, never to anything else on the host.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
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

function unsupported(message: string): HypercoreError {
  return new HypercoreError(ErrorCodes.imageUnsupported, message);
}

/** The files of an extracted archive, looked up by the names the archive's documents use. */
export class ExtractedArchive {
  constructor(
    readonly dir: string,
    private readonly files: ReadonlySet<string>,
  ) {}

  has(name: string): boolean {
    return this.files.has(name);
  }

  /**
   * Host path of the regular file the archive holds under `name`. A name that leaves the archive
   * (`../`, absolute), or that is not a regular file the extractor wrote, is refused: `what` says
   * which document named it.
   */
  async file(name: unknown, what: string): Promise<string> {
    const normal = typeof name === 'string' ? safeName(name) : undefined;
    if (normal === undefined || !this.files.has(normal)) throw unsupported(`${what} names ${JSON.stringify(name)}, which is not a file in the archive`);
    const path = join(this.dir, normal);
    // The set says the extractor wrote it; lstat makes sure it still is that plain file.
    if (!(await lstat(path)).isFile()) throw unsupported(`${what} names ${JSON.stringify(name)}, which is not a regular file`);
    return path;
  }

  /** Reads a document of the archive into memory, refusing more than `limit` bytes. */
  async read(name: unknown, what: string, limit: number): Promise<Buffer> {
    const handle = await open(await this.file(name, what), 'r');
    try {
      const { size } = await handle.stat();
      if (size > limit) throw new HypercoreError(ErrorCodes.imageLimitExceeded, `${JSON.stringify(name)} in the archive (${what}) is ${size} bytes; at most ${limit} are allowed`);
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }
}

/** Extracts `archive` (plain or gzip tar) into `dest`. */
export async function extractImageArchive(archive: string, dest: string): Promise<ExtractedArchive> {
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
      done(unsupported(`image archive entry "${header.name}" is not a plain file with a relative name`));
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
  return new ExtractedArchive(dest, files);
}

async function readHead(path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of createReadStream(path, { start: 0, end: 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
