/**
 * The CLI's words for the SDK's errors: a daemon out of reach is told with what to do about it (start
 * hypercored, fix the socket's permissions, pass --tls-dir...), and every API error becomes a
 * HypercoreError with the daemon's code, message and details, which the CLI prints and exits 1 on.
 */
import { HypercoreApiError } from '../../sdk/src/index.js';
import { ErrorCodes, HypercoreError, type ErrorCode, type ValidationIssue } from '../core/errors.js';
import type { Endpoint, RemoteEndpoint } from './endpoint.js';

/** Why the daemon cannot be reached, for the connection errors that say so; undefined for others. */
export function daemonUnavailable(code: string | undefined, socketPath: string): string | undefined {
  if (code === 'ENOENT' || code === 'ECONNREFUSED') return `hypercored is not running (nothing listens on ${socketPath}); start it with \`hypercored &\` (as root), or point --socket / HYPERCORE_SOCKET at a running one`;
  if (code === 'EACCES' || code === 'EPERM') return `permission denied on ${socketPath}: the API socket is mode 0600, for the daemon's user only (whoever can use it is root on the host); run hypercore as that user`;
  return undefined;
}

/** TLS errors (OpenSSL's codes, and Node's name check) that mean: this daemon's certificate is not trusted. */
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME_INVALID|unable to verify|self[- ]signed|altname/i;

/** Why a remote daemon cannot be reached, for the connection errors that say so; undefined for others. */
export function remoteUnavailable(endpoint: RemoteEndpoint, code: string | undefined, message: string): string | undefined {
  const where = endpoint.origin;
  if (code === 'ECONNREFUSED') return `nothing listens on ${where}; is hypercored running with --listen there?`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve the host of ${where}`;
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return `${where} did not answer in time`;
  if (UNTRUSTED.test(`${code ?? ''} ${message}`)) return `the certificate of ${where} is not trusted (${code ?? message}); pass --tls-dir (or HYPERCORE_TLS_DIR) with the ca.pem that signed it`;
  if (code === 'ECONNRESET' || code === 'EPROTO' || /ssl|tls|handshake|wrong version/i.test(message)) {
    return `the TLS connection to ${where} failed: ${message}${endpoint.secure ? '' : ' (is it an https listener?)'}`;
  }
  return undefined;
}

/** The error as the CLI reports it; errors that are not the SDK's pass unchanged. */
export function cliError(err: unknown, endpoint: Endpoint): unknown {
  if (!(err instanceof HypercoreApiError)) return err;
  const cause = err.cause as NodeJS.ErrnoException | undefined;
  if (err.code === ErrorCodes.daemonUnavailable && cause instanceof Error) {
    const why = endpoint.kind === 'remote' ? remoteUnavailable(endpoint, cause.code, cause.message) : daemonUnavailable(cause.code, endpoint.socketPath);
    if (why) return new HypercoreError(ErrorCodes.daemonUnavailable, why, { cause });
  }
  return new HypercoreError(err.code as ErrorCode, err.message, { details: err.details as readonly ValidationIssue[], cause: err });
}
