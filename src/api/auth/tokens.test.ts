/** Tokens: shown once, stored only as a hash, refused when malformed, wrong or revoked. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import { openDatabase } from '../../store/database.js';
import { SqliteTokenStore } from '../../store/sqlite-token-store.js';
import { ApiTokens } from './tokens.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-tokens-'));
const db = openDatabase(join(dir, 'state.db'));
after(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});
let now = new Date('2026-01-01T00:00:00Z');
const tokens = new ApiTokens(new SqliteTokenStore(db), () => now);

function refused(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof HypercoreError && err.code === code && message.test(err.message));
}

test('a new token verifies, carries its scope, and only its hash is stored', () => {
  const { token, secret } = tokens.create({ scope: 'write', name: 'ci' });
  assert.match(secret, /^hc_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(tokens.verify(secret), token);
  assert.equal(tokens.list().find((t) => t.id === token.id)?.lastUsedAt, now.toISOString());
  db.pragma('wal_checkpoint(TRUNCATE)');
  const file = readFileSync(join(dir, 'state.db')).toString('latin1');
  assert.ok(!file.includes(secret.split('.')[1]!), 'the secret is not in the database');
});

test('malformed, unknown and wrong tokens are refused alike', () => {
  const { token } = tokens.create({ scope: 'read' });
  refused(() => tokens.verify('hunter2'), ErrorCodes.unauthenticated, /malformed/);
  refused(() => tokens.verify(`hc_${token.id}.${'x'.repeat(43)}`), ErrorCodes.unauthenticated, new RegExp(`token ${token.id} is not valid`));
  refused(() => tokens.verify(`hc_${'f'.repeat(16)}.${'x'.repeat(43)}`), ErrorCodes.unauthenticated, /is not valid/);
});

test('a revoked token is refused; revoking twice keeps the first time', () => {
  const { token, secret } = tokens.create({ scope: 'admin' });
  const revoked = tokens.revoke(token.id.slice(0, 10));
  assert.equal(revoked.revokedAt, now.toISOString());
  refused(() => tokens.verify(secret), ErrorCodes.unauthenticated, /was revoked at 2026-01-01T00:00:00.000Z/);
  now = new Date('2026-01-02T00:00:00Z');
  assert.equal(tokens.revoke(token.id).revokedAt, '2026-01-01T00:00:00.000Z');
});

test('bad scopes, names and ids are refused naming the field', () => {
  refused(() => tokens.create({ scope: 'root' }), ErrorCodes.invalidArgument, /scope = "root": must be one of read, write, admin/);
  refused(() => tokens.create({ scope: 'read', name: 'a\nb' }), ErrorCodes.invalidArgument, /name: must be text/);
  refused(() => tokens.create({ scope: 'read', name: 'x'.repeat(101) }), ErrorCodes.invalidArgument, /at most 100/);
  refused(() => tokens.revoke('../etc'), ErrorCodes.invalidArgument, /must be a token id/);
  refused(() => tokens.revoke('0123456789abcdef'), ErrorCodes.notFound, /no token has the id/);
});

test('the last use is written at most once a minute per token', () => {
  const { token, secret } = tokens.create({ scope: 'read' });
  now = new Date('2026-02-01T00:00:00Z');
  tokens.verify(secret);
  now = new Date('2026-02-01T00:00:30Z');
  tokens.verify(secret);
  assert.equal(tokens.list().find((t) => t.id === token.id)?.lastUsedAt, '2026-02-01T00:00:00.000Z');
  now = new Date('2026-02-01T00:01:01Z');
  tokens.verify(secret);
  assert.equal(tokens.list().find((t) => t.id === token.id)?.lastUsedAt, '2026-02-01T00:01:01.000Z');
});
