import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHostPort, parsePortSpec, parsePortSpecs } from './ports.js';
import { ssShowsListener } from './nat.js';

test('parsePortSpec reads the documented forms', () => {
  assert.deepEqual(parsePortSpec('8080:80'), { hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  assert.deepEqual(parsePortSpec('127.0.0.1:5353:53/udp'), { hostAddress: '127.0.0.1', hostPort: 5353, guestPort: 53, protocol: 'udp' });
  assert.deepEqual(parsePortSpec(' 1:65535/TCP '), { hostPort: 1, guestPort: 65535, protocol: 'tcp' });
});

test('parsePortSpec names the bad spec', () => {
  assert.throws(() => parsePortSpec('80'), /port forward "80" is not valid; expected/);
  assert.throws(() => parsePortSpec('8080:0'), /"8080:0": guest port "0"/);
  assert.throws(() => parsePortSpec('70000:80'), /"70000:80": host port "70000"/);
  assert.throws(() => parsePortSpec('8080:80/sctp'), /"8080:80\/sctp": protocol "sctp" is not supported/);
  assert.throws(() => parsePortSpec('localhost:8080:80'), /"localhost:8080:80": "localhost" is not an IPv4 address/);
  assert.throws(() => parsePortSpec('1:2:3:4'), /"1:2:3:4" is not valid/);
  assert.throws(() => parsePortSpec(''), /"" is not valid/);
});

test('parsePortSpecs rejects two specs on the same host port', () => {
  assert.equal(parsePortSpecs(['8080:80', '8080:80/udp', '127.0.0.1:9000:1', '127.0.0.2:9000:1']).length, 4);
  assert.throws(() => parsePortSpecs(['8080:80', '127.0.0.1:8080:81']), /"8080:80" and "127.0.0.1:8080:81" both use host port 8080\/tcp/);
  assert.throws(() => parsePortSpecs(['1.2.3.4:22:22', '1.2.3.4:22:2222']), /both use host port 22\/tcp/);
});

test('ssShowsListener understands ss -Hlntu output', () => {
  const out = [
    'tcp   LISTEN 0      511          0.0.0.0:18080      0.0.0.0:*',
    'tcp   LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*',
    'udp   UNCONN 0      0            [::]:5353          [::]:*',
    'tcp   LISTEN 0      128    [::ffff:10.0.0.5]:22     *:*',
  ].join('\n');
  assert.equal(ssShowsListener(out, '10.1.1.1', 18080, 'tcp'), true);
  assert.equal(ssShowsListener(out, '10.1.1.1', 18080, 'udp'), false);
  assert.equal(ssShowsListener(out, '127.0.0.53', 53, 'tcp'), true);
  assert.equal(ssShowsListener(out, '127.0.0.1', 53, 'tcp'), false);
  assert.equal(ssShowsListener(out, '0.0.0.0', 53, 'tcp'), true);
  assert.equal(ssShowsListener(out, '127.0.0.1', 5353, 'udp'), true);
  assert.equal(ssShowsListener(out, '10.0.0.5', 22, 'tcp'), true);
  assert.equal(ssShowsListener(out, '10.0.0.6', 22, 'tcp'), false);
  assert.equal(ssShowsListener('', '0.0.0.0', 80, 'tcp'), false);
});

test('parseHostPort reads PORT[/tcp|/udp] and names a bad entry', () => {
  assert.deepEqual(parseHostPort('3128'), { port: 3128, protocol: 'tcp' });
  assert.deepEqual(parseHostPort('53/UDP'), { port: 53, protocol: 'udp' });
  assert.throws(() => parseHostPort('0'), /host port "0": host port "0" is not a number from 1 to 65535/);
  assert.throws(() => parseHostPort('80:80'), /host port "80:80" is not valid; expected PORT/);
});
