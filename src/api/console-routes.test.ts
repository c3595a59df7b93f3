/**
 * The web console's server side on a real remote listener (loopback, plain TCP) in front of the real
 * API over a VmService with a fake provider: the page is public and holds nothing; login turns a
 * token into the session cookie and nothing else; the cookie works until its token is revoked; a
 * page of another site can neither upgrade to a WebSocket nor change state through the cookie; and
 * spawn from hac text reports line-numbered problems and creates nothing then.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { WebSocket } from 'ws';
import { FakeProvider } from '../core/testing/fake-provider.js';
import { fakeVmService, silentLogger as silent } from '../core/testing/fake-service.js';
import type { VmService } from '../core/vm-service.js';
import { openDatabase } from '../store/database.js';
import { SqliteTokenStore } from '../store/sqlite-token-store.js';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { hostPathsWithin } from './auth/host-paths.js';
import { ApiTokens } from './auth/tokens.js';
import { VmOperations } from './operations.js';
import { RemoteApi } from './remote-api.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-console-'));
const allowed = join(dir, 'allowed');
let service: VmService;
let tokens: ApiTokens;
let remote: RemoteApi;
let origin: string;
let host: string;
let closeDb: () => void;
/** Its own connection pool, closed at the end so no keep-alive socket holds the listener open. */
const agent = new Agent();

const page = Buffer.from('<!doctype html><title>console</title>');

