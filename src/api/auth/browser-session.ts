/**
 * Browser sessions on the remote listener. A browser cannot send a bearer header on its own, so the
 * console's login turns a pasted token into a cookie that carries the token itself: every request
 * then verifies the token as a header would, so a revoked or expired token stops working at once.
 * The cookie is HttpOnly (no script reads it), Secure and SameSite=Strict (no other site's page
 * sends it). As a second wall, requests that a page of another site could still make a browser send
 * (a WebSocket upgrade, which SameSite does not cover for every browser, and any state change made
 * on the strength of the cookie) must carry an `Origin` naming this very daemon.
 */
import { PermissionDeniedError } from '../../core/errors.js';

export const SESSION_COOKIE = 'hypercore_session';

/** The longest a browser keeps the cookie; the token's own expiry still applies on each request. */
const SESSION_MAX_AGE_SECONDS = 12 * 60 * 60;

/** The Set-Cookie value that logs the browser in with `token`. */
export function sessionCookie(token: string): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_SECONDS}`;
}

/** The Set-Cookie value that logs the browser out. */
export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;
}

/** The token in the session cookie of a `Cookie` header, if any. */
export function sessionToken(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const pair of cookieHeader.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    try {
      const value = decodeURIComponent(pair.slice(eq + 1).trim());
      return value === '' ? undefined : value;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** What the Origin check needs of a request. */
export interface OriginFacts {
  method: string;
  /** The `Origin` header, when the client sent one. */
  origin: string | undefined;
  /** The `Host` header: the daemon as the browser addressed it. */
  host: string | undefined;
  /** A WebSocket upgrade. */
  upgrade: boolean;
  /** The credentials came from the session cookie (not a header or a certificate). */
  byCookie: boolean;
}

/** Whether `origin` is a page of the daemon itself (same host and port; the scheme is the listener's). */
function isOwnOrigin(origin: string, host: string | undefined): boolean {
  if (!host) return false;
  try {
    const url = new URL(origin);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.host === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * @throws PermissionDeniedError when a page of another site may be behind the request: an upgrade
 * or a cookie-authenticated state change with a foreign Origin, or a cookie-authenticated one with none.
 */
export function checkOrigin(req: OriginFacts): void {
  const changesState = req.upgrade || !(req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS');
  if (!changesState) return;
  if (req.origin !== undefined) {
    if (!isOwnOrigin(req.origin, req.host)) throw new PermissionDeniedError(`Origin ${req.origin} is not this daemon (${req.host ?? 'no Host header'}): a page of another site may not drive it`);
    return;
  }
  if (req.byCookie) throw new PermissionDeniedError(`${req.upgrade ? 'a WebSocket upgrade' : `${req.method}`} with the session cookie needs an Origin header naming this daemon`);
}
