import type { ImageLayer, ImageRunConfig } from '../core/image.js';

/** An image as a source describes it before its layers are fetched. */
export interface ImageDescription {
  /** Normalised reference text. */
  reference: string;
  manifestDigest: string;
  manifestBytes: Buffer;
  indexDigest?: string;
  indexBytes?: Buffer;
  configDigest: string;
  configBytes: Buffer;
  layers: ImageLayer[];
  platform: string;
  config: ImageRunConfig;
}

/** Where images come from: a registry, or a tar file being imported. */
export interface ImageSource {
  resolve(reference: string, platform: string): Promise<ImageDescription>;
  /** Writes the blob to `destPath` only after verifying its digest and size. */
  downloadBlob(reference: string, digest: string, destPath: string, options: { expectedSize: number; onProgress?: (bytes: number) => void }): Promise<void>;
}

/** Extracts what the workload needs from an OCI/Docker image config JSON. */
export function runConfigOf(configBytes: Buffer): ImageRunConfig {
  const parsed = JSON.parse(configBytes.toString('utf8')) as { config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string; User?: string } };
  const c = parsed.config ?? {};
  const out: ImageRunConfig = {};
  if (c.Entrypoint) out.entrypoint = c.Entrypoint;
  if (c.Cmd) out.cmd = c.Cmd;
  if (c.Env) out.env = c.Env;
  if (c.WorkingDir) out.workingDir = c.WorkingDir;
  if (c.User) out.user = c.User;
  return out;
}
