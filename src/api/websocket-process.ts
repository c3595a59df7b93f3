/**
 * Exec and attach over HTTP: WebSocket routes that speak the gRPC Exec/Attach messages in their
 * proto3 JSON form, one JSON object per text message (bytes as base64), e.g.
 *   → {"start":{"args":["sh"],"tty":true}}  → {"stdin":"bHMK"}  → {"rows":40,"cols":120}
 *   ← {"processId":"…"}  ← {"fd":1,"data":"…"}  ← {"exited":true,"exitCode":0}
 * The VM comes from the URL (`/v1/vms/{id}/exec`, `/v1/vms/{id}/attach?fromStart=true`).
 */
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { asHypercoreError } from '../core/errors.js';
import type { VmService } from '../core/vm-service.js';
import { errorBody } from './error-status.js';
import { registerSerialSocket } from './serial-socket.js';
import { serveProcessSession, type ProcessInput, type ProcessOutput } from './process-session.js';

interface WireInput extends Omit<ProcessInput, 'stdin'> {
  stdin?: string;
}

/** Largest message a client may send (a stdin chunk as base64 JSON); ws would allow 100 MiB. */
const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Input held for the process before the socket stops being read (the client then waits in TCP). */
const INPUT_HIGH_WATER_BYTES = 1024 * 1024;
/** Output queued on the socket before the relay waits for the client to read (and so pauses the process). */
const OUTPUT_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Incoming messages as ProcessInput, ending when the socket closes. The listeners are attached at
 * once, not when iteration starts, so stdin sent right behind the start message is not lost. While
 * more than INPUT_HIGH_WATER_BYTES wait (the process is slow to read its stdin), the socket is paused.
 */
function inputsOf(socket: WebSocket, first: ProcessInput): AsyncGenerator<ProcessInput> {
  const queue: { input: ProcessInput; bytes: number }[] = [{ input: first, bytes: 0 }];
  let queuedBytes = 0;
  let wake: (() => void) | undefined;
  let closed = false;
  socket.on('message', (raw: Buffer) => {
    try {
      const wire = JSON.parse(raw.toString('utf8')) as WireInput;
      queue.push({ input: { ...wire, ...(wire.stdin !== undefined ? { stdin: Buffer.from(wire.stdin, 'base64') } : {}) } as ProcessInput, bytes: raw.length });
      queuedBytes += raw.length;
      if (queuedBytes > INPUT_HIGH_WATER_BYTES) socket.pause();
    } catch {
      // A malformed message is ignored rather than killing an interactive session.
    }
    wake?.();
  });
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  return (async function* () {
    for (;;) {
      const next = queue.shift();
      if (next) {
        queuedBytes -= next.bytes;
        if (socket.isPaused && queuedBytes <= INPUT_HIGH_WATER_BYTES / 2) socket.resume();
        yield next.input;
      } else if (closed) return;
      else await new Promise<void>((r) => (wake = r));
    }
  })();
}

/**
 * Sends one message; once more than OUTPUT_HIGH_WATER_BYTES are queued, resolves only when this message
 * was handed to the kernel, i.e. when the client reads. Rejects when the client is gone, so the relay stops.
 */
function sendPaced(socket: WebSocket, text: string): Promise<void> | undefined {
  if (socket.readyState !== WebSocket.OPEN) return Promise.reject(new Error('the WebSocket client is gone'));
  let settle: (err?: Error) => void = () => {};
  const sent = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  socket.send(text, (err) => settle(err ?? undefined));
  if (socket.bufferedAmount <= OUTPUT_HIGH_WATER_BYTES) {
    sent.catch(() => undefined);
    return undefined;
  }
  const onClose = (): void => settle(new Error('the WebSocket client is gone'));
  socket.once('close', onClose);
  return sent.finally(() => socket.off('close', onClose));
}

function toWire(out: ProcessOutput): string {
  return JSON.stringify({ ...out, ...(out.data ? { data: Buffer.from(out.data).toString('base64') } : {}) });
}

export async function registerProcessSockets(app: FastifyInstance, service: VmService): Promise<void> {
  await app.register(websocket, { options: { maxPayload: MAX_MESSAGE_BYTES } });
  const run = (socket: WebSocket, mode: 'exec' | 'attach', first: ProcessInput) => {
    const gone = new AbortController();
    socket.once('close', () => gone.abort());
    serveProcessSession(service, mode, inputsOf(socket, first), (out) => sendPaced(socket, toWire(out)), gone.signal).then(
      () => socket.close(1000),
      (err: unknown) => {
        socket.send(JSON.stringify(errorBody(asHypercoreError(err))));
        socket.close(1011);
      },
    );
  };
  // exec waits for its `start` message; attach begins at once.
  const exec = (socket: WebSocket, id: string): void => {
    socket.once('message', (raw: Buffer) => {
      let wire: WireInput;
      try {
        wire = JSON.parse(raw.toString('utf8')) as WireInput;
      } catch {
        socket.close(1007, 'the first message must be JSON: {"start":{"args":[...]}}');
        return;
      }
      run(socket, 'exec', { start: { ...(wire.start ?? {}), id } });
    });
  };
  const attach = (socket: WebSocket, id: string, fromStart: boolean) => run(socket, 'attach', { attach: { id, fromStart } });
  app.register(async (scope) => {
    scope.get<{ Params: { id: string } }>('/v1/vms/:id/exec', { websocket: true }, (socket, req) => exec(socket, req.params.id));
    scope.get<{ Params: { id: string }; Querystring: { fromStart?: string } }>('/v1/vms/:id/attach', { websocket: true }, (socket, req) =>
      attach(socket, req.params.id, req.query.fromStart === 'true'),
    );
    registerSerialSocket(scope, service);
  });
}
