import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../core/errors.js';
import { formatReference, isInsecureByDefault, parseReference, registryApiHost } from './reference.js';

const hex = 'a'.repeat(64);

test('a bare name is a Docker Hub library image with tag latest', () => {
  const ref = parseReference('alpine');
  assert.deepEqual(ref, { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' });
  assert.equal(registryApiHost(ref.registry), 'registry-1.docker.io');
  assert.equal(formatReference(ref), 'docker.io/library/alpine:latest');
  assert.equal(formatReference(ref, { familiar: true }), 'alpine:latest');
});

test('user repositories, registries with ports, digests and tag+digest', () => {
  assert.deepEqual(parseReference('user/app:v1'), { registry: 'docker.io', repository: 'user/app', tag: 'v1' });
  assert.deepEqual(parseReference('127.0.0.1:5000/x/y:tag'), { registry: '127.0.0.1:5000', repository: 'x/y', tag: 'tag' });
  assert.deepEqual(parseReference('127.0.0.1:5000/x/y'), { registry: '127.0.0.1:5000', repository: 'x/y', tag: 'latest' });
  assert.deepEqual(parseReference(`host.example/x@sha256:${hex}`), { registry: 'host.example', repository: 'x', digest: `sha256:${hex}` });
  assert.deepEqual(parseReference(`x:tag@sha256:${hex}`), { registry: 'docker.io', repository: 'library/x', tag: 'tag', digest: `sha256:${hex}` });
  assert.deepEqual(parseReference('localhost/a'), { registry: 'localhost', repository: 'a', tag: 'latest' });
  assert.deepEqual(parseReference('[::1]:5000/a/b:c'), { registry: '[::1]:5000', repository: 'a/b', tag: 'c' });
  assert.deepEqual(parseReference('index.docker.io/library/busybox:1'), { registry: 'docker.io', repository: 'library/busybox', tag: '1' });
  assert.equal(formatReference(parseReference(`127.0.0.1:5000/x/y:t@sha256:${hex}`)), `127.0.0.1:5000/x/y:t@sha256:${hex}`);
});

test('invalid references get errors that say what is wrong', () => {
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['Alpine', /lowercase/],
    ['docker.io/User/app', /lowercase/],
    ['app@sha256:abc', /not a digest|64/],
    [`app@sha256:${'A'.repeat(64)}`, /lowercase hex/],
    [`app@md5:${'a'.repeat(32)}`, /unsupported digest algorithm/],
    ['app:-bad', /tag/],
    ['a b', /may only contain/],
    ['host:99999/x', /registry/],
    ['x//y', /empty path component/],
  ];
  for (const [text, pattern] of bad) {
    assert.throws(
      () => parseReference(text),
      (err: unknown) => err instanceof InvalidArgumentError && err.code === 'HC_INVALID_ARGUMENT' && pattern.test(err.message),
      `"${text}" should be rejected matching ${pattern}`,
    );
  }
});

test('plain HTTP only for loopback registries or listed insecure ones', () => {
  for (const host of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.5.6.7', '[::1]:5000', '::1']) assert.equal(isInsecureByDefault(host), true, host);
  for (const host of ['docker.io', 'ghcr.io', '10.0.0.1:5000', '128.0.0.1', 'localhost.example.com']) assert.equal(isInsecureByDefault(host), false, host);
  assert.equal(isInsecureByDefault('reg.lan:5000', ['reg.lan:5000']), true);
  assert.equal(isInsecureByDefault('reg.lan:5000', ['reg.lan']), true);
  assert.equal(isInsecureByDefault('reg.lan:5001', ['reg.lan:5000']), false);
});
