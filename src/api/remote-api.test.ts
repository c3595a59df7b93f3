/**
 * The remote listener over real TLS on loopback, with certificates made by `tls init` (openssl),
 * in front of the real API over a VmService with a fake provider. Every refusal happens before a
 * handler runs and changes nothing: no VM record, no provider call, no token.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as connectTcp, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { after, before, beforeEach, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Agent, request } from 'undici';
import { WebSocket } from 'ws';
import { FakeProvider } from '../core/testing/fake-provider.js';
import { fakeVmService, silentLogger as silent } from '../core/testing/fake-service.js';
import type { VmService } from '../core/vm-service.js';
import { HypercoreMetrics } from '../metrics/hypercore-metrics.js';
import { openDatabase } from '../store/database.js';
import { SqliteTokenStore } from '../store/sqlite-token-store.js';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { loadServerIdentity, TLS_FILES } from '../tls/material.js';
import { initTlsDir, issueCertificate } from '../tls/pki.js';
import { hostPathsWithin } from './auth/host-paths.js';
import { ApiTokens } from './auth/tokens.js';
import { VmOperations } from './operations.js';
import { loadVmServiceDefinition } from './proto.js';
import { RemoteApi } from './remote-api.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-remote-'));
const tls = join(dir, 'tls');
const otherCa = join(dir, 'other-tls');
const expired = join(dir, 'expired');
const allowed = join(dir, 'allowed');
const outside = join(dir, 'outside');
let provider: FakeProvider;
let service: VmService;
let tokens: ApiTokens;
let remote: RemoteApi;
let https: string;
let plain: string;
const closers: (() => unknown)[] = [];

before(async () => {
  await initTlsDir(tls);
  await initTlsDir(otherCa);
  mkdirSync(expired);
  await issueCertificate({ caDir: tls, keyPath: join(expired, 'key.pem'), certPath: join(expired, 'cert.pem'), commonName: 'late', usage: 'client', days: -1 });
  for (const d of [allowed, outside]) mkdirSync(d);
  writeFileSync(join(allowed, 'root.ext4'), '');
  writeFileSync(join(outside, 'secret.ext4'), 'not for remote callers');
  symlinkSync(join(outside, 'secret.ext4'), join(allowed, 'escape.ext4'));

  const db = openDatabase(join(dir, 'state.db'));
  const store = new SqliteVmStore(db);
  provider = new FakeProvider();
  service = fakeVmService(dir, store, provider, 'b');
  tokens = new ApiTokens(new SqliteTokenStore(db));
  const metrics = new HypercoreMetrics({ vms: () => service.list(), providers: ['qemu'], vmmUsage: async () => undefined });
  remote = await RemoteApi.start({
    listen: [{ scheme: 'https', host: '127.0.0.1', port: 0 }, { scheme: 'http', host: '127.0.0.1', port: 0 }],
    identity: loadServerIdentity(tls),
    hostPaths: hostPathsWithin([allowed], '--allow-host-path', ['br-lab']),
    vms: new VmOperations({ service, hostCpus: 2, logger: silent }),
    tokens,
    metrics,
    log: silent,
  });
  [https, plain] = remote.addresses as [string, string];
  closers.push(() => service.detachAll(), () => db.close());
});

after(async () => {
  await remote.close();
  for (const close of closers.reverse()) await close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  provider.calls.length = 0;
});

interface Client {
  ca?: string;
  cert?: string;
  token?: string;
}

function pem(d: string, name: string): Buffer {
  return readFileSync(join(d, name));
}

async function call(method: 'GET' | 'POST' | 'DELETE', path: string, client: Client, body?: unknown, origin = https): Promise<{ status: number; json: { error?: { code: string; message: string } } & Record<string, unknown> }> {
  const connect = origin.startsWith('https') ? { ca: pem(client.ca ?? tls, TLS_FILES.ca), ...(client.cert ? { cert: pem(client.cert, TLS_FILES.clientCert), key: pem(client.cert, TLS_FILES.clientKey) } : {}) } : {};
  const agent = new Agent({ connect });
  try {
    const res = await request(`${origin}${path}`, {
      method,
      dispatcher: agent,
      headers: { ...(client.token ? { authorization: `Bearer ${client.token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    return { status: res.statusCode, json: (String(res.headers['content-type']).includes('json') ? JSON.parse(text) : {}) as never };
  } finally {
    await agent.close();
  }
}

function grpcCall(method: string, req: object, client: Client): Promise<{ err?: grpc.ServiceError; res?: unknown }> {
  const Client = loadVmServiceDefinition();
  const credentials = grpc.credentials.createSsl(pem(tls, TLS_FILES.ca), client.cert ? pem(client.cert, TLS_FILES.clientKey) : null, client.cert ? pem(client.cert, TLS_FILES.clientCert) : null);
  const c = new Client(https.replace('https://', ''), credentials);
  const metadata = new grpc.Metadata();
  if (client.token) metadata.set('authorization', `Bearer ${client.token}`);
  return new Promise((resolve) => {
    (c as unknown as Record<string, (r: object, m: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>)[method]!.call(c, req, metadata, (err, res) => {
      c.close();
      resolve(err ? { err } : { res });
    });
  });
}

const spec = (name: string, drive = join(allowed, 'root.ext4')) => ({ spec: { name, drive } });

/** Nothing of a refused call may remain: no VM, no provider call. */
function assertUnchanged(vmsBefore: number): void {
  assert.equal(service.list().length, vmsBefore, 'no VM was created or removed');
  assert.deepEqual(provider.calls, [], 'the provider was not called');
}

