/**
 * @hypercore/sdk against a real hypercored: over its unix socket and its remote listener (mTLS
 * client certificate, bearer tokens with scopes), pull progress from a real registry, VMs created
 * without booting, events as an async iterator, each API error as its class; and one booted image
 * VM for exec as Node streams, logs `follow`, and the documented example (examples/sdk-quickstart.ts).
 * Every answer is checked against the fields the document says are always set (the SDK's types require them).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import {
  HypercoreClient,
  HypercoreApiError,
  ImageNotFoundError,
  InvalidArgumentError,
  PermissionDeniedError,
  UnauthenticatedError,
  VmNameTakenError,
  VmNotFoundError,
  type PullImageProgress,
  type VmEvent,
} from '../../sdk/src/index.js';
import { assertAlwaysSet } from './always-set.js';
import { pushBusyboxImage } from './busybox-image.js';
import { freePort, repoRoot, TestDaemon } from './harness.js';

const daemon = new TestDaemon('hc-e2e-sdk-');
const tls = join(daemon.dir, 'tls');
let https = '';
let registry: RegistryProcess | undefined;
let image = '';
let local: HypercoreClient;

before(async () => {
  const init = daemon.cli(['tls', 'init', tls]);
  assert.equal(init.code, 0, init.stderr);
  https = `https://127.0.0.1:${await freePort()}`;
  registry = await startRegistry();
  image = await pushBusyboxImage(registry, 'NAME="Hypercore SDK test"\nID=hcsdk\n');
  await daemon.start(['--listen', https, '--tls-dir', tls]);
  local = new HypercoreClient({ socketPath: daemon.socket });
});

after(async () => {
  await local?.close();
  await daemon.cleanup();
  await registry?.stop();
});

/** Collects events until `until` returns true for one. */
async function eventsUntil(events: AsyncIterator<VmEvent>, until: (e: VmEvent) => boolean): Promise<VmEvent[]> {
  const seen: VmEvent[] = [];
  for (;;) {
    const next = await events.next();
    assert.ok(!next.done, `the event stream ended; saw ${JSON.stringify(seen)}`);
    seen.push(next.value);
    if (until(next.value)) return seen;
  }
}

test('over the unix socket: pull with progress, create without booting, events, errors as classes, delete', async () => {
  const phases: PullImageProgress[] = [];
  const pulled = await local.pullImage(image, { onProgress: (p) => phases.push(p) });
  assert.equal(pulled.reference, image);
  assert.match(pulled.digest, /^sha256:[0-9a-f]{64}$/);
  assertAlwaysSet('Image', pulled);
  for (const p of phases) assertAlwaysSet('PullImageProgress', p);
  assert.deepEqual([...new Set(phases.map((p) => p.phase))].at(-1), 'done');
  assert.ok(phases.some((p) => p.phase === 'downloading'), `phases: ${phases.map((p) => p.phase).join(',')}`);
  assert.equal((await local.getImage(image)).digest, pulled.digest);
  assertAlwaysSet('ListImagesResponse', { images: await local.listImages() });
  await assert.rejects(local.getImage(`${registry!.host}/hc/absent:1`), ImageNotFoundError);

  const abort = new AbortController();
  const events = local.watchEvents({ signal: abort.signal })[Symbol.asyncIterator]();
  const eventsOpen = events.next();
  // The subscription is open once its head arrived; give the daemon the moment to register it.
  await new Promise((r) => setTimeout(r, 200));
  const vm = await local.createVm({ name: 'sdk-idle', memoryMib: 128, image }, { start: false });
  assert.equal(vm.state, 'created');
  assert.equal(vm.name, 'sdk-idle');
  assertAlwaysSet('Vm', vm);
  const first = await eventsOpen;
  assert.ok(!first.done);
  const created = first.value.type === 'created' ? [first.value] : await eventsUntil(events, (e) => e.type === 'created');
  assert.equal(created.at(-1)?.vmId, vm.id);
  for (const e of created) assertAlwaysSet('VmEvent', e);

  const listed = await local.listVms();
  assert.deepEqual(listed.map((v) => v.id), [vm.id]);
  assertAlwaysSet('ListVmsResponse', { vms: listed });
  assert.equal((await local.getVm('sdk-idle')).id, vm.id);

  const missing = await local.getVm('no-such-vm').catch((e: unknown) => e);
  assert.ok(missing instanceof VmNotFoundError && missing instanceof HypercoreApiError, String(missing));
  assert.equal(missing.code, 'HC_VM_NOT_FOUND');
  assert.equal(missing.status, 404);
  await assert.rejects(local.createVm({ name: 'sdk-idle', memoryMib: 128, image }, { start: false }), VmNameTakenError);
  const invalid = await local.createVm({ name: 'bad', memoryMib: 128, cores: 999, image }, { start: false }).catch((e: unknown) => e);
  assert.ok(invalid instanceof HypercoreApiError && /INVALID/.test(invalid.code), String(invalid));
  assert.ok(invalid.details.some((d) => d.path?.includes('cores')), JSON.stringify(invalid.details));
  assert.throws(() => local.getImage('../../v1/vms'), InvalidArgumentError, 'a reference that would leave /v1/images is refused before sending');

  await local.deleteVm(vm.id);
  const deleted = await eventsUntil(events, (e) => e.type === 'deleted');
  assert.equal(deleted.at(-1)?.vmId, vm.id);
  abort.abort();
  await events.return?.(undefined);
  assert.deepEqual(await local.listVms(), []);
});

