/**
 * The two server streams over the multiplexed socket: VM events (gRPC WatchEvents, HTTP NDJSON
 * GET /v1/events) and console logs (gRPC StreamLogs, HTTP GET /v1/vms/{id}/logs), with and without follow.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { Vm, VmEvent } from '../core/vm.js';
import { rotatedPath, rotateIfNeeded } from '../providers/console-log.js';
import { TestServer, until, type Received } from './testing-server.js';

let server: TestServer;

beforeEach(async () => {
  server = await TestServer.start();
});
afterEach(async () => {
  await server.close();
});

function ndjson(chunks: Buffer[]): VmEvent[] {
  const text = Buffer.concat(chunks).toString('utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'each event is a whole line');
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as VmEvent);
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');
const logChunks = (r: Received<{ data: Buffer }>) => r.items.map((m) => m.data);

async function createVm(name: string): Promise<Vm> {
  const res = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec(name) });
  assert.equal(res.status, 201);
  return res.json;
}

test('WatchEvents and GET /v1/events deliver the same exact sequence for create, stop, delete', async () => {
  const overGrpc = server.grpcCollect<VmEvent>('WatchEvents', {});
  const overHttp = server.httpStream('/v1/events');
  await until('both subscribers registered', () => server.service.events.size === 2);

  const vm = await createVm('ev');
  await server.grpc<Vm>('StopVm', { id: vm.id, force: true });
  const del = await server.http('DELETE', `/v1/vms/${vm.id}`);
  assert.equal(del.status, 200);
  assert.equal(del.text, '{}');

  const expected = [
    ['created', 'creating', undefined],
    ['state-changed', 'running', 'creating'],
    ['state-changed', 'stopping', 'running'],
    ['state-changed', 'stopped', 'stopping'],
    ['state-changed', 'deleting', 'stopped'],
    ['deleted', 'deleting', undefined],
  ];
  await until('6 events over gRPC', () => overGrpc.items.length >= 6);
  await until('6 events over HTTP', () => ndjson(overHttp.items).length >= 6);
  assert.deepEqual(await overHttp.response, { status: 200, contentType: 'application/x-ndjson' });
  const httpEvents = ndjson(overHttp.items);
  assert.deepEqual(httpEvents.map((e) => [e.type, e.state, e.previousState]), expected);
  assert.ok(httpEvents.every((e) => e.vmId === vm.id && e.name === 'ev' && !Number.isNaN(Date.parse(e.at))));
  assert.deepEqual(overGrpc.items, httpEvents, 'the same events, field for field, on both transports');

  const grpcEnd = (await overGrpc.cancel()) as ServiceError | null;
  assert.equal(grpcEnd?.code, status.CANCELLED);
  await until('the gRPC subscriber is gone', () => server.service.events.size === 1);
  await overHttp.cancel();
  await until('the HTTP subscriber is gone', () => server.service.events.size === 0);
  assert.equal(overGrpc.items.length, 6, 'nothing more arrived');
  assert.equal(ndjson(overHttp.items).length, 6);
});

test('an event stream sees only what happens after it subscribed, and a failed VMM exit with its error', async () => {
  const before = await createVm('early');
  const overGrpc = server.grpcCollect<VmEvent>('WatchEvents', {});
  const overHttp = server.httpStream('/v1/events');
  await until('both subscribers registered', () => server.service.events.size === 2);

  server.provider.exit(before.id, { outcome: 'failed', reason: 'qemu crashed' });
  await until('the exit event on both', () => overGrpc.items.length === 1 && ndjson(overHttp.items).length === 1);
  const [event] = ndjson(overHttp.items);
  assert.deepEqual({ ...event, at: 'x' }, { type: 'state-changed', vmId: before.id, name: 'early', state: 'failed', previousState: 'running', at: 'x', error: { code: 'HC_VMM_EXITED', message: 'qemu crashed' } });
  assert.deepEqual(overGrpc.items, [event]);
  await overGrpc.cancel();
  await overHttp.cancel();
  await until('no subscriber left', () => server.service.events.size === 0);
});

test('many event watchers that come and go leave no subscriber behind', async () => {
  for (let i = 0; i < 5; i++) {
    const g = server.grpcCollect<VmEvent>('WatchEvents', {});
    const h = server.httpStream('/v1/events');
    await until('subscribed', () => server.service.events.size === 2);
    await g.cancel();
    await h.cancel();
    await until('unsubscribed', () => server.service.events.size === 0);
  }
});

test('logs without follow return the exact console log content on both transports, then end', async () => {
  const vm = await createVm('log');
  const log = server.service.paths(vm).consoleLog;
  const content = 'Linux version 6.1\r\nhypercore login: \u00e9t\u00e9 \u2713\n';
  writeFileSync(log, content);

  const res = await server.http('GET', `/v1/vms/${vm.id}/logs`);
  assert.equal(res.status, 200);
  assert.equal(res.contentType, 'text/plain; charset=utf-8');
  assert.equal(res.text, content);

  const overGrpc = server.grpcCollect<{ data: Buffer }>('StreamLogs', { id: 'log' });
  assert.equal(await overGrpc.done, null, 'the stream ends with status OK');
  assert.ok(overGrpc.items.every((m) => Buffer.isBuffer(m.data)));
  assert.equal(text(logChunks(overGrpc)), content);
});

test('logs of a VM that has written nothing yet are empty, not an error', async () => {
  const vm = await createVm('quiet');
  const res = await server.http('GET', `/v1/vms/${vm.id}/logs`);
  assert.equal(res.status, 200);
  assert.equal(res.text, '');
  const overGrpc = server.grpcCollect<{ data: Buffer }>('StreamLogs', { id: vm.id });
  assert.equal(await overGrpc.done, null);
  assert.deepEqual(overGrpc.items, []);
});

test('the rotated part (<log>.1) comes first, then the live file', async () => {
  const vm = await createVm('rot');
  const log = server.service.paths(vm).consoleLog;
  const old = `${'x'.repeat(60)}\nold tail\n`;
  writeFileSync(log, old);
  assert.equal(await rotateIfNeeded(log, 32), true);
  assert.equal(readFileSync(rotatedPath(log), 'utf8'), old);
  assert.equal(readFileSync(log, 'utf8'), '');
  appendFileSync(log, 'new output\n');

  assert.equal((await server.http('GET', `/v1/vms/${vm.id}/logs`)).text, `${old}new output\n`);
  const overGrpc = server.grpcCollect<{ data: Buffer }>('StreamLogs', { id: vm.id });
  assert.equal(await overGrpc.done, null);
  assert.equal(text(logChunks(overGrpc)), `${old}new output\n`);
  assert.equal(await rotateIfNeeded(log, 32), false, 'the live file is under the cap');
});

test('GET logs?follow=true streams what is appended after it started, until the client leaves', async () => {
  const vm = await createVm('follow');
  const log = server.service.paths(vm).consoleLog;
  writeFileSync(log, 'first\n');
  const stream = server.httpStream(`/v1/vms/${vm.id}/logs?follow=true`);
  assert.deepEqual(await stream.response, { status: 200, contentType: 'text/plain; charset=utf-8' });
  await until('the existing content', () => text(stream.items) === 'first\n');
  appendFileSync(log, 'second\n');
  await until('the appended line', () => text(stream.items) === 'first\nsecond\n');
  appendFileSync(log, 'third');
  await until('a partial line too', () => text(stream.items) === 'first\nsecond\nthird');
  const end = await stream.cancel();
  assert.equal(end?.name, 'AbortError');
  assert.equal(text(stream.items), 'first\nsecond\nthird');
});

test('StreamLogs with follow streams appended output until the client cancels', async () => {
  const vm = await createVm('gfollow');
  const log = server.service.paths(vm).consoleLog;
  // The file does not exist yet: the follower waits for it.
  const stream = server.grpcCollect<{ data: Buffer }>('StreamLogs', { id: vm.id, follow: true });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(stream.items, []);
  writeFileSync(log, 'boot\n');
  await until('the first output', () => text(logChunks(stream)) === 'boot\n');
  appendFileSync(log, 'ready\n');
  await until('the appended output', () => text(logChunks(stream)) === 'boot\nready\n');
  const end = (await stream.cancel()) as ServiceError | null;
  assert.equal(end?.code, status.CANCELLED);
});

test('a followed log continues from the start of the live file after a rotation', async () => {
  const vm = await createVm('rotfollow');
  const log = server.service.paths(vm).consoleLog;
  writeFileSync(log, `${'y'.repeat(40)}\n`);
  const stream = server.httpStream(`/v1/vms/${vm.id}/logs?follow=true`);
  await until('the existing content', () => text(stream.items).length === 41);
  assert.equal(await rotateIfNeeded(log, 16), true);
  appendFileSync(log, 'after\n');
  await until('the post-rotation output', () => text(stream.items) === `${'y'.repeat(40)}\nafter\n`);
  await stream.cancel();
});
