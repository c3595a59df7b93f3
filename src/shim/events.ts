/**
 * Task events to containerd: `containerd.services.events.ttrpc.v1.Events/Forward` on containerd's
 * TTRPC socket (TTRPC_ADDRESS in the shim's environment), with the namespace in the envelope and
 * in the call's metadata. One ordered queue per containerd and namespace: containerd and CRI rely
 * on the order (create, start, exit, delete; exec-added, exec-started, exit). A failed send is
 * retried a few times, as containerd's own shims do, then dropped with a warning.
 */
import type { Logger } from '../core/ports.js';
import { TtrpcClient } from '../ttrpc/index.js';
import { anyOf, EVENTS_SERVICE, events, messages, NAMESPACE_METADATA_KEY, type TaskEventName } from './protocol/containerd.js';

const SEND_TIMEOUT_MS = 5000;
const MAX_ATTEMPTS = 5;
/** Most events queued for one containerd (a containerd that stopped reading cannot grow our memory). */
const MAX_QUEUED = 10_000;

type EventBody<N extends TaskEventName> = Parameters<(typeof events)[N]['codec']['encode']>[0];

interface Queued {
  payload: Uint8Array;
  topic: string;
}

/** The event queue of one containerd (its TTRPC address) and namespace. */
export class EventPublisher {
  private readonly queue: Queued[] = [];
  private client: TtrpcClient | undefined;
  private sending = false;
  private idle: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly logger: Logger,
  ) {}

  publish<N extends TaskEventName>(name: N, body: EventBody<N>): void {
    if (this.closed) return;
    const { topic, codec } = events[name];
    const now = Date.now();
    const payload = messages.ForwardRequest.encode({
      envelope: { timestamp: { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 }, namespace: this.namespace, topic, event: anyOf(codec as never, body as never) },
    });
    if (this.queue.length >= MAX_QUEUED) {
      this.logger.warn({ topic, namespace: this.namespace }, 'containerd is not taking events; dropping one');
      return;
    }
    this.queue.push({ payload, topic });
    void this.drain();
  }

  /** Resolves once every queued event was sent (or given up on). */
  flushed(): Promise<void> {
    if (!this.sending && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = undefined;
  }

  private async drain(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        await this.send(this.queue[0]!);
        this.queue.shift();
      }
    } finally {
      this.sending = false;
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private async send(event: Queued): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (!this.client || this.client.closed) this.client = await TtrpcClient.connect(this.address);
        await this.client.call(EVENTS_SERVICE, 'Forward', event.payload, { timeoutMs: SEND_TIMEOUT_MS, metadata: { [NAMESPACE_METADATA_KEY]: this.namespace } });
        return;
      } catch (err) {
        this.client?.close();
        this.client = undefined;
        if (attempt >= MAX_ATTEMPTS || this.closed) {
          this.logger.warn({ topic: event.topic, namespace: this.namespace, address: this.address, err: String(err) }, 'could not forward an event to containerd');
          return;
        }
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
  }
}

/** One publisher per containerd TTRPC address and namespace. */
export class EventPublishers {
  private readonly publishers = new Map<string, EventPublisher>();

  constructor(private readonly logger: Logger) {}

  for(address: string, namespace: string): EventPublisher {
    const key = `${address}\n${namespace}`;
    let p = this.publishers.get(key);
    if (!p) {
      p = new EventPublisher(address, namespace, this.logger);
      this.publishers.set(key, p);
    }
    return p;
  }

  closeAll(): void {
    for (const p of this.publishers.values()) p.close();
    this.publishers.clear();
  }
}
