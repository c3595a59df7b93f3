/**
 * The daemon's metadata listeners for NAT bridges: each guest is told by its source address and
 * gets its own VM's metadata; an address that is no VM's gets a closed connection; a guest's
 * connections and request rate are bounded. (The NAT rules that route 169.254.169.254:80 here are
 * tested with real packets in network/forwarding.test.ts, the whole path in a real guest by the
 * metadata e2e.)
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Agent, request } from 'undici';
import { HostMetadataEndpoints, type MetadataResolver } from './host-endpoints.js';
import { metadataSource, type MetadataSource } from './http-answer.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, child: () => quiet };
const SUBNET = '10.88.0.0/16';
let endpoints: HostMetadataEndpoints | undefined;
afterEach(async () => endpoints?.closeAll());

/** Guests by address (the test's client is 127.0.0.1). */
function resolverOf(guests: Map<string, MetadataSource>, seen: string[] = []): MetadataResolver {
  return (subnet, address) => {
    seen.push(`${subnet} ${address}`);
    return guests.get(address);
  };
}

async function start(resolve: MetadataResolver, extra: { requestsPerSecond?: number; burst?: number; now?: () => number } = {}): Promise<string> {
  endpoints = new HostMetadataEndpoints({ resolve, logger: quiet, ...extra });
  const port = await endpoints.ensure({ bridge: 'hcbrtest', subnet: SUBNET, gateway: '127.0.0.1' });
  return `http://127.0.0.1:${port}`;
}

/** Whether a raw connection is closed by the server before it answers anything. */
function closedUnanswered(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /v1/metadata HTTP/1.1\r\nhost: x\r\n\r\n'));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got === ''));
    s.on('error', () => undefined);
    s.setTimeout(3000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

test('a guest gets its own VM\'s metadata, looked up by the bridge\'s subnet and its source address', async () => {
  const seen: string[] = [];
  const base = await start(resolverOf(new Map([['127.0.0.1', metadataSource({ values: { region: 'eu-1' }, secrets: { token: 's3' } })]]), seen));
  const all = await request(`${base}/v1/metadata`);
  assert.equal(all.statusCode, 200);
  assert.deepEqual(await all.body.json(), { region: 'eu-1', token: 's3' });
  const one = await request(`${base}/v1/metadata/token`);
  assert.equal(await one.body.text(), 's3');
  const missing = await request(`${base}/v1/metadata/nope`);
  assert.equal(missing.statusCode, 404);
  await missing.body.text();
  const post = await request(`${base}/v1/metadata`, { method: 'POST', body: 'x' });
  assert.equal(post.statusCode, 405);
  await post.body.text();
  assert.ok(seen.length > 0 && seen.every((s) => s === `${SUBNET} 127.0.0.1`), seen.join(', '));
});

test('an address that is no VM\'s on the bridge: the connection is closed before anything is read or answered', async () => {
  const base = await start(resolverOf(new Map()));
  assert.equal(await closedUnanswered(Number(new URL(base).port)), true);
});

test('a VM gone while its connection stays open gets nothing more on it', async () => {
  const guests = new Map([['127.0.0.1', metadataSource({ values: { a: '1' }, secrets: {} })]]);
  const base = await start(resolverOf(guests));
  const agent = new Agent({ connections: 1, pipelining: 1 });
  try {
    const first = await request(`${base}/v1/metadata/a`, { dispatcher: agent });
    assert.equal(await first.body.text(), '1');
    guests.clear();
    await assert.rejects(async () => (await request(`${base}/v1/metadata/a`, { dispatcher: agent })).body.text());
  } finally {
    await agent.close();
  }
});

test('a guest may hold 8 connections at once; the 9th is closed', async () => {
  const base = await start(resolverOf(new Map([['127.0.0.1', metadataSource({ values: {}, secrets: {} })]])));
  const port = Number(new URL(base).port);
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const s = net.connect(port, '127.0.0.1');
      await new Promise((resolve) => s.once('connect', resolve));
      held.push(s);
    }
    // Give the server time to count them.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await closedUnanswered(port), true);
    held.pop()!.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await closedUnanswered(port), false, 'a slot freed is usable again');
  } finally {
    for (const s of held) s.destroy();
  }
});

test('a guest over its request rate gets 429 until its budget refills', async () => {
  let now = 0;
  const base = await start(resolverOf(new Map([['127.0.0.1', metadataSource({ values: { a: '1' }, secrets: {} })]])), { requestsPerSecond: 2, burst: 3, now: () => now });
  const status = async (): Promise<number> => {
    const res = await request(`${base}/v1/metadata/a`);
    await res.body.text();
    return res.statusCode;
  };
  assert.deepEqual([await status(), await status(), await status(), await status()], [200, 200, 200, 429]);
  now += 500;
  assert.deepEqual([await status(), await status()], [200, 429]);
});

test('ensure is idempotent per bridge, and close frees the bridge\'s port', async () => {
  endpoints = new HostMetadataEndpoints({ resolve: () => undefined, logger: quiet });
  const port = await endpoints.ensure({ bridge: 'hcbra', subnet: SUBNET, gateway: '127.0.0.1' });
  assert.equal(await endpoints.ensure({ bridge: 'hcbra', subnet: SUBNET, gateway: '127.0.0.1' }), port);
  assert.equal(endpoints.port('hcbra'), port);
  await endpoints.close('hcbra');
  assert.equal(endpoints.port('hcbra'), undefined);
  await assert.rejects(new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(undefined);
    });
    s.on('error', reject);
  }), /ECONNREFUSED/);
});
