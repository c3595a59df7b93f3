/**
 * What makes a guest this VM and no other: its hostname, its machine id, and (for a guest restored
 * from a snapshot, whose memory another VM had) a fresh clock, fresh entropy and its own network.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { GuestIdentity } from './agent.js';
import type { NetworkAttachment } from './ports.js';
import type { Vm } from './vm.js';

/** Bytes of host entropy a restored guest mixes into its kernel's pool before it reseeds. */
export const RESTORE_ENTROPY_BYTES = 64;

/** The VM's machine id (32 hex digits, as /etc/machine-id): stable for the VM, different for every VM. */
export function machineId(vmId: string): string {
  return createHash('sha256').update(`hypercore machine-id ${vmId}`).digest('hex').slice(0, 32);
}

/** What a restored guest is told: the host's time now, new entropy, and this VM's identity. */
export function restoredIdentity(vm: Vm, now: Date, network: NetworkAttachment | undefined): GuestIdentity {
  return {
    unixTimeMs: now.getTime(),
    entropy: randomBytes(RESTORE_ENTROPY_BYTES),
    hostname: vm.name,
    machineId: machineId(vm.id),
    ...(network ? { network: { mac: network.mac, address: `${network.ip}/${network.prefixLength}`, gateway: network.gateway, dns: network.dns } } : {}),
  };
}
