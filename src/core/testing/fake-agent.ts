/**
 * Test doubles for agent VMs: an agent connector whose guests answer at once, never (until the
 * wait is aborted), or not at all; an image provisioner and a guest system with no files; and a
 * workload log in memory.
 */
import type { AgentConnectOptions, AgentConnector, AgentEndpoint, AgentInfo, AgentSession, ExitStatus, GuestIdentity, ProcessEvent, ProcessIo, WorkloadStart } from '../agent.js';
import type { WorkloadLog } from '../agent-supervisor.js';
import { ErrorCodes, HypercoreError } from '../errors.js';
import type { MetadataValues } from '../metadata.js';
import type { GuestSystem, ImageProvisioner } from '../ports.js';
import type { Image, VmDisk } from '../image.js';
import type { Vm } from '../vm.js';

export const fakeImage: Image = {
  reference: 'docker.io/library/app:1',
  digest: `sha256:${'1'.repeat(64)}`,
  configDigest: `sha256:${'2'.repeat(64)}`,
  platform: 'linux/amd64',
  layers: [],
  size: 0,
  createdAt: '2026-01-01T00:00:00Z',
  config: { cmd: ['/app'] },
};

export const fakeImages: ImageProvisioner = {
  find: () => fakeImage,
  ensure: async () => fakeImage,
  provision: async (_ref, _dir, _disk, record) => {
    const disks: VmDisk[] = [{ name: 'image', path: '/nonexistent/image.raw', format: 'raw', readOnly: true }];
    record(fakeImage, disks);
    return fakeImage;
  },
};

export const fakeGuest: GuestSystem = { rootDisk: async () => '/nonexistent/system.ext4' };

/** A process whose output never comes and that never exits (a running workload). */
function silentIo(): ProcessIo {
  let close: () => void = () => undefined;
  const closed = new Promise<void>((r) => (close = r));
  return {
    write: async () => undefined,
    closeStdin: async () => undefined,
    close: () => close(),
    async *[Symbol.asyncIterator](): AsyncGenerator<ProcessEvent> {
      await closed;
    },
  };
}

class FakeSession implements AgentSession {
  shutdowns = 0;
  readonly closed: Promise<void>;
  private end: () => void = () => undefined;
  constructor(private readonly connector: FakeAgentConnector) {
    this.closed = new Promise((r) => (this.end = r));
  }
  async hello(): Promise<AgentInfo> {
    this.connector.calls.push('hello');
    if (this.connector.helloDelayMs > 0) await new Promise((r) => setTimeout(r, this.connector.helloDelayMs));
    this.connector.calls.push('hello answered');
    return { agentVersion: 'fake', bootId: 'b', uptimeMs: 1, workloadStarted: this.connector.workloadRunning };
  }
  async startWorkload(start: WorkloadStart) {
    this.connector.calls.push('startWorkload');
    // As the agent: a workload starts once per boot; a crun failure is the agent's error.
    if (this.connector.workloadRunning) throw new HypercoreError(ErrorCodes.agentUnavailable, 'agent StartWorkload failed: the workload was already started in this boot');
    if (this.connector.startFailure) throw new HypercoreError(ErrorCodes.agentUnavailable, `agent StartWorkload failed: ${this.connector.startFailure}`);
    this.connector.workloadStarts++;
    this.connector.lastStart = start;
    this.connector.workloadRunning = true;
    return { processId: 'main', pid: 1 };
  }
  io(): ProcessIo {
    return silentIo();
  }
  async exec() {
    return { processId: 'p1', pid: 2, io: this.io() };
  }
  async signal(): Promise<void> {}
  async resize(): Promise<void> {}
  async wait(): Promise<ExitStatus> {
    return new Promise(() => undefined);
  }
  async shutdown(): Promise<void> {
    this.shutdowns++;
  }
  async setMetadata(metadata: MetadataValues): Promise<void> {
    // As the TTRPC adapter reports a call the agent failed.
    if (this.connector.refuseMetadata) throw new HypercoreError(ErrorCodes.agentUnavailable, 'agent SetMetadata failed: the guest refused the metadata');
    this.connector.metadataSets.push(metadata);
  }
  async restored(identity: GuestIdentity): Promise<void> {
    this.connector.calls.push('restored');
    this.connector.restores.push(identity);
  }
  close(): void {
    this.end();
  }
}

export class FakeAgentConnector implements AgentConnector {
  /** answer: the guest's agent answers; silent: it never does (a wait ends only when aborted or timed out). */
  mode: 'answer' | 'silent' = 'answer';
  workloadStarts = 0;
  /** What the last StartWorkload asked for. */
  lastStart: WorkloadStart | undefined;
  /** Every SetMetadata the guests took; `refuseMetadata` makes them fail instead. */
  readonly metadataSets: MetadataValues[] = [];
  refuseMetadata = false;
  /** Every identity a restored guest was told, in order. */
  readonly restores: GuestIdentity[] = [];
  /** Makes StartWorkload fail with this message (crun could not start the workload). */
  startFailure: string | undefined;
  /** The guest's side: whether its workload runs (survives a daemon restart, as a real guest's does). */
  workloadRunning = false;
  readonly sessions: FakeSession[] = [];

  /** How long reaching the guest's agent takes (a loaded host, a guest still polling its channel). */
  connectDelayMs = 0;
  /** How long the agent takes to answer Hello (the round trip to a guest under TCG). */
  helloDelayMs = 0;
  /** Hello, StartWorkload and Restored calls, and Hello's answers, in the order the guests saw them. */
  readonly calls: string[] = [];
  /** When each connect completed (Date.now()). */
  readonly connectedAt: number[] = [];
  /** How many connects were made, and when each channel's socket opened (only connects that ask, hrtime). */
  connects = 0;
  readonly openedAt: bigint[] = [];

  async connect(_endpoint: AgentEndpoint, options: AgentConnectOptions): Promise<AgentSession> {
    this.connects++;
    if (options.onOpen) {
      this.openedAt.push(process.hrtime.bigint());
      options.onOpen();
    }
    if (this.connectDelayMs > 0) await new Promise((r) => setTimeout(r, this.connectDelayMs));
    this.connectedAt.push(Date.now());
    if (this.mode === 'silent') {
      await new Promise<void>((_, reject) => {
        const timer = setTimeout(() => reject(new Error(`the agent did not answer within ${options.timeoutMs} ms`)), options.timeoutMs);
        options.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(new Error('aborted'));
        });
      });
    }
    const session = new FakeSession(this);
    this.sessions.push(session);
    return session;
  }
}

export class MemoryWorkloadLog implements WorkloadLog {
  readonly data = new Map<string, Uint8Array[]>();
  private readonly offsets = new Map<string, number>();
  async append(vm: Vm, data: Uint8Array, nextOffset: number): Promise<void> {
    this.data.set(vm.id, [...(this.data.get(vm.id) ?? []), data]);
    this.offsets.set(vm.id, nextOffset);
  }
  async resumeOffset(vm: Vm): Promise<number> {
    return this.offsets.get(vm.id) ?? 0;
  }
  async note(): Promise<void> {}
  async *read(vm: Vm): AsyncIterable<Uint8Array> {
    yield* this.data.get(vm.id) ?? [];
  }
  async tail(): Promise<string> {
    return '';
  }
}
