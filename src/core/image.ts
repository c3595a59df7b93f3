/** The image model: an OCI image pulled (or imported) into the local store, and its block image. */

export interface ImageLayer {
  digest: string;
  mediaType: string;
  size: number;
}

export interface Image {
  /** Normalised reference, e.g. `docker.io/library/alpine:latest` (or `name@sha256:…`). */
  reference: string;
  /** Digest of the platform manifest (what the content is). */
  digest: string;
  /** Digest of the index/manifest list the platform manifest was picked from, if any. */
  indexDigest?: string;
  configDigest: string;
  platform: string;
  layers: ImageLayer[];
  /** Compressed size of all layers. */
  size: number;
  createdAt: string;
  /** Image config bits the workload needs later (entrypoint, cmd, env, workdir, user). */
  config: ImageRunConfig;
}

export interface ImageRunConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
}

/** One step of a pull, streamed to clients for progress bars. */
export interface PullProgress {
  reference: string;
  phase: 'resolving' | 'downloading' | 'unpacking' | 'building' | 'done';
  /** Layer digest for per-layer download progress. */
  layer?: string;
  current?: number;
  total?: number;
  message?: string;
}

/** A disk attached to a VM besides its root drive. */
export interface VmDisk {
  /** Stable name; the guest sees disks in order (vdb, vdc, ...). */
  name: string;
  path: string;
  format: 'raw' | 'qcow2';
  readOnly: boolean;
  /**
   * For a qcow2 overlay Hypercore made: the file it was made over (the image's block image). A VMM
   * that follows backing files only when told to may be told to for this file alone.
   */
  backing?: string;
}
