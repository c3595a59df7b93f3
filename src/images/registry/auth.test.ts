import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthManager, parseWwwAuthenticate } from './auth.js';
import { RegistryAuthError } from './errors.js';

test('parses a Docker Hub bearer challenge', () => {
  const header = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"';
  assert.deepEqual(parseWwwAuthenticate(header), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
  ]);
});

test('parses several challenges, commas and escapes inside quotes, spaces and unquoted values', () => {
  const header = 'Basic realm="a, \\"quoted\\" realm" , Bearer  realm = "https://t/x", service=reg,error="insufficient_scope"';
  assert.deepEqual(parseWwwAuthenticate(header), [
    { scheme: 'basic', params: { realm: 'a, "quoted" realm' } },
    { scheme: 'bearer', params: { realm: 'https://t/x', service: 'reg', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Basic'), [{ scheme: 'basic', params: {} }]);
  assert.deepEqual(parseWwwAuthenticate(''), []);
  // Broken input must not hang or throw.
  assert.ok(Array.isArray(parseWwwAuthenticate('Bearer realm="unterminated')));
  assert.ok(Array.isArray(parseWwwAuthenticate('Negotiate abc==, Basic realm=x')));
});

test('bearer tokens are cached per scope until they expire, and a rejected one is replaced', async () => {
  let now = 1_000_000;
  const urls: string[] = [];
  const manager = new AuthManager(
    async (url) => {
      urls.push(url);
      return { status: 200, body: { access_token: `t${urls.length}`, expires_in: 100 }, detail: '' };
    },
    undefined,
    [],
    () => now,
  );
  const target = { registry: 'r.example', repository: 'a/b' };
  const challenge = 'Bearer realm="https://auth.example/token",service="svc"';
  assert.equal(await manager.authorization(target), undefined, 'nothing is known before the first 401');
  assert.equal(await manager.unauthorized(target, challenge, undefined), 'Bearer t1');
  assert.equal(await manager.authorization(target), 'Bearer t1', 'reused');
  assert.equal(await manager.authorization({ ...target, actions: 'pull,push' }), 'Bearer t2', 'another scope, another token');
  const first = new URL(urls[0] as string);
  assert.equal(first.searchParams.get('service'), 'svc');
  assert.deepEqual(first.searchParams.getAll('scope'), ['repository:a/b:pull']);
  now += 95_000; // past 90% of the lifetime
  assert.equal(await manager.authorization(target), 'Bearer t3', 'renewed after expiry');
  assert.equal(await manager.unauthorized(target, challenge, 'Bearer t3'), 'Bearer t4', 'a rejected token is not reused');
  assert.equal(urls.length, 4);
});

test('token service refusals and basic challenges without credentials are auth errors naming the repository', async () => {
  const refusing = new AuthManager(async () => ({ status: 401, body: undefined, detail: 'UNAUTHORIZED' }), undefined, []);
  await assert.rejects(refusing.unauthorized({ registry: 'r.example', repository: 'a/b' }, 'Bearer realm="https://auth.example/t"', undefined), (err: unknown) => {
    return err instanceof RegistryAuthError && err.code === 'HC_REGISTRY_AUTH' && /r\.example\/a\/b/.test(err.message) && /requires credentials/.test(err.message);
  });
  const basic = new AuthManager(async () => assert.fail('no token fetch for basic'), undefined, []);
  await assert.rejects(basic.unauthorized({ registry: 'r.example', repository: 'a/b' }, 'Basic realm="x"', undefined), /hypercore login r\.example/);
  const creds = { get: async () => ({ username: 'u', password: 'p' }) };
  const withCreds = new AuthManager(async () => assert.fail('must not send a password over http'), creds, []);
  await assert.rejects(withCreds.unauthorized({ registry: 'r.example', repository: 'a/b' }, 'Bearer realm="http://auth.example/t"', undefined), /non-HTTPS/);
  const basicOk = new AuthManager(async () => assert.fail('no token fetch'), creds, []);
  assert.equal(await basicOk.unauthorized({ registry: 'r.example' }, 'Basic realm="x"', undefined), `Basic ${Buffer.from('u:p').toString('base64')}`);
});
