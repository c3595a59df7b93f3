/**
 * Clients that do not read: an event subscriber over gRPC (its call paused) and over HTTP (a raw
 * socket never read) must not grow the daemon's memory; they are dropped with HC_CLIENT_TOO_SLOW.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { VmEvent } from '../core/vm.js';
import { TestServer, until } from './testing-server.js';

let server: TestServer;

beforeEach(async () => {
  server = await TestServer.start();
});
afterEach(async () => {
  await server.close();
});

/** A ~1 KiB event. */
function bigEvent(i: number): VmEvent {
  return { type: 'state-changed', vmId: `vm${i}`, name: 'x'.repeat(1000), state: 'running', at: new Date(0).toISOString() };
}

test('event subscribers that do not read are dropped after a bounded backlog, with the reason', async () => {
  const call = server.grpcStream('WatchEvents', {});
  call.pause();
  const grpcEnd = new Promise<Error>((resolve) => call.on('error', resolve));
  const raw = connect(server.socket);
  await new Promise<void>((resolve) => raw.once('connect', resolve));
  raw.write('GET /v1/events HTTP/1.1\r\nHost: hypercore\r\n\r\n');
  raw.pause();
  await until('both subscribers registered', () => server.service.events.size === 2);

  // 64 MiB of events at each subscriber; neither reads any of it.
  for (let i = 0; i < 64 * 1024; i++) {
    server.service.events.publish(bigEvent(i));
    if (i % 1024 === 0) await new Promise((r) => setImmediate(r));
  }
  await until('both subscribers dropped', () => server.service.events.size === 0);

  // When they do read, they find the events that were held, then the reason.
  call.resume();
  call.on('data', () => undefined);
  const err = (await grpcEnd) as ServiceError;
  assert.equal(err.code, status.RESOURCE_EXHAUSTED);
  assert.match(err.details, /did not read its events/);
  assert.deepEqual(err.metadata.get('hc-error-code'), ['HC_CLIENT_TOO_SLOW']);
  raw.resume();
  const chunks: Buffer[] = [];
  raw.on('data', (c: Buffer) => chunks.push(c));
  await until('the HTTP stream to end', () => /"HC_CLIENT_TOO_SLOW"/.test(Buffer.concat(chunks).subarray(-4096).toString()), 10_000);
  const body = Buffer.concat(chunks);
  assert.ok(body.length < 8 * 1024 * 1024, `${body.length} bytes were held for the HTTP client`);
  raw.destroy();
});
