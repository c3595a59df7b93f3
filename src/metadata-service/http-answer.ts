/**
 * The metadata endpoint's HTTP contract, one implementation for both places that serve it (the
 * daemon on a NAT bridge, the agent inside a guest): `GET /v1/metadata` answers every key as one
 * JSON object, `GET /v1/metadata/KEY` the raw value; only GET and HEAD; nothing is cached.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MetadataValues } from '../core/metadata.js';

/** One guest's values and secrets, as the endpoint reads them. */
export interface MetadataSource {
  all(): Readonly<Record<string, string>>;
  lookup(key: string): string | undefined;
}

/** Values and secrets as one source: the guest's own workload may read them all. */
export function metadataSource(m: MetadataValues): MetadataSource {
  const lookup = (key: string): string | undefined => {
    if (Object.hasOwn(m.values, key)) return m.values[key];
    if (Object.hasOwn(m.secrets, key)) return m.secrets[key];
    return undefined;
  };
  return {
    lookup,
    all: () => Object.fromEntries([...Object.keys(m.values), ...Object.keys(m.secrets)].sort().map((key) => [key, lookup(key)!])),
  };
}

export const METADATA_PATH = '/v1/metadata';

/** A guest's tools ask one thing at a time; more at once is a runaway loop, not a client. */
export const METADATA_MAX_CONNECTIONS = 64;

/**
 * Server options for an endpoint that untrusted guests reach: small headers, and a client that
 * stalls is cut off instead of holding a socket.
 */
export const METADATA_SERVER_OPTIONS = { requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000, maxHeaderSize: 8 * 1024 } as const;

/** `::ffff:10.0.0.1` is 10.0.0.1 (a dual-stack listener reports IPv4 peers that way). */
export function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

export function sendText(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Answers one request from `source`. */
export function answerMetadata(source: MetadataSource, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    // Whatever body came with it is not read: the connection ends with the answer.
    res.shouldKeepAlive = false;
    return sendText(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
  }
  const path = (req.url ?? '').split('?', 1)[0]!;
  if (path === METADATA_PATH || path === `${METADATA_PATH}/`) return sendText(res, 200, 'application/json', `${JSON.stringify(source.all())}\n`);
  if (!path.startsWith(`${METADATA_PATH}/`)) return sendText(res, 404, 'text/plain; charset=utf-8', `not found; see ${METADATA_PATH}\n`);
  let key: string;
  try {
    key = decodeURIComponent(path.slice(METADATA_PATH.length + 1));
  } catch {
    return sendText(res, 400, 'text/plain; charset=utf-8', 'malformed key\n');
  }
  const value = source.lookup(key);
  if (value === undefined) return sendText(res, 404, 'text/plain; charset=utf-8', 'no such key\n');
  // The raw value, exactly as set: a newline would change a token or a password.
  sendText(res, 200, 'text/plain; charset=utf-8', value);
}
