/** tls init: Docker's five files (and the CA key), keys 0600, a chain that verifies, SANs as asked, nothing clobbered. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadClientIdentity, loadServerIdentity } from './material.js';
import { initTlsDir } from './pki.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-pki-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('tls init writes a CA, a server and a client certificate that chain to it', async () => {
  const tls = join(dir, 'a');
  await initTlsDir(tls, { sans: ['10.0.0.7', 'hc.example'] });
  for (const name of ['ca-key.pem', 'server-key.pem', 'key.pem']) assert.equal(statSync(join(tls, name)).mode & 0o777, 0o600, name);
  assert.equal(statSync(tls).mode & 0o777, 0o700);
  const ca = new X509Certificate(readFileSync(join(tls, 'ca.pem')));
  const server = new X509Certificate(readFileSync(join(tls, 'server-cert.pem')));
  const client = new X509Certificate(readFileSync(join(tls, 'cert.pem')));
  assert.ok(ca.ca && server.verify(ca.publicKey) && client.verify(ca.publicKey) && server.checkIssued(ca));
  assert.equal(server.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.7, DNS:hc.example');
  assert.match(server.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.1/, 'serverAuth');
  assert.match(client.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.2/, 'clientAuth');
  assert.ok(loadServerIdentity(tls).cert.length > 0);
  assert.ok(loadClientIdentity(tls, '--tls-dir').cert);
});

test('tls init refuses to replace files, and a bad --san writes nothing', async () => {
  const tls = join(dir, 'b');
  await initTlsDir(tls);
  const before = readFileSync(join(tls, 'ca.pem'));
  await assert.rejects(initTlsDir(tls), /ca-key\.pem, .*ca\.pem, .* already exist; use --force/);
  assert.deepEqual(readFileSync(join(tls, 'ca.pem')), before);
  await initTlsDir(tls, { force: true });
  assert.notDeepEqual(readFileSync(join(tls, 'ca.pem')), before);
  await assert.rejects(initTlsDir(join(dir, 'c'), { sans: ['x,IP:1.2.3.4'] }), /--san "x,IP:1\.2\.3\.4": must be an IP address or a DNS name/);
  assert.equal(existsSync(join(dir, 'c', 'ca.pem')), false);
});

test('the daemon refuses a key others may read, a missing file, or a certificate of another key, naming the file', async () => {
  const tls = join(dir, 'd');
  await initTlsDir(tls);
  chmodSync(join(tls, 'server-key.pem'), 0o644);
  assert.throws(() => loadServerIdentity(tls), /server-key\.pem has mode 0644, so other users may read the private key; chmod 600 it/);
  chmodSync(join(tls, 'server-key.pem'), 0o600);
  writeFileSync(join(tls, 'server-cert.pem'), readFileSync(join(tls, 'cert.pem')));
  assert.throws(() => loadServerIdentity(tls), /server-cert\.pem does not belong to the key/);
  rmSync(join(tls, 'ca.pem'));
  assert.throws(() => loadServerIdentity(tls, 'remote.tls_dir'), /remote\.tls_dir: .*ca\.pem is missing .*hypercore tls init/);
});
