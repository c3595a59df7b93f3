/**
 * The core's VmNetworks port for modes "nat" and "bridge": per subnet a bridge of this daemon,
 * per VM a TAP on it, an address leased in the state database, NAT / port-forward / host-access
 * rules in this daemon's `ip` table and anti-spoofing / isolation rules in its `bridge` table.
 *
 * A VM holds its TAP, rules, MAC and host ports only while it runs (`release` on stop gives them
 * back, as Docker frees a stopped container's published ports); it keeps its address lease until
 * it is removed, so a restart gets the same address. Everything is idempotent, so re-attaching a
 * running VM (after a daemon restart) rewrites the same state.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../core/errors.js';
import { KeyedLock } from '../core/keyed-lock.js';
import type { LeaseStore, Logger, NetworkAttachment, VmNetworks } from '../core/ports.js';
import type { NetworkSpec } from '../core/vm.js';
import { defaultRunner, type CommandRunner } from './command-runner.js';
import { HostNetwork } from './host-network.js';
import { IpForwarding } from './ip-forwarding.js';
import { allocateAddress, gatewayCidrOf, gatewayOf, macForVm, parseCidr, tapNameForVm } from './ipam.js';
import { removeLegacyLayout } from './legacy-layout.js';
import { LinkGuard, macsInUse } from './link-guard.js';
import { forwardsClash, heldForwards, NatRules } from './nat.js';
import { Nft, tableNameFor } from './nft.js';
import { parseHostPort, parsePortSpecs, type PortSpec } from './ports.js';

/** Lease namespace of host-bridge addresses (they are not in a Hypercore subnet). */
const HOST_BRIDGE_LEASE = 'bridge:';

/**
 * This daemon's bridge for `subnet` (≤ 15 bytes). The scope keeps two daemons from sharing a
 * bridge they would each delete: the second one to use a subnet gets an overlapping-route error.
 */
export function bridgeNameFor(subnet: string, scope: string): string {
  return `hcbr${createHash('sha256').update(`${scope}\n${subnet}`).digest('hex').slice(0, 8)}`;
}

/**
 * The daemon's metadata listeners, one per NAT bridge (see metadata-service/host-endpoints): a
 * bridge's guests reach 169.254.169.254:80 through its port.
 */
export interface GuestMetadataListeners {
  ensure(b: { bridge: string; subnet: string; gateway: string }): Promise<number>;
  close(bridge: string): Promise<void>;
}

export interface NatVmNetworksOptions {
  leases: LeaseStore;
  logger: Logger;
  run?: CommandRunner;
  /** Interface NAT sends traffic out of (hac.toml `interface`); default: the default route's. */
  outInterface?: string;
  /** What makes this daemon's tables and bridges its own: its state root. */
  scope: string;
  /** How errors name a VM (e.g. `web (3f2a…)`); default: its id. */
  describeVm?: (vmId: string) => string;
  /** Serves the metadata endpoint to NAT guests from the host; without it, guests serve their own. */
  metadata?: GuestMetadataListeners;
}

export class NatVmNetworks implements VmNetworks {
  private readonly host: HostNetwork;
  private readonly nat: NatRules;
  private readonly links: LinkGuard;
  private readonly forwarding: IpForwarding;
  private readonly run: CommandRunner;
  private legacyChecked = false;
  /**
   * Set once this daemon has seen its last lease go and torn down the shared pieces (tables,
   * guards, forwarding); cleared by any attach. While it holds, a VM without a lease has nothing
   * on the network to remove, so its rm runs no command at all.
   */
  private sharedTornDown = false;

  constructor(private readonly options: NatVmNetworksOptions) {
    const run = options.run ?? defaultRunner;
    this.run = run;
    this.host = new HostNetwork(run);
    const table = tableNameFor(options.scope);
    this.nat = new NatRules(run, table);
    this.links = new LinkGuard(run, table);
    this.forwarding = new IpForwarding(run);
  }

  /** One change at a time: concurrent creates would race on the shared bridge and tables. */
  private readonly lock = new KeyedLock();

  /** `hostInterface` (hac.toml `[hardware] interface`) is where NAT sends traffic out; default: the default route's. */
  attach(vmId: string, spec: NetworkSpec, hostInterface?: string): Promise<NetworkAttachment> {
    return this.locked(() => {
      this.sharedTornDown = false;
      return this.attachNow(vmId, spec, hostInterface);
    });
  }

  detach(vmId: string): Promise<void> {
    return this.locked(async () => {
      // The lease comes before a VM's TAP and rules and goes after them, so a VM without one holds
      // nothing; the shared pieces are still checked once per daemon start (a crash may have left them).
      if (this.sharedTornDown && !this.hasLease(vmId)) return;
      await this.detachNow(vmId);
    });
  }

  private hasLease(vmId: string): boolean {
    return this.options.leases.all().some((l) => l.vmId === vmId);
  }

