import { VmStateConflictError } from './errors.js';
import type { VmState } from './vm.js';

/**
 * The lifecycle state machine. Every state change in the service goes through `assertTransition`,
 * so an operation that races another (stop vs rm, start vs stop) fails with a clear conflict
 * instead of leaving a VM in a state no path leads out of.
 */
const transitions: Readonly<Record<VmState, readonly VmState[]>> = {
  creating: ['created', 'starting', 'running', 'deleting'],
  // Defined (record, directories, disks) but never booted: `start` boots it.
  created: ['starting', 'deleting'],
  starting: ['running', 'stopping', 'failed', 'stopped', 'deleting'],
  running: ['paused', 'stopping', 'stopped', 'failed', 'deleting'],
  // Frozen vCPUs; the VMM (and its memory) lives on.
  paused: ['running', 'stopping', 'stopped', 'failed', 'deleting'],
  stopping: ['stopped', 'failed', 'deleting'],
  stopped: ['starting', 'deleting'],
  failed: ['starting', 'stopped', 'deleting'],
  deleting: [],
};

export function canTransition(from: VmState, to: VmState): boolean {
  return transitions[from].includes(to);
}

export function assertTransition(vmRef: string, from: VmState, to: VmState): void {
  if (!canTransition(from, to)) {
    throw new VmStateConflictError(`VM ${vmRef} is ${from}; it cannot become ${to}`);
  }
}

/** States in which a VMM process is expected to exist. */
export function hasVmm(state: VmState): boolean {
  return state === 'starting' || state === 'running' || state === 'paused' || state === 'stopping';
}
