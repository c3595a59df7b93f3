import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HybridVsockEndpoint } from '../providers/shared/hybrid-vsock-endpoint.js';
import { listenUnix } from '../agent/channel.js';
import { registerAgentService } from '../agent/service.js';
import { TtrpcServer } from '../ttrpc/index.js';
import { TtrpcAgentConnector } from './agent-session.js';
import { openHybridVsockChannel } from './connect.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'hc-hvsock-'));
}

test('hybrid vsock: retries while the guest has no listener, then CONNECT, OK, handshake and TTRPC', async () => {
  const dir = await tempDir();
  const agentSocket = join(dir, 'agent.sock');
  let listening = false;
  const vmm = new HybridVsockEndpoint((port) => (port === 1024 && listening ? agentSocket : undefined));
  await vmm.listen(join(dir, 'v.sock'));
  const server = new TtrpcServer();
  registerAgentService(server, { powerOff: () => undefined });
  // The guest's agent comes up 400 ms after the host starts trying.
  const late = setTimeout(() => {
    void listenUnix(server, agentSocket).then((l) => {
      listening = true;
      cleanup.push(() => l.close());
    });
  }, 400);
  const cleanup: (() => void)[] = [];
  try {
    const session = await new TtrpcAgentConnector().connect({ kind: 'hybrid-vsock', path: join(dir, 'v.sock'), port: 1024 }, { timeoutMs: 5000 });
    const info = await session.hello();
    assert.ok(info.agentVersion.length > 0);
    session.close();
    assert.ok(vmm.connects.length >= 2, `the host retried (${vmm.connects.length} CONNECTs)`);
    assert.ok(vmm.connects.every((c) => c === 'CONNECT 1024'));
  } finally {
    clearTimeout(late);
    cleanup.forEach((f) => f());
    await vmm.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('hybrid vsock: no listener until the deadline is a clear agent-unavailable error', async () => {
  const dir = await tempDir();
  const vmm = new HybridVsockEndpoint(() => undefined);
  await vmm.listen(join(dir, 'v.sock'));
  try {
    await assert.rejects(openHybridVsockChannel(join(dir, 'v.sock'), 1024, { timeoutMs: 600 }), /no agent answered on vsock port 1024 .* within/);
  } finally {
    await vmm.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('hybrid vsock: a socket that is not a VMM vsock socket (a flood without a line end, a wrong reply) fails at once', async () => {
  const dir = await tempDir();
  const flood = createServer((s) => {
    s.on('error', () => undefined);
    s.write(Buffer.alloc(4096, 0x41));
  });
  const wrong = createServer((s) => {
    s.on('error', () => undefined);
    s.write('HTTP/1.1 400 Bad Request\n');
  });
  await new Promise<void>((r) => flood.listen(join(dir, 'flood.sock'), r));
  await new Promise<void>((r) => wrong.listen(join(dir, 'wrong.sock'), r));
  try {
    const started = Date.now();
    await assert.rejects(openHybridVsockChannel(join(dir, 'flood.sock'), 1024, { timeoutMs: 5000 }), /no line end/);
    await assert.rejects(openHybridVsockChannel(join(dir, 'wrong.sock'), 1024, { timeoutMs: 5000 }), /not "OK <port>"/);
    assert.ok(Date.now() - started < 2000, 'no retrying on a protocol error');
  } finally {
    flood.close();
    wrong.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('hybrid vsock: a cancelled connect stops retrying', async () => {
  const dir = await tempDir();
  const vmm = new HybridVsockEndpoint(() => undefined);
  await vmm.listen(join(dir, 'v.sock'));
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 200);
  try {
    await assert.rejects(openHybridVsockChannel(join(dir, 'v.sock'), 1024, { timeoutMs: 10_000, signal: abort.signal }), /cancelled/);
  } finally {
    await vmm.close();
    await rm(dir, { recursive: true, force: true });
  }
});
