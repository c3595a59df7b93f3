import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CallContext, UnaryHandler } from '../ttrpc/index.js';
import { messages } from './protocol/containerd.js';
import { SHIM_VERSION, taskService } from './task-service.js';
import type { ShimContext, TaskEngine } from './tasks.js';

const ctx: ShimContext = { owner: '/run/containerd/containerd.sock', events: '/run/containerd/containerd.sock.ttrpc', namespace: 'k8s.io', sandboxId: 'sb1' };
const call: CallContext = { service: 'containerd.task.v2.Task', method: 'Connect', streamId: 1, metadata: {}, signal: new AbortController().signal };

async function connect(shimPid?: () => number | Promise<number>): Promise<{ shimPid: number; taskPid: number; version: string }> {
  const engine = { taskPid: (_c: ShimContext, id: string) => (id === 'sb1' ? 4321 : 0) } as unknown as TaskEngine;
  const service = taskService(engine, ctx, () => {}, shimPid);
  const handler = service['Connect'] as UnaryHandler;
  const answer = await handler(messages.ConnectRequest.encode({ id: 'sb1' }), call);
  return messages.ConnectResponse.decode(answer) as { shimPid: number; taskPid: number; version: string };
}

test('Connect reports the process that holds containerd\'s connection as the shim (the keeper), and the task\'s pid', async () => {
  assert.deepEqual(await connect(() => 777), { shimPid: 777, taskPid: 4321, version: SHIM_VERSION });
  // A keeper's pid may have to be waited for (a new keeper that has not said hello yet).
  assert.equal((await connect(() => new Promise((r) => setTimeout(() => r(778), 20)))).shimPid, 778);
  // Without a keeper, hypercored itself holds the connection.
  assert.equal((await connect()).shimPid, process.pid);
});
