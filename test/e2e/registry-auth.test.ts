/**
 * Registry logins against real parts: a real docker-registry behind htpasswd basic auth, the real
 * CLI's `login` / `logout` writing Docker's config.json (in a temp $DOCKER_CONFIG), and a real
 * hypercored that reads those credentials for each pull.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../../src/images/registry/client.js';
import { parseReference } from '../../src/images/registry/reference.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { buildImage, buildLayer, type BuiltImage } from '../../src/images/testing/oci-builder.js';
import { lastLine, TestDaemon, type CliResult } from './harness.js';

const USERNAME = 'hc';
const PASSWORD = 's3cret';

let daemon: TestDaemon | undefined;
let registry: RegistryProcess | undefined;
let client: RegistryClient | undefined;
let image: BuiltImage;
let dockerConfigDir: string | undefined;
const savedDockerConfig = process.env.DOCKER_CONFIG;

function host(): string {
  assert.ok(registry, 'the registry is running');
  return registry.host;
}

function configPath(): string {
  assert.ok(dockerConfigDir);
  return join(dockerConfigDir, 'config.json');
}

/** The `auths` object of config.json, or undefined when the file does not exist. */
function storedAuths(): Record<string, unknown> | undefined {
  if (!existsSync(configPath())) return undefined;
  const parsed = JSON.parse(readFileSync(configPath(), 'utf8')) as { auths?: Record<string, unknown> };
  return parsed.auths ?? {};
}

function cli(args: string[], input?: string): CliResult {
  assert.ok(daemon, 'the daemon is running');
  return daemon.cli(args, input);
}

function output(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\ndaemon log:\n${daemon?.log() ?? ''}`;
}

async function push(repo: string, tag: string, built: BuiltImage): Promise<void> {
  assert.ok(client);
  const ref = parseReference(`${host()}/${repo}:${tag}`);
  for (const b of [...built.layers, built.config]) await client.pushBlob(ref, b.digest, b.bytes);
  await client.pushManifest(ref, built.manifest.mediaType, built.manifest.bytes);
}

before(async () => {
  dockerConfigDir = mkdtempSync(join(tmpdir(), 'hc-e2e-dockercfg-'));
  // TestDaemon.env is built from process.env on every use: daemon and CLI both see this.
  process.env.DOCKER_CONFIG = dockerConfigDir;
  registry = await startRegistry({ htpasswd: { username: USERNAME, password: PASSWORD } });
  client = new RegistryClient({ credentials: { get: async () => ({ username: USERNAME, password: PASSWORD }) } });
  image = buildImage([
    await buildLayer([
      { type: 'dir', path: 'etc' },
      { type: 'file', path: 'etc/os-release', content: 'NAME="Hypercore auth test"\nID=hcauth\n' },
      { type: 'file', path: 'etc/secret-image', content: 'behind basic auth\n' },
    ]),
  ]);
  await push('hc/private', 'v1', image);
  await push('hc/private', 'v2', image);
  daemon = new TestDaemon('hc-e2e-auth-');
  await daemon.start();
});

after(async () => {
  try {
    await daemon?.cleanup();
  } finally {
    try {
      await client?.close();
    } finally {
      try {
        await registry?.stop();
      } finally {
        if (savedDockerConfig === undefined) delete process.env.DOCKER_CONFIG;
        else process.env.DOCKER_CONFIG = savedDockerConfig;
        if (dockerConfigDir) rmSync(dockerConfigDir, { recursive: true, force: true });
      }
    }
  }
});

test('the registry requires credentials: a pull without login fails with HC_REGISTRY_AUTH naming the registry', () => {
  const r = cli(['image', 'pull', `${host()}/hc/private:v1`]);
  assert.equal(r.code, 1, output(r));
  assert.match(r.stderr, /HC_REGISTRY_AUTH/, output(r));
  assert.ok(r.stderr.includes(host()), `the error names ${host()}: ${r.stderr}`);
  assert.equal(storedAuths(), undefined, 'nothing was written to config.json');
});

test('login with a wrong password fails and stores nothing', () => {
  const r = cli(['login', host(), '-u', USERNAME, '--password-stdin'], 'wrong-password\n');
  assert.notEqual(r.code, 0, output(r));
  assert.match(r.stderr, /HC_REGISTRY_AUTH/, output(r));
  assert.doesNotMatch(r.stdout, /Login succeeded/);
  const auths = storedAuths();
  assert.ok(auths === undefined || !(host() in auths), `config.json has no entry for ${host()}: ${JSON.stringify(auths)}`);
});

test('login with the right password stores an auths entry (mode 0600) and the daemon pull works', () => {
  const login = cli(['login', host(), '-u', USERNAME, '--password-stdin'], `${PASSWORD}\n`);
  assert.equal(login.code, 0, output(login));
  assert.match(login.stdout, /Login succeeded/);
  const auths = storedAuths();
  assert.ok(auths && host() in auths, `config.json has an entry for ${host()}: ${JSON.stringify(auths)}`);
  const entry = auths[host()] as { auth?: string };
  assert.equal(Buffer.from(entry.auth ?? '', 'base64').toString('utf8'), `${USERNAME}:${PASSWORD}`);
  assert.equal(statSync(configPath()).mode & 0o777, 0o600, 'config.json holds secrets: mode 0600');

  const ref = `${host()}/hc/private:v1`;
  const pull = cli(['image', 'pull', ref]);
  assert.equal(pull.code, 0, output(pull));
  assert.equal(lastLine(pull.stdout), `${ref}@${image.manifest.digest}`);
  const ls = cli(['image', 'ls', '--json']);
  assert.equal(ls.code, 0, output(ls));
  assert.ok((JSON.parse(ls.stdout) as { reference: string }[]).some((i) => i.reference === ref), 'the image is listed');
});

test('logout removes the entry and the next pull fails with HC_REGISTRY_AUTH again', () => {
  const logout = cli(['logout', host()]);
  assert.equal(logout.code, 0, output(logout));
  const auths = storedAuths();
  assert.ok(auths !== undefined && !(host() in auths), `config.json has no entry for ${host()} any more: ${JSON.stringify(auths)}`);

  const r = cli(['image', 'pull', `${host()}/hc/private:v2`]);
  assert.equal(r.code, 1, output(r));
  assert.match(r.stderr, /HC_REGISTRY_AUTH/, output(r));
  assert.ok(r.stderr.includes(host()), `the error names ${host()}: ${r.stderr}`);
});
