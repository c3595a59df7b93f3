/**
 * `metadata get` and `metadata set`: a VM's values and secrets, read from its record, and changed
 * in its record and, while it runs, in its guest without a restart. A change that is too large, or
 * that the guest cannot take, changes nothing.
 */
import type { AgentSupervisor } from './agent-supervisor.js';
import { ErrorCodes, HypercoreError, InvalidArgumentError, VmStateConflictError } from './errors.js';
import { emptyMetadata, METADATA_KEY_PATTERN, METADATA_KEY_RULE, valuesBudgetProblem, withEntries, type MetadataValues } from './metadata.js';
import type { VmRecords } from './vm-records.js';
import { usesAgent } from './vm-runtime.js';
import type { Vm } from './vm.js';

export class VmMetadata {
  constructor(
    private readonly records: VmRecords,
    private readonly supervisor: AgentSupervisor | undefined,
  ) {}

  /** The VM's values and secrets as stored (secrets in clear: the API edge hides them). */
  get(ref: string): MetadataValues {
    const vm = this.records.find(ref);
    requireAgentVm(vm);
    const { values, secrets } = vm.spec.metadata ?? emptyMetadata();
    return { values, secrets };
  }

  /**
   * Sets `entries` (see `withEntries`); the caller holds the VM's lock. A running guest gets the
   * new values first, so a guest that cannot take them leaves the record as it was; a stopped VM's
   * guest gets them when it next starts.
   */
  async set(id: string, entries: Readonly<Record<string, string>>, secret: boolean): Promise<MetadataValues> {
    const vm = this.records.current(id);
    requireAgentVm(vm);
    checkEntries(entries);
    if (vm.state === 'paused') throw new VmStateConflictError(`VM ${vm.name} is paused; resume it first (hypercore resume ${vm.name})`);
    if (vm.state !== 'running' && vm.state !== 'stopped' && vm.state !== 'failed' && vm.state !== 'created') {
      throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; metadata can be set while it runs, or before it starts`);
    }
    const next = withEntries(vm.spec.metadata, entries, secret);
    const tooLarge = valuesBudgetProblem(next);
    if (tooLarge) throw new InvalidArgumentError(`metadata of VM ${vm.name}: ${tooLarge}`, [{ path: 'values', message: tooLarge }]);
    const values: MetadataValues = { values: next.values, secrets: next.secrets };
    if (vm.state === 'running') {
      if (!this.supervisor) throw new HypercoreError(ErrorCodes.agentUnavailable, 'this hypercored has no agent support configured');
      await this.supervisor.session(vm).setMetadata(values);
    }
    this.records.save(vm, { spec: { ...vm.spec, metadata: next } });
    return values;
  }
}

/** At least one entry, each under a valid key name (values are any text: the budget bounds them). */
function checkEntries(entries: Readonly<Record<string, string>>): void {
  const keys = Object.keys(entries);
  if (keys.length === 0) throw new InvalidArgumentError('nothing to set: give at least one KEY=VALUE', [{ path: 'values', message: 'at least one entry' }]);
  for (const key of keys) {
    if (METADATA_KEY_PATTERN.test(key)) continue;
    const shown = JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
    throw new InvalidArgumentError(`metadata key ${shown}: must be ${METADATA_KEY_RULE}`, [{ path: `values.${shown}`, message: `must be ${METADATA_KEY_RULE}` }]);
  }
}

/** Only image VMs run the agent that delivers metadata. */
function requireAgentVm(vm: Vm): void {
  if (!usesAgent(vm.spec)) {
    throw new InvalidArgumentError(`VM ${vm.name} runs no Hypercore agent (it boots its own drive or only a kernel); metadata needs a VM created from an image (ref without drive)`);
  }
}
