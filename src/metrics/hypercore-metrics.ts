/**
 * The daemon's Prometheus metrics (prom-client): the process's default metrics, VM counts, boot,
 * restore and agent RPC durations, per-VM VMM CPU and memory, image pulls and cache size, and API
 * requests. Label values come from fixed sets (states, providers, route templates, method names,
 * status codes), so series stay bounded; only the per-VM gauges carry VM ids, one series per VM.
 * What can be read when scraped (VMs, /proc, the cache) is read then, by the metric's collect().
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StepTiming, VmObserver } from '../core/ports.js';
import { hasVmm } from '../core/lifecycle.js';
import { vmStates, type ProviderName, type Vm } from '../core/vm.js';
import { readVmmUsage, type VmmUsage } from './vmm-usage.js';

export interface MetricsSources {
  vms(): readonly Vm[];
  /** Providers this daemon has, so every state has a series for each (zero included). */
  providers: readonly ProviderName[];
  /** Bytes the image store holds on disk: content blobs, and the ext4 block images built from them. */
  imageCache?(): Promise<{ blobs: number; blocks: number }>;
  /** Defaults to reading /proc. */
  vmmUsage?(pid: number): Promise<VmmUsage | undefined>;
}

export type ApiTransport = 'http' | 'grpc';
export type ApiListener = 'local' | 'remote';

/** Seconds: a TCG boot of an image VM takes tens of seconds, a KVM one well under one. */
const BOOT_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
const STEP_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class HypercoreMetrics implements VmObserver {
  readonly registry = new Registry();
  private readonly bootSeconds: Histogram<'provider' | 'operation'>;
  private readonly bootStepSeconds: Histogram<'step'>;
  private readonly restoreSeconds: Histogram<'provider'>;
  private readonly agentRpcSeconds: Histogram<'method' | 'outcome'>;
  private readonly imagePullBytes: Counter;
  private readonly apiRequests: Counter<'transport' | 'listener' | 'route' | 'code'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    const usageOf = sources.vmmUsage ?? ((pid: number) => readVmmUsage(pid));
    collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'hypercore_vms',
      help: 'VMs by lifecycle state and provider',
      labelNames: ['state', 'provider'],
      registers,
      collect(this: Gauge<'state' | 'provider'>) {
        this.reset();
        for (const provider of sources.providers) for (const state of vmStates) this.set({ state, provider }, 0);
        for (const vm of sources.vms()) this.inc({ state: vm.state, provider: vm.provider });
      },
    });
    new Gauge({
      name: 'hypercore_vm_info',
      help: 'Always 1, one series per VM: joins vm_id to its name and provider',
      labelNames: ['vm_id', 'name', 'provider'],
      registers,
      collect(this: Gauge<'vm_id' | 'name' | 'provider'>) {
        this.reset();
        for (const vm of sources.vms()) this.set({ vm_id: vm.id, name: vm.name, provider: vm.provider }, 1);
      },
    });
    // Each per-VM metric reads /proc itself: two small reads per VMM per scrape, and never a stale value.
    const vmmUsages = async (): Promise<{ vm: Vm; usage: VmmUsage }[]> => {
      const running = sources.vms().filter((vm) => hasVmm(vm.state) && vm.pid !== undefined);
      const read = await Promise.all(running.map(async (vm) => ({ vm, usage: await usageOf(vm.pid!) })));
      return read.filter((r): r is { vm: Vm; usage: VmmUsage } => r.usage !== undefined);
    };
    new Counter({
      name: 'hypercore_vm_cpu_seconds_total',
      help: "CPU time (user + system) used by each VM's VMM process, from /proc/<pid>/stat",
      labelNames: ['vm_id'],
      registers,
      async collect(this: Counter<'vm_id'>) {
        const read = await vmmUsages();
        this.reset();
        for (const { vm, usage: u } of read) this.inc({ vm_id: vm.id }, u.cpuSeconds);
      },
    });
    new Gauge({
      name: 'hypercore_vm_memory_rss_bytes',
      help: "Resident memory of each VM's VMM process (guest RAM it touched plus the VMM's own), from /proc/<pid>/status",
      labelNames: ['vm_id'],
      registers,
      async collect(this: Gauge<'vm_id'>) {
        const read = await vmmUsages();
        this.reset();
        for (const { vm, usage: u } of read) this.set({ vm_id: vm.id }, u.rssBytes);
      },
    });
    this.bootSeconds = new Histogram({
      name: 'hypercore_vm_boot_seconds',
      help: 'Time a create or start took until the VM ran (for an image VM: until its workload ran, unless detached)',
      labelNames: ['provider', 'operation'],
      buckets: BOOT_BUCKETS,
      registers,
    });
    this.bootStepSeconds = new Histogram({
      name: 'hypercore_vm_boot_step_seconds',
      help: 'Time of each step of the create and start plans (image-disk, network, launch, workload, ...)',
      labelNames: ['step'],
      buckets: STEP_BUCKETS,
      registers,
    });
    this.restoreSeconds = new Histogram({
      name: 'hypercore_vm_restore_seconds',
      help: 'Time a VM took to come back from a snapshot (warm start)',
      labelNames: ['provider'],
      buckets: BOOT_BUCKETS,
      registers,
    });
    this.agentRpcSeconds = new Histogram({
      name: 'hypercore_agent_rpc_seconds',
      help: 'Duration of RPCs to in-guest agents, by method and outcome (ok or error)',
      labelNames: ['method', 'outcome'],
      buckets: RPC_BUCKETS,
      registers,
    });
    this.imagePullBytes = new Counter({
      name: 'hypercore_image_pull_bytes_total',
      help: 'Bytes of image layers downloaded from registries (each verified against its digest)',
      registers,
    });
    const imageCache = sources.imageCache;
    new Gauge({
      name: 'hypercore_image_cache_bytes',
      help: 'Disk used by the image store: content blobs (kind="blobs") and ext4 block images (kind="blocks")',
      labelNames: ['kind'],
      registers,
      async collect(this: Gauge<'kind'>) {
        if (!imageCache) return;
        const { blobs, blocks } = await imageCache();
        this.set({ kind: 'blobs' }, blobs);
        this.set({ kind: 'blocks' }, blocks);
      },
    });
    this.apiRequests = new Counter({
      name: 'hypercore_api_requests_total',
      help: 'API requests by transport, listener, route (HTTP method and route template, or gRPC method) and status (HTTP code or gRPC status name)',
      labelNames: ['transport', 'listener', 'route', 'code'],
      registers,
    });
  }

  booted(vm: Vm, operation: 'create' | 'start', timings: readonly StepTiming[]): void {
    this.bootSeconds.observe({ provider: vm.provider, operation }, timings.reduce((sum, t) => sum + t.ms, 0) / 1000);
    for (const t of timings) if (!t.done) this.bootStepSeconds.observe({ step: t.step }, t.ms / 1000);
  }

  restored(vm: Vm, seconds: number): void {
    this.restoreSeconds.observe({ provider: vm.provider }, seconds);
  }

  agentCall(method: string, seconds: number, ok: boolean): void {
    this.agentRpcSeconds.observe({ method, outcome: ok ? 'ok' : 'error' }, seconds);
  }

  pulledBytes(bytes: number): void {
    this.imagePullBytes.inc(bytes);
  }

  apiRequest(transport: ApiTransport, listener: ApiListener, route: string, code: string): void {
    this.apiRequests.inc({ transport, listener, route, code });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
