/**
 * Guest metadata on real QEMU guests: two image VMs on one NAT bridge (isolate = false: they may
 * reach each other), with the daemon inside a network namespace this test creates, so no packet
 * leaves it. Files land in the workload's rootfs with their mode and owner (through a symlink the
 * image plants), each guest's endpoint serves its own metadata only (the daemon serves it for
 * the bridge, so a workload's own server on 0.0.0.0:80 runs beside it), `metadata set` reaches a
 * running guest without a restart, secrets stay out of the daemon log, the console, inspect and
 * events, and bad metadata changes nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { Vm } from '../../src/core/vm.js';
import { buildImage, buildLayer, busyboxLayerEntries, writeOciLayoutTar } from '../../src/images/testing/oci-builder.js';
import { lastLine, TestDaemon } from './harness.js';

const ns = `hc-e2e-meta-${randomBytes(3).toString('hex')}`;
const inNs = (...args: string[]) => spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 30_000 });
const SECRET_A = `a-${randomBytes(8).toString('hex')}`;
const SECRET_B = `b-${randomBytes(8).toString('hex')}`;
const SECRET_SET = `set-${randomBytes(8).toString('hex')}`;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl e2e@host';
const imageRef = 'hc/meta:1';

let daemon: TestDaemon;
let events: string[] = [];
/**
 * What each guest showed right after its boot, in one exec per guest (an exec takes seconds under
 * TCG): A's files, what its workload read at its start, its endpoint; B's endpoint, B asking A's
 * address, B's files. The parts are separated by lines of '--'.
 */
let firstLook: { a: string[]; b: string[] };
let eventsAgent: Agent;
let eventsAbort: AbortController;

/** The workload reads its metadata first thing: the endpoint must answer before it starts. */
const READ_AT_START = 'wget -q -O /tmp/at-start http://169.254.169.254/v1/metadata/region';

function hac(name: string, metadata: string, workload = `${READ_AT_START}; exec sleep 100000`): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(
    file,
    `[spacecore]\nname = "${name}"\n[hardware]\nmemory = 256\nref = "${imageRef}"\n[hypervisor]\nprovider = "qemu"\n` +
      `[workload]\ncommand = ["sh", "-c", ${JSON.stringify(workload)}]\n` +
      `[network]\nmode = "nat"\nsubnet = "10.78.0.0/24"\nisolate = false\n${metadata}`,
  );
  return file;
}

/** What `hypercore logs VM` prints, over the API. */
async function consoleLog(vm: string): Promise<string> {
  return (await request(`http://localhost/v1/vms/${vm}/logs`, { dispatcher: eventsAgent })).body.text();
}

function exec(vm: string, script: string): { code: number; stdout: string; stderr: string } {
  return daemon.cli(['exec', vm, '--', 'sh', '-c', script]);
}

/** Over the API, not the CLI: a CLI process takes a second or more to start on a busy host. */
async function vms(): Promise<Vm[]> {
  const res = await request('http://localhost/v1/vms', { dispatcher: eventsAgent });
  return ((await res.body.json()) as { vms: Vm[] }).vms;
}