test('a client certificate of the daemon CA may do anything, over HTTP and gRPC', async () => {
  const created = await call('POST', '/v1/vms', { cert: tls }, spec('by-cert'));
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal((await call('GET', '/v1/vms', { cert: tls })).status, 200);
  const listed = await grpcCall('ListVms', {}, { cert: tls });
  assert.ok(!listed.err, String(listed.err));
  assert.deepEqual((listed.res as { vms: { name: string }[] }).vms.map((v) => v.name), ['by-cert']);
  assert.equal((await call('DELETE', '/v1/vms/by-cert?force=true', { cert: tls })).status, 200);
});

test('no credentials: 401 on both transports, for known and unknown routes and the exec WebSocket', async () => {
  const before = service.list().length;
  for (const [method, path] of [['GET', '/v1/vms'], ['POST', '/v1/vms'], ['GET', '/no/such/route'], ['GET', '/metrics']] as const) {
    const r = await call(method, path, {}, method === 'POST' ? spec('nocreds') : undefined);
    assert.equal(r.status, 401, `${method} ${path}`);
    assert.equal(r.json.error?.code, 'HC_UNAUTHENTICATED');
    assert.match(r.json.error?.message ?? '', /no credentials: present a client certificate/);
  }
  const g = await grpcCall('CreateVm', spec('nocreds'), {});
  assert.equal(g.err?.code, grpc.status.UNAUTHENTICATED);
  assert.deepEqual(g.err?.metadata.get('hc-error-code'), ['HC_UNAUTHENTICATED']);
  const ws = new WebSocket(`${https.replace('https', 'wss')}/v1/vms/x/exec`, { ca: pem(tls, TLS_FILES.ca) });
  const status = await new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => resolve(-1));
  });
  ws.terminate();
  assert.equal(status, 401, 'the upgrade is refused before the WebSocket handler');
  assertUnchanged(before);
});

test('a client certificate signed by another CA is refused (401 naming it), even with a valid token', async () => {
  const { secret } = tokens.create({ scope: 'admin' });
  const before = service.list().length;
  const r = await call('POST', '/v1/vms', { cert: otherCa, token: secret }, spec('wrong-ca'));
  assert.equal(r.status, 401);
  assert.match(r.json.error?.message ?? '', /client certificate "hypercore-client" refused: .*(UNABLE_TO_VERIFY|unable to verify|signature)/i);
  const g = await grpcCall('CreateVm', spec('wrong-ca'), { cert: otherCa });
  assert.equal(g.err?.code, grpc.status.UNAUTHENTICATED);
  assert.match(g.err?.details ?? '', /client certificate "hypercore-client" refused/);
  assertUnchanged(before);
});

test('an expired client certificate of the right CA is refused (401: CERT_HAS_EXPIRED)', async () => {
  const before = service.list().length;
  const r = await call('POST', '/v1/vms', { cert: expired }, spec('late'));
  assert.equal(r.status, 401);
  assert.match(r.json.error?.message ?? '', /client certificate "late" refused: CERT_HAS_EXPIRED/);
  const g = await grpcCall('ListVms', {}, { cert: expired });
  assert.equal(g.err?.code, grpc.status.UNAUTHENTICATED);
  assertUnchanged(before);
});

