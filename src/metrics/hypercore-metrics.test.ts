/** The metrics: /proc parsing, what a scrape shows, and labels that stay bounded. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Vm } from '../core/vm.js';
import { HypercoreMetrics } from './hypercore-metrics.js';
import { cpuSecondsOfStat, readVmmUsage, rssBytesOfStatus } from './vmm-usage.js';

test('CPU seconds come from utime + stime, counted after the last ")" of the command name', () => {
  // A command name with spaces and a ')' must not shift the fields (utime 250, stime 150 ticks).
  const stat = '4242 (qemu) (x y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 123 1000 200';
  assert.equal(cpuSecondsOfStat(stat), 4);
  assert.equal(cpuSecondsOfStat('garbage'), undefined);
  assert.equal(rssBytesOfStatus('Name:\tqemu\nVmRSS:\t  2048 kB\nThreads:\t3\n'), 2048 * 1024);
  assert.equal(rssBytesOfStatus('Name:\tzombie\nState:\tZ\n'), undefined);
});

test('this process reads back as a VMM would: some CPU time and a plausible RSS', async () => {
  const usage = await readVmmUsage(process.pid);
  assert.ok(usage && usage.cpuSeconds > 0 && usage.rssBytes > 10 * 1024 * 1024, JSON.stringify(usage));
  assert.equal(await readVmmUsage(2 ** 22 + 7), undefined, 'a pid that does not exist');
});

function vm(id: string, name: string, state: Vm['state'], pid?: number): Vm {
  return { id, name, state, provider: 'qemu', createdAt: '', updatedAt: '', spec: {} as Vm['spec'], disks: [], ...(pid ? { pid } : {}) } as Vm;
}

test('a scrape shows VM counts for every state, per-VM VMM usage, boots, agent RPCs, pulls and the cache', async () => {
  const vms = [vm('a1', 'web', 'running', 101), vm('b2', 'db', 'running', 102), vm('c3', 'old', 'stopped')];
  const metrics = new HypercoreMetrics({
    vms: () => vms,
    providers: ['qemu'],
    imageCache: async () => ({ blobs: 1000, blocks: 4096 }),
    vmmUsage: async (pid) => (pid === 101 ? { cpuSeconds: 1.5, rssBytes: 300e6 } : undefined),
  });
  metrics.booted(vms[0]!, 'create', [{ step: 'image', ms: 1200 }, { step: 'launch', ms: 300 }, { step: 'network', ms: 5, done: true }]);
  metrics.agentCall('Hello', 0.002, true);
  metrics.agentCall('CreateProcess', 0.5, false);
  metrics.pulledBytes(12345);
  metrics.restored(vms[1]!, 0.8);
  const text = await metrics.text();
  for (const line of [
    'hypercore_vms{state="running",provider="qemu"} 2',
    'hypercore_vms{state="stopped",provider="qemu"} 1',
    'hypercore_vms{state="paused",provider="qemu"} 0',
    'hypercore_vm_info{vm_id="a1",name="web",provider="qemu"} 1',
    'hypercore_vm_cpu_seconds_total{vm_id="a1"} 1.5',
    'hypercore_vm_memory_rss_bytes{vm_id="a1"} 300000000',
    'hypercore_vm_boot_seconds_count{provider="qemu",operation="create"} 1',
    'hypercore_vm_boot_seconds_sum{provider="qemu",operation="create"} 1.505',
    'hypercore_vm_boot_step_seconds_count{step="image"} 1',
    'hypercore_vm_restore_seconds_count{provider="qemu"} 1',
    'hypercore_agent_rpc_seconds_count{method="Hello",outcome="ok"} 1',
    'hypercore_agent_rpc_seconds_count{method="CreateProcess",outcome="error"} 1',
    'hypercore_image_pull_bytes_total 12345',
    'hypercore_image_cache_bytes{kind="blobs"} 1000',
    'hypercore_image_cache_bytes{kind="blocks"} 4096',
  ]) assert.ok(text.includes(line), `missing: ${line}`);
  assert.doesNotMatch(text, /vm_id="b2"} \d/, 'a VMM whose /proc cannot be read has no usage series');
  assert.doesNotMatch(text, /step="network"/, 'a step found already done took no time of its own');
  assert.match(text, /^process_cpu_user_seconds_total /m, "prom-client's default metrics");
});

test('per-VM series follow the VMs: a removed VM leaves no stale series', async () => {
  let vms = [vm('a1', 'web', 'running', 101)];
  const metrics = new HypercoreMetrics({ vms: () => vms, providers: ['qemu'], vmmUsage: async () => ({ cpuSeconds: 1, rssBytes: 1 }) });
  assert.match(await metrics.text(), /vm_id="a1"/);
  vms = [];
  assert.doesNotMatch(await metrics.text(), /vm_id="a1"/);
});
