/**
 * One unix socket, two protocols: a connection that opens with the HTTP/2 preface is gRPC and is
 * piped to the gRPC server's own socket; anything else is HTTP/1.1 and goes to the HTTP server.
 * So `curl --unix-socket SOCK` and a gRPC client use the same path.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { chmod, rm } from 'node:fs/promises';

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** 'grpc' / 'http' once enough bytes arrived to tell, undefined while still ambiguous. */
export function classify(head: Buffer): 'grpc' | 'http' | undefined {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (!head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return 'http';
  return head.length >= HTTP2_PREFACE.length ? 'grpc' : undefined;
}

export async function listenMultiplexed(socketPath: string, http: HttpServer, grpcSocketPath: string): Promise<Server> {
  await rm(socketPath, { force: true });
  const server = createServer((socket) => route(socket, http, grpcSocketPath));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Restrictive umask-independent permissions: the socket controls VMs, so only its owner may use it.
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o600);
  return server;
}

function route(socket: Socket, http: HttpServer, grpcSocketPath: string): void {
  sniffProtocol(socket, (kind) => {
    if (kind === 'http') {
      http.emit('connection', socket);
      return;
    }
    const upstream = connect(grpcSocketPath);
    socket.pipe(upstream).pipe(socket);
    const close = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
}

/**
 * Reads a connection's first bytes until they tell gRPC (the HTTP/2 preface) from HTTP/1.1, puts
 * them back in front, and hands the paused socket to `onKind`, which must consume it. A client that
 * says nothing for `timeoutMs` (when given) is disconnected: it would otherwise hold a socket forever.
 */
export function sniffProtocol(socket: Socket, onKind: (kind: 'grpc' | 'http') => void, timeoutMs?: number): void {
  let head = Buffer.alloc(0);
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => socket.destroy(), timeoutMs);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const kind = classify(head);
    if (!kind) return;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    socket.unshift(head);
    onKind(kind);
    socket.resume();
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
  socket.once('close', () => clearTimeout(timer));
}
