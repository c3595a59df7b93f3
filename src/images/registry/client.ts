/**
 * The OCI distribution client (Docker registry HTTP API v2): resolve images, download and push
 * blobs and manifests, check logins. Transport details (auth, retries, http/https) live in
 * transport.ts; this class adds the public surface, download de-duplication and parallelism limits.
 */
import { normaliseAuthKey, type Credentials } from './credentials.js';
import { downloadBlob, fetchBlob, type BlobStream, type DownloadedBlob, type FetchBlobOptions } from './blobs.js';
import { Limiter } from './concurrency.js';
import { RegistryAuthError, RegistryNotFoundError, RegistryUnavailableError } from './errors.js';
import { errorDetail } from './http.js';
import { fetchManifest, resolveImage, type FetchedManifest, type PlatformSpec, type ResolvedImage } from './manifests.js';
import { parseReference, type ImageReference } from './reference.js';
import { pushBlob, pushManifest, type BlobSource, type PushedBlob } from './push.js';
import { SharedDownloads } from './shared-downloads.js';
import { RegistryTransport, type TransportOptions } from './transport.js';

/** Options of the client; see TransportOptions for auth, retries and timeouts. */
export interface RegistryClientOptions extends TransportOptions {
  /** Blob downloads running at once across all callers (default 3). */
  maxConcurrentDownloads?: number;
  /** Largest blob `downloadBlob` and `fetchBlob` accept, in bytes (default DEFAULT_MAX_BLOB_BYTES). */
  maxBlobBytes?: number;
}

/** 8 GiB: more than any real layer, and what the unpacker accepts for a whole image anyway. */
export const DEFAULT_MAX_BLOB_BYTES = 8 * 1024 * 1024 * 1024;

/** Options of `resolve`. */
export interface ResolveOptions {
  /** Platform to pick from a multi-platform image (default linux/amd64). */
  platform?: PlatformSpec;
  signal?: AbortSignal;
}

/** Options of `downloadBlob`. */
export interface DownloadOptions {
  /** Size from the descriptor: a different size is an error. */
  expectedSize?: number;
  /**
   * Called with the TOTAL bytes received so far (not a delta); it restarts from 0 if a
   * broken-off transfer is retried, so set your counter to the value rather than adding it.
   */
  onProgress?: (bytes: number) => void;
  /** Aborts the download; for a download shared with other callers, the first caller's signal governs it. */
  signal?: AbortSignal;
}

/** Result of `ping`. */
export interface PingResult {
  registry: string;
  /** `Docker-Distribution-Api-Version`, e.g. `registry/2.0`, when sent. */
  apiVersion?: string;
  /** True when the answer came to an authenticated request (credentials or token accepted). */
  authenticated: boolean;
  /** True when the registry demanded authentication (only ever false-with-success without `requireAuth`). */
  authRequired: boolean;
}

/** Options of `ping`. */
export interface PingOptions {
  /** Credentials to check instead of those of the credential source (for `login`). */
  credentials?: Credentials;
  /**
   * Throw RegistryAuthError when the registry demands authentication and it fails (what `login`
   * wants). Without it an auth failure is reported as `{ authRequired: true, authenticated: false }`.
   * A registry that serves /v2/ anonymously succeeds either way, as with `docker login`.
   */
  requireAuth?: boolean;
  signal?: AbortSignal;
}

/** The default platform: what a microVM on an x86-64 host runs. */
export const defaultPlatform: PlatformSpec = { os: 'linux', architecture: 'amd64' };

function toRef(ref: ImageReference | string): ImageReference {
  return typeof ref === 'string' ? parseReference(ref) : ref;
}

/** A registry client; reuse one per process (it pools connections and caches tokens), `close()` it at the end. */
export class RegistryClient {
  private readonly transport: RegistryTransport;
  private readonly limiter: Limiter;
  private readonly downloads = new SharedDownloads();
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxBlobBytes: number;

  constructor(options: RegistryClientOptions = {}) {
    this.maxBlobBytes = options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.transport = new RegistryTransport(options);
    this.limiter = new Limiter(options.maxConcurrentDownloads ?? 3);
    this.retries = options.retries ?? 3;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 250;
  }

