/**
 * Which daemon the CLI talks to, and how: its unix socket (the default), or a remote listener
 * (`--host https://ADDR:PORT`, HYPERCORE_HOST) with the CA that signed the daemon's certificate and
 * optionally a client certificate (`--tls-dir`, HYPERCORE_TLS_DIR) and/or a bearer token
 * (`--token`, HYPERCORE_TOKEN). Bad values are named with the flag or variable they came from.
 */
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ConfigInvalidError } from '../core/errors.js';
import { apiSocketPath } from '../daemon/settings.js';
import { loadClientIdentity } from '../tls/material.js';

export interface UnixEndpoint {
  kind: 'unix';
  socketPath: string;
}

export interface RemoteEndpoint {
  kind: 'remote';
  /** `https://host:port` or `http://127.0.0.1:port`. */
  origin: string;
  /** The host part alone (an IPv6 address without brackets). */
  host: string;
  /** `host:port` as gRPC names a target (IPv6 in brackets). */
  grpcTarget: string;
  secure: boolean;
  /** Absent: the system's CAs check the daemon. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  token?: string;
}

export type Endpoint = UnixEndpoint | RemoteEndpoint;

export interface EndpointFlags {
  socket?: string;
  host?: string;
  tlsDir?: string;
  token?: string;
}

function sourced(flag: string | undefined, flagName: string, env: NodeJS.ProcessEnv, envName: string): { value: string; from: string } | undefined {
  if (flag !== undefined) return { value: flag, from: flagName };
  const value = env[envName];
  return value !== undefined && value !== '' ? { value, from: envName } : undefined;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
}

/** @throws ConfigInvalidError naming the flag or variable of a bad value. */
export function resolveEndpoint(flags: EndpointFlags, env: NodeJS.ProcessEnv): Endpoint {
  const host = sourced(flags.host, '--host', env, 'HYPERCORE_HOST');
  if (!host) return { kind: 'unix', socketPath: apiSocketPath(flags.socket, env) };
  if (flags.socket !== undefined) throw new ConfigInvalidError('--socket and --host name two daemons: give one');
  const bad = (message: string): never => {
    throw new ConfigInvalidError(`${host.from} = ${JSON.stringify(host.value)}: ${message}`, [{ path: host.from, message, value: host.value }]);
  };
  let url: URL;
  try {
    url = new URL(host.value);
  } catch {
    return bad('must be a URL like https://hypercore.example:7443');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') bad('the scheme must be https (or http for a loopback daemon started with --insecure-loopback)');
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) bad('must be scheme://HOST:PORT, nothing more');
  const secure = url.protocol === 'https:';
  const bareHost = url.hostname.replace(/^\[(.*)\]$/, '$1');
  // A token sent over plain TCP could be read on the way; only loopback traffic stays on this host.
  if (!secure && !isLoopback(bareHost)) bad('plain http is only for loopback addresses; use https');
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const token = sourced(flags.token, '--token', env, 'HYPERCORE_TOKEN');
  const tlsDir = sourced(flags.tlsDir, '--tls-dir', env, 'HYPERCORE_TLS_DIR');
  const tls = secure && tlsDir ? loadClientIdentity(resolve(tlsDir.value), tlsDir.from) : undefined;
  return {
    kind: 'remote',
    origin: `${url.protocol}//${url.hostname}:${port}`,
    host: bareHost,
    grpcTarget: `${url.hostname}:${port}`,
    secure,
    ...(tls ? { tls } : {}),
    ...(token ? { token: token.value } : {}),
  };
}
