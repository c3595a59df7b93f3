/**
 * How the SDK reaches a daemon: its unix socket (no credentials: the socket's mode is the access
 * control), or a remote listener over HTTPS with the daemon's CA and a client certificate (mTLS)
 * and/or a bearer token. It speaks HTTP through node's own http module (https loaded only for a
 * remote daemon, ws only for a WebSocket): an HTTP library costs more to load than a short-lived
 * program's whole call, and the CLI is such a program. One kept-alive agent per client; bodies
 * stream without a timeout (logs and events may be quiet for hours), the connection itself has one.
 */
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import type { WebSocket } from 'ws';
import { DaemonUnavailableError, errorFromBody, type HypercoreApiError } from './errors.js';

export interface UnixSocketTarget {
  /** The daemon's API socket, e.g. /run/hypercore/hypercore.sock. */
  socketPath: string;
}

export interface RemoteTarget {
  /** `https://host:port` (or `http://127.0.0.1:port` for a plain loopback listener). */
  url: string;
  /** The CA that signed the daemon's certificate (PEM); absent: the system's CAs. */
  ca?: string | Buffer;
  /** A client certificate and key (PEM) of the daemon's CA: mTLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** An API token, `hc_<id>.<secret>`, sent as a bearer token. */
  token?: string;
}

export type ConnectionOptions = UnixSocketTarget | RemoteTarget;

/** Longest time to connect (and, remote, finish the TLS handshake or the WebSocket upgrade). */
const CONNECT_TIMEOUT_MS = 30_000;
/** Longest JSON answer or NDJSON line the SDK holds in memory: a hostile or broken daemon cannot grow it further. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export type Method = 'GET' | 'POST' | 'DELETE';

/** How requests reach the daemon: the request function, its agent, and the options each request starts from. */
interface Transport {
  request: (options: RequestOptions, onResponse: (res: IncomingMessage) => void) => ClientRequest;
  agent: Agent;
  base: RequestOptions;
}

export class Connection {
  /** The HTTP origin requests go to (for the unix socket, a placeholder host). */
  readonly origin: string;
  readonly headers: Record<string, string>;
  /** How messages name the daemon: its socket path or its origin. */
  readonly describe: string;
  private readonly remote?: { url: URL; tls: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer } };
  private transport?: Promise<Transport>;

  constructor(readonly options: ConnectionOptions) {
    if ('socketPath' in options) {
      this.origin = 'http://localhost';
      this.headers = {};
      this.describe = options.socketPath;
    } else {
      const url = new URL(options.url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`url ${options.url}: must be https://host:port`);
      const tls = { ...(options.ca ? { ca: options.ca } : {}), ...(options.cert ? { cert: options.cert } : {}), ...(options.key ? { key: options.key } : {}) };
      this.remote = { url, tls };
      this.origin = url.origin;
      this.headers = options.token ? { authorization: `Bearer ${options.token}` } : {};
      this.describe = url.origin;
    }
  }

  /** The unix socket, when the daemon is reached through one. */
  get socketPath(): string | undefined {
    return 'socketPath' in this.options ? this.options.socketPath : undefined;
  }

  private async transportOf(): Promise<Transport> {
    const socketPath = this.socketPath;
    if (socketPath !== undefined) return { request: httpRequest, agent: new Agent({ keepAlive: true, maxSockets: 4 }), base: { socketPath } };
    const { url, tls } = this.remote!;
    const base = { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
    if (url.protocol === 'http:') return { request: httpRequest, agent: new Agent({ keepAlive: true, maxSockets: 4 }), base };
    const https = await import('node:https');
    return { request: https.request, agent: new https.Agent({ keepAlive: true, maxSockets: 4, ...tls }), base };
  }

  /** Sends a request; resolves with the response once its head has come. A daemon out of reach is a DaemonUnavailableError whose cause is the socket's error. */
  async send(method: Method, path: string, body?: unknown, signal?: AbortSignal): Promise<IncomingMessage> {
    const t = await (this.transport ??= this.transportOf());
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const headers = { host: this.socketPath === undefined ? this.remote!.url.host : 'localhost', ...this.headers, ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) };
      const req = t.request({ ...t.base, agent: t.agent, method, path, headers, ...(signal ? { signal } : {}) }, resolve);
      boundConnect(req, CONNECT_TIMEOUT_MS, this.remote?.url.protocol === 'https:');
      req.on('error', (err: NodeJS.ErrnoException) => reject(err.name === 'AbortError' ? err : this.unreachable(err)));
      req.end(data);
    });
  }

  /** The error for a daemon that could not be reached (or dropped the connection before answering). */
  unreachable(err: NodeJS.ErrnoException): HypercoreApiError {
    return new DaemonUnavailableError('HC_DAEMON_UNAVAILABLE', `cannot reach hypercored at ${this.describe}: ${err.code ?? err.message}`, 0, [], { cause: err });
  }

  /** A JSON call: the parsed answer, or the error class of the daemon's error code. */
  async call<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    const text = await readBounded(res);
    const status = res.statusCode ?? 0;
    const payload: unknown = text ? parseJson(text, status) : {};
    if (status >= 400) throw errorFromBody(status, payload);
    return payload as T;
  }

  /** Opens a streaming call; an error status is thrown as its error class. */
  async stream(method: Method, path: string, body?: unknown, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const res = await this.send(method, path, body, signal);
    const status = res.statusCode ?? 0;
    if (status >= 400) throw errorFromBody(status, parseJson(await readBounded(res), status));
    return signal ? endOnAbort(res, signal) : res;
  }

  /**
   * Opens a WebSocket on `path` (exec, attach, the serial console) and waits until it is open. The
   * daemon's refusal of the upgrade becomes its error class; a daemon out of reach, a DaemonUnavailableError.
   * The socket comes paused: the daemon may send at once (attach output, a console's refusal), and
   * nothing is emitted before the caller has its handlers on and calls `resume()`.
   */
  async openWebSocket(path: string): Promise<WebSocket> {
    const { WebSocket } = await import('ws');
    const socketPath = this.socketPath;
    const url = socketPath !== undefined ? `ws+unix:${socketPath}:${path}` : `${this.origin.replace(/^http/, 'ws')}${path}`;
    const socket = new WebSocket(url, { headers: this.headers, perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES, handshakeTimeout: CONNECT_TIMEOUT_MS, ...(this.remote?.tls ?? {}) });
    return new Promise((resolve, reject) => {
      socket.once('open', () => {
        socket.removeAllListeners('error');
        socket.pause();
        resolve(socket);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => reject(this.unreachable(err)));
      socket.once('unexpected-response', (_req, res: IncomingMessage) => {
        void readBounded(res).then(
          (text) => {
            reject(errorFromBody(res.statusCode ?? 0, parseJson(text, res.statusCode ?? 0)));
            socket.terminate();
          },
          (err: unknown) => reject(err),
        );
      });
    });
  }

  async close(): Promise<void> {
    if (this.transport) (await this.transport).agent.destroy();
  }
}

