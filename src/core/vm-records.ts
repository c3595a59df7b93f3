/**
 * VM records: finding VMs, and every change to a record, through the lifecycle state machine,
 * published as an event. The one place that writes VM state, so no path can change a state
 * without the transition check and the event.
 */
import { EventHub } from './event-hub.js';
import { VmNotFoundError } from './errors.js';
import { findByRef } from './find-ref.js';
import { assertTransition } from './lifecycle.js';
import type { Clock, Logger, VmStore } from './ports.js';
import type { Vm, VmError, VmEvent, VmState } from './vm.js';

/** Fields a state change may set or clear along with the state (undefined clears). */
export interface StatePatch {
  pid?: number | undefined;
  error?: VmError | undefined;
  defineOnly?: undefined;
}

export class VmRecords {
  readonly events = new EventHub();

  constructor(
    private readonly store: VmStore,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  list(): Vm[] {
    return this.store.list();
  }

  /** Finds a VM by exact id, exact name, or unique id prefix, in that order. */
  find(ref: string): Vm {
    return findByRef(ref, this.store, () => new VmNotFoundError(ref));
  }

  /** The stored record of `id` (fresh from the store, not a caller's copy). */
  current(id: string): Vm {
    const vm = this.store.get(id);
    if (!vm) throw new VmNotFoundError(id);
    return vm;
  }

  exists(id: string): boolean {
    return this.store.get(id) !== undefined;
  }

  findByName(name: string): Vm | undefined {
    return this.store.findByName(name);
  }

  now(): string {
    return this.clock.now().toISOString();
  }

  /** A logger that names the VM in every line. */
  log(vm: Pick<Vm, 'id' | 'name'>): Logger {
    return this.logger.child({ vmId: vm.id, vmName: vm.name });
  }

  insert(vm: Vm): void {
    this.store.insert(vm);
    this.publish({ type: 'created', vm });
  }

  /** Writes `patch` into `vm` and the store; an undefined value removes the field. */
  save<K extends keyof Vm>(vm: Vm, patch: Partial<Pick<Vm, K>>): Vm {
    Object.assign(vm, patch, { updatedAt: this.now() });
    for (const key of Object.keys(patch) as K[]) if (patch[key] === undefined) delete vm[key];
    return this.store.update(vm);
  }

  /** Moves `vm` to `to` if the state machine allows it; throws VmStateConflictError otherwise. */
  transition(vm: Vm, to: VmState, patch: StatePatch = {}): Vm {
    assertTransition(vm.name, vm.state, to);
    return this.forceState(vm, to, patch);
  }

  /** Sets the state without the check: only for reconcile, which records what it found. */
  forceState(vm: Vm, to: VmState, patch: StatePatch = {}): Vm {
    const previousState = vm.state;
    vm.state = to;
    this.save(vm, patch);
    this.publish({ type: 'state-changed', vm, previousState });
    return vm;
  }

  /** Removes the record (the VM's files and processes must already be gone). */
  forget(vm: Vm): void {
    if (!this.store.get(vm.id)) return;
    this.store.delete(vm.id);
    this.publish({ type: 'deleted', vm });
  }

  private publish(e: { type: VmEvent['type']; vm: Vm; previousState?: VmState }): void {
    const event: VmEvent = { type: e.type, vmId: e.vm.id, name: e.vm.name, state: e.vm.state, at: this.now() };
    if (e.previousState) event.previousState = e.previousState;
    if (e.vm.error) event.error = e.vm.error;
    this.events.publish(event);
  }
}
