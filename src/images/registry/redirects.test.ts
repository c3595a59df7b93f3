// The redirect rules on their own: which targets a registry may send the client to. No traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressKind, checkRedirect, guardedLookup, MAX_REDIRECTS } from './redirects.js';

const publicRegistry = new URL('https://registry.example.com/v2/app/blobs/sha256:aa');
const localRegistry = new URL('http://127.0.0.1:5000/v2/app/blobs/sha256:aa');
const pub = { local: false };
const local = { local: true };

function refusedWith(from: URL, to: string, trust: { local: boolean }, pattern: RegExp, hops = 1): void {
  assert.throws(() => checkRedirect(from, new URL(to), trust, hops), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'HC_REGISTRY_UNAVAILABLE');
    assert.match(err.message, /^the registry at .* redirected to .*, which is not followed: /);
    assert.match(err.message, pattern);
    return true;
  });
}

test('a public registry may send blob GETs to object storage over https', () => {
  checkRedirect(publicRegistry, new URL('https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=x'), pub, 1);
  checkRedirect(publicRegistry, new URL('https://93.184.216.34/blob'), pub, MAX_REDIRECTS);
});

test('never a downgrade to http, never http from a public registry', () => {
  refusedWith(publicRegistry, 'http://cdn.example.com/blob', pub, /downgrade https to plain http/);
  refusedWith(publicRegistry, 'http://cdn.example.com/blob', local, /downgrade/);
  refusedWith(new URL('http://registry.example.com/v2/'), 'http://cdn.example.com/blob', pub, /plain http is followed only for loopback and insecure registries/);
});

test('a public registry may not point at loopback, private, link-local or metadata addresses', () => {
  refusedWith(publicRegistry, 'https://127.0.0.1:2375/containers', pub, /127\.0\.0\.1 is a loopback address and the registry is not a local one/);
  refusedWith(publicRegistry, 'https://localhost/x', pub, /localhost is a loopback address/);
  refusedWith(publicRegistry, 'https://[::1]/x', pub, /::1 is a loopback address/);
  refusedWith(publicRegistry, 'https://10.1.2.3/x', pub, /10\.1\.2\.3 is a private address/);
  refusedWith(publicRegistry, 'https://192.168.0.1/x', pub, /private/);
  refusedWith(publicRegistry, 'https://[::ffff:127.0.0.1]/x', pub, /loopback/);
  refusedWith(publicRegistry, 'https://169.254.169.254/latest/meta-data/', pub, /link-local, multicast or unspecified/);
  refusedWith(publicRegistry, 'https://0.0.0.0/x', pub, /link-local, multicast or unspecified/);
});

test('a local registry may use local stores, but not link-local ones', () => {
  checkRedirect(localRegistry, new URL('http://127.0.0.2:9000/bucket/blob'), local, 1);
  checkRedirect(localRegistry, new URL('http://10.0.0.5:9000/bucket/blob'), local, 1);
  refusedWith(localRegistry, 'http://169.254.169.254/latest/meta-data/', local, /169\.254\.169\.254 is a link-local/);
  refusedWith(localRegistry, 'http://[fe80::1]/x', local, /link-local/);
});

test('only http(s), no credentials in the URL, and a bounded number of hops', () => {
  refusedWith(localRegistry, 'file:///etc/passwd', local, /only http and https are followed/);
  refusedWith(localRegistry, 'ftp://127.0.0.1/x', local, /only http and https/);
  refusedWith(publicRegistry, 'https://user:pw@cdn.example.com/x', pub, /credentials in the URL/);
  refusedWith(publicRegistry, 'https://cdn.example.com/x', pub, new RegExp(`more than ${MAX_REDIRECTS} redirects`), MAX_REDIRECTS + 1);
});

test('addressKind', () => {
  assert.equal(addressKind('8.8.8.8'), 'public');
  assert.equal(addressKind('172.16.0.1'), 'private');
  assert.equal(addressKind('172.32.0.1'), 'public');
  assert.equal(addressKind('100.64.0.1'), 'private');
  assert.equal(addressKind('fd00::1'), 'private');
  assert.equal(addressKind('2001:db8::1'), 'public');
  assert.equal(addressKind('224.0.0.1'), 'forbidden');
});

test('the connect-time lookup refuses host names that resolve to addresses the rules forbid', async () => {
  const resolve = (trust: { local: boolean }) =>
    new Promise<string>((ok, fail) => guardedLookup(trust)('localhost', { family: 4 }, (err, address) => (err ? fail(err) : ok(address as string))));
  await assert.rejects(resolve(pub), (err: Error & { code?: string }) => err.code === 'EHCREDIRECT' && /redirect target localhost refused: 127\.0\.0\.1 is a loopback address/.test(err.message));
  assert.equal(await resolve(local), '127.0.0.1');
});
