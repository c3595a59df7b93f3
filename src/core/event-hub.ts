import type { VmEvent } from './vm.js';

export type VmEventListener = (event: VmEvent) => void;

/** In-process fan-out of VM events to subscribers (WatchEvents streams). A failing listener does not affect others. */
export class EventHub {
  private readonly listeners = new Set<VmEventListener>();

  subscribe(listener: VmEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event: VmEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A subscriber's bug must not break the lifecycle operation that published the event.
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
