/**
 * Unpack benchmark (not a test): builds a ~100 MB layer in a temp dir, then times unpackLayer
 * against GNU tar on the same blob, both into fresh directories.
 *
 *   node dist/src/images/unpack/unpack.bench.js [--runs N] [--mb 100] [--keep]   (--keep: leave the blob for profiling)
 *
 * The layer looks like a distro layer: ~4k files from 0–64 KiB of half-compressible data, one
 * 16 MiB file, directories, symlinks and hardlinks. Prints numbers only.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { runCommand } from '../../system/command.js';
import { unpackLayer } from './unpack.js';

/** Deterministic bytes, half random and half zero-ish text, so gzip gets a realistic ~2:1. */
function content(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    b.writeUInt32LE(i % 64 < 32 ? x : 0x20202020 + (i & 7), i);
  }
  return b;
}

async function buildLayer(path: string, targetBytes: number): Promise<{ entries: number; bytes: number }> {
  const pack = tar.pack();
  const written = pipeline(pack, createGzip({ level: 6 }), createWriteStream(path));
  let bytes = 0;
  let entries = 0;
  const add = (header: Parameters<typeof pack.entry>[0], data?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      entries++;
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (data) pack.entry(header, data, done);
      else pack.entry(header, done);
    });
  await add({ name: 'big/', type: 'directory' });
  await add({ name: 'big/blob.bin', size: 16 << 20 }, content(16 << 20, 1));
  bytes += 16 << 20;
  for (let i = 0; bytes < targetBytes; i++) {
    const dir = `usr/lib/pkg${Math.floor(i / 40)}`;
    if (i % 40 === 0) await add({ name: `${dir}/`, type: 'directory' });
    const size = (i * 7919) % (64 * 1024);
    await add({ name: `${dir}/file${i}.so`, mode: 0o755 }, content(size, i));
    bytes += size;
    if (i % 20 === 0) await add({ name: `${dir}/link${i}`, type: 'symlink', linkname: `file${i}.so` });
    if (i % 50 === 0) await add({ name: `${dir}/hard${i}`, type: 'link', linkname: `${dir}/file${i}.so` });
  }
  pack.finalize();
  await written;
  return { entries, bytes };
}

async function main(): Promise<void> {
  const flag = (name: string, fallback: number): number => {
    const at = process.argv.indexOf(name);
    return at < 0 ? fallback : Number(process.argv[at + 1]) || fallback;
  };
  const runs = flag('--runs', 3);
  const mb = flag('--mb', 100);
  const work = await mkdtemp(join(tmpdir(), 'hc-unpack-bench-'));
  try {
    const blob = join(work, 'layer.tar.gz');
    const built = await buildLayer(blob, mb * 1024 * 1024);
    const size = (await stat(blob)).size;
    console.log(`layer: ${built.entries} entries, ${(built.bytes / 1e6).toFixed(1)} MB of file data, ${(size / 1e6).toFixed(1)} MB gzip`);
    for (let run = 1; run <= runs; run++) {
      const ours = await mkdtemp(join(work, 'ours-'));
      let t = performance.now();
      const stats = await unpackLayer(ours, createReadStream(blob), { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
      const oursMs = performance.now() - t;
      const gnu = await mkdtemp(join(work, 'gnu-'));
      t = performance.now();
      await runCommand('tar', ['-xzf', blob, '-C', gnu, '--numeric-owner', '--same-owner', '--same-permissions'], { timeoutMs: 300_000 });
      const gnuMs = performance.now() - t;
      console.log(`run ${run}: unpackLayer ${oursMs.toFixed(0)} ms (${stats.entries} entries), GNU tar -xzf ${gnuMs.toFixed(0)} ms`);
      await rm(ours, { recursive: true, force: true });
      await rm(gnu, { recursive: true, force: true });
    }
  } finally {
    if (process.argv.includes('--keep')) console.log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

await main();
