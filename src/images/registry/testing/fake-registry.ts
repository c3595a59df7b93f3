/**
 * Test helper: an in-memory read-only registry on a fake server, serving given manifests (by tag
 * and digest) and blobs, with hooks to demand auth or misbehave for particular requests.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { registryError, send, startFakeServer, type FakeServer } from './fake-server.js';
import type { Blob, TestImage } from './test-image.js';

/** Options of the fake registry. */
export interface FakeRegistryOptions {
  /** Repository served (others 404). */
  repository: string;
  /** Tag → manifest; every manifest is also served by digest. */
  tags: Record<string, Blob>;
  /** Extra blobs and manifests to serve (images' configs and layers are added by `imageContent`). */
  content: Blob[];
  /** Return a WWW-Authenticate value to answer 401, or undefined to let the request through. */
  challenge?: (req: IncomingMessage) => string | undefined;
  /** Handle a request first (return true when it answered), for corrupt/truncated/failing responses. */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
}

/** All blobs of images: manifests, configs and layers. */
export function imageContent(...images: TestImage[]): Blob[] {
  return images.flatMap((i) => [i.manifest, i.config, ...i.layers]);
}

/** Starts the fake registry. */
export async function startFakeRegistry(options: FakeRegistryOptions): Promise<FakeServer> {
  const byDigest = new Map(options.content.map((b) => [b.digest, b]));
  for (const b of Object.values(options.tags)) byDigest.set(b.digest, b);
  return startFakeServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const challenge = options.challenge?.(req);
    if (challenge !== undefined) return registryError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': challenge });
    if (options.intercept && (await options.intercept(req, res))) return;
    if (url.pathname === '/v2/') return send(res, 200, '{}', { 'docker-distribution-api-version': 'registry/2.0' });
    const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!match || match[1] !== options.repository) return registryError(res, 404, 'NAME_UNKNOWN', 'repository name not known to registry');
    const [, , kind, id] = match as unknown as [string, string, string, string];
    const found = kind === 'manifests' ? (options.tags[id] ?? byDigest.get(id)) : byDigest.get(id);
    if (!found) return registryError(res, 404, kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `${id} unknown`);
    const headers: Record<string, string> = { 'docker-content-digest': found.digest, 'content-type': kind === 'manifests' ? found.mediaType : 'application/octet-stream' };
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'content-length': String(found.bytes.length) });
      return void res.end();
    }
    return send(res, 200, found.bytes, headers);
  });
}
