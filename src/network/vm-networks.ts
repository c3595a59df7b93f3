/**
 * The core's VmNetworks port for mode "nat": per subnet a Hypercore bridge, per VM a TAP on it, an
 * address leased in the state database, and NAT / port-forward rules in Hypercore's nftables table.
 * Everything is idempotent, so a restart re-attaches a stopped VM to the same address.
 */
import { createHash } from 'node:crypto';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import { KeyedLock } from '../core/keyed-lock.js';
import type { LeaseStore, Logger, NetworkAttachment, VmNetworks } from '../core/ports.js';
import type { NetworkSpec } from '../core/vm.js';
import { defaultRunner, type CommandRunner } from './command-runner.js';
import { HostNetwork } from './host-network.js';
import { allocateAddress, gatewayCidrOf, gatewayOf, macForVm, parseCidr, tapNameForVm } from './ipam.js';
import { NatRules } from './nat.js';
import { parsePortSpecs } from './ports.js';

/** Lease namespace of host-bridge addresses (they are not in a Hypercore subnet). */
const HOST_BRIDGE_LEASE = 'bridge:';

/** One bridge per subnet; the name (≤ 15 bytes) is derived from the subnet so every daemon agrees. */
export function bridgeNameFor(subnet: string): string {
  return `hcbr${createHash('sha256').update(subnet).digest('hex').slice(0, 8)}`;
}

export interface NatVmNetworksOptions {
  leases: LeaseStore;
  logger: Logger;
  run?: CommandRunner;
  /** Interface NAT sends traffic out of (hac.toml `interface`); default: the default route's. */
  outInterface?: string;
}

export class NatVmNetworks implements VmNetworks {
  private readonly host: HostNetwork;
  private readonly nat: NatRules;
  private readonly run: CommandRunner;

  constructor(private readonly options: NatVmNetworksOptions) {
    const run = options.run ?? defaultRunner;
    this.run = run;
    this.host = new HostNetwork(run);
    this.nat = new NatRules(run);
  }

  /** One change at a time: concurrent creates would race on the shared bridge and NAT table. */
  private readonly lock = new KeyedLock();

  /** `hostInterface` (hac.toml `[hardware] interface`) is where NAT sends traffic out; default: the default route's. */
  attach(vmId: string, spec: NetworkSpec, hostInterface?: string): Promise<NetworkAttachment> {
    return this.lock.run('host', () => this.attachNow(vmId, spec, hostInterface));
  }

  detach(vmId: string): Promise<void> {
    return this.lock.run('host', () => this.detachNow(vmId));
  }

  private async attachNow(vmId: string, spec: NetworkSpec, hostInterface?: string): Promise<NetworkAttachment> {
    if (spec.mode === 'bridge') return this.attachToHostBridge(vmId, spec);
    const cidr = parseCidr(spec.subnet);
    const bridge = bridgeNameFor(cidr.text);
    // Everything that can be refused is checked before anything is created.
    const ports = parsePortSpecs(spec.ports);
    await this.host.assertNoConflict(cidr.text, bridge);
    const ours = new Set(await this.nat.vmIdsWithRules().catch(() => [] as string[]));
    for (const p of ports) {
      const address = p.hostAddress ?? '0.0.0.0';
      if (!ours.has(vmId) && (await this.nat.portInUse(address, p.hostPort, p.protocol))) {
        throw new HypercoreError(ErrorCodes.invalidArgument, `port forward ${address}:${p.hostPort}/${p.protocol}: that port is already in use on the host`);
      }
    }
    const ip = this.options.leases.claim(cidr.text, vmId, (used) => allocateAddress(cidr, used, spec.ip));
    try {
      await this.host.ensureBridge(bridge, gatewayCidrOf(cidr));
      const tap = tapNameForVm(vmId);
      await this.host.createTap(tap, bridge);
      await this.host.enableForwarding(this.options.logger);
      await this.nat.ensure(cidr.text, bridge, hostInterface ?? this.options.outInterface ?? (await this.host.defaultRouteInterface()));
      await this.nat.removeForVm(vmId);
      for (const p of ports) {
        await this.nat.addPortForward({ vmId, ...(p.hostAddress ? { hostAddress: p.hostAddress } : {}), hostPort: p.hostPort, protocol: p.protocol, guestAddress: ip, guestPort: p.guestPort });
      }
      return { tap, mac: spec.mac ?? macForVm(vmId), ip, prefixLength: cidr.prefix, gateway: gatewayOf(cidr), dns: spec.dns };
    } catch (err) {
      await this.detachNow(vmId).catch(() => undefined);
      throw err;
    }
  }

