import { test } from 'node:test';
import assert from 'node:assert/strict';
import { locateKeys } from './locator.js';

const text = `# top "comment" [not.a.table]
title = "a # not a comment" # real
[ hardware ] # comment
cores = 2
"quoted.key" = 1
dotted.inner = { a = 1, b = { c = "}" } }
arr = [ 1, "]", # comment ]
  { x = 1 },
]
ml = """
fake = 1
[fake]
"""
lit = 'x#y'
after = true
[hypervisor.qemu]
accel = "kvm"
[[disks]]
path = "a"
[[disks]]
path = "b"
`;
const l = locateKeys(text);
const at = (line: number, column: number) => ({ line, column });

test('locator: top-level keys, with the value column after strings holding "#"', () => {
  assert.deepEqual(l.key('title'), at(2, 1));
  assert.deepEqual(l.value('title'), at(2, 9));
});

test('locator: table headers (with spaces) locate at their "[" and set the prefix for keys', () => {
  assert.deepEqual(l.key('hardware'), at(3, 1));
  assert.deepEqual(l.value('hardware'), at(3, 1));
  assert.deepEqual(l.key('hardware.cores'), at(4, 1));
  assert.deepEqual(l.value('hardware.cores'), at(4, 9));
});

test('locator: quoted keys keep their dots and are looked up quoted', () => {
  assert.deepEqual(l.key('hardware."quoted.key"'), at(5, 1));
  assert.deepEqual(l.value('hardware."quoted.key"'), at(5, 16));
  assert.equal(l.key('hardware.quoted.key'), undefined);
});

test('locator: dotted keys define their parents; inline tables are entered', () => {
  assert.deepEqual(l.key('hardware.dotted'), at(6, 1));
  assert.deepEqual(l.value('hardware.dotted.inner'), at(6, 16));
  assert.deepEqual(l.key('hardware.dotted.inner.a'), at(6, 18));
  assert.deepEqual(l.value('hardware.dotted.inner.a'), at(6, 22));
  assert.deepEqual(l.key('hardware.dotted.inner.b.c'), at(6, 31));
});

test('locator: multi-line arrays and strings are skipped, including brackets and keys inside them', () => {
  assert.deepEqual(l.value('hardware.arr'), at(7, 7));
  assert.deepEqual(l.value('hardware.ml'), at(10, 6));
  assert.equal(l.key('hardware.fake'), undefined);
  assert.equal(l.key('fake'), undefined);
  assert.deepEqual(l.value('hardware.lit'), at(14, 7));
  assert.deepEqual(l.key('hardware.after'), at(15, 1));
});

test('locator: [a.b] headers define a; each [[header]] of an array of tables is its next item', () => {
  assert.deepEqual(l.key('hypervisor'), at(16, 1));
  assert.deepEqual(l.key('hypervisor.qemu'), at(16, 1));
  assert.deepEqual(l.value('hypervisor.qemu.accel'), at(17, 9));
  assert.deepEqual(l.key('disks'), at(18, 1));
  assert.deepEqual(l.key('disks[0].path'), at(19, 1));
  assert.deepEqual(l.key('disks[1]'), at(20, 1));
  assert.deepEqual(l.key('disks[1].path'), at(21, 1));
});

test('locator: unknown paths are undefined', () => {
  assert.equal(l.key('hardware.nope'), undefined);
  assert.equal(l.value('nope'), undefined);
});

test('locator: CRLF line ends and a byte-order mark do not shift positions', () => {
  const crlf = locateKeys('\uFEFF[spacecore]\r\nname = "x"\r\n\r\n[hardware]\r\n  cores = 1\r\n');
  assert.deepEqual(crlf.value('spacecore.name'), at(2, 8));
  assert.deepEqual(crlf.key('hardware'), at(4, 1));
  assert.deepEqual(crlf.key('hardware.cores'), at(5, 3));
  assert.deepEqual(crlf.value('hardware.cores'), at(5, 11));
});

test('locator: escaped quotes in strings and keys', () => {
  const esc = locateKeys('a = "x\\"y # z" \nb = 1\n"k\\"q" = 2\n');
  assert.deepEqual(esc.value('b'), at(2, 5));
  assert.deepEqual(esc.key('"k\\"q"'), at(3, 1));
});

test('locator: array items are located as path[i], across lines, and keys of inline tables in them', () => {
  const t = locateKeys('[workload]\nenv = ["A=1", "B=2",\n  # comment\n  "C=3"]\nnested = [[1, 2], [3]]\ntables = [{ a = 1 }, { b = "]" }]\n');
  assert.deepEqual(t.value('workload.env'), at(2, 7));
  assert.deepEqual(t.value('workload.env[0]'), at(2, 8));
  assert.deepEqual(t.key('workload.env[1]'), at(2, 15));
  assert.deepEqual(t.value('workload.env[2]'), at(4, 3));
  assert.equal(t.value('workload.env[3]'), undefined);
  assert.deepEqual(t.value('workload.nested[1]'), at(5, 19));
  assert.deepEqual(t.value('workload.nested[0][1]'), at(5, 15));
  assert.deepEqual(t.value('workload.tables[1].b'), at(6, 28));
});