  async release(vmId: string): Promise<void> {
    // A lease is taken before anything else: a VM without one (mode none, or never attached) holds nothing.
    if (!this.hasLease(vmId)) return;
    await this.locked(() => this.releaseNow(vmId));
  }

  private locked<T>(work: () => Promise<T>): Promise<T> {
    return this.lock.run('host', async () => {
      await this.removeLegacyOnce();
      return work();
    });
  }

  private name(vmId: string): string {
    return this.options.describeVm?.(vmId) ?? `VM ${vmId}`;
  }

  /** The old shared layout goes before this daemon first touches the network (see legacy-layout). */
  private async removeLegacyOnce(): Promise<void> {
    if (this.legacyChecked) return;
    const leases = this.options.leases.all();
    const nat = leases.filter((l) => !l.subnet.startsWith(HOST_BRIDGE_LEASE));
    // Without a lease nothing of the old layout can be this daemon's (and a host without nft needs no check).
    if (leases.length > 0) await removeLegacyLayout(this.run, {
      vmIds: new Set(leases.map((l) => l.vmId)),
      taps: new Set(leases.map((l) => tapNameForVm(l.vmId))),
      subnets: new Set(nat.map((l) => l.subnet)),
    }, this.options.logger);
    this.legacyChecked = true;
  }

  /**
   * Refuses a MAC or a forwarded host port that another running VM holds (of this daemon or any
   * other on the host: their rules say so), and a host port a host process listens on.
   */
  private async assertFree(vmId: string, mac: string, ports: PortSpec[]): Promise<void> {
    const macOwner = (await macsInUse(this.run)).find((m) => m.mac === mac && m.vmId !== vmId);
    if (macOwner) throw new InvalidArgumentError(`network.mac ${mac} of ${this.name(vmId)} is already used by ${this.name(macOwner.vmId)}; give one of them another MAC`);
    const held = heldForwards(await new Nft(this.run).hypercoreTables('ip'));
    const ownRules = held.some((h) => h.vmId === vmId);
    for (const p of ports) {
      const address = p.hostAddress ?? '0.0.0.0';
      const holder = held.find((h) => h.vmId !== vmId && forwardsClash(h, p));
      if (holder) throw new InvalidArgumentError(`port forward ${address}:${p.hostPort}/${p.protocol} of ${this.name(vmId)}: that host port is already forwarded to ${this.name(holder.vmId)}`);
      // A VM re-attached while running has its forwards in place: they are not a host listener.
      if (!ownRules && (await this.nat.portInUse(address, p.hostPort, p.protocol))) {
        throw new InvalidArgumentError(`port forward ${address}:${p.hostPort}/${p.protocol}: that port is already in use on the host`);
      }
    }
  }

  private async attachNow(vmId: string, spec: NetworkSpec, hostInterface?: string): Promise<NetworkAttachment> {
    const mac = spec.mac ?? macForVm(vmId);
    const hadLease = this.hasLease(vmId);
    // Everything that can be refused is checked before anything is created.
    const cidr = parseCidr(spec.subnet);
    const bridge = spec.mode === 'bridge' ? (spec.bridge ?? '') : bridgeNameFor(cidr.text, this.options.scope);
    const ports = spec.mode === 'nat' ? parsePortSpecs(spec.ports) : [];
    const hostPorts = spec.mode === 'nat' ? (spec.hostPorts ?? []).map(parseHostPort) : [];
    if (spec.mode === 'bridge') await this.assertHostBridge(bridge);
    else await this.host.assertNoConflict(cidr.text, bridge);
    await this.assertFree(vmId, mac, ports);
    const leaseKey = spec.mode === 'bridge' ? `${HOST_BRIDGE_LEASE}${bridge}` : cidr.text;
    const ip = this.options.leases.claim(leaseKey, vmId, (used) => allocateAddress(cidr, used, spec.ip));
    const tap = tapNameForVm(vmId);
    // A TAP that is already there belongs to a running VM being re-attached: never tear it down.
    const running = await this.host.exists(tap);
    try {
      let metadataPort: number | undefined;
      if (spec.mode === 'nat') {
        await this.host.ensureBridge(bridge, gatewayCidrOf(cidr));
        await this.forwarding.enable(this.options.logger);
        // The listener binds the gateway address, which the bridge now has.
        metadataPort = await this.options.metadata?.ensure({ bridge, subnet: cidr.text, gateway: gatewayOf(cidr) });
        await this.nat.ensureBridge({ subnet: cidr.text, bridge, ...this.egress(hostInterface, await this.host.defaultRouteInterface()), ...(metadataPort === undefined ? {} : { metadataPort }) });
      }
      await this.host.createTap(tap, bridge);
      const neighbours = spec.mode === 'bridge' ? 'unfiltered' : spec.isolate === false ? 'open' : 'isolated';
      await this.links.addVm({ vmId, tap, mac, ip, neighbours });
      if (spec.mode === 'nat') {
        await this.nat.addVm({ vmId, bridge, subnet: cidr.text, guestAddress: ip, forwards: ports, hostPorts, open: neighbours === 'open' });
      }
      const gateway = spec.mode === 'bridge' ? (spec.gateway ?? '') : gatewayOf(cidr);
      return { tap, mac, ip, prefixLength: cidr.prefix, gateway, dns: spec.dns, ...(metadataPort === undefined ? {} : { metadataOnHost: true }) };
    } catch (err) {
      // A VM that had a lease (a stopped VM being started) keeps it; a new one leaves nothing.
      if (!running) await (hadLease ? this.releaseNow(vmId) : this.detachNow(vmId)).catch(() => undefined);
      throw err;
    }
  }