test('a revoked token is refused from its next call on', async () => {
  const { token, secret } = tokens.create({ scope: 'write', name: 'soon gone' });
  assert.equal((await call('GET', '/v1/vms', { token: secret })).status, 200);
  tokens.revoke(token.id);
  const before = service.list().length;
  const r = await call('POST', '/v1/vms', { token: secret }, spec('revoked'));
  assert.equal(r.status, 401);
  assert.match(r.json.error?.message ?? '', new RegExp(`token ${token.id} was revoked`));
  assert.equal((await grpcCall('CreateVm', spec('revoked'), { token: secret })).err?.code, grpc.status.UNAUTHENTICATED);
  assertUnchanged(before);
});

test('a token with a wrong secret is refused without telling whether the id exists', async () => {
  const { token } = tokens.create({ scope: 'admin' });
  const forged = `hc_${token.id}.${'A'.repeat(43)}`;
  const unknown = `hc_${'0'.repeat(16)}.${'A'.repeat(43)}`;
  const a = await call('GET', '/v1/vms', { token: forged });
  const b = await call('GET', '/v1/vms', { token: unknown });
  assert.equal(a.status, 401);
  assert.equal(b.status, 401);
  assert.equal(a.json.error?.message.replace(token.id, 'ID'), b.json.error?.message.replace('0'.repeat(16), 'ID'));
});

test('a read token may read but not write (403 before the handler), nor manage tokens', async () => {
  const { secret } = tokens.create({ scope: 'read' });
  assert.equal((await call('GET', '/v1/vms', { token: secret })).status, 200);
  assert.equal((await call('GET', '/metrics', { token: secret })).status, 200);
  const before = service.list().length;
  const tokensBefore = tokens.list().length;
  const r = await call('POST', '/v1/vms', { token: secret }, spec('reader'));
  assert.equal(r.status, 403);
  assert.equal(r.json.error?.code, 'HC_PERMISSION_DENIED');
  assert.match(r.json.error?.message ?? '', /POST \/v1\/vms needs scope write; token [0-9a-f]{16} has scope read/);
  assert.equal((await call('POST', '/v1/tokens', { token: secret }, { scope: 'admin' })).status, 403);
  const g = await grpcCall('CreateVm', spec('reader'), { token: secret });
  assert.equal(g.err?.code, grpc.status.PERMISSION_DENIED);
  assert.equal((await grpcCall('DeleteVm', { id: 'x' }, { token: secret })).err?.code, grpc.status.PERMISSION_DENIED);
  assertUnchanged(before);
  assert.equal(tokens.list().length, tokensBefore, 'no token was made');
});

test('a write token may create VMs from files under the allowed directories, and no others', async () => {
  const { secret } = tokens.create({ scope: 'write' });
  const before = service.list().length;
  for (const [name, drive, why] of [
    ['etc', '/etc/shadow', /spec\.drive = "\/etc\/shadow": is outside the directories remote callers may use/],
    ['dots', join(allowed, '..', 'outside', 'secret.ext4'), /is outside the directories/],
    ['link', join(allowed, 'escape.ext4'), /leads outside the directories remote callers may use through a symbolic link/],
    ['missing-outside', '/nonexistent/disk.ext4', /is outside the directories/],
  ] as const) {
    const r = await call('POST', '/v1/vms', { token: secret }, spec(name, drive));
    assert.equal(r.status, 403, name);
    assert.equal(r.json.error?.code, 'HC_PERMISSION_DENIED');
    assert.match(r.json.error?.message ?? '', why);
  }
  const binary = await call('POST', '/v1/vms', { token: secret }, { spec: { name: 'bin', drive: join(allowed, 'root.ext4'), hypervisor: { qemu: { binary: 'sh' } } } });
  assert.equal(binary.status, 403);
  assert.match(binary.json.error?.message ?? '', /hypervisor\.qemu\.binary = "sh": a remote caller must name the program by its absolute path/);
  const g = await grpcCall('CreateVm', spec('grpc-etc', '/etc/passwd'), { token: secret });
  assert.equal(g.err?.code, grpc.status.PERMISSION_DENIED);
  assertUnchanged(before);
  const ok = await call('POST', '/v1/vms', { token: secret }, spec('inside'));
  assert.equal(ok.status, 201, JSON.stringify(ok.json));
  assert.equal(service.get('inside').spec.drive, join(allowed, 'root.ext4'));
  await call('DELETE', '/v1/vms/inside?force=true', { token: secret });
});

