/**
 * Opens the host end of an agent channel: a unix socket (QEMU's virtio-serial chardev), the HCSYNC
 * handshake (see agent/protocol/channel-sync.ts), then a TTRPC client on the rest of the stream.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import { SyncReplyScanner, syncRequest } from '../agent/protocol/channel-sync.js';
import { duplexTransport, type Transport } from '../ttrpc/index.js';

const RETRY_MS = 100;

function agentUnavailable(message: string, cause?: unknown): HypercoreError {
  return new HypercoreError(ErrorCodes.agentUnavailable, message, { cause });
}

/** Connects to the socket, retrying while it does not exist yet (the VMM is still starting). */
async function connectSocket(path: string, deadline: number, signal?: AbortSignal): Promise<Socket> {
  for (;;) {
    if (signal?.aborted) throw agentUnavailable('connecting to the agent was cancelled');
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once('connect', () => resolve(socket));
        socket.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw agentUnavailable(`the agent channel ${path} did not accept a connection`, err);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
}

/**
 * Connects and waits for the agent's sync reply, up to `timeoutMs` in all. The guest may still be
 * booting: QEMU holds our request until the agent opens its port, so the wait covers the boot.
 */
export async function openAgentChannel(path: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<Transport> {
  const deadline = Date.now() + options.timeoutMs;
  const socket = await connectSocket(path, deadline, options.signal);
  const nonce = randomBytes(12).toString('hex');
  const scanner = new SyncReplyScanner(nonce);
  return new Promise<Transport>((resolve, reject) => {
    const fail = (err: HypercoreError) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(agentUnavailable(`the agent did not answer within ${Math.round(options.timeoutMs / 1000)} s`)), Math.max(0, deadline - Date.now()));
    const onAbort = () => fail(agentUnavailable('connecting to the agent was cancelled'));
    const onClose = () => fail(agentUnavailable('the agent channel closed before the agent answered (the VM stopped?)'));
    const onData = (chunk: Buffer) => {
      const rest = scanner.push(chunk);
      if (rest === undefined) return;
      cleanup();
      // Hand the socket over with the bytes already read after the reply put back in front.
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      resolve(duplexTransport(socket));
    };
    const cleanup = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(syncRequest(nonce));
  });
}
