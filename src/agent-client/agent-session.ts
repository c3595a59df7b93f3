/** The core's AgentSession, spoken as TTRPC calls of `hypercore.agent.v1.Agent`. */
import type { AgentConnectOptions, AgentConnector, AgentEndpoint, AgentInfo, AgentSession, ExitStatus, GuestIdentity, ProcessEvent, ProcessIo, ProcessSpec, WorkloadStart } from '../core/agent.js';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import type { MetadataValues } from '../core/metadata.js';
import { AGENT_SERVICE } from '../agent/protocol/schema.js';
import { codecs, ioOutputCost, methods, type UnaryMethod } from '../agent/protocol/messages.js';
import { Code, TtrpcClient, TtrpcError, type ClientStream } from '../ttrpc/index.js';
import { openAgentChannel, openHybridVsockChannel } from './connect.js';
import { TtrpcPodAgent } from './pod-agent.js';
import type { PodAgent } from '../core/pod-agent.js';

export const HOST_VERSION = '0.1.0';
const CALL_TIMEOUT_MS = 30_000;

type Req<M extends UnaryMethod> = Parameters<(typeof methods)[M]['request']['encode']>[0];
type Res<M extends UnaryMethod> = ReturnType<(typeof methods)[M]['response']['decode']>;

function fromRemote(err: unknown, what: string): HypercoreError {
  if (err instanceof HypercoreError) return err;
  const message = err instanceof TtrpcError ? err.message : String(err);
  return new HypercoreError(ErrorCodes.agentUnavailable, `agent ${what} failed: ${message}`, { cause: err });
}

/**
 * Output credit the daemon grants each Io stream: the most guest output (in message cost, see
 * `ioOutputCost`) it takes in ahead of the stream's reader. The agent keeps the rest in the process's
 * ring (1 MiB) and then pauses the process, so a reader that stops reading costs the daemon at most this.
 */
export const IO_WINDOW_BYTES = 1024 * 1024;
/** Consumed output is reported in steps of this much (fewer, larger credit messages). */
const CREDIT_STEP_BYTES = IO_WINDOW_BYTES / 4;
/**
 * Bound of one Io stream's unread messages in the TTRPC client: the window plus one message of slack.
 * An agent that ignores its credit overruns it, and only that stream fails.
 */
const IO_STREAM_BUFFER_BYTES = IO_WINDOW_BYTES + 128 * 1024;

class ProcessStream implements ProcessIo {
  constructor(private readonly stream: ClientStream) {}

  async write(data: Uint8Array): Promise<void> {
    await this.stream.send(codecs.IoInput.encode({ stdin: data }));
  }

  async closeStdin(): Promise<void> {
    await this.stream.send(codecs.IoInput.encode({ closeStdin: true }));
  }

  /** Tells the agent the stream is over (closing our side is ttrpc's only cancel), then stops locally. */
  close(): void {
    this.stream.closeSend().catch(() => undefined);
    this.stream.cancel('closed by the host');
  }

  /**
   * Events in order. Credit is granted for a message only once the consumer has come back for the next
   * one, so a consumer that stops pulling (its client does not read) stops the agent within the window.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<ProcessEvent> {
    let consumed = 0;
    let reported = 0;
    for await (const bytes of this.stream) {
      const out = codecs.IoOutput.decode(bytes);
      if (out.data && out.data.length > 0) yield { kind: 'output', fd: out.fd === 2 ? 2 : 1, data: out.data, offset: out.offset ?? 0 };
      if (out.exited) {
        yield { kind: 'exit', status: { exitCode: out.exitCode ?? 0, ...(out.signal ? { signal: out.signal } : {}) } };
        return;
      }
      consumed += ioOutputCost(bytes);
      if (consumed - reported >= CREDIT_STEP_BYTES) {
        reported = consumed;
        this.stream.send(codecs.IoInput.encode({ consumedBytes: consumed })).catch(() => undefined);
      }
    }
  }
}

/** Told of each unary agent RPC when it ends: its method, how long it took, and whether it succeeded. */
export type AgentCallObserver = (method: UnaryMethod, seconds: number, ok: boolean) => void;

/** Wait lasts as long as the process does: its duration says nothing about the agent. */
const UNTIMED_METHODS: ReadonlySet<UnaryMethod> = new Set(['Wait']);

export class TtrpcAgentSession implements AgentSession {
  readonly closed: Promise<void>;
  private podAgent: PodAgent | undefined;
  /** The agent predates the Exec call. */
  private execUnimplemented = false;

  constructor(
    private readonly client: TtrpcClient,
    private readonly observe?: AgentCallObserver,
  ) {
    this.closed = client.whenClosed().then(() => undefined, () => undefined);
  }

  private async call<M extends UnaryMethod>(method: M, request: Req<M>, timeoutMs = CALL_TIMEOUT_MS): Promise<Res<M>> {
    const codec = methods[method];
    const started = performance.now();
    let ok = false;
    try {
      const bytes = await this.client.call(AGENT_SERVICE, method, codec.request.encode(request as never), { timeoutMs });
      const response = codec.response.decode(bytes) as Res<M>;
      ok = true;
      return response;
    } catch (err) {
      throw fromRemote(err, method);
    } finally {
      if (this.observe && !UNTIMED_METHODS.has(method)) this.observe(method, (performance.now() - started) / 1000, ok);
    }
  }

  async hello(): Promise<AgentInfo> {
    const r = await this.call('Hello', { hostVersion: HOST_VERSION });
    return { agentVersion: r.agentVersion, bootId: r.bootId, uptimeMs: r.uptimeMs, workloadStarted: r.workloadStarted };
  }

