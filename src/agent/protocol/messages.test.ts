import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import protobuf from 'protobufjs';
import { codec } from './messages.js';

/**
 * The message types of agent.proto, by protobufjs reflection over the same file the build feeds to
 * pbjs. `resolved`: with the root's options resolved first, as pbjs does. Unresolved (how the agent
 * used reflection before), protobufjs writes proto3's repeated numbers unpacked (one tag per value)
 * instead of packed, the proto3 default; readers take both forms.
 */
async function reflectedTypes(resolved = true): Promise<protobuf.Type[]> {
  const text = await readFile(new URL('./agent.proto', import.meta.url), 'utf8');
  const root = protobuf.parse(text, { keepCase: false }).root;
  if (resolved) root.resolveAll();
  const ns = root.lookup('hypercore.agent.v1');
  assert.ok(ns instanceof protobuf.Namespace);
  return ns.nestedArray.filter((t): t is protobuf.Type => t instanceof protobuf.Type);
}

/** A value of a scalar field's type, different for each field and not the type's default. */
function scalarSample(type: string, seed: number): unknown {
  switch (type) {
    case 'string': return `s${seed}-ü`;
    case 'bool': return true;
    case 'bytes': return Buffer.from([seed, 0, 255, seed + 1]);
    case 'double': return seed + 0.5;
    case 'int32': return -1000 - seed;
    case 'uint32': return 2 ** 31 + seed;
    // Above 2^32, below 2^53: both halves of the varint, and exact as a number.
    case 'uint64': return 2 ** 40 + seed;
    default: throw new Error(`the test has no sample for ${type}; add one`);
  }
}

/** An object with every field of `type` set (maps and repeated fields with two entries), nested types too. */
function sample(type: protobuf.Type, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let seed = depth * 100;
  for (const field of type.fieldsArray) {
    field.resolve();
    seed += 1;
    const one = (n: number): unknown => (field.resolvedType instanceof protobuf.Type ? sample(field.resolvedType, depth + 1) : scalarSample(field.type, n));
    if (field instanceof protobuf.MapField) out[field.name] = { k1: one(seed), k2: one(seed + 50) };
    else if (field.repeated) out[field.name] = [one(seed), one(seed + 50)];
    else out[field.name] = one(seed);
  }
  return out;
}

const decodeOptions = { longs: Number, bytes: Buffer, defaults: true, arrays: true };

test('every message of agent.proto encodes to the same bytes and decodes to the same object as protobufjs reflection', async () => {
  const types = await reflectedTypes();
  assert.ok(types.length >= 30, `only ${types.length} message types found in agent.proto`);
  for (const type of types) {
    const static_ = codec<Record<string, unknown>>(type.name);
    for (const message of [sample(type), {}]) {
      const expected = type.encode(type.fromObject(message)).finish();
      const bytes = static_.encode(message);
      assert.deepEqual(Buffer.from(bytes), Buffer.from(expected), `${type.name}: encoded bytes differ`);
      if (Object.keys(message).length > 0 && type.fieldsArray.length > 0) assert.ok(bytes.byteLength > 0, `${type.name}: the sample encoded to nothing`);
      assert.deepEqual(static_.decode(bytes), type.toObject(type.decode(expected), decodeOptions), `${type.name}: decoded objects differ`);
    }
  }
});

test('the static codecs read what the reflection codec of earlier versions wrote (unpacked repeated numbers)', async () => {
  // A daemon reconnects to the agents of running VMs, which may be of the earlier version.
  let differing = 0;
  for (const type of await reflectedTypes(false)) {
    const message = sample(type);
    const earlier = type.encode(type.fromObject(message)).finish();
    const static_ = codec<Record<string, unknown>>(type.name);
    if (!Buffer.from(earlier).equals(Buffer.from(static_.encode(message)))) differing += 1;
    assert.deepEqual(static_.decode(earlier), type.toObject(type.decode(earlier), decodeOptions), `${type.name}: decoded objects differ`);
  }
  // ContainerPidsResponse's pids; should this reach 0, the test above covers everything.
  assert.equal(differing, 1);
});

test('a codec for a message agent.proto lacks is refused by name', () => {
  assert.throws(() => codec('NoSuchMessage'), /hypercore\.agent\.v1\.NoSuchMessage/);
  assert.throws(() => codec('toString'), /hypercore\.agent\.v1\.toString/);
});

test('the codecs are static: loading them parses no .proto, and the guest bundle carries the generated code', async () => {
  // A fresh process, so that nothing else of the test run has loaded protobufjs' reflection.
  const messages = new URL('./messages.js', import.meta.url).href;
  const script = `import { createRequire } from 'node:module';
const m = await import(${JSON.stringify(messages)});
m.codecs.StartWorkloadRequest.decode(m.codecs.StartWorkloadRequest.encode({ process: { args: ['sh'] }, imageDiskSerial: 'image' }));
console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
  const loaded = (JSON.parse(stdout) as string[]).filter((p) => p.includes('protobufjs'));
  assert.ok(loaded.some((p) => p.endsWith('/protobufjs/src/reader.js')), `protobufjs' reader is not among ${loaded.join(', ')}`);
  for (const reflection of ['/protobufjs/src/parse.js', '/protobufjs/src/type.js', '/protobufjs/src/root.js']) {
    assert.ok(!loaded.some((p) => p.endsWith(reflection)), `protobufjs reflection loaded: ${reflection}`);
  }

  const bundle = await readFile(fileURLToPath(new URL('../../../agent/agent.js', import.meta.url)), 'utf8');
  assert.doesNotMatch(bundle, /protobufjs\/src\/parse\.js|syntax = "proto3"/, 'the agent bundle parses protobuf text');
  for (const type of await reflectedTypes()) {
    for (const fn of ['encode', 'decode', 'fromObject', 'toObject']) {
      assert.ok(bundle.includes(`${type.name}.${fn} = function ${fn}(`), `the agent bundle has no static ${type.name}.${fn}`);
    }
  }
});