  /**
   * mode "bridge": a TAP on a bridge the host already has; the address is the static one the
   * hac.toml gives (leased under `bridge:<name>` so two VMs cannot take it); no NAT, no forwards.
   */
  private async attachToHostBridge(vmId: string, spec: NetworkSpec): Promise<NetworkAttachment> {
    const bridge = spec.bridge ?? '';
    const cidr = parseCidr(spec.subnet);
    const links = JSON.parse((await this.run('ip', ['-j', '-d', 'link', 'show'])).stdout) as { ifname: string; linkinfo?: { info_kind?: string } }[];
    if (!links.some((l) => l.ifname === bridge && l.linkinfo?.info_kind === 'bridge')) {
      throw new HypercoreError(ErrorCodes.invalidArgument, `network.bridge = "${bridge}": no such bridge on the host (create it first, or use mode = "nat")`);
    }
    const ip = this.options.leases.claim(`${HOST_BRIDGE_LEASE}${bridge}`, vmId, (used) => allocateAddress(cidr, used, spec.ip));
    try {
      const tap = tapNameForVm(vmId);
      await this.host.createTap(tap, bridge);
      return { tap, mac: spec.mac ?? macForVm(vmId), ip, prefixLength: cidr.prefix, gateway: spec.gateway ?? '', dns: spec.dns };
    } catch (err) {
      await this.detachNow(vmId).catch(() => undefined);
      throw err;
    }
  }

  private async detachNow(vmId: string): Promise<void> {
    // Leases on a host bridge are not ours to clean up beyond the TAP: the bridge stays.
    const subnets = this.options.leases.all().filter((l) => l.vmId === vmId && !l.subnet.startsWith(HOST_BRIDGE_LEASE)).map((l) => l.subnet);
    if (await this.nat.exists()) await this.nat.removeForVm(vmId);
    await this.host.deleteTap(tapNameForVm(vmId));
    this.options.leases.release(vmId);
    // Shared pieces go when no VM needs them any more: the subnet's bridge, then the NAT table.
    const remaining = this.options.leases.all().filter((l) => !l.subnet.startsWith(HOST_BRIDGE_LEASE));
    for (const subnet of subnets) if (!remaining.some((l) => l.subnet === subnet)) await this.host.deleteBridge(bridgeNameFor(subnet));
    if (remaining.length === 0 && (await this.nat.exists())) await this.nat.destroy();
  }

  /** What `prune` would remove, for `hypercore doctor`. */
  leftovers(vmIds: ReadonlySet<string>): string[] {
    return this.options.leases
      .all()
      .filter((l) => !vmIds.has(l.vmId))
      .map((l) => `lease ${l.ip} (and TAP ${tapNameForVm(l.vmId)}, port forwards) of VM ${l.vmId}, which no longer exists`);
  }

  /**
   * Removes what belongs to VMs this daemon no longer has. Only leased VMs are considered: a lease
   * is taken before the TAP and the rules, so every leftover of ours has one, and TAPs or rules
   * of other hypercored instances on this host (other roots) are never touched.
   */
  async prune(vmIds: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const lease of this.options.leases.all()) {
      if (vmIds.has(lease.vmId)) continue;
      await this.detach(lease.vmId);
      removed.push(`tap ${tapNameForVm(lease.vmId)}, rules and lease ${lease.ip} of VM ${lease.vmId}`);
    }
    return removed;
  }
}
