/**
 * HTTP plumbing of the registry client: requests with bounded retries (exponential backoff with
 * jitter on network errors, 5xx and 429, never on other 4xx), and body helpers with size limits.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { fetch, type BodyInit, type Dispatcher, type Response } from 'undici';
import { RegistryUnavailableError } from './errors.js';

/** How often and how patiently to retry. */
export interface RetryPolicy {
  /** Extra attempts after the first one. */
  retries: number;
  /** First backoff; doubles per attempt. */
  baseDelayMs: number;
  /** Upper bound of one wait (also caps Retry-After). */
  maxDelayMs: number;
}

/** One HTTP request; `body` is a factory because a stream can be sent only once and retries resend. */
export interface HttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: () => BodyInit;
  signal?: AbortSignal;
}

// 501/505 mean "never going to work"; the other 5xx and 429 are worth another try.
function retriableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** Backoff before retry number `attempt` (0-based): base·2^attempt, capped, with jitter in [50%, 100%]. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const full = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  // Jitter spreads out clients that failed together so they do not hammer the registry in lockstep.
  return Math.round(full * (0.5 + random() * 0.5));
}

/** Retry-After in ms (seconds or an HTTP date), or undefined. */
function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Human text for a network error (fetch wraps the useful part in `cause`). */
export function describeNetworkError(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  if (!(cause instanceof Error)) return String(cause);
  const code = (cause as NodeJS.ErrnoException).code;
  return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
}

/** Whether `err` is the caller's own abort (never retried, passed through as is). */
export function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (err instanceof Error && err.name === 'AbortError');
}

/**
 * Sends `request`, retrying network errors and 5xx/429 up to `policy.retries` times. Returns the
 * first non-retriable response (including 4xx, which the caller interprets); throws
 * RegistryUnavailableError when all attempts fail.
 */
export async function fetchWithRetry(request: HttpRequest, dispatcher: Dispatcher, policy: RetryPolicy, what: string): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const last = attempt >= policy.retries;
    let response: Response;
    try {
      const body = request.body?.();
      response = await fetch(request.url, {
        method: request.method,
        headers: request.headers,
        dispatcher,
        // Redirects are the transport's to judge (redirects.ts), hop by hop.
        redirect: 'manual',
        ...(body !== undefined ? { body, duplex: 'half' as const } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
      });
    } catch (err) {
      if (isAbort(err, request.signal)) throw err;
      if (last) throw new RegistryUnavailableError(`${what}: ${describeNetworkError(err)} (after ${attempt + 1} attempts)`, { cause: err });
      await delay(backoffDelay(attempt, policy), undefined, { signal: request.signal });
      continue;
    }
    if (!retriableStatus(response.status)) return response;
    const detail = await errorDetail(response);
    if (last) throw new RegistryUnavailableError(`${what}: HTTP ${response.status}${detail ? ` (${detail})` : ''} (after ${attempt + 1} attempts)`, { status: response.status });
    const wait = Math.min(policy.maxDelayMs, retryAfterMs(response.headers.get('retry-after')) ?? backoffDelay(attempt, policy));
    await delay(wait, undefined, { signal: request.signal });
  }
}

/**
 * Reads a response body into memory, refusing more than `limit` bytes (manifests and configs
 * are small; a huge body is a broken or hostile registry and must not exhaust memory).
 */
export async function readLimited(response: Response, limit: number, what: string): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw new RegistryUnavailableError(`${what} is ${declared} bytes; more than the ${limit} allowed`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body) {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      if (total > limit) throw new RegistryUnavailableError(`${what} is larger than the ${limit} bytes allowed`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks, total);
}

/**
 * The registry's explanation of an error answer (`{"errors":[{"code","message"}]}` per the
 * distribution spec), or the start of the body; consumes the body.
 */
export async function errorDetail(response: Response): Promise<string> {
  let text: string;
  try {
    text = Buffer.from(await readLimited(response, 64 * 1024, 'error body')).toString('utf8');
  } catch {
    return '';
  }
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      return parsed.errors.map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': ')).join('; ');
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.trim().slice(0, 200);
}
