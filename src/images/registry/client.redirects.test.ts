/**
 * Redirects and size caps against real local HTTP servers: a fake registry on 127.0.0.1 sends blob
 * GETs to another local server (a different origin), to addresses the rules forbid, or round in
 * circles; blobs larger than the client's cap are refused. Only loopback addresses are contacted.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from './client.js';
import { send, startFakeServer, type FakeServer } from './testing/fake-server.js';
import { imageContent, startFakeRegistry } from './testing/fake-registry.js';
import { buildImage, digestOf, type Blob, type TestImage } from './testing/test-image.js';

let image: TestImage;
let work: string;
let storage: FakeServer;
const cleanup: Array<{ close(): Promise<void> }> = [];
const layer = (): Blob => image.layers[0] as Blob;
const isLayer = (req: IncomingMessage): boolean => req.method === 'GET' && req.url?.includes(`/blobs/${layer().digest}`) === true;

before(async () => {
  image = await buildImage({ architecture: 'amd64' });
  work = await mkdtemp(join(tmpdir(), 'hc-redirects-'));
  // Object storage on another loopback address: another origin, as S3 or a CDN would be.
  storage = await startFakeServer((_req, res) => send(res, 200, layer().bytes), '127.0.0.2');
  cleanup.push(storage);
});

after(async () => {
  for (const c of cleanup) await c.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function setup(intercept: (req: IncomingMessage, res: ServerResponse) => boolean, clientOptions: ConstructorParameters<typeof RegistryClient>[0] = {}) {
  const server = await startFakeRegistry({ repository: 'hc/app', tags: { v1: image.manifest }, content: imageContent(image), intercept });
  const client = new RegistryClient({ retries: 0, ...clientOptions });
  cleanup.push(server, client);
  const dir = await mkdtemp(join(work, 'case-'));
  return { server, client, dir, ref: `${server.host}/hc/app:v1` };
}

function redirect(res: ServerResponse, location: string, status = 307): true {
  res.writeHead(status, { location, 'content-length': '0' });
  res.end();
  return true;
}

async function refused(download: Promise<unknown>, dir: string, pattern: RegExp, code = 'HC_REGISTRY_UNAVAILABLE'): Promise<void> {
  await assert.rejects(download, (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
  assert.deepEqual(await readdir(dir), [], 'nothing is left behind');
}

test('a local registry may send a blob to a local store on another origin; the store gets no credentials', async () => {
  const before = storage.requests.length;
  const { client, dir, ref } = await setup((req, res) => isLayer(req) && redirect(res, `http://${storage.host}/bucket/${layer().digest}?sig=1`), {
    credentials: { get: async () => ({ username: 'u', password: 'p' }) },
  });
  await client.downloadBlob(ref, layer().digest, join(dir, 'layer'), { expectedSize: layer().bytes.length });
  assert.equal(digestOf(await readFile(join(dir, 'layer'))), layer().digest);
  assert.equal(storage.requests.length, before + 1);
  assert.equal(storage.requests.at(-1)?.headers.authorization, undefined);
});

test('a redirect to an unspecified or link-local address is refused without connecting', async () => {
  // 0.0.0.0 would reach this host's own services: that is exactly what must not be followed.
  const before = storage.requests.length;
  const port = storage.host.split(':')[1];
  const { client, dir, ref } = await setup((req, res) => isLayer(req) && redirect(res, `http://0.0.0.0:${port}/bucket/${layer().digest}`));
  await refused(client.downloadBlob(ref, layer().digest, join(dir, 'layer')), dir, /redirected to http:\/\/0\.0\.0\.0:\d+\/bucket\/.*, which is not followed: 0\.0\.0\.0 is a link-local, multicast or unspecified address/);
  assert.equal(storage.requests.length, before, 'the target was never contacted');
  const meta = await setup((req, res) => isLayer(req) && redirect(res, 'http://169.254.169.254/latest/meta-data/iam/'));
  await refused(meta.client.downloadBlob(meta.ref, layer().digest, join(meta.dir, 'layer')), meta.dir, /169\.254\.169\.254 is a link-local/);
});

test('redirects to other schemes and endless redirects are refused', async () => {
  const file = await setup((req, res) => isLayer(req) && redirect(res, 'file:///etc/passwd', 302));
  await refused(file.client.downloadBlob(file.ref, layer().digest, join(file.dir, 'layer')), file.dir, /only http and https are followed/);
  let hops = 0;
  const loop = await setup((req, res) => {
    if (!req.url?.includes('/blobs/')) return false;
    hops++;
    return redirect(res, `/v2/hc/app/blobs/${layer().digest}?hop=${hops}`);
  });
  await refused(loop.client.downloadBlob(loop.ref, layer().digest, join(loop.dir, 'layer')), loop.dir, /more than 5 redirects/);
  assert.equal(hops, 6, 'the first request and five redirects, no more');
});

test('a blob larger than the cap is refused: declared by the manifest, by Content-Length, or streamed without one', async () => {
  const cap = 1000;
  const big = Buffer.alloc(5000, 7);
  const digest = digestOf(big);
  let blobRequests = 0;
  const serve = (chunked: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.includes('/blobs/')) return false;
    blobRequests++;
    if (!chunked) return (send(res, 200, big), true);
    // No Content-Length: the body simply runs on past the cap.
    res.writeHead(200);
    res.write(big.subarray(0, 2500));
    res.end(big.subarray(2500));
    return true;
  };
  const declared = await setup(serve(false), { maxBlobBytes: cap });
  const tooLarge = 'HC_IMAGE_LIMIT_EXCEEDED';
  await refused(declared.client.downloadBlob(declared.ref, digest, join(declared.dir, 'b'), { expectedSize: big.length }), declared.dir, /blob sha256:[0-9a-f]{64} in .* is larger than the 1000 bytes allowed: its descriptor declares 5000 bytes/, tooLarge);
  assert.equal(blobRequests, 0, 'a declared size over the cap is refused before asking');
  await refused(declared.client.downloadBlob(declared.ref, digest, join(declared.dir, 'b')), declared.dir, /larger than the 1000 bytes allowed: the registry announces 5000 bytes/, tooLarge);
  const streamed = await setup(serve(true), { maxBlobBytes: cap });
  await refused(streamed.client.downloadBlob(streamed.ref, digest, join(streamed.dir, 'b')), streamed.dir, /larger than the 1000 bytes allowed: the registry sent more/, tooLarge);
});