test('a remote VM joins only the host bridges the daemon allows (a bridge puts it on a host network with no Hypercore firewall)', async () => {
  const { secret } = tokens.create({ scope: 'write' });
  const before = service.list().length;
  const bridged = (name: string, bridge: string) => ({ spec: { name, drive: join(allowed, 'root.ext4'), network: { mode: 'bridge', bridge, ip: '192.168.7.20', subnet: '192.168.7.0/24', gateway: '192.168.7.1' } } });
  const refused = await call('POST', '/v1/vms', { token: secret }, bridged('office', 'br-office'));
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error?.code, 'HC_PERMISSION_DENIED');
  assert.match(refused.json.error?.message ?? '', /^host bridge refused: spec\.network\.bridge = "br-office": is a host bridge remote callers may not join \(allowed: br-lab\)/);
  assert.equal((await grpcCall('CreateVm', bridged('office-grpc', 'br-office'), { token: secret })).err?.code, grpc.status.PERMISSION_DENIED);
  assertUnchanged(before);
  // An allowed bridge passes the admission and reaches the service (this test's service has no
  // network support, so it stops there with its own error).
  const allowedBridge = await call('POST', '/v1/vms', { token: secret }, bridged('lab', 'br-lab'));
  assert.equal(allowedBridge.json.error?.code, 'HC_PROVIDER_UNAVAILABLE', JSON.stringify(allowedBridge.json));
  assert.match(allowedBridge.json.error?.message ?? '', /no network support/);
});

test('plain TCP to the TLS port gets no HTTP answer', async () => {
  const port = Number(https.split(':').at(-1));
  const reply = await new Promise<string>((resolve) => {
    const socket = connectTcp(port, '127.0.0.1', () => socket.write('GET /v1/vms HTTP/1.1\r\nHost: x\r\n\r\n'));
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
    socket.on('close', () => resolve(got));
    socket.on('error', () => resolve(got));
  });
  assert.doesNotMatch(reply, /HTTP\/1\.1 200/);
  assert.doesNotMatch(reply, /"vms"/);
});

test('ALPN: a client offering h2 and http/1.1 (curl, Prometheus) gets HTTP/1.1; an h2-only client (gRPC) gets h2', async () => {
  const port = Number(https.split(':').at(-1));
  const negotiate = (protocols: string[]) =>
    new Promise<string | false | null>((resolve, reject) => {
      const socket = connectTls({ host: '127.0.0.1', port, ca: pem(tls, TLS_FILES.ca), ALPNProtocols: protocols }, () => {
        resolve(socket.alpnProtocol);
        socket.destroy();
      });
      socket.on('error', reject);
    });
  assert.equal(await negotiate(['h2', 'http/1.1']), 'http/1.1');
  assert.equal(await negotiate(['h2']), 'h2');
});

test('the loopback plain-TCP listener (--insecure-loopback) takes tokens, and nothing without one', async () => {
  const { secret } = tokens.create({ scope: 'read' });
  assert.equal((await call('GET', '/v1/vms', {}, undefined, plain)).status, 401);
  assert.equal((await call('GET', '/v1/vms', { token: secret }, undefined, plain)).status, 200);
});

test('a port in use is refused naming the address, and the listeners already opened are closed again', async () => {
  const free = await new Promise<number>((resolve) => {
    const s = createTcpServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
  const taken = Number(https.split(':').at(-1));
  const start = RemoteApi.start({
    listen: [{ scheme: 'http', host: '127.0.0.1', port: free }, { scheme: 'https', host: '127.0.0.1', port: taken }],
    identity: loadServerIdentity(tls),
    hostPaths: hostPathsWithin([], '--allow-host-path'),
    vms: new VmOperations({ service, hostCpus: 2, logger: silent }),
    tokens,
    log: silent,
  });
  await assert.rejects(start, new RegExp(`--listen https://127\\.0\\.0\\.1:${taken}: cannot listen there: the port is in use`));
  const reused = await new Promise<boolean>((resolve) => {
    const s = createTcpServer().once('error', () => resolve(false)).listen(free, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  assert.equal(reused, true, 'the first listener was closed');
});

test('remote requests are counted by listener, route template and status', async () => {
  const { secret } = tokens.create({ scope: 'read' });
  await call('GET', '/v1/vms/some-id-that-is-not-a-label', { token: secret });
  const text = await (await request(`${plain}/metrics`, { headers: { authorization: `Bearer ${secret}` } })).body.text();
  assert.match(text, /hypercore_api_requests_total\{transport="http",listener="remote",route="GET \/v1\/vms\/:id",code="404"\} 1/);
  assert.match(text, /hypercore_api_requests_total\{transport="http",listener="remote",route="POST \/v1\/vms",code="403"\}/);
  assert.match(text, /hypercore_api_requests_total\{transport="grpc",listener="remote",route="\/hypercore\.v1\.VmService\/CreateVm",code="UNAUTHENTICATED"\}/);
  assert.doesNotMatch(text, /some-id-that-is-not-a-label/, 'raw URLs never become labels');
});
