/** Shim deletes left for a hypercored that was down: taken once, and the directory is hostile ground. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pendingDeletesDir, recordPendingDelete, takePendingDeletes } from './pending-deletes.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-pending-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const call = { namespace: 'k8s.io', id: 'abc', bundle: '/run/containerd/b/abc', address: '/run/containerd/containerd.sock' };

test('a recorded delete is taken once; a second delete of the same task replaces the first', () => {
  const socket = join(dir, 'a.sock');
  recordPendingDelete(socket, { ...call, bundle: '/old' });
  recordPendingDelete(socket, call);
  recordPendingDelete(socket, { ...call, id: 'def' });
  const bad: string[] = [];
  const taken = takePendingDeletes(socket, (f) => bad.push(f));
  assert.deepEqual(taken.map((c) => `${c.id} ${c.bundle}`).sort(), ['abc /run/containerd/b/abc', 'def /run/containerd/b/abc']);
  assert.deepEqual(bad, []);
  assert.deepEqual(takePendingDeletes(socket, () => {}), []);
  assert.deepEqual(takePendingDeletes(join(dir, 'none.sock'), () => {}), [], 'no directory: nothing to do');
});

test('links, directories, oversized and malformed files are removed unread, naming the file', () => {
  const socket = join(dir, 'b.sock');
  const pending = pendingDeletesDir(socket);
  mkdirSync(pending, { recursive: true });
  writeFileSync(join(dir, 'target.json'), JSON.stringify(call));
  symlinkSync(join(dir, 'target.json'), join(pending, 'link.json'));
  mkdirSync(join(pending, 'dir.json'));
  writeFileSync(join(pending, 'big.json'), ' '.repeat(65 * 1024) + '{}');
  writeFileSync(join(pending, 'garbage.json'), '{"id": 3}');
  const bad: string[] = [];
  assert.deepEqual(takePendingDeletes(socket, (f, reason) => bad.push(`${f.slice(pending.length + 1)}: ${reason}`)), []);
  assert.equal(bad.length, 4, bad.join('\n'));
  assert.ok(bad.some((b) => /^link\.json: .*ELOOP/.test(b)), bad.join('\n'));
  assert.ok(bad.some((b) => /^big\.json: larger than 65536 bytes/.test(b)), bad.join('\n'));
  assert.ok(bad.some((b) => /^garbage\.json: not a delete call/.test(b)), bad.join('\n'));
  assert.deepEqual(readdirSync(pending).filter((n) => n !== 'dir.json'), []);
  assert.equal(readdirSync(dir).includes('target.json'), true, 'the link target is untouched');
});
