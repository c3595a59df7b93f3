/**
 * Metadata through the agent's TTRPC service, as the daemon sends it: StartWorkload serves the
 * values before the workload runs and writes the files into its rootfs; SetMetadata replaces the
 * values at once; invalid metadata is refused and changes nothing. crun is a stand-in that only
 * records that it ran (crun cannot run containers on the test host).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { Code, TtrpcError, TtrpcServer } from '../ttrpc/index.js';
import { listenUnix } from './channel.js';
import { startMetadataEndpoint, type MetadataEndpoint } from './metadata-endpoint.js';
import { MetadataStore } from './metadata-store.js';
import { registerAgentService } from './service.js';
import { AgentTestClient, fakeGuest, recordingRunner } from './test-helpers.js';

/** `crun run`: writes its pid file and stays; every other command succeeds doing nothing. */
const FAKE_CRUN = `#!${process.execPath}
const fs = require('fs');
const argv = process.argv.slice(2);
if (argv.includes('run')) {
  // main.pid first: the agent answers StartWorkload once --pid-file exists, and the tests then read
  // main.pid to kill this process (read in between, it was missing, the process lived on and the
  // test file never ended).
  fs.writeFileSync(__dirname + '/main.pid', String(process.pid));
  fs.writeFileSync(argv[argv.indexOf('--pid-file') + 1], String(process.pid));
  setInterval(() => {}, 1000);
}
`;

let dir: string;
let rootfs: string;
let server: TtrpcServer;
let listener: net.Server;
let endpoint: MetadataEndpoint;
let c: AgentTestClient;

const served = async (path = ''): Promise<string> => (await request(`http://127.0.0.1:${endpoint.address().port}/v1/metadata${path}`)).body.text();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hc-metasvc-'));
  const crun = join(dir, 'crun');
  await writeFile(crun, FAKE_CRUN, { mode: 0o755 });
  const paths = await fakeGuest(join(dir, 'guest'), { vda: 'image' });
  rootfs = join(paths.runDir, 'rootfs');
  const metadata = new MetadataStore(join(paths.runDir, 'metadata.json'));
  server = new TtrpcServer();
  registerAgentService(server, { powerOff: () => undefined, workload: { paths, crun, run: recordingRunner(paths).run }, metadata });
  endpoint = await startMetadataEndpoint(metadata, { host: '127.0.0.1', port: 0 });
  listener = await listenUnix(server, join(dir, 'a.sock'));
  c = await AgentTestClient.connect(join(dir, 'a.sock'));
});

after(async () => {
  c.close();
  listener.close();
  await endpoint.close();
  const pid = Number(await readFile(join(dir, 'main.pid'), 'utf8').catch(() => '0'));
  if (pid > 0) process.kill(pid, 'SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

test('StartWorkload: the values are served and the files and keys are in the rootfs before crun runs', async () => {
  await c.call('StartWorkload', {
    process: { args: ['/app'] },
    imageDiskSerial: 'image',
    metadata: { values: { region: 'eu-1' }, secrets: { api_key: 's3cr3t' } },
    files: [{ path: '/etc/app/app.conf', mode: 0o640, uid: 1000, gid: 1000, content: Buffer.from('listen = 8080\n') }],
    sshAuthorizedKeys: ['ssh-ed25519 AAAA user@host'],
  });
  assert.deepEqual(JSON.parse(await served()), { api_key: 's3cr3t', region: 'eu-1' });
  assert.equal(await readFile(join(rootfs, 'etc/app/app.conf'), 'utf8'), 'listen = 8080\n');
  assert.equal((await stat(join(rootfs, 'etc/app/app.conf'))).mode & 0o777, 0o640);
  assert.equal(await readFile(join(rootfs, 'root/.ssh/authorized_keys'), 'utf8'), 'ssh-ed25519 AAAA user@host\n');
});

test('SetMetadata replaces the values at once; invalid metadata is refused and changes nothing', async () => {
  await c.call('SetMetadata', { values: { region: 'eu-2', role: 'web' }, secrets: {} });
  assert.equal(await served('/region'), 'eu-2');
  assert.equal(JSON.parse(await served())['api_key'], undefined);
  await assert.rejects(c.call('SetMetadata', { values: { 'a b': 'x' }, secrets: {} }), (err: unknown) => err instanceof TtrpcError && err.code === Code.INVALID_ARGUMENT && /metadata key "a b"/.test(err.message));
  assert.deepEqual(JSON.parse(await served()), { region: 'eu-2', role: 'web' });
});

test('StartWorkload waits for the metadata endpoint to serve before crun runs (it starts after "ready")', async () => {
  const own = await mkdtemp(join(dir, 'late-'));
  const paths = await fakeGuest(join(own, 'guest'), { vda: 'image' });
  let serving!: () => void;
  const endpointUp = new Promise<void>((resolve) => (serving = resolve));
  const late = new TtrpcServer();
  const crun = join(own, 'crun');
  await writeFile(crun, FAKE_CRUN, { mode: 0o755 });
  registerAgentService(late, { powerOff: () => undefined, workload: { paths, crun, run: recordingRunner(paths).run }, metadata: new MetadataStore(), metadataServing: () => endpointUp });
  const lateListener = await listenUnix(late, join(own, 'a.sock'));
  const client = await AgentTestClient.connect(join(own, 'a.sock'));
  try {
    let done = false;
    const started = startWorkload(client).then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(done, false, 'StartWorkload returned before the endpoint served');
    await assert.rejects(stat(join(own, 'main.pid')), 'crun ran before the endpoint served');
    serving();
    await started;
    assert.equal(done, true);
  } finally {
    client.close();
    lateListener.close();
    const pid = Number(await readFile(join(own, 'main.pid'), 'utf8').catch(() => '0'));
    if (pid > 0) process.kill(pid, 'SIGKILL');
  }
});

test('a VM without metadata gets no endpoint (its workload may bind port 80 on every address); its first SetMetadata starts it', async () => {
  const own = await mkdtemp(join(dir, 'none-'));
  const paths = await fakeGuest(join(own, 'guest'), { vda: 'image' });
  const crun = join(own, 'crun');
  await writeFile(crun, FAKE_CRUN, { mode: 0o755 });
  let starts = 0;
  const server = new TtrpcServer();
  registerAgentService(server, { powerOff: () => undefined, workload: { paths, crun, run: recordingRunner(paths).run }, metadata: new MetadataStore(), metadataServing: async () => void starts++ });
  const listener = await listenUnix(server, join(own, 'a.sock'));
  const client = await AgentTestClient.connect(join(own, 'a.sock'));
  try {
    await client.call('StartWorkload', { process: { args: ['/app'] }, imageDiskSerial: 'image' });
    assert.equal(starts, 0, 'no endpoint for a VM without metadata');
    await client.call('SetMetadata', { values: {}, secrets: {} });
    assert.equal(starts, 0, 'nor for empty metadata');
    await client.call('SetMetadata', { values: { region: 'eu-1' }, secrets: {} });
    assert.equal(starts, 1, 'the first values start it');
  } finally {
    client.close();
    listener.close();
    const pid = Number(await readFile(join(own, 'main.pid'), 'utf8').catch(() => '0'));
    if (pid > 0) process.kill(pid, 'SIGKILL');
  }
});

function startWorkload(client: AgentTestClient): Promise<unknown> {
  return client.call('StartWorkload', { process: { args: ['/app'] }, imageDiskSerial: 'image', metadata: { values: { region: 'eu-1' }, secrets: {} } });
}
