import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OomKills, oomKilledCgroup, type RecordReader } from './oom-kills.js';

const kill = (cgroup: string, limitHit = cgroup): string =>
  `6,1234,5140900,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=${limitHit},task_memcg=${cgroup},task=sh,pid=42,uid=0\n`;

/** A kernel log that holds `records` now; `log.push` adds more later. */
function fakeLog(records: string[]): RecordReader & { push: (r: string) => void } {
  const queue = [...records];
  return Object.assign(() => queue.shift(), { push: (r: string) => void queue.push(r) });
}

test('an oom-kill record names the cgroup of the killed process; other records name none', () => {
  assert.equal(oomKilledCgroup(kill('/hc/web')), '/hc/web');
  // The pod's limit hit, a container's process killed: the kill is the container's (as its memory.events counts it).
  assert.equal(oomKilledCgroup(kill('/hc/web', '/hc')), '/hc/web');
  assert.equal(oomKilledCgroup('3,1235,5140901,-;Memory cgroup out of memory: Killed process 42 (sh) total-vm:1024kB\n'), undefined);
  assert.equal(oomKilledCgroup('6,1236,5140902,-;a line that says oom-kill:constraint=x,task_memcg=/hc/web later\n'), undefined);
});

test('kills are counted per container cgroup and below it, from after the log was opened, until the cgroup is taken again', () => {
  const log = fakeLog([kill('/hc/web'), 'booting\n']);
  const kills = new OomKills(log);
  assert.equal(kills.of('/hc/web'), 0, 'what the log held before is not counted');
  log.push(kill('/hc/web'));
  log.push(kill('/hc/web/inner'));
  log.push(kill('/hc/db'));
  log.push(kill('/hc/webby'));
  assert.equal(kills.of('/hc/web'), 2);
  assert.equal(kills.of('/hc/db'), 1);
  assert.equal(kills.of('/hc/webby'), 1, 'a name that merely starts the same is another container');
  kills.forget('/hc/web');
  assert.equal(kills.of('/hc/web'), 0);
  assert.equal(kills.of('/hc/db'), 1);
});

test('without a kernel log nothing is counted', () => {
  assert.equal(new OomKills(undefined).of('/hc/web'), 0);
});
