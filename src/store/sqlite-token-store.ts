import type Database from 'better-sqlite3';
import type { ApiToken, TokenScope, TokenStore } from '../core/api-token.js';

interface TokenRow {
  id: string;
  name: string;
  scope: string;
  secret_sha256: string;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
}

function toToken(row: TokenRow): ApiToken {
  return {
    id: row.id,
    name: row.name,
    scope: row.scope as TokenScope,
    createdAt: row.created_at,
    ...(row.revoked_at ? { revokedAt: row.revoked_at } : {}),
    ...(row.last_used_at ? { lastUsedAt: row.last_used_at } : {}),
  };
}

/** API tokens in the shared state database (the secret only as a hash). */
export class SqliteTokenStore implements TokenStore {
  private readonly stmts;

  constructor(db: Database.Database) {
    this.stmts = {
      insert: db.prepare<Omit<TokenRow, 'revoked_at' | 'last_used_at'>>(
        'INSERT INTO api_tokens (id, name, scope, secret_sha256, created_at) VALUES (@id, @name, @scope, @secret_sha256, @created_at)',
      ),
      get: db.prepare<[string], TokenRow>('SELECT * FROM api_tokens WHERE id = ?'),
      list: db.prepare<[], TokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id'),
      revoke: db.prepare<[string, string]>('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      touch: db.prepare<[string, string]>('UPDATE api_tokens SET last_used_at = ? WHERE id = ?'),
    };
  }

  insert(token: ApiToken, secretHash: string): void {
    this.stmts.insert.run({ id: token.id, name: token.name, scope: token.scope, secret_sha256: secretHash, created_at: token.createdAt });
  }

  get(id: string): { token: ApiToken; secretHash: string } | undefined {
    const row = this.stmts.get.get(id);
    return row ? { token: toToken(row), secretHash: row.secret_sha256 } : undefined;
  }

  list(): ApiToken[] {
    return this.stmts.list.all().map(toToken);
  }

  revoke(id: string, at: string): ApiToken | undefined {
    this.stmts.revoke.run(at, id);
    return this.get(id)?.token;
  }

  touch(id: string, at: string): void {
    this.stmts.touch.run(at, id);
  }
}
