/**
 * Bearer tokens of the remote API: created with a scope, shown once, stored as a hash, checked on
 * every call (so a revocation takes effect at the next call), revocable.
 *
 * A token reads `hc_<id>.<secret>`: the id finds the record, the secret (32 random bytes) proves
 * possession. The secret is stored as its SHA-256: it is random and 256 bits long, so unlike a
 * password it needs no slow hash to resist guessing, and checking it costs every call almost nothing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { HypercoreError, ErrorCodes, InvalidArgumentError, UnauthenticatedError } from '../../core/errors.js';
import { tokenScopes, type ApiToken, type TokenScope, type TokenStore } from '../../core/api-token.js';

const TOKEN_PATTERN = /^hc_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
const MAX_NAME_LENGTH = 100;
/** How often the last use of one token is written: a busy client must not cost a write per call. */
const TOUCH_INTERVAL_MS = 60_000;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export class ApiTokens {
  private readonly lastTouch = new Map<string, number>();

  constructor(
    private readonly store: TokenStore,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** A new token; `secret` is the whole bearer text, which is never shown again. */
  create(req: { name?: unknown; scope?: unknown }): { token: ApiToken; secret: string } {
    const scope = req.scope;
    if (typeof scope !== 'string' || !(tokenScopes as readonly string[]).includes(scope)) {
      throw new InvalidArgumentError(`scope = ${JSON.stringify(scope ?? null)}: must be one of ${tokenScopes.join(', ')}`, [{ path: 'scope', message: `one of ${tokenScopes.join(', ')}`, value: scope }]);
    }
    const name = req.name ?? '';
    if (typeof name !== 'string' || name.length > MAX_NAME_LENGTH || /[\p{Cc}]/u.test(name)) {
      throw new InvalidArgumentError(`name: must be text of at most ${MAX_NAME_LENGTH} characters without control characters`, [{ path: 'name', message: `at most ${MAX_NAME_LENGTH} characters, no control characters`, value: name }]);
    }
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const token: ApiToken = { id, name, scope: scope as TokenScope, createdAt: this.now().toISOString() };
    this.store.insert(token, sha256(secret).toString('hex'));
    return { token, secret: `hc_${id}.${secret}` };
  }

  list(): ApiToken[] {
    return this.store.list();
  }

  /** Revokes by id or unique id prefix; revoking a revoked token is a no-op. */
  revoke(ref: unknown): ApiToken {
    if (typeof ref !== 'string' || !/^[0-9a-f]{1,16}$/.test(ref)) throw new InvalidArgumentError(`id = ${JSON.stringify(ref ?? null)}: must be a token id (hex digits, as token ls shows)`, [{ path: 'id', message: 'a token id', value: ref }]);
    const matches = this.store.list().filter((t) => t.id.startsWith(ref));
    if (matches.length === 0) throw new HypercoreError(ErrorCodes.notFound, `no token has the id "${ref}"`);
    if (matches.length > 1) throw new InvalidArgumentError(`"${ref}" matches ${matches.length} tokens (${matches.map((t) => t.id).join(', ')}); give more of the id`);
    return this.store.revoke(matches[0]!.id, this.now().toISOString())!;
  }

  /** The token a bearer text stands for; UnauthenticatedError when it is malformed, unknown, wrong or revoked. */
  verify(bearer: string): ApiToken {
    const m = TOKEN_PATTERN.exec(bearer);
    if (!m) throw new UnauthenticatedError('the bearer token is malformed (expected hc_<id>.<secret>, as token create prints it)');
    const id = m[1]!;
    const record = this.store.get(id);
    // The same answer for an unknown id and a wrong secret: the reply must not tell which ids exist.
    const expected = record ? Buffer.from(record.secretHash, 'hex') : sha256('');
    if (!timingSafeEqual(sha256(m[2]!), expected) || !record) throw new UnauthenticatedError(`token ${id} is not valid`);
    if (record.token.revokedAt) throw new UnauthenticatedError(`token ${id} was revoked at ${record.token.revokedAt}`);
    this.touch(id);
    return record.token;
  }

  private touch(id: string): void {
    const now = this.now();
    if (now.getTime() - (this.lastTouch.get(id) ?? 0) < TOUCH_INTERVAL_MS) return;
    this.lastTouch.set(id, now.getTime());
    this.store.touch(id, now.toISOString());
  }
}
