/**
 * Builds OCI images in code, for tests and benchmarks: layers from entry lists (files, dirs,
 * symlinks, hardlinks, whiteouts, opaque markers), config, manifest, multi-platform index, and the
 * two archive formats `image import` reads (OCI layout tar, `docker save` tar). Nothing is downloaded.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export type LayerEntry =
  | { type: 'file'; path: string; content: string | Buffer; mode?: number; uid?: number; gid?: number }
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'hardlink'; path: string; target: string }
  /** Removes `path` of lower layers (written as `.wh.<name>`). */
  | { type: 'whiteout'; path: string }
  /** Hides every lower-layer entry of directory `path` (written as `path/.wh..wh..opq`). */
  | { type: 'opaque'; path: string };

export interface BuiltBlob {
  bytes: Buffer;
  digest: string;
  size: number;
  mediaType: string;
}

export interface BuiltLayer extends BuiltBlob {
  /** Digest of the uncompressed tar (the config's diff_id). */
  diffId: string;
}

export interface BuiltImage {
  layers: BuiltLayer[];
  config: BuiltBlob;
  manifest: BuiltBlob;
}

const MTIME = new Date('2024-01-01T00:00:00Z');

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function blob(bytes: Buffer, mediaType: string): BuiltBlob {
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType };
}

function whiteoutName(path: string): string {
  const parts = path.split('/');
  const name = parts.pop()!;
  return [...parts, `.wh.${name}`].join('/');
}

/** Packs entries into a tar (entry order as given) and gzips it unless `gzip` is false. */
export async function buildLayer(entries: readonly LayerEntry[], options: { gzip?: boolean } = {}): Promise<BuiltLayer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const base = { name: e.path.replace(/^\//, ''), mtime: MTIME };
    switch (e.type) {
      case 'file':
        pack.entry({ ...base, type: 'file', mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0 }, Buffer.from(e.content));
        break;
      case 'dir':
        pack.entry({ ...base, type: 'directory', mode: e.mode ?? 0o755 });
        break;
      case 'symlink':
        pack.entry({ ...base, type: 'symlink', linkname: e.target });
        break;
      case 'hardlink':
        pack.entry({ ...base, type: 'link', linkname: e.target.replace(/^\//, '') });
        break;
      case 'whiteout':
        pack.entry({ ...base, name: whiteoutName(base.name), type: 'file', mode: 0o644 }, Buffer.alloc(0));
        break;
      case 'opaque':
        pack.entry({ ...base, name: `${base.name}/.wh..wh..opq`, type: 'file', mode: 0o644 }, Buffer.alloc(0));
        break;
    }
  }
  pack.finalize();
  await collected;
  const raw = Buffer.concat(chunks);
  const gzip = options.gzip ?? true;
  const bytes = gzip ? gzipSync(raw) : raw;
  return { ...blob(bytes, gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar'), diffId: sha256(raw) };
}

export function buildImage(layers: readonly BuiltLayer[], options: { architecture?: string; cmd?: string[]; env?: string[] } = {}): BuiltImage {
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: options.architecture ?? 'amd64',
        os: 'linux',
        created: MTIME.toISOString(),
        config: { Cmd: options.cmd ?? ['/bin/sh'], Env: options.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      }),
    ),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      }),
    ),
    'application/vnd.oci.image.manifest.v1+json',
  );
  return { layers: [...layers], config, manifest };
}

/** An OCI index over per-platform images. */
export function buildIndex(images: readonly { image: BuiltImage; os: string; architecture: string; variant?: string }[]): BuiltBlob {
  return blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: images.map(({ image, os, architecture, variant }) => ({
          mediaType: image.manifest.mediaType,
          digest: image.manifest.digest,
          size: image.manifest.size,
          platform: { os, architecture, ...(variant ? { variant } : {}) },
        })),
      }),
    ),
    'application/vnd.oci.image.index.v1+json',
  );
}

/** An entry of a hand-made archive: a file, or (for hostile archives) a symlink or a device node. */
export type ArchiveEntry =
  | { name: string; bytes: Buffer }
  | { name: string; symlink: string }
  | { name: string; device: { major: number; minor: number } };

/** Writes a plain tar of `entries`, in order. */
export async function writeTar(path: string, entries: readonly ArchiveEntry[]): Promise<void> {
  const pack = tar.pack();
  for (const e of entries) {
    if ('bytes' in e) pack.entry({ name: e.name, mtime: MTIME, mode: 0o644 }, e.bytes);
    else if ('symlink' in e) pack.entry({ name: e.name, mtime: MTIME, type: 'symlink', linkname: e.symlink });
    else pack.entry({ name: e.name, mtime: MTIME, mode: 0o600, type: 'character-device', devmajor: e.device.major, devminor: e.device.minor });
  }
  pack.finalize();
  await pipeline(pack, createWriteStream(path));
}

const blobFile = (b: BuiltBlob) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, bytes: b.bytes });

/** An OCI image layout tar whose index names the image `name` (as containerd and docker do). */
export async function writeOciLayoutTar(image: BuiltImage, path: string, name?: string): Promise<void> {
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.size, ...(name ? { annotations: { 'io.containerd.image.name': name } } : {}) }],
  };
  await writeTar(path, [
    { name: 'oci-layout', bytes: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', bytes: Buffer.from(JSON.stringify(index)) },
    blobFile(image.manifest),
    blobFile(image.config),
    ...image.layers.map(blobFile),
  ]);
}

/** A legacy `docker save` tar: manifest.json, <id>.json config, <id>/layer.tar (uncompressed layers). */
export async function writeDockerSaveTar(layers: readonly BuiltLayer[], image: BuiltImage, path: string, repoTag: string): Promise<void> {
  const configName = `${image.config.digest.slice(7)}.json`;
  const layerFiles = layers.map((l, i) => {
    if (l.mediaType.endsWith('gzip')) throw new Error('docker save layers are uncompressed: build them with { gzip: false }');
    return { name: `layer${i}/layer.tar`, bytes: l.bytes };
  });
  const manifest = [{ Config: configName, RepoTags: [repoTag], Layers: layerFiles.map((f) => f.name) }];
  await writeTar(path, [{ name: 'manifest.json', bytes: Buffer.from(JSON.stringify(manifest)) }, { name: configName, bytes: image.config.bytes }, ...layerFiles]);
}

/**
 * A small Linux userland for test images: the host's static busybox with a symlink per applet,
 * /etc/os-release and /etc/passwd (root), /tmp and /root.
 */
export function busyboxLayerEntries(osRelease = 'NAME="Hypercore test image"\nID=hctest\n', busybox = '/bin/busybox'): LayerEntry[] {
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  return [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', content: readFileSync(busybox), mode: 0o755 },
    ...applets.map((a): LayerEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/os-release', content: osRelease },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'root', mode: 0o700 },
  ];
}
