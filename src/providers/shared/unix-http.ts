/**
 * A small HTTP/1.1 JSON client over a unix socket, the transport of the Firecracker and Cloud
 * Hypervisor APIs. Each call is one request on its own connection (both VMMs serve one request at a
 * time and close idle connections), with a deadline, and the reply body is bounded: a VMM is a
 * process the daemon does not trust to answer in bounded size or time.
 */
import { request } from 'node:http';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';

export interface ApiReply {
  status: number;
  /** The parsed JSON body; undefined when there was none (204) or it was not JSON. */
  body: unknown;
  /** The raw body, as text. */
  text: string;
}

export interface UnixHttpOptions {
  /** Deadline of one call, connect to last byte. Default 10 s. */
  timeoutMs?: number;
  /** Largest reply body accepted. Default 1 MiB. */
  maxReplyBytes?: number;
}

/** The API socket could not be used: not there, refused, timed out, or a reply too large or malformed. */
export class ApiTransportError extends HypercoreError {
  constructor(
    message: string,
    readonly reason: 'connect' | 'timeout' | 'too-large' | 'protocol',
    cause?: unknown,
  ) {
    super(ErrorCodes.providerFailed, message, { cause });
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_REPLY_BYTES = 1024 * 1024;

export class UnixHttpClient {
  private readonly timeoutMs: number;
  private readonly maxReplyBytes: number;

  constructor(
    readonly socketPath: string,
    options: UnixHttpOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxReplyBytes = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
  }

  /** Sends one request; resolves with any HTTP status (the caller decides what is a failure). */
  call(method: string, path: string, body?: unknown, options: { timeoutMs?: number } = {}): Promise<ApiReply> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const what = `${method} ${path} on ${this.socketPath}`;
    return new Promise<ApiReply>((resolve, reject) => {
      let settled = false;
      const fail = (err: ApiTransportError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(err);
      };
      const req = request({
        socketPath: this.socketPath,
        method,
        path,
        // Both VMMs' servers want a Host header and close the connection after the reply anyway.
        headers: {
          Host: 'localhost',
          Accept: 'application/json',
          Connection: 'close',
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
        },
        agent: false,
      });
      const timer = setTimeout(() => fail(new ApiTransportError(`${what}: no reply within ${timeoutMs} ms`, 'timeout')), timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        const reason = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'connect' : 'protocol';
        fail(new ApiTransportError(`${what}: ${err.message}`, reason, err));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.maxReplyBytes) return fail(new ApiTransportError(`${what}: reply larger than ${this.maxReplyBytes} bytes`, 'too-large'));
          chunks.push(chunk);
        });
        res.on('error', (err) => fail(new ApiTransportError(`${what}: ${err.message}`, 'protocol', err)));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: parseJson(text), text });
        });
      });
      req.end(payload);
    });
  }
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