/** The body's chunks; aborting the signal ends them (the response is destroyed) instead of failing the reader. */
async function* endOnAbort(body: AsyncIterable<Buffer>, signal: AbortSignal): AsyncGenerator<Buffer> {
  try {
    yield* body;
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}

/** Fails a request whose new connection (TCP, then TLS) is not up within `ms`; a reused one is. */
function boundConnect(req: ClientRequest, ms: number, secure: boolean): void {
  req.once('socket', (socket) => {
    if (!socket.connecting) return;
    const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no connection within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    const clear = (): void => clearTimeout(timer);
    socket.once(secure ? 'secureConnect' : 'connect', clear);
    socket.once('close', clear);
  });
}

function parseJson(text: string, status: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return status >= 400 ? undefined : { error: { code: 'HC_INTERNAL', message: 'the daemon answered with something that is not JSON' } };
  }
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy?: (err?: Error) => unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_MESSAGE_BYTES) {
      body.destroy?.();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tooLarge(): HypercoreApiError {
  return errorFromBody(0, { error: { code: 'HC_INTERNAL', message: `the daemon sent a message larger than ${MAX_MESSAGE_BYTES} bytes` } });
}

/**
 * NDJSON lines as parsed objects; a line of `{"error": ...}` ends the stream with that error's class.
 * A line longer than MAX_MESSAGE_BYTES ends it with an error instead of growing the buffer.
 */
export async function* ndjson<T>(chunks: AsyncIterable<Buffer>): AsyncGenerator<T> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of chunks) {
    let rest = chunk;
    for (let nl = rest.indexOf(10); nl >= 0; nl = rest.indexOf(10)) {
      const line = Buffer.concat([...pending, rest.subarray(0, nl)]).toString('utf8');
      pending = [];
      pendingBytes = 0;
      rest = rest.subarray(nl + 1);
      if (line.trim()) yield parseLine<T>(line);
    }
    pendingBytes += rest.length;
    if (pendingBytes > MAX_MESSAGE_BYTES) throw tooLarge();
    if (rest.length) pending.push(rest);
  }
  const last = Buffer.concat(pending).toString('utf8');
  if (last.trim()) yield parseLine<T>(last);
}

function parseLine<T>(line: string): T {
  const message = parseJson(line, 200) as { error?: unknown };
  if (message && typeof message === 'object' && 'error' in message && message.error) throw errorFromBody(200, message);
  return message as T;
}
