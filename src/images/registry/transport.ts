/**
 * One place that talks HTTP to registries: picks http/https per registry, attaches and renews
 * authentication, retries, and maps 401/403 to RegistryAuthError. Everything else builds on `send`.
 */
import { Agent, type BodyInit, type Response } from 'undici';
import { AuthManager, type AuthTarget } from './auth.js';
import type { CredentialSource } from './credentials.js';
import { RegistryAuthError } from './errors.js';
import { errorDetail, fetchWithRetry, readLimited, type RetryPolicy } from './http.js';
import { isInsecureByDefault, registryApiHost } from './reference.js';

/** Options shared by the transport and the client. */
export interface TransportOptions {
  /** Where logins come from (Docker's config.json via CredentialStore, usually). */
  credentials?: CredentialSource;
  /** Registries (`host` or `host:port`) spoken to over plain HTTP besides loopback ones. */
  insecureRegistries?: string[];
  /** Extra attempts on network errors, 5xx and 429 (default 3). */
  retries?: number;
  /** First backoff delay in ms, doubling per attempt (default 250). */
  retryBaseDelayMs?: number;
  userAgent?: string;
  /** Max wait for response headers and between body chunks, in ms (default 30000). */
  fetchTimeoutMs?: number;
}

/** One request through `send`. */
export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Factory, because retries and re-authentication resend the body. */
  body?: () => BodyInit;
  signal?: AbortSignal;
  /** What is being done, for error messages: `GET manifest x/y:tag`. */
  what: string;
  /** Filled in by `send`: whether the answered request carried an Authorization header. */
  authState?: { authorized: boolean };
}

/** Sends authenticated, retried requests to registries. */
export class RegistryTransport {
  private readonly dispatcher: Agent;
  private readonly policy: RetryPolicy;
  private readonly auth: AuthManager;
  private readonly insecure: readonly string[];
  private readonly userAgent: string;

  constructor(options: TransportOptions = {}) {
    const timeout = options.fetchTimeoutMs ?? 30_000;
    this.dispatcher = new Agent({ headersTimeout: timeout, bodyTimeout: timeout, connectTimeout: Math.min(timeout, 10_000) });
    this.policy = { retries: options.retries ?? 3, baseDelayMs: options.retryBaseDelayMs ?? 250, maxDelayMs: 10_000 };
    this.insecure = options.insecureRegistries ?? [];
    this.userAgent = options.userAgent ?? 'hypercore/0.1';
    this.auth = new AuthManager((url, headers) => this.getToken(url, headers), options.credentials, this.insecure);
  }

  /** `http(s)://api-host` of a registry: plain HTTP only for loopback and configured insecure registries. */
  baseUrl(registry: string): string {
    const scheme = isInsecureByDefault(registry, this.insecure) ? 'http' : 'https';
    return `${scheme}://${registryApiHost(registry)}`;
  }

  /**
   * Sends a request to `pathOrUrl` (relative to the registry, or absolute such as an upload
   * Location). On 401 it authenticates once and resends; a second 401, or a 403, throws
   * RegistryAuthError. Other statuses are returned for the caller to interpret.
   */
  async send(target: AuthTarget, pathOrUrl: string, options: SendOptions): Promise<Response> {
    const base = this.baseUrl(target.registry);
    const url = new URL(pathOrUrl, base);
    // Credentials go only to the registry itself, never to another origin it points us at.
    const sameOrigin = url.origin === new URL(base).origin;
    let authorization = sameOrigin ? await this.auth.authorization(target) : undefined;
    for (let round = 0; ; round++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...options.headers };
      if (authorization !== undefined) headers.authorization = authorization;
      const request = { url: url.toString(), method: options.method ?? 'GET', headers, ...(options.body ? { body: options.body } : {}), ...(options.signal ? { signal: options.signal } : {}) };
      const response = await fetchWithRetry(request, this.dispatcher, this.policy, `${options.what} (${target.registry})`);
      if (response.status === 403) {
        const detail = await errorDetail(response);
        throw new RegistryAuthError(target.registry, target.repository, `access denied (HTTP 403${detail ? `: ${detail}` : ''})`);
      }
      if (options.authState) options.authState.authorized = authorization !== undefined;
      if (response.status !== 401 || !sameOrigin) return response;
      const challenge = response.headers.get('www-authenticate');
      const detail = await errorDetail(response);
      if (round >= 1) {
        throw new RegistryAuthError(target.registry, target.repository, `the registry still answered 401 after authenticating${detail ? ` (${detail})` : ''}; check the login (\`hypercore login ${target.registry}\`) and that the repository exists and is readable`);
      }
      authorization = await this.auth.unauthorized(target, challenge, authorization);
    }
  }

  /** Closes pooled connections; the transport must not be used afterwards. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private async getToken(url: string, headers: Record<string, string>): Promise<{ status: number; body: unknown; detail: string }> {
    const response = await fetchWithRetry({ url, method: 'GET', headers: { 'user-agent': this.userAgent, ...headers } }, this.dispatcher, this.policy, `GET token ${new URL(url).host}`);
    if (response.status !== 200) return { status: response.status, body: undefined, detail: await errorDetail(response) };
    const bytes = await readLimited(response, 1024 * 1024, 'token response');
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch {
      body = undefined;
    }
    return { status: 200, body, detail: '' };
  }
}
