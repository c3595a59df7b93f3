/**
 * Exec and attach over HTTP: WebSocket routes that speak the gRPC Exec/Attach messages in their
 * proto3 JSON form, one JSON object per text message (bytes as base64), e.g.
 *   → {"start":{"args":["sh"],"tty":true}}  → {"stdin":"bHMK"}  → {"rows":40,"cols":120}
 *   ← {"processId":"…"}  ← {"fd":1,"data":"…"}  ← {"exited":true,"exitCode":0}
 * The VM comes from the URL (`/v1/vms/{id}/exec`, `/v1/vms/{id}/attach?fromStart=true`).
 */
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { asHypercoreError } from '../core/errors.js';
import type { VmService } from '../core/vm-service.js';
import { errorBody } from './error-status.js';
import { serveProcessSession, type ProcessInput, type ProcessOutput } from './process-session.js';

interface WireInput extends Omit<ProcessInput, 'stdin'> {
  stdin?: string;
}

/**
 * Incoming messages as ProcessInput, ending when the socket closes. The listeners are attached at
 * once, not when iteration starts, so stdin sent right behind the start message is not lost.
 */
function inputsOf(socket: WebSocket, first: ProcessInput): AsyncGenerator<ProcessInput> {
  const queue: ProcessInput[] = [first];
  let wake: (() => void) | undefined;
  let closed = false;
  socket.on('message', (raw: Buffer) => {
    try {
      const wire = JSON.parse(raw.toString('utf8')) as WireInput;
      queue.push({ ...wire, ...(wire.stdin !== undefined ? { stdin: Buffer.from(wire.stdin, 'base64') } : {}) } as ProcessInput);
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
      if (next) yield next;
      else if (closed) return;
      else await new Promise<void>((r) => (wake = r));
    }
  })();
}

function toWire(out: ProcessOutput): string {
  return JSON.stringify({ ...out, ...(out.data ? { data: Buffer.from(out.data).toString('base64') } : {}) });
}

export async function registerProcessSockets(app: FastifyInstance, service: VmService): Promise<void> {
  await app.register(websocket);
  const run = (socket: WebSocket, mode: 'exec' | 'attach', first: ProcessInput) => {
    serveProcessSession(service, mode, inputsOf(socket, first), (out) => void socket.send(toWire(out))).then(
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
  });
}