test('over the remote listener: mTLS, tokens by scope, refusals as classes; the document the SDK was built from is the one served', async () => {
  const ca = readFileSync(join(tls, 'ca.pem'));
  const mtls = new HypercoreClient({ url: https, ca, cert: readFileSync(join(tls, 'cert.pem')), key: readFileSync(join(tls, 'key.pem')) });
  const created = await mtls.createToken('read', 'sdk-e2e');
  assertAlwaysSet('CreateTokenResponse', created);
  const { secret } = created;
  assert.match(secret, /^hc_/);
  assertAlwaysSet('ListTokensResponse', { tokens: await mtls.listTokens() });
  const reader = new HypercoreClient({ url: https, ca, token: secret });
  const nobody = new HypercoreClient({ url: https, ca });
  try {
    assert.deepEqual(await reader.listVms(), []);
    await assert.rejects(reader.createVm({ name: 'nope', memoryMib: 128, image }, { start: false }), PermissionDeniedError);
    await assert.rejects(reader.exec('whatever', { args: ['true'] }), PermissionDeniedError, 'the WebSocket upgrade is refused with its class');
    await assert.rejects(nobody.listVms(), UnauthenticatedError);
    assert.deepEqual(await local.listVms(), [], 'the refused create changed nothing');
    const served = await reader.openApi();
    assert.deepEqual(served, JSON.parse(readFileSync(join(repoRoot, 'sdk', 'openapi.json'), 'utf8')));
  } finally {
    await Promise.all([mtls.close(), reader.close(), nobody.close()]);
  }
});

test('a booted image VM: exec with stdin/stdout as Node streams and an exit code, attach, logs follow as an async iterator', async () => {
  const vm = await local.createVm({ name: 'sdk-run', memoryMib: 256, image, workload: { cmd: ['sh', '-c', 'echo sdk-workload-up; sleep 100000'] } });
  try {
    assert.equal(vm.state, 'running');
    assertAlwaysSet('Vm', vm);
    const proc = await local.exec(vm.id, { args: ['sh', '-c', 'read x; echo "got $x"; echo oops >&2; exit 3'] });
    proc.stdin.end('hello\n');
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    assert.deepEqual(await proc.exited, { exitCode: 3 });
    assert.equal(stdout, 'got hello\n');
    assert.equal(stderr, 'oops\n');
    // Attach from the start replays the workload's output; closing detaches and leaves it running.
    const attached = await local.attach(vm.id, { fromStart: true });
    let replay = '';
    for await (const chunk of attached.stdout) {
      replay += (chunk as Buffer).toString();
      if (replay.includes('sdk-workload-up')) break;
    }
    attached.close();
    await assert.rejects(attached.exited, /closed before the process exited/);
    assert.equal((await local.getVm(vm.id)).state, 'running');
    await assert.rejects(local.exec('no-such-vm', { args: ['true'] }).then((p) => p.exited), VmNotFoundError);

    const abort = new AbortController();
    let log = '';
    const timer = setTimeout(() => abort.abort(), 60_000);
    try {
      for await (const chunk of local.streamLogs(vm.id, { follow: true, signal: abort.signal })) {
        log += chunk.toString('utf8');
        if (log.includes('sdk-workload-up')) break;
      }
    } finally {
      clearTimeout(timer);
    }
    assert.match(log, /sdk-workload-up/);

    // The answers not seen above, from a running image VM and the host.
    assertAlwaysSet('Vm', await local.getVm(vm.id));
    assertAlwaysSet('VmMetadata', await local.setMetadata(vm.id, { color: 'blue' }));
    assertAlwaysSet('VmMetadata', await local.setMetadata(vm.id, { password: 'hunter2' }, { secret: true }));
    assert.deepEqual(await local.getMetadata(vm.id), { values: { color: 'blue' }, secrets: { password: '<secret>' } });
    assert.deepEqual(await local.getMetadata(vm.id, 'color'), { values: { color: 'blue' }, secrets: {} });
    assertAlwaysSet('VersionResponse', await local.version());
    assertAlwaysSet('DoctorResponse', await local.doctor());
    const snapshot = await local.createSnapshot(vm.id, { name: 'sdk-snap' });
    assertAlwaysSet('Snapshot', snapshot);
    assertAlwaysSet('ListSnapshotsResponse', { snapshots: await local.listSnapshots() });
    await local.deleteSnapshot(snapshot.id);

    // The documented example, as a user runs it, on this VM.
    const example = spawnSync(process.execPath, [join(repoRoot, 'dist', 'examples', 'sdk-quickstart.js'), image, 'sdk-run'], { env: daemon.env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(example.status, 0, example.stderr);
    assert.match(example.stdout, new RegExp(`^vm sdk-run ${vm.id} running\n42\nexit 0\n`, 'm'));
  } finally {
    await local.deleteVm(vm.id, { force: true });
  }
});
