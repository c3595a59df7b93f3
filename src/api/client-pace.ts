/**
 * Sending to API clients at their pace. A client that does not read must not grow the daemon's memory:
 * every stream either waits for its client (exec, attach, logs: the producer is paused behind it),
 * drops a subscriber that falls too far behind (events), or keeps only the newest of what it would
 * send (pull progress).
 */
import { ClientTooSlowError } from '../core/errors.js';

/** Events a subscriber may have waiting to be sent before it is dropped (they are small: ~300 bytes). */
export const MAX_QUEUED_EVENTS = 1024;
/** Bytes of NDJSON events an HTTP subscriber may have waiting before it is dropped. */
export const MAX_QUEUED_EVENT_BYTES = 1024 * 1024;

/** The error that ends an event stream whose client stopped reading. */
export function eventsTooSlow(limit: string): ClientTooSlowError {
  return new ClientTooSlowError(`the client did not read its events: more than ${limit} were waiting, so the stream was closed; watch again`);
}

/** A client stream that says when it is full (`write` returns false) and when it drained. */
export interface PacedSink<T> {
  write(message: T): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** Most distinct progress keys held while a client is behind (one per phase and layer). */
const MAX_PENDING_PROGRESS = 256;

/**
 * Progress at the client's pace: while the client's stream is full, a message replaces the waiting one
 * with the same key (phase and layer), so a client that does not read holds at most one message per key.
 * `finish` sends what is still waiting; the last message (done) is never replaced by an older one.
 */
export function pacedProgress<T extends { phase: string; layer?: string }>(sink: PacedSink<T>): { push(message: T): void; finish(): void } {
  const pending = new Map<string, T>();
  let full = false;
  const flush = (): void => {
    full = false;
    for (const [key, message] of pending) {
      pending.delete(key);
      if (!sink.write(message)) {
        full = true;
        sink.once('drain', flush);
        return;
      }
    }
  };
  return {
    push(message) {
      if (!full) {
        if (!sink.write(message)) {
          full = true;
          sink.once('drain', flush);
        }
        return;
      }
      const key = `${message.phase}\u0000${message.layer ?? ''}`;
      pending.delete(key);
      if (pending.size >= MAX_PENDING_PROGRESS) pending.delete(pending.keys().next().value!);
      pending.set(key, message);
    },
    finish() {
      for (const message of pending.values()) sink.write(message);
      pending.clear();
    },
  };
}
