import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonUnavailable } from './daemon-errors.js';
import { exitCodeOfSignal } from './process-commands.js';

test('a process killed by a signal exits with 128 + its number, as a shell reports it', () => {
  assert.equal(exitCodeOfSignal('SIGTERM'), 143);
  assert.equal(exitCodeOfSignal('SIGKILL'), 137);
  assert.equal(exitCodeOfSignal('SIGSEGV'), 139);
  assert.equal(exitCodeOfSignal('SIGPIPE'), 141);
  assert.equal(exitCodeOfSignal('SIGNOPE'), 129);
});

test('connection errors to the socket say what is wrong: no daemon, or no permission', () => {
  assert.match(daemonUnavailable('ECONNREFUSED', '/run/x.sock') ?? '', /hypercored is not running \(nothing listens on \/run\/x\.sock\)/);
  assert.match(daemonUnavailable('EACCES', '/run/x.sock') ?? '', /permission denied on \/run\/x\.sock: the API socket is mode 0600/);
  assert.equal(daemonUnavailable('EPIPE', '/run/x.sock'), undefined);
});
