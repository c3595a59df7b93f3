/**
 * Metrics end to end: a real hypercored with a real QEMU guest, scraped by a real Prometheus
 * (Debian's, started here on loopback with its own configuration and data directory) over the
 * remote listener with mTLS; the test reads the daemon's series back through Prometheus' query API.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { Vm } from '../../src/core/vm.js';
import { buildDemoRootfs } from '../../src/guest/demo-rootfs.js';
import { freePort, lastLine, TestDaemon, waitFor } from './harness.js';

const daemon = new TestDaemon('hc-e2e-metrics-');
const tls = join(daemon.dir, 'tls');
let prometheus: ChildProcess | undefined;
let prometheusUrl = '';
const prometheusLog: string[] = [];

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(promql: string): Promise<Sample[]> {
  const res = await request(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.body.json()) as { status: string; data: { result: Sample[] } };
  assert.equal(body.status, 'success', JSON.stringify(body));
  return body.data.result;
}

let vmId = '';

before(async () => {
  assert.equal(daemon.cli(['tls', 'init', tls]).code, 0);
  const drive = join(daemon.dir, 'rootfs.ext4');
  await buildDemoRootfs({ output: drive });
  const listen = `127.0.0.1:${await freePort()}`;
  await daemon.start(['--listen', `https://${listen}`, '--tls-dir', tls]);
  const hac = join(daemon.dir, 'hac.toml');
  writeFileSync(hac, `[spacecore]\nname = "measured"\n[hardware]\nmemory = 192\ndrive = "${drive}"\n[network]\nmode = "none"\n`);
  const spawned = daemon.cli(['spawn', '--hac', hac]);
  assert.equal(spawned.code, 0, `${spawned.stderr}\n${daemon.log()}`);
  vmId = lastLine(spawned.stdout);

  const promDir = join(daemon.dir, 'prometheus');
  mkdirSync(join(promDir, 'data'), { recursive: true });
  const config = join(promDir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      'scrape_configs:',
      '  - job_name: hypercore',
      '    scheme: https',
      '    tls_config:',
      `      ca_file: ${join(tls, 'ca.pem')}`,
      `      cert_file: ${join(tls, 'cert.pem')}`,
      `      key_file: ${join(tls, 'key.pem')}`,
      '    static_configs:',
      `      - targets: ['${listen}']`,
      '',
    ].join('\n'),
  );
  const web = `127.0.0.1:${await freePort()}`;
  prometheusUrl = `http://${web}`;
  prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=${web}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  prometheus.stdout!.on('data', (c: Buffer) => prometheusLog.push(c.toString()));
  prometheus.stderr!.on('data', (c: Buffer) => prometheusLog.push(c.toString()));
  await waitFor('Prometheus to answer', 30_000, async () => {
    if (prometheus?.exitCode !== null) throw new Error(`prometheus exited: ${prometheusLog.join('')}`);
    return (await request(`${prometheusUrl}/-/ready`).then((r) => r.body.text().then(() => r.statusCode), () => 0)) === 200 ? true : undefined;
  });
});

after(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus!.once('exit', r));
    prometheus.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
  }
  await daemon.cleanup();
});

test('Prometheus scrapes hypercored over mTLS and reads hypercore_vms back', async () => {
  const up = await waitFor('a successful scrape', 60_000, async () => {
    const [sample] = await query('up{job="hypercore"}');
    return sample?.value[1] === '1' ? sample : undefined;
  });
  assert.equal(up.metric['instance']?.startsWith('127.0.0.1:'), true);
  const running = await query('hypercore_vms{state="running",provider="qemu"}');
  assert.equal(running[0]?.value[1], '1', `${JSON.stringify(running)}\n${prometheusLog.join('')}`);
  assert.equal((await query('hypercore_vms{state="stopped"}'))[0]?.value[1], '0', 'every state has a series, zero included');
});

test("the guest's VMM shows its CPU time and RSS under its VM id, and its boot in the histogram", async () => {
  const [vm] = JSON.parse(daemon.cli(['ls', '--json']).stdout) as Vm[];
  const cpu = await waitFor('the VMM CPU series', 30_000, async () => (await query(`hypercore_vm_cpu_seconds_total{vm_id="${vmId}"}`))[0]);
  assert.ok(Number(cpu.value[1]) > 0, `a booted TCG guest used CPU: ${cpu.value[1]}`);
  const rss = (await query(`hypercore_vm_memory_rss_bytes{vm_id="${vmId}"}`))[0];
  assert.ok(Number(rss?.value[1]) > 20 * 1024 * 1024, `QEMU's RSS: ${rss?.value[1]}`);
  const direct = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${vm!.pid}/status`, 'utf8'))?.[1]) * 1024;
  assert.ok(Math.abs(direct - Number(rss?.value[1])) < direct / 2, `about what /proc says now (${direct})`);
  assert.equal((await query(`hypercore_vm_info{vm_id="${vmId}"}`))[0]?.metric['name'], 'measured');
  assert.equal((await query('hypercore_vm_boot_seconds_count{operation="create",provider="qemu"}'))[0]?.value[1], '1');
  // A scrape's own request is counted after its response is written, so the
  // series first appears in the scrape after it: wait for that one.
  const scrapes = await waitFor('a scrape counted by the next scrape', 30_000, async () =>
    (await query('hypercore_api_requests_total{transport="http",listener="remote",route="GET /metrics",code="200"}'))[0],
  );
  assert.ok(Number(scrapes.value[1]) >= 1, JSON.stringify(scrapes));
});

test('/metrics also answers on the unix socket, without credentials', () => {
  const r = spawnSync('curl', ['-sS', '--unix-socket', daemon.socket, 'http://localhost/metrics'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^hypercore_vms\{state="running",provider="qemu"\} 1$/m);
  assert.match(r.stdout, /^# TYPE hypercore_vm_boot_seconds histogram$/m);
});
