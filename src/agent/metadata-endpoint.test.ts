/**
 * The guest's metadata endpoint and the store behind it: JSON of every key and raw single values,
 * only for the guest's own addresses, and values that survive an agent restart through the
 * root-only file (invalid metadata changing nothing).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { TtrpcError } from '../ttrpc/index.js';
import { startMetadataEndpoint, type MetadataEndpoint } from './metadata-endpoint.js';
import { MetadataStore } from './metadata-store.js';

let dir: string;
let store: MetadataStore;
let endpoint: MetadataEndpoint;
let base: string;
const logged: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hc-metaep-'));
  store = new MetadataStore(join(dir, 'run/hc/metadata.json'), (line) => logged.push(line));
  endpoint = await startMetadataEndpoint(store, { host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${endpoint.address().port}`;
});
after(async () => {
  await endpoint.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string, method: 'GET' | 'HEAD' | 'POST' = 'GET'): Promise<{ status: number; type: string; body: string }> {
  const res = await request(`${base}${path}`, { method });
  return { status: res.statusCode, type: String(res.headers['content-type']), body: await res.body.text() };
}

test('before any metadata: an empty object', async () => {
  assert.deepEqual(await get('/v1/metadata'), { status: 200, type: 'application/json', body: '{}\n' });
});

test('every key as JSON (secrets too: the guest may read them), one key raw, unknown keys 404', async () => {
  store.replace({ values: { region: 'eu-1', 'multi.line': 'a\nb\n' }, secrets: { api_key: 's3cr3t' } });
  const all = await get('/v1/metadata');
  assert.equal(all.status, 200);
  assert.deepEqual(JSON.parse(all.body), { api_key: 's3cr3t', 'multi.line': 'a\nb\n', region: 'eu-1' });
  assert.deepEqual(await get('/v1/metadata/'), all);
  assert.deepEqual(await get('/v1/metadata/region'), { status: 200, type: 'text/plain; charset=utf-8', body: 'eu-1' });
  assert.equal((await get('/v1/metadata/api_key')).body, 's3cr3t');
  assert.equal((await get('/v1/metadata/multi.line?x=1')).body, 'a\nb\n', 'exactly the value, no newline added or taken');
  assert.equal((await get('/v1/metadata/nope')).status, 404);
  assert.equal((await get('/v1/metadata/__proto__')).status, 404);
  assert.equal((await get('/v1/metadata/%E0%A4%A')).status, 400);
  assert.equal((await get('/other')).status, 404);
  assert.equal((await get('/v1/metadata', 'POST')).status, 405);
  assert.equal((await get('/v1/metadata/region', 'HEAD')).status, 200);
});

test('a new value is served at once', async () => {
  store.replace({ values: { region: 'eu-2' }, secrets: {} });
  assert.equal((await get('/v1/metadata/region')).body, 'eu-2');
  assert.equal((await get('/v1/metadata/api_key')).status, 404, 'replaced, not merged');
});

test('a connection from an address that is not the guest\'s own is closed before anything is read', async () => {
  const strict = await startMetadataEndpoint(store, { host: '127.0.0.1', port: 0, ownAddresses: () => new Set(['10.9.9.9']) });
  try {
    const received = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(strict.address().port, '127.0.0.1', () => sock.write('GET /v1/metadata HTTP/1.1\r\nHost: x\r\n\r\n'));
      let data = '';
      sock.on('data', (c: Buffer) => (data += c.toString()));
      sock.on('close', () => resolve(data));
      sock.on('error', () => resolve(data));
      setTimeout(() => reject(new Error('the connection stayed open')), 5000).unref();
    });
    assert.equal(received, '', 'not a byte of metadata');
  } finally {
    await strict.close();
  }
});

test('the store file: root-only, reloaded by a restarted agent, and never the cause of bad metadata', () => {
  const file = join(dir, 'run/hc/metadata.json');
  store.replace({ values: { a: '1' }, secrets: { s: 'two' } });
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const again = new MetadataStore(file);
  assert.deepEqual(again.all(), { a: '1', s: 'two' });

  const invalid = [
    [{ values: { 'bad key': 'x' }, secrets: {} }, /metadata key "bad key": must be/],
    [{ values: { k: 'x' }, secrets: { k: 'y' } }, /metadata key k is both a value and a secret/],
    [{ values: { k: 'x'.repeat(64 * 1024) }, secrets: {} }, /at most 65536/],
  ] as const;
  for (const [metadata, message] of invalid) assert.throws(() => store.replace(metadata), (err: unknown) => err instanceof TtrpcError && message.test(err.message));
  assert.deepEqual(store.all(), { a: '1', s: 'two' }, 'nothing changed');
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { values: { a: '1' }, secrets: { s: 'two' } });

  writeFileSync(file, '{"values": {"x": 1}, "secrets": {}}');
  const broken = new MetadataStore(file, (line) => logged.push(line));
  assert.deepEqual(broken.all(), {}, 'a file that is not valid metadata is ignored');
  assert.ok(logged.every((line) => !line.includes('two') && !line.includes('s3cr3t')), `logs name counts only: ${logged.join(' | ')}`);
});