before(async () => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '120';
  process.env['HYPERCORE_LOG_LEVEL'] = 'debug'; // every line the daemon can write is checked for secrets
  daemon = new TestDaemon('hc-e2e-meta-', ns);
  await daemon.start();
  eventsAgent = new Agent({ connect: { socketPath: daemon.socket }, bodyTimeout: 0, headersTimeout: 0 });
  eventsAbort = new AbortController();
  const res = await request('http://localhost/v1/events', { dispatcher: eventsAgent, signal: eventsAbort.signal });
  void (async () => {
    for await (const chunk of res.body) events.push((chunk as Buffer).toString('utf8'));
  })().catch(() => undefined);

  // A hostile image: /etc/app is an absolute symlink that climbs out with "..", towards the guest's own /run/hc.
  const layer = await buildLayer([...busyboxLayerEntries('NAME="metadata test"\n'), { type: 'symlink', path: 'etc/app', target: '/../../../run/hc/escape' }]);
  const tar = join(daemon.dir, 'meta-image.tar');
  await writeOciLayoutTar(buildImage([layer], { cmd: ['/bin/sh'] }), tar, imageRef);
  const imported = daemon.cli(['image', 'import', tar, '--reference', imageRef]);
  assert.equal(imported.code, 0, imported.stderr);

  const a = hac(
    'meta-a',
    `[metadata]\nvalues = { region = "eu-1", role = "a" }\nsecrets = { api_key = "${SECRET_A}" }\nssh_authorized_keys = ["${KEY}"]\n` +
      `[[metadata.files]]\npath = "/etc/app/app.conf"\nmode = "0640"\nowner = "1000:1001"\ncontent = "listen = 8080\\n"\n` +
      `[[metadata.files]]\npath = "/home/app/.token"\nmode = "0400"\nowner = "1234"\ncontent = "t"\n`,
    // A web server on port 80 of every address, as nginx's default `listen 80`: nothing of the
    // metadata endpoint may hold that port in the guest.
    `${READ_AT_START}; mkdir -p /tmp/www && echo web-a > /tmp/www/index.html && httpd -p 80 -h /tmp/www; exec sleep 100000`,
  );
  const b = hac('meta-b', `[metadata]\nvalues = { region = "us-1", role = "b" }\nsecrets = { api_key = "${SECRET_B}" }\n`);
  const spawned = await Promise.all([daemon.cliAsync(['spawn', '--hac', a]), daemon.cliAsync(['spawn', '--hac', b])]);
  for (const r of spawned) assert.equal(r.code, 0, `${r.stderr}\n${daemon.log().slice(-4000)}`);
  assert.equal(lastLine(spawned[0]!.stdout).length, 16);

  const lookA = exec(
    'meta-a',
    'stat -c "%a %u %g" /etc/app/app.conf /run/hc/escape/app.conf /home/app/.token /root/.ssh/authorized_keys; cat /etc/app/app.conf /root/.ssh/authorized_keys; echo --; ' +
      'cat /tmp/at-start; echo; echo --; wget -q -O - http://169.254.169.254/v1/metadata; echo --; wget -q -O - http://169.254.169.254/v1/metadata/api_key',
  );
  assert.equal(lookA.code, 0, lookA.stderr);
  const ipA = (await vms()).find((v) => v.name === 'meta-a')!.network!.ip;
  const lookB = exec('meta-b', `wget -q -O - http://169.254.169.254/v1/metadata; echo --; timeout 5 wget -q -O - http://${ipA}/v1/metadata; echo "exit $?"; echo --; test -e /etc/app/app.conf || echo none; echo --; timeout 5 wget -q -O - http://${ipA}/`);
  firstLook = { a: lookA.stdout.split('\n--\n'), b: lookB.stdout.split('--\n') };
});

after(async () => {
  eventsAbort?.abort();
  await eventsAgent?.close().catch(() => undefined);
  await daemon?.cleanup();
  spawnSync('ip', ['netns', 'del', ns]);
});

test('files land in the rootfs with their mode and owner, through the image\'s symlink but inside the rootfs; the SSH keys too', () => {
  assert.equal(firstLook.a[0], `640 1000 1001\n640 1000 1001\n400 1234 1234\n600 0 0\nlisten = 8080\n${KEY}`);
  assert.equal(firstLook.b[2], 'none\n', 'the other VM has only its own files');
});

test('each guest\'s endpoint serves its own metadata, from the workload\'s very start; nothing else reaches it', async () => {
  const [, atStart, all, apiKey] = firstLook.a;
  assert.equal(atStart, 'eu-1', 'the workload read it before anything else');
  assert.deepEqual(JSON.parse(all!), { api_key: SECRET_A, region: 'eu-1', role: 'a' });
  assert.equal(apiKey, SECRET_A);
  const [bAll, fromB] = firstLook.b;
  assert.deepEqual(JSON.parse(bAll!), { api_key: SECRET_B, region: 'us-1', role: 'b' });
  // wget's own failure (1) or the timeout (143), not a crash: busybox 1.35's wget crashes with -T,
  // which would pass any check for a non-zero exit.
  assert.match(fromB!, /^exit (1|143)\n$/, `B reached A's endpoint by A's address: ${fromB}`);
  assert.equal(firstLook.b[3], 'web-a\n', "A's workload serves port 80 on every address, next to its metadata endpoint");

  const ipA = (await vms()).find((v) => v.name === 'meta-a')!.network!.ip;
  // The host (or a router on a bridged network) sending to 169.254.169.254 through A's NIC.
  const route = inNs('ip', 'route', 'add', '169.254.169.254/32', 'via', ipA);
  assert.equal(route.status, 0, route.stderr);
  const fromHost = inNs('curl', '-sS', '--max-time', '5', 'http://169.254.169.254/v1/metadata');
  inNs('ip', 'route', 'del', '169.254.169.254/32');
  assert.notEqual(fromHost.status, 0);
  assert.equal(fromHost.stdout, '');
  assert.ok(!fromHost.stdout.includes(SECRET_A));
});

