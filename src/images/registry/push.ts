/**
 * Pushing blobs and manifests (distribution spec "push"): HEAD to skip blobs the registry has,
 * POST to open an upload, one monolithic PUT with `?digest=` to finish it.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { BodyInit } from 'undici';
import { assertDigest, digestLike, sha256Digest } from './digest.js';
import { DigestMismatchError, RegistryUnavailableError } from './errors.js';
import { errorDetail } from './http.js';
import type { ImageReference } from './reference.js';
import type { RegistryTransport } from './transport.js';

/** Blob content to push: bytes in memory, or a file streamed from disk. */
export type BlobSource = Uint8Array | { path: string };

/** Result of `pushBlob`. */
export interface PushedBlob {
  digest: string;
  size: number;
  /** True when the registry already had the blob and nothing was uploaded. */
  existed: boolean;
}

function target(ref: ImageReference) {
  return { registry: ref.registry, repository: ref.repository, actions: 'pull,push' };
}

async function failed(response: { status: number }, what: string, detailOf: Promise<string>): Promise<never> {
  const detail = await detailOf;
  throw new RegistryUnavailableError(`${what}: HTTP ${response.status}${detail ? ` (${detail})` : ''}`, { status: response.status });
}

/** Uploads a blob unless the repository already has it. The registry checks the digest on PUT. */
export async function pushBlob(transport: RegistryTransport, ref: ImageReference, digest: string, source: BlobSource, signal?: AbortSignal): Promise<PushedBlob> {
  assertDigest(digest);
  const where = `${ref.registry}/${ref.repository}`;
  const size = source instanceof Uint8Array ? source.byteLength : (await stat(source.path)).size;
  const extra = signal ? { signal } : {};
  const head = await transport.send(target(ref), `/v2/${ref.repository}/blobs/${digest}`, { method: 'HEAD', what: `HEAD blob ${digest} in ${where}`, ...extra });
  if (head.status === 200) return { digest, size, existed: true };
  if (head.status !== 404) return failed(head, `HEAD blob ${digest} in ${where}`, Promise.resolve(''));
  const post = await transport.send(target(ref), `/v2/${ref.repository}/blobs/uploads/`, { method: 'POST', what: `start upload to ${where}`, headers: { 'content-length': '0' }, ...extra });
  const location = post.headers.get('location');
  if (post.status !== 202 || !location) return failed(post, `start upload to ${where}${post.status === 202 ? ' (no Location header)' : ''}`, errorDetail(post));
  await post.body?.cancel().catch(() => undefined);
  // Location may be relative or absolute and may already carry query parameters (`_state=`).
  const url = new URL(location, transport.baseUrl(ref.registry));
  url.searchParams.set('digest', digest);
  const body = (): BodyInit => (source instanceof Uint8Array ? source : createReadStream(source.path));
  const put = await transport.send(target(ref), url.toString(), {
    method: 'PUT',
    what: `upload blob ${digest} to ${where}`,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body,
    ...extra,
  });
  if (put.status !== 201) {
    const detail = await errorDetail(put);
    // The registry hashes what it received: DIGEST_INVALID means our bytes are not that digest.
    if (put.status === 400 && detail.includes('DIGEST_INVALID')) throw new DigestMismatchError(`the registry rejected blob ${digest} for ${where} (${detail})`, digest, 'content with another digest');
    return failed(put, `upload blob ${digest} to ${where}`, Promise.resolve(detail));
  }
  await put.body?.cancel().catch(() => undefined);
  return { digest, size, existed: false };
}

/**
 * PUTs a manifest or index under the reference's tag (or digest) and returns its digest. A
 * reference with a digest must match the bytes; the registry's Docker-Content-Digest must too.
 */
export async function pushManifest(transport: RegistryTransport, ref: ImageReference, mediaType: string, bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
  const digest = ref.digest ? digestLike(ref.digest, bytes) : sha256Digest(bytes);
  if (ref.digest !== undefined) {
    assertDigest(ref.digest);
    if (digest !== ref.digest) throw new DigestMismatchError('the manifest to push does not match the reference digest', ref.digest, digest);
  }
  const where = `${ref.registry}/${ref.repository}:${ref.tag ?? digest}`;
  const response = await transport.send(target(ref), `/v2/${ref.repository}/manifests/${ref.tag ?? digest}`, {
    method: 'PUT',
    what: `push manifest ${where}`,
    headers: { 'content-type': mediaType },
    body: () => bytes,
    ...(signal ? { signal } : {}),
  });
  if (response.status !== 201) return failed(response, `push manifest ${where}`, errorDetail(response));
  await response.body?.cancel().catch(() => undefined);
  const claimed = response.headers.get('docker-content-digest');
  if (claimed && claimed !== digest && claimed.startsWith('sha256:') === digest.startsWith('sha256:')) {
    throw new DigestMismatchError(`the registry stored manifest ${where} under another digest`, digest, claimed);
  }
  return digest;
}
