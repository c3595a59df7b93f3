/**
 * Registry authentication: parsing `WWW-Authenticate`, Basic credentials, and the Docker
 * token flow (Bearer realm/service/scope → token, cached per registry and scope until it expires).
 */
import { InFlight } from './concurrency.js';
import type { Credentials, CredentialSource } from './credentials.js';
import { RegistryAuthError } from './errors.js';
import { isInsecureByDefault } from './reference.js';

/** One challenge of a `WWW-Authenticate` header: scheme (lowercase) and params (lowercase keys). */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

const tokenChar = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parses RFC 7235 challenges: `Bearer realm="https://x/token",service="reg",scope="repository:a:pull"`,
 * possibly several in one header (`Basic realm="r", Bearer realm="t"`). Quoted strings may contain
 * commas and backslash escapes; unparseable tails are skipped rather than failing the whole header.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let pos = 0;
  const skip = (chars: RegExp): void => {
    while (pos < header.length && chars.test(header[pos] as string)) pos++;
  };
  const token = (): string => {
    const start = pos;
    while (pos < header.length && tokenChar.test(header[pos] as string)) pos++;
    return header.slice(start, pos);
  };
  const quoted = (): string => {
    let out = '';
    pos++; // opening quote
    while (pos < header.length && header[pos] !== '"') {
      if (header[pos] === '\\' && pos + 1 < header.length) pos++;
      out += header[pos];
      pos++;
    }
    pos++; // closing quote (or past the end)
    return out;
  };
  while (pos < header.length) {
    skip(/[\s,]/);
    const scheme = token();
    if (scheme === '') {
      pos++; // garbage character: skip it
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skip(/[\s,]/);
      const start = pos;
      const key = token();
      skip(/\s/);
      if (key === '' || header[pos] !== '=') {
        pos = start; // not `key=`: the next challenge's scheme (or a token68, which we do not use)
        break;
      }
      pos++;
      skip(/\s/);
      challenge.params[key.toLowerCase()] = header[pos] === '"' ? quoted() : token();
    }
  }
  return challenges;
}

/** Value of an Authorization header for Basic credentials. */
export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** What the auth manager needs from the HTTP layer to fetch tokens. */
export type TokenFetcher = (url: string, headers: Record<string, string>) => Promise<{ status: number; body: unknown; detail: string }>;

/** The registry/repository/access a request is made for. */
export interface AuthTarget {
  registry: string;
  repository?: string;
  /** `pull` or `pull,push`. */
  actions?: string;
  /** Explicit credentials (login check) instead of the credential source. */
  credentials?: Credentials;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const defaultTokenLifetimeS = 60; // the token spec's default when expires_in is absent

/**
 * Turns 401 challenges into Authorization headers and remembers, per registry, which scheme it
 * wants, so later requests authenticate up front instead of paying a 401 round trip each.
 */
export class AuthManager {
  private readonly challenges = new Map<string, AuthChallenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenFetches = new InFlight<CachedToken>();

  constructor(
    private readonly fetchToken: TokenFetcher,
    private readonly credentials: CredentialSource | undefined,
    private readonly insecureRegistries: readonly string[],
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header to send up front (from an earlier challenge), if any. */
  async authorization(target: AuthTarget): Promise<string | undefined> {
    const challenge = this.challenges.get(target.registry);
    if (!challenge) return undefined;
    return this.authorize(target, challenge, undefined);
  }

  /**
   * Handles a 401: parses the challenge and returns the header for the retry, or throws
   * RegistryAuthError. `sent` is the Authorization the failed request carried: a cached token
   * other than that one is still good (another request fetched it meanwhile), the same one is stale.
   */
  async unauthorized(target: AuthTarget, header: string | null, sent: string | undefined): Promise<string> {
    const challenges = parseWwwAuthenticate(header ?? '');
    const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge) throw new RegistryAuthError(target.registry, target.repository, `the registry answered 401 with an unsupported challenge "${header ?? ''}"`);
    this.challenges.set(target.registry, challenge);
    const value = await this.authorize(target, challenge, sent ?? '');
    if (value === undefined) throw new RegistryAuthError(target.registry, target.repository, `credentials are required; log in with \`hypercore login ${target.registry}\``);
    return value;
  }

  private async lookup(target: AuthTarget): Promise<Credentials | undefined> {
    return target.credentials ?? (await this.credentials?.get(target.registry));
  }

  /** `rejected` is undefined up front, else the header that just got a 401 ('' when none was sent). */
  private async authorize(target: AuthTarget, challenge: AuthChallenge, rejected: string | undefined): Promise<string | undefined> {
    const credentials = await this.lookup(target);
    if (challenge.scheme === 'basic') return credentials ? basicAuthorization(credentials) : undefined;
    const token = await this.bearerToken(target, challenge, credentials, rejected);
    return `Bearer ${token}`;
  }

  private async bearerToken(target: AuthTarget, challenge: AuthChallenge, credentials: Credentials | undefined, rejected: string | undefined): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryAuthError(target.registry, target.repository, 'the Bearer challenge has no realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryAuthError(target.registry, target.repository, `the token realm "${realm}" is not a URL`);
    }
    const scopes = new Set<string>();
    if (target.repository !== undefined) scopes.add(`repository:${target.repository}:${target.actions ?? 'pull'}`);
    // The challenge names the scope the registry wants; ask for it too so a differing one still works.
    if (challenge.params.scope) for (const s of challenge.params.scope.split(' ')) if (s) scopes.add(s);
    const key = `${target.registry}|${credentials?.username ?? ''}|${[...scopes].sort().join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now() && `Bearer ${cached.token}` !== rejected) return cached.token;
    this.tokens.delete(key);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const result = await this.tokenFetches.run(key, () => this.requestToken(target, url, credentials));
    this.tokens.set(key, result);
    return result.token;
  }

  private async requestToken(target: AuthTarget, url: URL, credentials: Credentials | undefined): Promise<CachedToken> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (credentials) {
      // Never send a password in clear text to a realm that is not local or explicitly insecure.
      if (url.protocol !== 'https:' && !isInsecureByDefault(url.host, this.insecureRegistries)) {
        throw new RegistryAuthError(target.registry, target.repository, `refusing to send credentials to the non-HTTPS token realm ${url.origin}`);
      }
      headers.authorization = basicAuthorization(credentials);
    }
    const { status, body, detail } = await this.fetchToken(url.toString(), headers);
    if (status === 401 || status === 403) {
      const why = credentials ? `the token service ${url.host} rejected the credentials of "${credentials.username}"` : `the token service ${url.host} requires credentials; log in with \`hypercore login ${target.registry}\``;
      throw new RegistryAuthError(target.registry, target.repository, `${why}${detail ? ` (${detail})` : ''}`);
    }
    if (status !== 200) throw new RegistryAuthError(target.registry, target.repository, `the token service ${url.host} answered HTTP ${status}${detail ? ` (${detail})` : ''}`);
    const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const token = typeof fields.token === 'string' && fields.token !== '' ? fields.token : fields.access_token;
    if (typeof token !== 'string' || token === '') throw new RegistryAuthError(target.registry, target.repository, `the token service ${url.host} returned no token`);
    const lifetime = typeof fields.expires_in === 'number' && fields.expires_in > 0 ? fields.expires_in : defaultTokenLifetimeS;
    // Renew a little early so a token does not expire between the check and the request.
    return { token, expiresAt: this.now() + lifetime * 1000 * 0.9 };
  }
}