test('metadata set reaches the running guest at once, without a restart; get shows secrets as <secret>', async () => {
  const before = (await vms()).find((v) => v.name === 'meta-a')!;
  const set = daemon.cli(['metadata', 'set', 'meta-a', 'region=eu-2', 'zone=z1']);
  assert.equal(set.code, 0, set.stderr);
  const secret = daemon.cli(['metadata', 'set', '--secret', 'meta-a', 'token'], `${SECRET_SET}\n`);
  assert.equal(secret.code, 0, secret.stderr);
  const seen = exec('meta-a', 'wget -q -O - http://169.254.169.254/v1/metadata/region; echo; wget -q -O - http://169.254.169.254/v1/metadata/token; echo; cat /tmp/at-start');
  assert.equal(seen.stdout, `eu-2\n${SECRET_SET}\neu-1`, 'the new values, read by the same workload');
  const after = (await vms()).find((v) => v.name === 'meta-a')!;
  assert.deepEqual([after.state, after.pid, after.startedAt], [before.state, before.pid, before.startedAt], 'the same VMM, never restarted');
  assert.equal(daemon.cli(['metadata', 'get', 'meta-a']).stdout, 'api_key=<secret>\nregion=eu-2\nrole=a\ntoken=<secret>\nzone=z1\n');
  assert.equal(daemon.cli(['metadata', 'get', 'meta-a', 'token']).stdout, '<secret>\n');
  assert.equal(exec('meta-b', 'wget -q -O - http://169.254.169.254/v1/metadata/region').stdout, 'us-1', 'the other VM is untouched');
});

test('oversized or malformed metadata gets a clear error and changes nothing', async () => {
  const before = JSON.stringify(await vms());
  const badKey = daemon.cli(['metadata', 'set', 'meta-a', 'bad key=x']);
  assert.equal(badKey.code, 1);
  assert.match(badKey.stderr, /metadata key "bad key": must be 1-128 characters .*\[HC_INVALID_ARGUMENT\]/);
  const big = daemon.cli(['metadata', 'set', 'meta-a', 'big'], 'x'.repeat(65_500));
  assert.equal(big.code, 1);
  assert.match(big.stderr, /metadata of VM meta-a: values and secrets would hold \d+ bytes .*at most 65536 \(64 KiB\).*\[HC_INVALID_ARGUMENT\]/);
  const onDrive = join(daemon.dir, 'drive.toml');
  writeFileSync(onDrive, `[spacecore]\nname = "meta-drive"\n[hardware]\ndrive = "${onDrive}"\n[metadata]\nsecrets = { k = "${SECRET_A}" }\n`);
  const drive = daemon.cli(['spawn', '--hac', onDrive]);
  assert.equal(drive.code, 1);
  assert.match(drive.stderr, /drive\.toml:5:1: metadata needs an image VM/);
  const badSecret = daemon.cli(['spawn', '--hac', hac('meta-c', `[metadata]\nsecrets = { "no spaces" = "${SECRET_A}" }\n`)]);
  assert.equal(badSecret.code, 1);
  assert.match(badSecret.stderr, /metadata\.secrets\."no spaces" = <secret>: key names must be/);
  for (const r of [badKey, big, drive, badSecret]) assert.ok(!r.stderr.includes(SECRET_A));
  assert.equal(JSON.stringify(await vms()), before, 'no VM was created or changed');
  // What the previous test left it serving.
  const served = JSON.parse(exec('meta-a', 'wget -q -O - http://169.254.169.254/v1/metadata').stdout) as unknown;
  assert.deepEqual(served, { api_key: SECRET_A, region: 'eu-2', role: 'a', token: SECRET_SET, zone: 'z1' }, 'the guest serves what it did');
});

test('secrets stay out of the daemon log, the console logs, inspect, ls and events', async () => {
  const a = daemon.cli(['inspect', '--json', 'meta-a']);
  const shown = (JSON.parse(a.stdout) as Vm).spec.metadata as unknown as { secrets: Record<string, string>; files: { size: number }[] };
  assert.deepEqual(shown.secrets, { api_key: '<secret>', token: '<secret>' });
  assert.deepEqual(shown.files.map((f) => f.size), [14, 1]);
  const places = {
    'inspect --json': a.stdout,
    inspect: daemon.cli(['inspect', 'meta-a']).stdout,
    'ls --json': daemon.cli(['ls', '--json']).stdout,
    'console log of meta-a': await consoleLog('meta-a'),
    'console log of meta-b': await consoleLog('meta-b'),
    'daemon log': daemon.log(),
    events: events.join(''),
  };
  assert.match(places['console log of meta-a'], /\[hypercore-agent\] metadata: \d+ values, \d+ secrets/, 'the console has the agent\'s lines');
  assert.match(places.events, /"name":"meta-a"/, 'events were seen');
  assert.match(places['daemon log'], /"level":20/, 'the daemon logged at debug');
  for (const [where, text] of Object.entries(places)) {
    for (const secret of [SECRET_A, SECRET_B, SECRET_SET]) assert.ok(!text.includes(secret), `${where} shows a secret`);
  }
});

test('after a daemon crash and restart, the guests read their metadata from the new daemon', async () => {
  await daemon.kill9();
  await daemon.start();
  // The new daemon listens on a new port: the restored NAT rules must point there.
  const seen = exec('meta-a', 'wget -q -O - http://169.254.169.254/v1/metadata/region; echo; wget -q -O - http://169.254.169.254/v1/metadata/zone');
  assert.equal(seen.stdout, 'eu-2\nz1', `${seen.stderr}\n${daemon.log().slice(-3000)}`);
});
