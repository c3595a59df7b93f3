/**
 * `POST /v1/vms/hac-file` from the local socket (what `hypercore spawn` sends): the daemon reads the
 * hac.toml text as the CLI would read the file (relative paths from the file's directory, override
 * paths from the CLI's working directory, every named file checked, messages naming the file and
 * the flag), and with `pull: false` an image it lacks fails at once with nothing created. Remote
 * callers may not use it (the paths are of their own host).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { overrideTargets } from '../config/overrides.js';
import { ErrorCodes, type HypercoreError } from '../core/errors.js';
import { FakeProvider } from '../core/testing/fake-provider.js';
import { FakeAgentConnector, fakeGuest, fakeImage, fakeImages, MemoryWorkloadLog } from '../core/testing/fake-agent.js';
import { fakeVmService, silentLogger } from '../core/testing/fake-service.js';
import { openDatabase } from '../store/database.js';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { hostPathsWithin } from './auth/host-paths.js';
import { openApiDocument } from './openapi.js';
import { VmOperations } from './operations.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-hac-create-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const db = openDatabase(join(dir, 'state.db'));
after(() => db.close());
const stored = new Set([fakeImage.reference]);
const service = fakeVmService(dir, new SqliteVmStore(db), new FakeProvider(), 'h', {
  images: { ...fakeImages, find: (ref) => (stored.has(ref) ? fakeImage : undefined) },
  guest: fakeGuest,
  agents: new FakeAgentConnector(),
  workloadLog: new MemoryWorkloadLog(),
});
const local = new VmOperations({ service, hostCpus: 2, logger: silentLogger });

const project = join(dir, 'project');
const elsewhere = join(dir, 'elsewhere');
mkdirSync(join(project, 'disks'), { recursive: true });
mkdirSync(elsewhere);
writeFileSync(join(project, 'disks', 'root.ext4'), '');
writeFileSync(join(elsewhere, 'other.ext4'), '');
const file = join(project, 'vm.toml');

const rejected = async (p: Promise<unknown>, code: string, message: RegExp): Promise<HypercoreError> => {
  let caught: HypercoreError | undefined;
  await assert.rejects(p, (err: HypercoreError) => ((caught = err), err.code === code && message.test(err.message)));
  return caught!;
};

test('local: relative paths start at the hac.toml, override paths at cwd, and both must exist; messages name the file and the flag', async () => {
  const hac = '[spacecore]\nname = "vm-a"\n[hardware]\ndrive = "disks/root.ext4"\n[network]\nmode = "none"\n';
  const vm = await local.createVmFromHacFile({ hac, file, cwd: elsewhere, start: false });
  assert.equal(service.get('vm-a').spec.drive, join(project, 'disks', 'root.ext4'), vm.name);

  const override = await local.createVmFromHacFile({ hac, file, cwd: elsewhere, start: false, overrides: { name: 'vm-b', drive: 'other.ext4', cores: 2 } });
  assert.equal(override.name, 'vm-b');
  assert.equal(service.get('vm-b').spec.drive, join(elsewhere, 'other.ext4'));

  const before = service.list().length;
  const missing = await rejected(local.createVmFromHacFile({ hac: hac.replace('root.ext4', 'gone.ext4').replace('"vm-a"', '"vm-c"'), file, cwd: elsewhere, start: false }), ErrorCodes.configInvalid, /file not found/);
  assert.equal(missing.details[0]?.location, `${file}:4:9`, 'the problem names the file, line and column');
  await rejected(local.createVmFromHacFile({ hac, file, cwd: elsewhere, start: false, overrides: { name: 'vm-d', cores: 99 } }), ErrorCodes.configInvalid, /--cores/);
  await rejected(local.createVmFromHacFile({ hac, file, start: false, overrides: { name: 'vm-e', bogus: 1 } }), ErrorCodes.invalidArgument, /overrides\.bogus: no such override/);
  await rejected(local.createVmFromHacFile({ hac, file, start: false, overrides: { name: { nested: true } } }), ErrorCodes.invalidArgument, /overrides\.name: expected/);
  await rejected(local.createVmFromHacFile({ hac, file: 'vm.toml', start: false }), ErrorCodes.invalidArgument, /file = "vm.toml": expected an absolute path/);
  await rejected(local.createVmFromHacFile({ hac, file, cwd: 7, start: false }), ErrorCodes.invalidArgument, /cwd = 7: expected an absolute path/);
  assert.equal(service.list().length, before, 'bad input created nothing');
});

test('local, pull: false: an image the daemon lacks fails at once with HC_IMAGE_NOT_FOUND and creates nothing; a stored one is used', async () => {
  const hac = (name: string, ref: string) => `[spacecore]\nname = "${name}"\n[hardware]\nref = "${ref}"\n[workload]\ncommand = ["sleep", "1"]\n[network]\nmode = "none"\n`;
  const before = service.list().length;
  await rejected(local.createVmFromHacFile({ hac: hac('vm-p', 'example.test/missing:1'), file, pull: false, start: false }), ErrorCodes.imageNotFound, /example\.test\/missing:1/);
  assert.equal(service.list().length, before);
  const vm = await local.createVmFromHacFile({ hac: hac('vm-q', fakeImage.reference), file, pull: false, start: false });
  assert.equal(vm.state, 'created');
});

test('remote: a create from a hac.toml file is refused (its paths are of the caller host), nothing is created; the text route ignores file', async () => {
  const allowed = join(dir, 'allowed');
  mkdirSync(allowed);
  const remote = local.withHostPaths(hostPathsWithin([allowed], '--allow-host-path', []));
  const hac = '[spacecore]\nname = "vm-r"\n[hardware]\ndrive = "disks/root.ext4"\n[network]\nmode = "none"\n';
  const before = service.list().length;
  await rejected(remote.createVmFromHacFile({ hac, file, start: false }), ErrorCodes.permissionDenied, /only callers on the local socket/);
  await rejected(remote.createVmFromHacFile({ hac, file, start: false, overrides: { drive: join(elsewhere, 'other.ext4') } }), ErrorCodes.permissionDenied, /only callers on the local socket/);
  // The text route resolves relative paths from / and checks no file (a refused caller learns nothing of them).
  await rejected(remote.createVmFromHac({ hac, start: false }), ErrorCodes.permissionDenied, /\/disks\/root\.ext4.*outside the directories remote callers may use/);
  await rejected(local.createVmFromHacFile({ hac, start: false }), ErrorCodes.invalidArgument, /file is required/);
  assert.equal(service.list().length, before);
});

test("the API document's overrides are exactly the CLI's", () => {
  type Props = { properties: Record<string, { properties?: Record<string, unknown> }> };
  const doc = openApiDocument() as unknown as { paths: Record<string, { post: { requestBody: { content: Record<string, { schema: Props }> } } }> };
  const body = doc.paths['/v1/vms/hac-file']!.post.requestBody.content['application/json']!.schema;
  assert.deepEqual(Object.keys(body.properties['overrides']?.properties ?? {}).sort(), Object.keys(overrideTargets).sort());
});
