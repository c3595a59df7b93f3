/**
 * API tokens: bearer credentials for the remote API. A token is an id (public, shown by `token ls`)
 * and a secret (shown once, at creation); only a hash of the secret is stored.
 */

/** What a token may do; each scope includes the ones before it. */
export const tokenScopes = ['read', 'write', 'admin'] as const;
export type TokenScope = (typeof tokenScopes)[number];

/** True when a caller holding `held` may do what needs `needed`. */
export function scopeAllows(held: TokenScope, needed: TokenScope): boolean {
  return tokenScopes.indexOf(held) >= tokenScopes.indexOf(needed);
}

export interface ApiToken {
  id: string;
  /** What the token is for, as its creator said (may be empty). */
  name: string;
  scope: TokenScope;
  createdAt: string;
  /** Set once revoked; a revoked token is refused from then on. */
  revokedAt?: string;
  /** Last time the token was accepted, to about a minute. */
  lastUsedAt?: string;
}

/** Persistent token records. */
export interface TokenStore {
  insert(token: ApiToken, secretHash: string): void;
  get(id: string): { token: ApiToken; secretHash: string } | undefined;
  list(): ApiToken[];
  /** Marks the token revoked at `at`, unless it already is; returns the stored token. */
  revoke(id: string, at: string): ApiToken | undefined;
  touch(id: string, at: string): void;
}
