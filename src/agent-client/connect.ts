/**
 * Opens the host end of an agent channel, then the HCSYNC handshake (see
 * agent/protocol/channel-sync.ts) and a TTRPC client on the rest of the stream. Two kinds:
 *  - `unix`: QEMU's virtio-serial chardev socket; QEMU holds our request until the agent opens its
 *    port, so one connection waits out the boot.
 *  - `hybrid-vsock`: the vsock device of Firecracker and Cloud Hypervisor, whose host end is a unix
 *    socket: write `CONNECT <port>\n`, read `OK <host port>\n`, and the stream is the guest's. While
 *    no guest program listens on the port the VMM closes the connection, so it is retried until the
 *    deadline.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import { SyncReplyScanner, syncRequest } from '../agent/protocol/channel-sync.js';
import { duplexTransport, type Transport } from '../ttrpc/index.js';

const RETRY_MS = 100;
/** The VMMs' reply to CONNECT is `OK <u32>\n`; anything longer is not their protocol. */
const MAX_CONNECT_REPLY = 32;

export interface ChannelOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** `unix` only: called once the socket is connected, before the handshake. */
  onOpen?: () => void;
}

function agentUnavailable(message: string, cause?: unknown): HypercoreError {
  return new HypercoreError(ErrorCodes.agentUnavailable, message, { cause });
}

/** The other end closed before the handshake finished: for hybrid vsock, a guest not listening yet. */
class ClosedEarly extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.agentUnavailable, message);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Connects to the socket, retrying while it does not exist yet (the VMM is still starting). */
async function connectSocket(path: string, deadline: number, signal?: AbortSignal): Promise<Socket> {
  for (;;) {
    if (signal?.aborted) throw agentUnavailable('connecting to the agent was cancelled');
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(socket);
        });
        socket.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw agentUnavailable(`the agent channel ${path} did not accept a connection`, err);
      await sleep(RETRY_MS);
    }
  }
}

/**
 * Reads from `socket` until `done` returns the bytes that follow what it waited for; those are put
 * back and the socket is left paused. Rejects with ClosedEarly when the socket closes first.
 */
function readUntil(socket: Socket, done: (chunk: Buffer) => Buffer | undefined, what: string, deadline: number, options: ChannelOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (err: HypercoreError): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(agentUnavailable(`the agent did not answer within ${Math.round(options.timeoutMs / 1000)} s (${what})`)), Math.max(0, deadline - Date.now()));
    const onAbort = (): void => fail(agentUnavailable('connecting to the agent was cancelled'));
    const onClose = (): void => fail(new ClosedEarly(`the agent channel closed before ${what}`));
    const onError = (): void => undefined; // 'close' follows
    const onData = (chunk: Buffer): void => {
      let rest: Buffer | undefined;
      try {
        rest = done(chunk);
      } catch (err) {
        return fail(err as HypercoreError);
      }
      if (rest === undefined) return;
      cleanup();
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      resolve();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', onError);
    socket.once('close', onClose);
    socket.on('data', onData);
    socket.resume();
  });
}

/** The HCSYNC handshake; resolves with the TTRPC transport over the rest of the stream. */
async function syncChannel(socket: Socket, deadline: number, options: ChannelOptions): Promise<Transport> {
  const nonce = randomBytes(12).toString('hex');
  const scanner = new SyncReplyScanner(nonce);
  socket.write(syncRequest(nonce));
  await readUntil(socket, (chunk) => scanner.push(chunk), "the agent's sync reply", deadline, options);
  return duplexTransport(socket);
}

/** Opens a `unix` agent channel (QEMU's virtio-serial socket). */
export async function openAgentChannel(path: string, options: ChannelOptions): Promise<Transport> {
  const deadline = Date.now() + options.timeoutMs;
  const socket = await connectSocket(path, deadline, options.signal);
  options.onOpen?.();
  try {
    return await syncChannel(socket, deadline, options);
  } catch (err) {
    if (err instanceof ClosedEarly) throw agentUnavailable('the agent channel closed before the agent answered (the VM stopped?)');
    throw err;
  }
}

/** The `CONNECT` reply: `OK <port>` ends it; anything else, or a line too long, is an error. */
function connectReplyReader(path: string): (chunk: Buffer) => Buffer | undefined {
  let line = Buffer.alloc(0);
  return (chunk) => {
    line = Buffer.concat([line, chunk]);
    const nl = line.indexOf(0x0a);
    if (nl < 0) {
      if (line.length > MAX_CONNECT_REPLY) throw agentUnavailable(`the vsock socket ${path} answered CONNECT with ${line.length} bytes and no line end; is it a Firecracker or Cloud Hypervisor vsock socket?`);
      return undefined;
    }
    const text = line.subarray(0, nl).toString('latin1').trim();
    if (!/^OK \d{1,10}$/.test(text)) throw agentUnavailable(`the vsock socket ${path} answered CONNECT with ${JSON.stringify(text.slice(0, MAX_CONNECT_REPLY))}, not "OK <port>"`);
    return line.subarray(nl + 1);
  };
}

/**
 * Opens a `hybrid-vsock` agent channel: CONNECT to the guest's `port`, then the same handshake as
 * virtio-serial. A connection the VMM closes (no guest listener yet), or that the guest side closes
 * before the agent answers (its relay is up, the agent not yet), is retried until the deadline.
 */
export async function openHybridVsockChannel(path: string, port: number, options: ChannelOptions): Promise<Transport> {
  const deadline = Date.now() + options.timeoutMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    const socket = await connectSocket(path, deadline, options.signal);
    try {
      socket.write(`CONNECT ${port}\n`);
      await readUntil(socket, connectReplyReader(path), `the VMM's reply to CONNECT ${port}`, deadline, options);
      return await syncChannel(socket, deadline, options);
    } catch (err) {
      socket.destroy();
      if (!(err instanceof ClosedEarly)) throw err;
      if (Date.now() + RETRY_MS > deadline) {
        throw agentUnavailable(`no agent answered on vsock port ${port} of ${path} within ${Math.round(options.timeoutMs / 1000)} s (${attempts} attempts; the last: ${err.message})`);
      }
      await sleep(RETRY_MS);
    }
  }
}
