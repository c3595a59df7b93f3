import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkOrigin, clearedSessionCookie, sessionCookie, sessionToken } from './browser-session.js';

test('the session cookie is HttpOnly, Secure, SameSite=Strict, and reads back the token it carries', () => {
  const set = sessionCookie('hc_0123456789abcdef.s3cret');
  assert.match(set, /^hypercore_session=hc_0123456789abcdef\.s3cret; Path=\/; HttpOnly; Secure; SameSite=Strict; Max-Age=\d+$/);
  assert.equal(sessionToken('a=1; hypercore_session=hc_0123456789abcdef.s3cret; b=2'), 'hc_0123456789abcdef.s3cret');
  assert.equal(sessionToken('a=1'), undefined);
  assert.equal(sessionToken(undefined), undefined);
  assert.equal(sessionToken('hypercore_session=%E0%A4%A'), undefined, 'a malformed escape is no token');
  assert.match(clearedSessionCookie(), /^hypercore_session=; .*Max-Age=0$/);
});

test('Origin: upgrades and cookie-authenticated changes must come from the daemon itself; reads and header callers need none', () => {
  const own = { host: '127.0.0.1:8443', origin: 'https://127.0.0.1:8443' };
  assert.doesNotThrow(() => checkOrigin({ ...own, method: 'POST', upgrade: false, byCookie: true }));
  assert.doesNotThrow(() => checkOrigin({ ...own, method: 'GET', upgrade: true, byCookie: true }));
  assert.doesNotThrow(() => checkOrigin({ method: 'GET', origin: 'https://evil.example', host: own.host, upgrade: false, byCookie: true }), 'a cross-site read is stopped by SameSite, not here');
  assert.doesNotThrow(() => checkOrigin({ method: 'POST', origin: undefined, host: own.host, upgrade: false, byCookie: false }), 'CLI and SDK callers send no Origin');
  assert.throws(() => checkOrigin({ method: 'GET', origin: 'https://evil.example', host: own.host, upgrade: true, byCookie: true }), /Origin https:\/\/evil\.example is not this daemon \(127\.0\.0\.1:8443\).*\[?/);
  assert.throws(() => checkOrigin({ method: 'GET', origin: 'https://evil.example', host: own.host, upgrade: true, byCookie: false }), /HC_PERMISSION_DENIED|not this daemon/);
  assert.throws(() => checkOrigin({ method: 'DELETE', origin: 'https://127.0.0.1:9999', host: own.host, upgrade: false, byCookie: true }), /not this daemon/);
  assert.throws(() => checkOrigin({ method: 'POST', origin: 'null', host: own.host, upgrade: false, byCookie: true }), /Origin null is not this daemon/);
  assert.throws(() => checkOrigin({ method: 'POST', origin: undefined, host: own.host, upgrade: false, byCookie: true }), /POST with the session cookie needs an Origin header/);
  assert.throws(() => checkOrigin({ method: 'GET', origin: undefined, host: own.host, upgrade: true, byCookie: true }), /a WebSocket upgrade with the session cookie needs an Origin/);
});
