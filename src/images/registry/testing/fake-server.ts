/**
 * Test helper: a tiny HTTP server on 127.0.0.1 for behaviour a real registry will not show on
 * demand (corrupt or truncated blobs, 503s, bearer tokens, redirects). Records every request.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the fake server saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

/** A running fake server. */
export interface FakeServer {
  /** `<address>:<port>`. */
  host: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** Handles one request; may be async. */
export type FakeHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>;

/** Starts a server on a random port of a loopback address (default 127.0.0.1). */
export async function startFakeServer(handler: FakeHandler, address = '127.0.0.1'): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      Promise.resolve(handler(req, res, Buffer.concat(chunks))).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, address, () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    host: `${address}:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Sends a JSON (or given) body with a status and headers. */
export function send(res: ServerResponse, status: number, body: string | Buffer = '', headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'content-length': String(bytes.length), ...headers });
  res.end(bytes);
}

/** A registry-style JSON error body. */
export function registryError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  send(res, status, JSON.stringify({ errors: [{ code, message }] }), { 'content-type': 'application/json', ...headers });
}