  async startWorkload(start: WorkloadStart): Promise<{ processId: string; pid: number }> {
    return this.call(
      'StartWorkload',
      {
        process: start.process,
        imageDiskSerial: start.imageDiskSerial,
        ...(start.scratchDiskSerial ? { scratchDiskSerial: start.scratchDiskSerial } : {}),
        limits: { memoryBytes: start.memoryLimitBytes ?? 0, pids: start.pidsLimit ?? 0 },
        ...(start.hostname ? { hostname: start.hostname } : {}),
        ...(start.metadata ? { metadata: start.metadata } : {}),
        ...(start.files ? { files: start.files } : {}),
        ...(start.sshAuthorizedKeys ? { sshAuthorizedKeys: start.sshAuthorizedKeys } : {}),
        // The daemon sends it along with Hello (see AgentSupervisor.startWorkload).
        oncePerBoot: true,
      },
      120_000,
    );
  }

  createProcess(spec: ProcessSpec, inWorkload: boolean): Promise<{ processId: string; pid: number }> {
    return this.call('CreateProcess', { process: spec, inWorkload });
  }

  io(processId: string, fromOffset = 0, options: { follow?: boolean } = {}): ProcessIo {
    const stream = this.client.stream(AGENT_SERVICE, 'Io', { streamingClient: true, streamingServer: true, maxBufferedBytes: IO_STREAM_BUFFER_BYTES });
    const first = { processId, fromOffset, windowBytes: IO_WINDOW_BYTES, holdOutput: options.follow !== true };
    void stream.send(codecs.IoInput.encode(first)).catch(() => undefined);
    return new ProcessStream(stream);
  }

  /**
   * One Exec call (the process and its IO in one round trip); an agent from before Exec answers
   * UNIMPLEMENTED, and then this session uses CreateProcess and Io.
   */
  async exec(spec: ProcessSpec, inWorkload: boolean): Promise<{ processId: string; pid: number; io: ProcessIo }> {
    if (this.execUnimplemented) {
      const { processId, pid } = await this.createProcess(spec, inWorkload);
      return { processId, pid, io: this.io(processId, 0) };
    }
    const started = performance.now();
    let ok = false;
    // The first IoInput travels in the Request frame itself.
    const payload = codecs.IoInput.encode({ create: { process: spec, inWorkload }, windowBytes: IO_WINDOW_BYTES, holdOutput: true });
    const stream = this.client.stream(AGENT_SERVICE, 'Exec', { streamingClient: true, streamingServer: true, maxBufferedBytes: IO_STREAM_BUFFER_BYTES, payload });
    // As CreateProcess's deadline: the process must have started by then (the stream itself has none).
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      stream.cancel(new Error(`no answer within ${CALL_TIMEOUT_MS / 1000} s`));
    }, CALL_TIMEOUT_MS);
    try {
      const first = await stream.recv();
      const out = first === undefined ? undefined : codecs.IoOutput.decode(first);
      if (!out?.started?.processId) throw new TtrpcError(Code.INTERNAL, 'Exec: the agent did not say which process it started');
      ok = true;
      return { processId: out.started.processId, pid: out.started.pid, io: new ProcessStream(stream) };
    } catch (err) {
      // Closing our side tells the agent nobody reads: a process started meanwhile is not held for us.
      stream.closeSend().catch(() => undefined);
      stream.cancel('exec failed');
      if (err instanceof TtrpcError && err.code === Code.UNIMPLEMENTED) {
        this.execUnimplemented = true;
        return this.exec(spec, inWorkload);
      }
      throw fromRemote(timedOut ? new TtrpcError(Code.DEADLINE_EXCEEDED, 'context deadline exceeded', { cause: err }) : err, 'CreateProcess');
    } finally {
      clearTimeout(timer);
      this.observe?.('CreateProcess', (performance.now() - started) / 1000, ok);
    }
  }

  async signal(processId: string, signal: string): Promise<void> {
    await this.call('Signal', { processId, signal });
  }

  async resize(processId: string, rows: number, cols: number): Promise<void> {
    await this.call('Resize', { processId, rows, cols });
  }

  async wait(processId: string): Promise<ExitStatus> {
    const r = await this.call('Wait', { processId }, 24 * 3600_000);
    return { exitCode: r.exitCode, ...(r.signal ? { signal: r.signal } : {}) };
  }

  containers(): PodAgent {
    this.podAgent ??= new TtrpcPodAgent(this.client);
    return this.podAgent;
  }

  async shutdown(): Promise<void> {
    await this.call('Shutdown', {});
  }

  async setMetadata(metadata: MetadataValues): Promise<void> {
    await this.call('SetMetadata', metadata);
  }

  async restored(identity: GuestIdentity): Promise<void> {
    await this.call('Restored', identity);
  }

  close(): void {
    this.client.close();
  }
}

export class TtrpcAgentConnector implements AgentConnector {
  constructor(private readonly observe?: AgentCallObserver) {}

  /** The session's own type, for tools and tests that use the agent's calls the core does not (CreateProcess). */
  async connect(endpoint: AgentEndpoint, options: AgentConnectOptions): Promise<TtrpcAgentSession> {
    const transport = endpoint.kind === 'unix' ? await openAgentChannel(endpoint.path, options) : await openHybridVsockChannel(endpoint.path, endpoint.port, options);
    return new TtrpcAgentSession(new TtrpcClient(transport), this.observe);
  }
}
