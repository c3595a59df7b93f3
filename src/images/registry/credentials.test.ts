import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore, defaultDockerConfigPath, normaliseAuthKey } from './credentials.js';

test('reads Docker config.json auth entries in all their spellings', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-creds-'));
  try {
    const path = join(dir, 'config.json');
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await writeFile(path, JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:pw:with:colons') },
        'ghcr.io': { username: 'gh', password: 'tok' },
        'https://quay.io/v2/': { auth: b64('q:qp') },
        'empty.example': {},
      },
      credsStore: 'desktop',
    }));
    const store = new CredentialStore({ path });
    assert.deepEqual(await store.get('docker.io'), { username: 'hub', password: 'pw:with:colons' });
    assert.deepEqual(await store.get('ghcr.io'), { username: 'gh', password: 'tok' });
    assert.deepEqual(await store.get('quay.io'), { username: 'q', password: 'qp' });
    assert.equal(await store.get('empty.example'), undefined);
    assert.equal(await store.get('other.example'), undefined);
    assert.equal(await new CredentialStore({ path: join(dir, 'missing.json') }).get('docker.io'), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('login/logout write the file atomically with mode 0600 and keep other keys', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-creds-'));
  try {
    const path = join(dir, 'sub', 'config.json');
    const store = new CredentialStore({ env: { DOCKER_CONFIG: join(dir, 'sub') } });
    assert.equal(store.path, path);
    await store.login('127.0.0.1:5000', 'user', 'pass');
    await store.login('https://index.docker.io/v1/', 'hub', 'hp');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const written = JSON.parse(await readFile(path, 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.deepEqual(Object.keys(written.auths).sort(), ['127.0.0.1:5000', 'https://index.docker.io/v1/']);
    assert.equal(Buffer.from(written.auths['127.0.0.1:5000']?.auth ?? '', 'base64').toString(), 'user:pass');
    // Keys written by Docker (credsStore, currentContext...) survive our edits.
    await writeFile(path, JSON.stringify({ ...written, credsStore: 'pass', currentContext: 'x' }));
    assert.equal(await store.logout('docker.io'), true);
    assert.equal(await store.logout('docker.io'), false);
    const after = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    assert.equal(after.credsStore, 'pass');
    assert.equal(after.currentContext, 'x');
    assert.deepEqual(await store.get('127.0.0.1:5000'), { username: 'user', password: 'pass' });
    assert.equal(await store.get('docker.io'), undefined);
    assert.deepEqual(await readdir(join(dir, 'sub')), ['config.json'], 'no temp files left');
    await assert.rejects(store.login('x', 'a:b', 'p'), /must not contain/);
    await writeFile(path, '{not json');
    await assert.rejects(store.get('x'), /not valid JSON/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('default path and key normalisation follow Docker', () => {
  assert.equal(defaultDockerConfigPath({ DOCKER_CONFIG: '/d' }), '/d/config.json');
  assert.match(defaultDockerConfigPath({}), /\.docker\/config\.json$/);
  assert.equal(normaliseAuthKey('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normaliseAuthKey('http://Reg.Example:5000/v2/'), 'reg.example:5000');
});
