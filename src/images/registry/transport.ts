/**
 * One place that talks HTTP to registries: picks http/https per registry, attaches and renews
 * authentication, retries, and maps 401/403 to RegistryAuthError. Everything else builds on `send`.
 */
import { isIP } from 'node:net';
import { Agent, type BodyInit, type Response } from 'undici';
import { AuthManager, type AuthTarget } from './auth.js';
import type { CredentialSource } from './credentials.js';
import { RegistryAuthError } from './errors.js';
import { errorDetail, fetchWithRetry, readLimited, type HttpRequest, type RetryPolicy } from './http.js';
import { isInsecureByDefault, registryApiHost } from './reference.js';
import { addressKind, checkRedirect, guardedLookup, isRedirect, type RedirectTrust } from './redirects.js';

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
  private readonly timeout: number;
  /** Agents for redirect hops to other origins, by trust: their sockets check what host names resolve to. */
  private readonly hopAgents = new Map<boolean, Agent>();

  constructor(options: TransportOptions = {}) {
    const timeout = options.fetchTimeoutMs ?? 30_000;
    this.timeout = timeout;
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
      const response = await this.fetchFollowing(request, target.registry, `${options.what} (${target.registry})`);
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
    for (const agent of this.hopAgents.values()) await agent.close();
  }

  /** How far redirects of `registry` are trusted: local ones (loopback, private, insecure-listed) further. */
  private trustOf(registry: string): RedirectTrust {
    const host = new URL(this.baseUrl(registry)).hostname.replace(/^\[|\]$/g, '');
    return { local: isInsecureByDefault(registry, this.insecure) || (isIP(host) !== 0 && addressKind(host) !== 'public') };
  }

  private hopAgent(trust: RedirectTrust): Agent {
    let agent = this.hopAgents.get(trust.local);
    if (!agent) {
      agent = new Agent({ headersTimeout: this.timeout, bodyTimeout: this.timeout, connect: { timeout: Math.min(this.timeout, 10_000), lookup: guardedLookup(trust) } });
      this.hopAgents.set(trust.local, agent);
    }
    return agent;
  }

  /**
   * Sends `request` and follows the redirects the rules allow (redirects.ts); a refused one throws.
   * Hops to another origin than the registry's go without Authorization, through an agent that
   * checks the addresses a host name resolves to.
   */
  private async fetchFollowing(request: HttpRequest, registry: string, what: string): Promise<Response> {
    const origin = new URL(this.baseUrl(registry)).origin;
    let current = request;
    let response = await fetchWithRetry(current, this.dispatcher, this.policy, what);
    for (let hops = 1; isRedirect(response.status, current.method); hops++) {
      const location = response.headers.get('location');
      if (!location) return response;
      await response.body?.cancel().catch(() => undefined);
      const from = new URL(current.url);
      const to = new URL(location, from);
      const trust = this.trustOf(registry);
      checkRedirect(from, to, trust, hops);
      const sameOrigin = to.origin === origin;
      const { authorization: _dropped, ...withoutAuth } = current.headers;
      current = { url: to.toString(), method: response.status === 303 ? 'GET' : current.method, headers: sameOrigin ? current.headers : withoutAuth, ...(current.signal ? { signal: current.signal } : {}) };
      response = await fetchWithRetry(current, sameOrigin ? this.dispatcher : this.hopAgent(trust), this.policy, `${what}, redirected to ${to.host}`);
    }
    return response;
  }

  private async getToken(url: string, headers: Record<string, string>): Promise<{ status: number; body: unknown; detail: string }> {
    // Token realms are not followed through redirects: a realm is named by the registry itself.
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
