/**
 * The interactive serial console over HTTP: `GET /v1/vms/{id}/serial` upgrades to a WebSocket
 * bridged to the VM's serial socket (the guest's ttyS0). Binary messages from the daemon are the
 * guest's output; every message from the client (text or binary) is typed into the guest as is.
 * A refusal or failure arrives as one text message {"error": {...}} before the close.
 *
 * One client per VM: the VMM serves one connection per serial socket, so a second client is
 * refused (the first keeps the console) instead of waiting unseen behind it.
 */
import { createConnection, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { asHypercoreError, ClientTooSlowError, VmStateConflictError } from '../core/errors.js';
import type { VmService } from '../core/vm-service.js';
import { errorBody } from './error-status.js';

/**
 * Output queued for the client beyond which it is cut off. The guest's output is never paused for a
 * client: a VMM whose serial client does not read stalls the guest's serial port, and the console
 * log with it.
 */
export const SERIAL_OUTPUT_LIMIT_BYTES = 1024 * 1024;
/** Typed input held for the serial socket before the client's messages stop being read. */
const INPUT_HIGH_WATER_BYTES = 64 * 1024;

/** Sends the error as the session's last message and closes; a no-op once the client is gone. */
function refuse(socket: WebSocket, err: unknown, code = 1011): void {
  if (socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify(errorBody(asHypercoreError(err))));
  socket.close(code);
}

function bridge(socket: WebSocket, serial: Socket, vmName: string, done: () => void): void {
  let finished = false;
  const finish = (err?: unknown): void => {
    if (finished) return;
    finished = true;
    serial.destroy();
    if (err) refuse(socket, err);
    else if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'the serial console closed');
    done();
  };
  serial.on('data', (chunk: Buffer) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount + chunk.length > SERIAL_OUTPUT_LIMIT_BYTES) {
      finish(new ClientTooSlowError(`the client read too slowly: more than ${SERIAL_OUTPUT_LIMIT_BYTES} bytes of VM ${vmName}'s serial output were waiting for it`));
      return;
    }
    socket.send(chunk, { binary: true });
  });
  serial.on('drain', () => socket.isPaused && socket.resume());
  serial.on('close', () => finish());
  serial.on('error', (err) => finish(new VmStateConflictError(`VM ${vmName}'s serial console is not reachable: ${err.message}`)));
  socket.on('message', (data: Buffer) => {
    if (finished) return;
    // A guest slow to take input stops the client's reading (the client then waits in TCP).
    if (!serial.write(data) || serial.writableLength > INPUT_HIGH_WATER_BYTES) socket.pause();
  });
  socket.on('close', () => finish());
}

export function registerSerialSocket(app: FastifyInstance, service: VmService): void {
  /** VM ids whose serial console has a client. */
  const inUse = new Set<string>();
  app.get<{ Params: { id: string } }>('/v1/vms/:id/serial', { websocket: true }, (socket, req) => {
    let vm;
    let path: string;
    try {
      vm = service.get(req.params.id);
      path = service.serialConsole(vm.id);
    } catch (err) {
      refuse(socket, err, 1008);
      return;
    }
    if (inUse.has(vm.id)) {
      refuse(socket, new VmStateConflictError(`VM ${vm.name}'s serial console is in use by another client; only one may type into it at a time`), 1008);
      return;
    }
    const { id, name } = vm;
    inUse.add(id);
    bridge(socket, createConnection(path), name, () => inUse.delete(id));
  });
}
