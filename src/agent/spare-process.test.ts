import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandFailedError } from '../core/errors.js';
import { SpareProcess } from './spare-process.js';

/** A helper that records its pid and its request's fields in `dir`, or dies when asked to. */
const HELPER = String.raw`
my $dir = shift @ARGV;
my $line = <STDIN>;
exit 0 unless defined $line;
chomp $line;
my @f = split(/\t/, $line, -1);
die "asked to fail: $f[1]\n" if $f[0] eq "fail";
open(my $o, ">", "$dir/out") or die "$dir/out: $!\n";
print $o join(",", $$, @f);
`;

const until = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
};

function setup(respareAfterMs = 60_000) {
  const dir = mkdtempSync(join(tmpdir(), 'hc-spare-'));
  const spare = new SpareProcess('/usr/bin/perl', ['-e', HELPER, dir], { timeoutMs: 5_000, respareAfterMs });
  return { dir, spare, done: () => (spare.close(), rmSync(dir, { recursive: true, force: true })) };
}

test('a request is served by the spare started ahead of it, not by a process started for it', async () => {
  const { dir, spare, done } = setup();
  try {
    spare.prepare();
    assert.ok(spare.ready);
    // The spare's pid before the request: the one that answers must be that process.
    const pid = spare.sparePid;
    assert.ok(pid);
    await spare.request(['a', 'b c', '']);
    assert.equal(readFileSync(join(dir, 'out'), 'utf8'), `${pid},a,b c,`);
    assert.equal(spare.ready, false, 'used up; the next one comes later');
  } finally {
    done();
  }
});

test('without a spare the request starts the helper itself; a new spare follows after respareAfterMs', async () => {
  const { dir, spare, done } = setup(20);
  try {
    await spare.request(['x']);
    assert.match(readFileSync(join(dir, 'out'), 'utf8'), /^\d+,x$/);
    await until(() => spare.ready);
    assert.ok(spare.ready);
  } finally {
    done();
  }
});

test("a failing helper rejects with its stderr; a dead spare is replaced, not used", async () => {
  const { spare, done } = setup();
  try {
    await assert.rejects(spare.request(['fail', 'bad clock']), (err: unknown) => err instanceof CommandFailedError && /asked to fail: bad clock/.test(err.message));
    spare.prepare();
    process.kill(spare.sparePid!, 'SIGKILL');
    await until(() => !spare.ready);
    await assert.rejects(spare.request(['fail', 'fresh']), /asked to fail: fresh/);
  } finally {
    done();
  }
});

test('a field with a tab or newline is refused before anything runs', async () => {
  const { spare, done } = setup();
  try {
    await assert.rejects(spare.request(['a\tb']), /tab or newline/);
    await assert.rejects(spare.request(['a\nb']), /tab or newline/);
    assert.equal(spare.ready, false);
  } finally {
    done();
  }
});

test('a helper that hangs is killed after timeoutMs', async () => {
  const spare = new SpareProcess('/usr/bin/perl', ['-e', 'my $l = <STDIN>; sleep 30;'], { timeoutMs: 200, respareAfterMs: 60_000 });
  try {
    await assert.rejects(spare.request(['x']), /timed out after 200 ms/);
  } finally {
    spare.close();
  }
});