before(async () => {
  mkdirSync(allowed);
  writeFileSync(join(allowed, 'root.ext4'), '');
  const db = openDatabase(join(dir, 'state.db'));
  service = fakeVmService(dir, new SqliteVmStore(db), new FakeProvider(), 'c');
  tokens = new ApiTokens(new SqliteTokenStore(db));
  remote = await RemoteApi.start({
    listen: [{ scheme: 'http', host: '127.0.0.1', port: 0 }],
    hostPaths: hostPathsWithin([allowed], '--allow-host-path', []),
    vms: new VmOperations({ service, hostCpus: 2, logger: silent }),
    tokens,
    log: silent,
    consoleAssets: new Map([
      ['index.html', { type: 'text/html; charset=utf-8', body: page }],
      ['console.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from('export {};') }],
    ]),
  });
  origin = remote.addresses[0]!;
  host = origin.slice('http://'.length);
  closeDb = () => db.close();
});

after(async () => {
  await agent.close();
  await remote.close();
  await service.detachAll();
  closeDb();
  rmSync(dir, { recursive: true, force: true });
});

async function call(method: 'GET' | 'POST' | 'DELETE', path: string, headers: Record<string, string> = {}, body?: unknown) {
  const res = await request(`${origin}${path}`, { method, dispatcher: agent, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: (text.startsWith('{') ? JSON.parse(text) : {}) as { error?: { code: string; message: string; details: { location?: string; message: string }[] } } & Record<string, unknown> };
}

async function login(token: string): Promise<string> {
  const r = await call('POST', '/console/login', { origin }, { token });
  assert.equal(r.status, 200, r.text);
  const set = String(r.headers['set-cookie']);
  return set.slice(0, set.indexOf(';'));
}

test('the page and its files are served without credentials, with a strict CSP; a request names a file of the list, never a path', async () => {
  const index = await call('GET', '/');
  assert.equal(index.status, 200);
  assert.equal(index.text, page.toString());
  assert.match(String(index.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  assert.equal((await call('GET', '/console/console.js')).status, 200);
  for (const path of ['/console/..%2F..%2Fstate.db', '/console/%2e%2e%2fstate.db', '/console/state.db', '/console/console.css']) {
    const r = await call('GET', path);
    assert.equal(r.status, 404, path);
    assert.equal(r.json.error?.code, 'HC_NOT_FOUND');
  }
  assert.equal((await call('GET', '/v1/vms')).status, 401, 'the API itself still needs credentials');
});

test('login: a bad token gets 401 and no cookie; a good one gets an HttpOnly, Secure, SameSite=Strict cookie that then authenticates', async () => {
  for (const token of ['hc_0123456789abcdef.wrong', '', 'x'.repeat(600)]) {
    const r = await call('POST', '/console/login', { origin }, { token });
    assert.ok(r.status === 401 || r.status === 400, `${r.status} ${r.text}`);
    assert.equal(r.headers['set-cookie'], undefined);
  }
  const secret = tokens.create({ scope: 'read' }).secret;
  const cookie = await login(secret);
  assert.match(cookie, /^hypercore_session=hc_/);
  const r = await call('POST', '/console/login', { origin }, { token: secret });
  assert.match(String(r.headers['set-cookie']), /; HttpOnly; Secure; SameSite=Strict;/);
  assert.equal((await call('GET', '/v1/vms', { cookie })).status, 200);
  const foreign = await call('POST', '/console/login', { origin: 'https://evil.example' }, { token: secret });
  assert.equal(foreign.status, 403, 'a page of another site cannot log the browser in');
  assert.equal(foreign.headers['set-cookie'], undefined);
});

test('a revoked token stops working in the cookie at once', async () => {
  const created = tokens.create({ scope: 'read' });
  const cookie = await login(created.secret);
  assert.equal((await call('GET', '/v1/vms', { cookie })).status, 200);
  tokens.revoke(created.token.id);
  const r = await call('GET', '/v1/vms', { cookie });
  assert.equal(r.status, 401);
  assert.match(r.json.error?.message ?? '', /was revoked/);
});

test('a page of another site cannot drive the daemon: foreign-Origin upgrades and cookie changes without our Origin are refused (403) and change nothing', async () => {
  const cookie = await login(tokens.create({ scope: 'write' }).secret);
  const hac = { hac: `[spacecore]\nname = "csrf"\n[hardware]\ndrive = "${join(allowed, 'root.ext4')}"\n[network]\nmode = "none"\n`, start: false };
  for (const headers of [{ cookie }, { cookie, origin: 'https://evil.example' }, { cookie, origin: 'http://localhost:1' }] as Record<string, string>[]) {
    const r = await call('POST', '/v1/vms/hac', headers, hac);
    assert.equal(r.status, 403, JSON.stringify(headers));
    assert.equal(r.json.error?.code, 'HC_PERMISSION_DENIED');
  }
  assert.deepEqual(service.list(), []);
  const upgrade = (headers: Record<string, string>, route = 'exec') =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://${host}/v1/vms/nope/${route}`, { headers });
      ws.on('unexpected-response', (req, res) => {
        // With this listener ws leaves the refused request open: end it, or it holds the listener.
        req.destroy();
        resolve(res.statusCode ?? 0);
      });
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('error', reject);
    });
  for (const route of ['exec', 'serial']) {
    assert.equal(await upgrade({ cookie, origin: 'https://evil.example' }, route), 403, route);
    assert.equal(await upgrade({ cookie }, route), 403, `a cookie upgrade of ${route} without Origin`);
    assert.equal(await upgrade({ cookie, origin }, route), 101, `the console itself may open ${route}`);
  }
  const reader = await login(tokens.create({ scope: 'read' }).secret);
  assert.equal(await upgrade({ cookie: reader, origin }, 'serial'), 403, 'typing into a serial console needs scope write');
});

test('spawn from hac text: problems come back line-numbered and nothing is created; good text creates the VM; host paths stay within the policy', async () => {
  const cookie = await login(tokens.create({ scope: 'write' }).secret);
  const headers = { cookie, origin };
  const bad = await call('POST', '/v1/vms/hac', headers, { hac: '[spacecore]\nname = "web"\n[hardware]\nmemory = "lots"\ncores = 99\n' });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error?.code, 'HC_CONFIG_INVALID');
  const locations = bad.json.error?.details.map((d) => d.location) ?? [];
  assert.ok(locations.some((l) => /^hac\.toml:4:\d+$/.test(l ?? '')) && locations.some((l) => /^hac\.toml:5:\d+$/.test(l ?? '')), JSON.stringify(bad.json));
  const outside = await call('POST', '/v1/vms/hac', headers, { hac: '[spacecore]\nname = "out"\n[hardware]\ndrive = "/etc/shadow"\n[network]\nmode = "none"\n', start: false });
  assert.equal(outside.status, 403, outside.text);
  assert.match(outside.json.error?.message ?? '', /\/etc\/shadow.*outside the directories remote callers may use/);
  assert.equal((await call('POST', '/v1/vms/hac', headers, { hac: 7 })).status, 400);
  assert.equal((await call('POST', '/v1/vms/hac', headers, { hac: 'x'.repeat(70_000) })).json.error?.code, 'HC_INVALID_ARGUMENT');
  assert.equal(service.list().length, 0);
  const good = await call('POST', '/v1/vms/hac', headers, { hac: `[spacecore]\nname = "web"\n[hardware]\ndrive = "${join(allowed, 'root.ext4')}"\n[network]\nmode = "none"\n`, start: false });
  assert.equal(good.status, 201, good.text);
  assert.equal(service.get('web').spec.drive, join(allowed, 'root.ext4'));
});
