import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hacJsonSchema } from './index.js';
import { knownKeyPaths } from './json-schema.js';

type Json = { [key: string]: Json } & Record<string, unknown>;
const schema = hacJsonSchema() as Json;
const props = (node: Json): Json => node.properties as Json;

test('hacJsonSchema: draft 2020-12, closed tables, title', () => {
  assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(schema.title, 'hac.toml');
  assert.equal(schema.additionalProperties, false);
  assert.deepEqual(Object.keys(props(schema)), ['spacecore', 'hardware', 'workload', 'hypervisor', 'network', 'metadata']);
  assert.equal(props(schema).hardware.additionalProperties, false);
  assert.equal(props(schema).workload.additionalProperties, false);
});

test('hacJsonSchema: keys carry types, bounds, defaults and descriptions', () => {
  const hw = props(props(schema).hardware);
  assert.deepEqual(hw.cores.type, 'integer');
  assert.equal(hw.cores.default, 1);
  assert.equal(hw.cores.minimum, 1);
  assert.equal(hw.memory.default, 256);
  assert.equal(hw.memory.minimum, 64);
  assert.equal(hw.memory.maximum, 1048576);
  assert.equal(hw.drive_readonly.default, false);
  assert.match(String(hw.drive.description), /root disk/);
  assert.equal(props(schema).hardware.required, undefined);
  const hv = props(props(schema).hypervisor);
  assert.deepEqual(hv.provider.enum, ['qemu', 'firecracker', 'cloud-hypervisor', 'auto']);
  assert.equal(hv.provider.default, 'auto');
  assert.deepEqual(props(hv.qemu).accel.enum, ['auto', 'kvm', 'tcg']);
  assert.ok(props(hv.cloud_hypervisor).binary);
});

test('hacJsonSchema: drive, ref (or both), or a kernel alone; workload needs ref', () => {
  assert.deepEqual(props(schema).hardware.anyOf, [{ required: ['drive'] }, { required: ['ref'] }, { required: ['kernel'] }]);
  assert.deepEqual(schema.dependentSchemas, { workload: { required: ['hardware'], properties: { hardware: { required: ['ref'] } } } });
  const hw = props(props(schema).hardware);
  assert.match(String(hw.drive.description), /extra disk/);
  assert.match(String(hw.ref.description), /guest system image/);
  assert.match(String(props(schema).workload.description), /hardware\.ref/);
  assert.equal(props(schema).required, undefined);
});

test('hacJsonSchema: [workload] keys', () => {
  const w = props(props(schema).workload);
  assert.deepEqual(Object.keys(w), ['entrypoint', 'command', 'env', 'workdir', 'user', 'tty', 'pids_limit', 'memory_limit']);
  assert.equal(props(schema).workload.required, undefined);
  for (const key of ['entrypoint', 'command', 'env']) {
    assert.equal(w[key].type, 'array', key);
    assert.equal((w[key].items as Json).type, 'string', key);
  }
  assert.deepEqual((w.env.items as Json).allOf, [{ pattern: '^[A-Za-z_][A-Za-z0-9_]*=' }, { pattern: '^[^\\0]*$' }]);
  assert.equal(w.workdir.type, 'string');
  assert.equal(w.user.pattern, '^\\d{1,10}(:\\d{1,10})?$');
  assert.equal(w.tty.type, 'boolean');
  assert.equal(w.tty.default, false);
  assert.equal(w.pids_limit.type, 'integer');
  assert.equal(w.pids_limit.minimum, 1);
  assert.equal(w.memory_limit.type, 'integer');
  assert.equal(w.memory_limit.minimum, 4);
});

test('hacJsonSchema: every key has a description', () => {
  const node = (path: readonly string[]): Json => path.reduce((n, key) => props(n)[key] as Json, schema);
  for (const path of knownKeyPaths()) assert.equal(typeof node(path).description, 'string', path.join('.'));
});

test('knownKeyPaths: tables and keys, nested', () => {
  const paths = knownKeyPaths().map((p) => p.join('.'));
  assert.ok(paths.includes('hardware'));
  assert.ok(paths.includes('hardware.kernel_args'));
  assert.ok(paths.includes('hypervisor.cloud_hypervisor.binary'));
  assert.ok(paths.includes('workload'));
  assert.ok(paths.includes('workload.memory_limit'));
  assert.ok(paths.includes('hardware.disk_size'));
  assert.ok(paths.includes('metadata.ssh_authorized_keys'));
  assert.equal(paths.length, 48);
});
