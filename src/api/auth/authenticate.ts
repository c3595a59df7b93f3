/**
 * Who is calling on the remote listener, and whether they may: a client certificate signed by the
 * daemon's CA (mTLS) is an admin, as in Docker; otherwise a bearer token carries its scope. A
 * client that shows a certificate the CA did not sign, or one that expired, is refused even with a
 * token: the certificate is a claim that failed. Callers on the unix socket never come here.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { PermissionDeniedError, UnauthenticatedError } from '../../core/errors.js';
import { scopeAllows, type TokenScope } from '../../core/api-token.js';
import type { ApiTokens } from './tokens.js';

/** What the TLS handshake learnt of the client's certificate. */
export interface TlsPeer {
  presented: boolean;
  /** Signed by the daemon's CA, in its validity period, usable by a client. */
  authorized: boolean;
  /** OpenSSL's reason when not authorized (CERT_HAS_EXPIRED, ...). */
  error?: string;
  subject?: string;
}

export interface Caller {
  via: 'certificate' | 'token';
  scope: TokenScope;
  /** For logs: the certificate's subject CN, or the token id. */
  name: string;
}

/** The certificate state of a TLS connection; undefined for plain TCP. */
export function tlsPeerOf(socket: Socket): TlsPeer | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  const cert = socket.getPeerCertificate();
  const presented = cert !== null && typeof cert === 'object' && Object.keys(cert).length > 0;
  const error = socket.authorizationError as unknown;
  return {
    presented,
    authorized: presented && socket.authorized,
    ...(error ? { error: String(error) } : {}),
    ...(presented && cert.subject?.CN ? { subject: String(cert.subject.CN) } : {}),
  };
}

const NO_CREDENTIALS = "no credentials: present a client certificate signed by the daemon's CA (hypercore --tls-dir), or a bearer token (hypercore --token; see hypercore token create)";

export class RemoteAuth {
  constructor(private readonly tokens: ApiTokens) {}

  /** @throws UnauthenticatedError naming what is wrong with the credentials. */
  authenticate(tls: TlsPeer | undefined, authorization: string | undefined): Caller {
    if (tls?.presented) {
      if (!tls.authorized) throw new UnauthenticatedError(`client certificate${tls.subject ? ` "${tls.subject}"` : ''} refused: ${tls.error ?? 'not signed by the CA of this daemon'}`);
      return { via: 'certificate', scope: 'admin', name: tls.subject ?? '(no CN)' };
    }
    if (authorization === undefined || authorization === '') throw new UnauthenticatedError(NO_CREDENTIALS);
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new UnauthenticatedError('the Authorization header must be "Bearer <token>"');
    const token = this.tokens.verify(m[1]!);
    return { via: 'token', scope: token.scope, name: token.id };
  }

  /** @throws PermissionDeniedError when the caller's scope is short of `needed`. */
  authorize(caller: Caller, needed: TokenScope, what: string): void {
    if (!scopeAllows(caller.scope, needed)) {
      throw new PermissionDeniedError(`${what} needs scope ${needed}; ${caller.via === 'token' ? `token ${caller.name}` : `certificate ${caller.name}`} has scope ${caller.scope}`);
    }
  }
}
