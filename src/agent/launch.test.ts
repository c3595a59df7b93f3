import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, CrunErrorFilter } from './crun-errors.js';
import { buildEnv, DEFAULT_PATH, hostLaunch, lookPath, parseUser } from './launch.js';
import { parseSignal, signalName } from './process.js';

test('parseUser: uid[:gid], numeric only', () => {
  assert.deepEqual(parseUser(''), { uid: 0, gid: 0 });
  assert.deepEqual(parseUser(undefined), { uid: 0, gid: 0 });
  assert.deepEqual(parseUser('1000'), { uid: 1000, gid: 0 });
  assert.deepEqual(parseUser('1000:100'), { uid: 1000, gid: 100 });
  for (const bad of ['root', '1000:users', '-1', '1:2:3', '99999999999']) assert.throws(() => parseUser(bad), /uid\[:gid\]|out of range/);
});

test('buildEnv: defaults, TERM for terminals, later entries win, bad entries refused', () => {
  assert.deepEqual(buildEnv({ args: ['x'] }), { PATH: DEFAULT_PATH, HOME: '/root' });
  assert.deepEqual(buildEnv({ args: ['x'], terminal: true, env: ['PATH=/bin', 'A=1=2', 'TERM=vt100'] }, [], 1000), { PATH: '/bin', HOME: '/', TERM: 'vt100', A: '1=2' });
  assert.deepEqual(buildEnv({ args: ['x'], env: ['B=spec'] }, ['A=base', 'B=base']), { PATH: DEFAULT_PATH, HOME: '/root', A: 'base', B: 'spec' });
  assert.throws(() => buildEnv({ args: ['x'], env: ['NOEQUALS'] }), /KEY=VALUE/);
  assert.throws(() => buildEnv({ args: ['x'], env: ['=x'] }), /KEY=VALUE/);
});

test('lookPath and hostLaunch resolve commands like execvp; a missing one becomes exit 127', () => {
  assert.equal(lookPath('sh', '/nonexistent:/bin:/usr/bin', '/'), '/bin/sh');
  assert.equal(lookPath('/bin/sh', '', '/'), '/bin/sh');
  assert.equal(lookPath('nope-hc', DEFAULT_PATH, '/'), undefined);
  assert.equal(lookPath('/etc', DEFAULT_PATH, '/'), undefined, 'a directory is not executable');
  const ok = hostLaunch({ args: ['sh', '-c', 'true'], terminal: true, rows: 0 });
  assert.equal(ok.file.endsWith('/sh'), true);
  assert.deepEqual([ok.args, ok.rows, ok.cols, ok.env.TERM, ok.failure], [['-c', 'true'], 24, 80, 'xterm', undefined]);
  assert.deepEqual(hostLaunch({ args: ['nope-hc'] }).failure, { exitCode: 127, message: 'exec: "nope-hc": executable file not found in $PATH' });
  assert.equal(hostLaunch({ args: ['sh'], cwd: '/no/such' }).failure?.exitCode, 126);
  assert.throws(() => hostLaunch({ args: [] }), /must not be empty/);
});

test('signal names and numbers', () => {
  assert.equal(parseSignal('SIGTERM'), 'SIGTERM');
  assert.equal(parseSignal('term'), 'SIGTERM');
  assert.equal(parseSignal('9'), 'SIGKILL');
  assert.throws(() => parseSignal('SIGFOO'), /unknown signal/);
  assert.throws(() => parseSignal('999'), /unknown signal/);
  assert.equal(signalName(15), 'SIGTERM');
  assert.equal(signalName(200), 'SIG200');
});

test('crun error lines are recognised only when they are the whole output', () => {
  const notFound = 'executable file `nosuch` not found in $PATH: No such file or directory\n';
  assert.deepEqual(classify(notFound), { exitCode: 127, message: 'exec: "nosuch": executable file not found in $PATH' });
  assert.deepEqual(classify(notFound.replace('\n', '\r\n')), { exitCode: 127, message: 'exec: "nosuch": executable file not found in $PATH' });
  assert.deepEqual(classify('chdir `/x`: No such file or directory\n'), { exitCode: 126, message: 'chdir to cwd ("/x") failed: no such file or directory' });
  assert.equal(classify('exec'), 'maybe');
  assert.equal(classify('executable file `nos'), 'maybe');
  assert.equal(classify('hello\n'), 'other');
  assert.equal(classify(`${notFound}more output\n`), 'other');
  assert.equal(classify('executable file `x` is great\n'), 'other');
});

test('CrunErrorFilter rewrites crun\'s message at exit, and passes ordinary output at once', () => {
  const f = new CrunErrorFilter();
  assert.deepEqual(f.push(2, Buffer.from('executable file `nosuch` not ')), []);
  assert.deepEqual(f.push(2, Buffer.from('found in $PATH: No such file or directory\n')), []);
  const end = f.finish(255);
  assert.equal(end.exitCode, 127);
  assert.deepEqual(end.pieces.map((p) => [p.fd, p.data.toString()]), [[2, 'exec: "nosuch": executable file not found in $PATH\n']]);

  const g = new CrunErrorFilter();
  assert.deepEqual(g.push(1, Buffer.from('e')), [], 'could be the start of a crun error');
  assert.deepEqual(g.push(1, Buffer.from('cho\n')).map((p) => p.data.toString()), ['e', 'cho\n']);
  assert.deepEqual(g.push(2, Buffer.from('executable file `x` not found in $PATH: No such file or directory\n')).length, 1, 'once passing, always passing');
  assert.equal(g.finish(255).exitCode, 255);

  const h = new CrunErrorFilter();
  h.push(2, Buffer.from('executable file `x` not found in $PATH: No such file or directory\n'));
  assert.deepEqual(h.finish(0), { pieces: [{ fd: 2, data: Buffer.from('executable file `x` not found in $PATH: No such file or directory\n') }], exitCode: 0 }, 'exit 0: the program printed it');
  const i = new CrunErrorFilter();
  i.push(1, Buffer.from('exe'));
  assert.equal(i.holding, true);
  assert.deepEqual(i.flush().map((p) => p.data.toString()), ['exe']);
  assert.equal(i.holding, false);
});

test('users given by name are resolved in the image rootfs; unknown names are a clear error', async () => {
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { resolveUser } = await import('./launch.js');
  const root = mkdtempSync(join(tmpdir(), 'hc-rootfs-'));
  try {
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnginx:x:101:102:nginx:/var/www:/bin/false\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\nstaff:x:50:\n');
    assert.equal(resolveUser('nginx', root), '101:102');
    assert.equal(resolveUser('nginx:staff', root), '101:50');
    assert.equal(resolveUser('1000:1000', root), '1000:1000');
    assert.equal(resolveUser('', root), undefined);
    assert.throws(() => resolveUser('ghost', root), /user "ghost" is not in the image's \/etc\/passwd/);
    assert.throws(() => resolveUser('nginx:nogroup', root), /group "nogroup" is not in the image's \/etc\/group/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
