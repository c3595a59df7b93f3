/**
 * How the SDK reaches a daemon: its unix socket (no credentials: the socket's mode is the access
 * control), or a remote listener over HTTPS with the daemon's CA and a client certificate (mTLS)
 * and/or a bearer token. One undici Agent per client; bodies stream without a timeout (logs and
 * events may be quiet for hours), the connection itself has one.
 */
import { Agent, request, type Dispatcher } from 'undici';
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

/** Longest time to connect (and, remote, finish the TLS handshake). */
const CONNECT_TIMEOUT_MS = 30_000;
/** Longest JSON answer or NDJSON line the SDK holds in memory: a hostile or broken daemon cannot grow it further. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export type Method = 'GET' | 'POST' | 'DELETE';

export class Connection {
  private readonly agent: Agent;
  /** The HTTP origin requests go to (for the unix socket, a placeholder host). */
  readonly origin: string;
  readonly headers: Record<string, string>;
  readonly describe: string;

  constructor(readonly options: ConnectionOptions) {
    if ('socketPath' in options) {
      this.agent = new Agent({ connect: { socketPath: options.socketPath, timeout: CONNECT_TIMEOUT_MS }, bodyTimeout: 0, headersTimeout: 0 });
      this.origin = 'http://localhost';
      this.headers = {};
      this.describe = options.socketPath;
    } else {
      const url = new URL(options.url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`url ${options.url}: must be https://host:port`);
      const tls = { ...(options.ca ? { ca: options.ca } : {}), ...(options.cert ? { cert: options.cert } : {}), ...(options.key ? { key: options.key } : {}) };
      this.agent = new Agent({ connect: { ...tls, timeout: CONNECT_TIMEOUT_MS }, bodyTimeout: 0, headersTimeout: 0 });
      this.origin = url.origin;
      this.headers = options.token ? { authorization: `Bearer ${options.token}` } : {};
      this.describe = url.origin;
    }
  }

  /** The TLS and socket options a WebSocket to the same daemon needs. */
  get socketPath(): string | undefined {
    return 'socketPath' in this.options ? this.options.socketPath : undefined;
  }

  async send(method: Method, path: string, body?: unknown, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    try {
      return await request(`${this.origin}${path}`, {
        method,
        dispatcher: this.agent,
        headers: { ...this.headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as { cause?: NodeJS.ErrnoException }).cause?.code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        throw new DaemonUnavailableError('HC_DAEMON_UNAVAILABLE', `cannot reach hypercored at ${this.describe}: ${code}`, 0);
      }
      throw err;
    }
  }

  /** A JSON call: the parsed answer, or the error class of the daemon's error code. */
  async call<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    const text = await readBounded(res.body);
    const payload: unknown = text ? parseJson(text, res.statusCode) : {};
    if (res.statusCode >= 400) throw errorFromBody(res.statusCode, payload);
    return payload as T;
  }

  /** Opens a streaming call; an error status is thrown as its error class. */
  async stream(method: Method, path: string, body?: unknown, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const res = await this.send(method, path, body, signal);
    if (res.statusCode >= 400) throw errorFromBody(res.statusCode, parseJson(await readBounded(res.body), res.statusCode));
    return res.body as AsyncIterable<Buffer>;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
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
