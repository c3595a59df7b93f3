/**
 * Host-side plumbing for "nat" mode networking: a Hypercore-owned Linux bridge, one TAP per VM
 * enslaved to it, and route-conflict checks. Every mutating call is idempotent so
 * the daemon can simply re-run them after a crash instead of tracking what it already did.
 */
import { HypercoreError, ErrorCodes } from '../core/errors.js';
import type { CommandRunner } from './command-runner.js';
import { overlaps, parseCidr } from './ipam.js';

/** One network interface as `ip -j -d link` reports it (only the fields we use). */
interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { type?: string; multi_queue?: boolean } };
}

/** A TAP device found on the host. */
export interface TapInfo {
  name: string;
  /** The bridge it is enslaved to, if any. */
  master?: string;
  /** Administratively up (the `UP` flag; carrier only appears once a hypervisor opens it). */
  up: boolean;
}

/** One IPv4 route from the main table. `dst` is a CIDR or `default`. */
export interface RouteInfo {
  dst: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  type?: string;
}

function parseJson<T>(stdout: string, what: string): T {
  // `ip -j` prints nothing at all (not `[]`) for some empty results.
  if (stdout.trim() === '') return [] as T;
  try {
    return JSON.parse(stdout) as T;
  } catch (err) {
    throw new HypercoreError(ErrorCodes.internal, `could not parse the JSON output of ${what}`, { cause: err });
  }
}

/** Manages bridge, TAPs and routing checks through an injectable command runner. */
export class HostNetwork {
  constructor(private readonly run: CommandRunner) {}

  private async links(): Promise<IpLink[]> {
    const { stdout } = await this.run('ip', ['-j', '-d', 'link', 'show']);
    return parseJson<IpLink[]>(stdout, 'ip -j -d link show');
  }

  private async link(name: string): Promise<IpLink | undefined> {
    // Listing all links and filtering avoids parsing "does not exist" error text for a lookup.
    return (await this.links()).find((l) => l.ifname === name);
  }

  /**
   * Makes sure bridge `name` exists with address `gatewayCidr` (e.g. 10.88.0.1/16) and is up.
   * A non-bridge interface of the same name is an error rather than being deleted: it is not ours.
   */
  async ensureBridge(name: string, gatewayCidr: string): Promise<void> {
    const existing = await this.link(name);
    if (!existing) {
      await this.run('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
    } else if (existing.linkinfo?.info_kind !== 'bridge') {
      throw new HypercoreError(ErrorCodes.invalidArgument, `interface ${name} exists but is not a bridge (it is ${existing.linkinfo?.info_kind ?? 'a physical device'}); choose another bridge name`);
    }
    // `replace` is the idempotent form of `add`: no "File exists" on the second run.
    await this.run('ip', ['addr', 'replace', gatewayCidr, 'dev', name]);
    await this.run('ip', ['link', 'set', 'dev', name, 'up']);
  }

  /** Deletes bridge `name` if present (its TAPs are released, not deleted). */
  async deleteBridge(name: string): Promise<void> {
    if (await this.link(name)) await this.run('ip', ['link', 'del', 'dev', name]);
  }

  /**
   * Makes sure TAP `name` exists, is enslaved to `bridge` and is up. An existing single-queue TAP
   * is reused (a persistent TAP left by a crashed VM works as is); anything else with that name
   * (a tun, a multi-queue tap, a veth) is stale and replaced, since a hypervisor could not open it.
   */
  async createTap(name: string, bridge: string): Promise<void> {
    const existing = await this.link(name);
    const data = existing?.linkinfo?.info_data;
    const reusable = existing?.linkinfo?.info_kind === 'tun' && data?.type === 'tap' && data.multi_queue !== true;
    if (existing && !reusable) await this.run('ip', ['link', 'del', 'dev', name]);
    if (!existing || !reusable) await this.run('ip', ['tuntap', 'add', 'dev', name, 'mode', 'tap']);
    await this.run('ip', ['link', 'set', 'dev', name, 'master', bridge, 'up']);
  }

  /** Deletes TAP `name` if present. */
  async deleteTap(name: string): Promise<void> {
    // `ip link del` (not `ip tuntap del`) also works while a dead hypervisor's fd is still closing.
    if (await this.link(name)) await this.run('ip', ['link', 'del', 'dev', name]);
  }

  /** Names of the interfaces enslaved to `bridge`. */
  async portsOf(bridge: string): Promise<string[]> {
    return (await this.links()).filter((l) => l.master === bridge).map((l) => l.ifname);
  }

  /** Whether an interface called `name` exists. */
  async exists(name: string): Promise<boolean> {
    return (await this.link(name)) !== undefined;
  }

  /** TAP devices whose name starts with `prefix`, e.g. to find TAPs orphaned by a crash. */
  async listTaps(prefix: string): Promise<TapInfo[]> {
    return (await this.links())
      .filter((l) => l.linkinfo?.info_kind === 'tun' && l.linkinfo.info_data?.type === 'tap' && l.ifname.startsWith(prefix))
      .map((l) => ({ name: l.ifname, ...(l.master ? { master: l.master } : {}), up: (l.flags ?? []).includes('UP') }));
  }

  /** The IPv4 routes of the main table. */
  async routes(): Promise<RouteInfo[]> {
    const { stdout } = await this.run('ip', ['-j', '-4', 'route', 'show']);
    return parseJson<RouteInfo[]>(stdout, 'ip -j -4 route show');
  }

  /**
   * A route that overlaps `subnet` and is not on `bridge` (ours), if any: using the subnet anyway
   * would make VM traffic or the host's traffic to that network go the wrong way. The default
   * route is ignored, since it overlaps everything by design.
   */
  async conflictingRoute(subnet: string, bridge: string): Promise<RouteInfo | undefined> {
    const wanted = parseCidr(subnet);
    for (const route of await this.routes()) {
      if (route.dst === 'default' || route.dev === bridge) continue;
      const dst = route.dst.includes('/') ? route.dst : `${route.dst}/32`;
      let other;
      try {
        other = parseCidr(dst);
      } catch {
        continue; // Not an IPv4 CIDR we understand (should not happen with -4); not a conflict.
      }
      if (overlaps(wanted, other)) return route;
    }
    return undefined;
  }

  /** Throws a clear error when `subnet` overlaps an existing route not on `bridge`. */
  async assertNoConflict(subnet: string, bridge: string): Promise<void> {
    const route = await this.conflictingRoute(subnet, bridge);
    if (route) {
      const via = route.dev ? `dev ${route.dev}` : route.type ?? 'unknown device';
      throw new HypercoreError(ErrorCodes.invalidArgument, `overlapping subnet: ${subnet} overlaps the existing route ${route.dst} (${via}); choose another network subnet`);
    }
  }

  /** The interface of the default route (the usual NAT egress), or undefined if there is none. */
  async defaultRouteInterface(): Promise<string | undefined> {
    return (await this.routes()).find((r) => r.dst === 'default' && r.dev)?.dev;
  }
}