  /**
   * Resolves a reference to one platform's manifest and config. Indexes / manifest lists are
   * narrowed to `platform` (error listing the available platforms if none matches). Every
   * document is verified against the digest in the reference, the index entry, or the registry's
   * Docker-Content-Digest; a mismatch throws DigestMismatchError.
   */
  async resolve(ref: ImageReference | string, options: ResolveOptions = {}): Promise<ResolvedImage> {
    return resolveImage(this.transport, toRef(ref), options.platform ?? defaultPlatform, options.signal);
  }

  /** Fetches one manifest or index as is (verified), by tag or digest (default: the reference's). */
  async getManifest(ref: ImageReference | string, tagOrDigest?: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const r = toRef(ref);
    return fetchManifest(this.transport, r, tagOrDigest ?? r.digest ?? r.tag ?? 'latest', signal);
  }

  /**
   * Streams a blob of the reference's repository. Iterate it to the end: the last step checks
   * size and digest and throws DigestMismatchError (or TransferInterruptedError when cut short).
   */
  async fetchBlob(ref: ImageReference | string, digest: string, options: FetchBlobOptions = {}): Promise<BlobStream> {
    return fetchBlob(this.transport, toRef(ref), digest, { maxBytes: this.maxBlobBytes, ...options });
  }

  /**
   * Downloads a blob to `destPath` atomically (temp file, verify, fsync, rename; nothing is left
   * on failure). Concurrent calls for the same digest share one transfer, whatever their paths
   * (each gets its own file, a hard link when possible); at most `maxConcurrentDownloads`
   * transfers run at once.
   */
  async downloadBlob(ref: ImageReference | string, digest: string, destPath: string, options: DownloadOptions = {}): Promise<DownloadedBlob> {
    const r = toRef(ref);
    const retry = { retries: this.retries, baseDelayMs: this.retryBaseDelayMs, maxDelayMs: 10_000 };
    return this.downloads.run(
      digest,
      destPath,
      (staging, report) =>
        this.limiter.run(() =>
          downloadBlob(this.transport, r, digest, staging, {
            retry,
            maxBytes: this.maxBlobBytes,
            onProgress: report,
            ...(options.expectedSize !== undefined ? { expectedSize: options.expectedSize } : {}),
            ...(options.signal ? { signal: options.signal } : {}),
          }),
        ),
      options.onProgress,
    );
  }

  /** Uploads a blob (bytes or a file) unless the repository has it already. */
  async pushBlob(ref: ImageReference | string, digest: string, source: BlobSource, signal?: AbortSignal): Promise<PushedBlob> {
    return pushBlob(this.transport, toRef(ref), digest, source, signal);
  }

  /** PUTs a manifest/index under the reference's tag (or digest); returns its digest. */
  async pushManifest(ref: ImageReference | string, mediaType: string, bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    return pushManifest(this.transport, toRef(ref), mediaType, bytes, signal);
  }

  /**
   * `GET /v2/`: checks that `registry` (`host[:port]` or `docker.io`) speaks the API and whether
   * the credentials (given, or from the credential source) are accepted; see PingOptions.
   */
  async ping(registryText: string, options: PingOptions = {}): Promise<PingResult> {
    // Accept what users type after `login`: `https://ghcr.io/`, `index.docker.io`, `host:port`.
    const registry = normaliseAuthKey(registryText);
    const authState = { authorized: false };
    let response;
    try {
      response = await this.transport.send({ registry, ...(options.credentials ? { credentials: options.credentials } : {}) }, '/v2/', {
        what: 'GET /v2/',
        authState,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (err) {
      if (err instanceof RegistryAuthError && !options.requireAuth) return { registry, authenticated: false, authRequired: true };
      throw err;
    }
    if (response.status === 404) throw new RegistryNotFoundError(`${registry} does not serve the registry API (GET /v2/ answered 404)`);
    if (response.status !== 200) throw new RegistryUnavailableError(`GET /v2/ on ${registry}: HTTP ${response.status} ${await errorDetail(response)}`, { status: response.status });
    await response.body?.cancel().catch(() => undefined);
    const apiVersion = response.headers.get('docker-distribution-api-version');
    const result: PingResult = { registry, authenticated: authState.authorized, authRequired: authState.authorized };
    if (apiVersion) result.apiVersion = apiVersion;
    return result;
  }

  /** Closes pooled connections. */
  async close(): Promise<void> {
    await this.transport.close();
  }
}