  private egress(hostInterface: string | undefined, defaultRoute: string | undefined): { outInterface?: string } {
    const out = hostInterface ?? this.options.outInterface ?? defaultRoute;
    return out === undefined ? {} : { outInterface: out };
  }

  /** mode "bridge": the TAP joins a bridge the host already has; no NAT, no forwards. */
  private async assertHostBridge(bridge: string): Promise<void> {
    const links = JSON.parse((await this.run('ip', ['-j', '-d', 'link', 'show'])).stdout) as { ifname: string; linkinfo?: { info_kind?: string } }[];
    if (!links.some((l) => l.ifname === bridge && l.linkinfo?.info_kind === 'bridge')) {
      throw new InvalidArgumentError(`network.bridge = "${bridge}": no such bridge on the host (create it first, or use mode = "nat")`);
    }
  }

  /** Gives back what a running VM holds (TAP, forwards, MAC, host ports); keeps its lease. */
  private async releaseNow(vmId: string): Promise<void> {
    const tap = tapNameForVm(vmId);
    const lease = this.options.leases.all().find((l) => l.vmId === vmId && !l.subnet.startsWith(HOST_BRIDGE_LEASE));
    await this.nat.removeForVm(vmId, lease?.ip);
    await this.links.removeForVm(vmId, tap);
    await this.host.deleteTap(tap);
  }

  private async detachNow(vmId: string): Promise<void> {
    const subnets = this.options.leases.all().filter((l) => l.vmId === vmId && !l.subnet.startsWith(HOST_BRIDGE_LEASE)).map((l) => l.subnet);
    await this.releaseNow(vmId);
    this.options.leases.release(vmId);
    // Shared pieces go when no VM needs them any more: the subnet's bridge and its rules, then the tables.
    const remaining = this.options.leases.all();
    const remainingNat = remaining.filter((l) => !l.subnet.startsWith(HOST_BRIDGE_LEASE));
    for (const subnet of subnets) {
      if (remainingNat.some((l) => l.subnet === subnet)) continue;
      const bridge = bridgeNameFor(subnet, this.options.scope);
      await this.nat.removeBridge(bridge);
      await this.options.metadata?.close(bridge);
      await this.host.deleteBridge(bridge);
    }
    if (remainingNat.length === 0) {
      await this.nat.destroy();
      await this.forwarding.restoreIfUnused(this.options.logger);
    }
    if (remaining.length === 0) {
      await this.links.destroy();
      this.sharedTornDown = true;
    }
  }

  /** What `prune` would remove, for `hypercore doctor`. */
  leftovers(vmIds: ReadonlySet<string>): string[] {
    return this.options.leases
      .all()
      .filter((l) => !vmIds.has(l.vmId))
      .map((l) => `lease ${l.ip} (and TAP ${tapNameForVm(l.vmId)}, port forwards) of VM ${l.vmId}, which no longer exists`);
  }

  /**
   * Removes what belongs to VMs this daemon no longer has: leased VMs (a lease is taken before the
   * TAP and the rules, so every leftover of ours has one) and rules in this daemon's own tables
   * for VMs without a lease. TAPs or rules of other hypercoreds on this host are never touched.
   */
  async prune(vmIds: ReadonlySet<string>): Promise<string[]> {
    return this.locked(async () => {
      const removed: string[] = [];
      const leased = new Set<string>();
      for (const lease of this.options.leases.all()) {
        leased.add(lease.vmId);
        if (vmIds.has(lease.vmId)) continue;
        await this.detachNow(lease.vmId);
        removed.push(`tap ${tapNameForVm(lease.vmId)}, rules and lease ${lease.ip} of VM ${lease.vmId}`);
      }
      const orphans = new Set([...(await this.nat.vmIdsWithRules()), ...(await this.links.vmIdsWithRules())]);
      for (const id of orphans) {
        if (vmIds.has(id) || leased.has(id)) continue;
        await this.releaseNow(id);
        removed.push(`rules of VM ${id}, which has no lease`);
      }
      return removed;
    });
  }
}
