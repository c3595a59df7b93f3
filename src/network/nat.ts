/**
 * NAT, port forwards and the guests' view of the host for "nat" mode, in the `ip hypercore-<scope>`
 * table this daemon owns outright (it never edits another table, so firewalld/Docker rules and
 * other hypercoreds' tables are left alone). Each bridge's rules carry `hc-br:<bridge>` and each
 * VM's `hc:<vmId>`: adding or removing one bridge or VM rewrites only its own rules.
 *
 * What a guest on a Hypercore bridge may do at layer 3:
 *  - leave through NAT (masqueraded), only through `outInterface` when one is given, never into
 *    another Hypercore bridge;
 *  - reach the host itself only for DNS on its gateway address, the `host_ports` its spec allows,
 *    and replies to connections the host opened;
 *  - reach another guest only through a published port, or when both have `isolate = false`.
 * Any packet from the bridge whose source is not in the subnet (127.0.0.0/8 included) is dropped,
 * and so is any packet for 127.0.0.0/8: the bridge has `route_localnet=1` so that host-local
 * forwards (127.0.0.1:PORT → guest) work, and without the guard that would open the host's
 * loopback services to guests.
 *
 * Every base chain has policy accept and matches only packets entering or leaving our bridges,
 * so traffic that is not ours is never judged here. A drop is final across tables; an accept only
 * ends this table's say (another table, e.g. Docker's FORWARD policy drop, can still refuse).
 */
import { InvalidArgumentError } from '../core/errors.js';
import { METADATA_ADDRESS } from '../core/metadata.js';
import type { CommandRunner } from './command-runner.js';
import { gatewayOf, ipToInt, parseCidr } from './ipam.js';
import { BRIDGE_TAG_PREFIX, bridgeTag, checkName, matchValue, Nft, VM_TAG_PREFIX, vmTag, type NftListing } from './nft.js';
import type { HostPort, PortProtocol, PortSpec } from './ports.js';

/** One port forward of one VM. */
export interface PortForward {
  vmId: string;
  /** Host address to match; absent = any local address of the host (127.0.0.1 included). */
  hostAddress?: string;
  hostPort: number;
  protocol: PortProtocol;
  guestAddress: string;
  guestPort: number;
}

/** A bridge's place in the table: its subnet, gateway and (optionally) the only egress. */
export interface BridgeNat {
  subnet: string;
  bridge: string;
  outInterface?: string;
  /**
   * The port of the daemon's metadata listener on the gateway address, when it serves the
   * bridge's guests: their TCP traffic for 169.254.169.254:80 goes there.
   */
  metadataPort?: number;
}

/** What one VM adds: forwards, the host ports it may reach, and whether it talks to open neighbours. */
export interface VmNat {
  vmId: string;
  bridge: string;
  subnet: string;
  guestAddress: string;
  forwards: PortSpec[];
  hostPorts: HostPort[];
  /** `isolate = false`: may reach the other open guests of its bridge. */
  open: boolean;
}

/** A forward some VM holds, found in any Hypercore table (other roots' included). */
export interface HeldForward {
  vmId: string;
  table: string;
  hostAddress?: string;
  hostPort: number;
  protocol: PortProtocol;
}

/** The regular chain a bridge's input rules jump to: one accept per VM and allowed host port. */
const HOST_PORTS_CHAIN = 'host_ports';
/** Addresses of guests with `isolate = false`. */
const OPEN_SET = 'open4';

function checkPort(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new InvalidArgumentError(`${what} ${value} is not a port from 1 to 65535`);
  return value;
}

function checkAddress(value: string): string {
  ipToInt(value);
  return value;
}

/** Parses `ss -Hlntu` output: does any listener cover `address:port/protocol`? */
export function ssShowsListener(stdout: string, address: string, port: number, protocol: PortProtocol): boolean {
  for (const line of stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5 || cols[0] !== protocol) continue;
    const local = cols[4]!;
    const colon = local.lastIndexOf(':');
    if (Number(local.slice(colon + 1)) !== port) continue;
    // Strip `[...]` (IPv6), `%iface` (bound device) and the IPv4-mapped prefix.
    const host = local.slice(0, colon).replace(/^\[|\]$/g, '').replace(/%.*$/, '').replace(/^::ffff:/, '');
    const wildcard = host === '*' || host === '0.0.0.0' || host === '::';
    if (wildcard || address === '0.0.0.0' || host === address) return true;
  }
  return false;
}

/** The DNAT forwards in a listing of Hypercore tables: prerouting rules tagged with a VM. */
export function heldForwards(listing: NftListing): HeldForward[] {
  return listing.rules.flatMap((r) => {
    if (r.chain !== 'prerouting' || !r.comment?.startsWith(VM_TAG_PREFIX)) return [];
    const vmId = r.comment.slice(VM_TAG_PREFIX.length);
    const address = matchValue(r, 'ip', 'daddr');
    for (const protocol of ['tcp', 'udp'] as const) {
      const port = matchValue(r, protocol, 'dport');
      if (typeof port === 'number') return [{ vmId, table: r.table, hostPort: port, protocol, ...(typeof address === 'string' ? { hostAddress: address } : {}) }];
    }
    return [];
  });
}

/** Whether two forwards would catch the same packets (no address = every local address). */
export function forwardsClash(a: { hostAddress?: string; hostPort: number; protocol: PortProtocol }, b: { hostAddress?: string; hostPort: number; protocol: PortProtocol }): boolean {
  return a.hostPort === b.hostPort && a.protocol === b.protocol && (a.hostAddress === undefined || b.hostAddress === undefined || a.hostAddress === b.hostAddress);
}

/**
 * The guests' metadata requests (TCP to 169.254.169.254:80) go to the daemon's listener on the
 * gateway. The listener takes only what entered through the bridge as a metadata request: the
 * same port reached any other way (the host's loopback, another interface, a guest asking for
 * the gateway's port itself) is dropped. Guests' source addresses are vouched for by the
 * anti-spoofing rules, so the listener may tell a guest by its address. These input rules come
 * before the bridge's final drop (rules are added in order).
 */
function metadataRules(br: string, gateway: string, port: number, rule: (chain: string, body: string) => string): string[] {
  return [
    rule('prerouting', `iifname "${br}" ip daddr ${METADATA_ADDRESS} tcp dport 80 dnat to ${gateway}:${port}`),
    rule('input', `iifname "${br}" ip daddr ${gateway} tcp dport ${port} ct original ip daddr ${METADATA_ADDRESS} accept`),
    rule('input', `ip daddr ${gateway} tcp dport ${port} drop`),
  ];
}

/** Owns this daemon's `ip <table>` nftables table. */
export class NatRules {
  private readonly nft: Nft;

  constructor(private readonly run: CommandRunner, readonly table: string) {
    checkName(table, 'nftables table name');
    this.nft = new Nft(run);
  }

  private get t(): string {
    return `ip ${this.table}`;
  }

  /** The table, its base chains and sets; `add` of what exists is a no-op, so this is safe to repeat. */
  private skeleton(): string[] {
    const t = this.t;
    return [
      `add table ${t}`,
      `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
      `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
      // `priority dstnat` is not accepted for the output hook by older nft; -100 is its value.
      `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
      `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
      `add chain ${t} input { type filter hook input priority filter; policy accept; }`,
      // Raw priority: before conntrack and NAT, so a spoofed or loopback packet is never tracked.
      `add chain ${t} guard { type filter hook prerouting priority raw; policy accept; }`,
      `add chain ${t} ${HOST_PORTS_CHAIN}`,
      `add set ${t} ${OPEN_SET} { type ipv4_addr; }`,
    ];
  }

  /**
   * (Re)writes the rules of one bridge (see the module comment) and leaves every other bridge's
   * rules as they are. Old rules of the bridge are deleted and new ones added in one transaction.
   */
  async ensureBridge(b: BridgeNat): Promise<void> {
    const cidr = parseCidr(b.subnet);
    const net = cidr.text;
    const gateway = gatewayOf(b.subnet);
    const br = checkName(b.bridge, 'bridge name');
    const out = b.outInterface === undefined ? undefined : checkName(b.outInterface, 'interface name');
    const tag = bridgeTag(br);
    const t = this.t;
    const rule = (chain: string, body: string): string => `add rule ${t} ${chain} ${body} comment "${tag}"`;
    const metadata = b.metadataPort === undefined ? [] : metadataRules(br, gateway, checkPort(b.metadataPort, 'metadata port'), rule);
    const old = await this.nft.rules('ip', this.table);
    await this.nft.batch([
      ...this.skeleton(),
      ...old.filter((r) => r.comment === tag).map((r) => `delete rule ${t} ${r.chain} handle ${r.handle}`),
      ...metadata,
      rule('postrouting', `ip saddr ${net} oifname != "${br}"${out ? ` oifname "${out}"` : ''} masquerade`),
      // Host-local forwards: the guest could not answer 127.0.0.1, so it sees the gateway instead.
      rule('postrouting', `ip saddr 127.0.0.0/8 oifname "${br}" masquerade`),
      rule('guard', `iifname "${br}" ip daddr 127.0.0.0/8 drop`),
      rule('guard', `iifname "${br}" ip saddr != ${net} drop`),
      rule('input', `iifname "${br}" ct state established,related accept`),
      rule('input', `iifname "${br}" jump ${HOST_PORTS_CHAIN}`),
      rule('input', `iifname "${br}" ip daddr ${gateway} meta l4proto { tcp, udp } th dport 53 accept`),
      rule('input', `iifname "${br}" drop`),
      rule('forward', `iifname "${br}" oifname "${br}" ip saddr @${OPEN_SET} ip daddr @${OPEN_SET} accept`),
      rule('forward', `oifname "${br}" ct state established,related accept`),
      // Published ports are open to anyone who can reach the host, other guests included.
      rule('forward', `oifname "${br}" ct status dnat accept`),
      rule('forward', `iifname "${br}" ct state established,related accept`),
      rule('forward', `iifname "${br}" oifname "hcbr*" drop`),
      rule('forward', out ? `iifname "${br}" oifname "${out}" accept` : `iifname "${br}" accept`),
      rule('forward', `iifname "${br}" drop`),
      rule('forward', `oifname "${br}" drop`),
    ]);
    // Per-device, not `all`: only our bridge may carry 127.0.0.0/8 sources (see the module comment).
    await this.run('sysctl', ['-w', `net/ipv4/conf/${br}/route_localnet=1`]);
  }

  /** Deletes one bridge's rules; other bridges keep theirs. Returns how many were removed. */
  async removeBridge(bridge: string): Promise<number> {
    const tag = bridgeTag(bridge);
    return this.nft.deleteRules('ip', this.table, (r) => r.comment === tag);
  }

  /** Bridges that have rules in the table. */
  async bridgesWithRules(): Promise<string[]> {
    const bridges = new Set<string>();
    for (const r of await this.nft.rules('ip', this.table)) if (r.comment?.startsWith(BRIDGE_TAG_PREFIX)) bridges.add(r.comment.slice(BRIDGE_TAG_PREFIX.length));
    return [...bridges].sort();
  }

  /**
   * Replaces a VM's rules: its DNAT forwards (prerouting for traffic from elsewhere and from
   * guests, output for connections the host makes to its own addresses), the host ports it may
   * reach on its gateway, and its membership of the open set. The bridge must be ensured first.
   */
  async addVm(vm: VmNat): Promise<void> {
    const tag = vmTag(vm.vmId);
    const guest = checkAddress(vm.guestAddress);
    const br = checkName(vm.bridge, 'bridge name');
    const gateway = gatewayOf(vm.subnet);
    const t = this.t;
    const commands = vm.forwards.flatMap((f) => {
      if (f.protocol !== 'tcp' && f.protocol !== 'udp') throw new InvalidArgumentError(`protocol "${String(f.protocol)}" is not tcp or udp`);
      // Without an address only packets for one of the host's own addresses match, so a guest's
      // outgoing traffic to the same port elsewhere is left alone.
      const match = f.hostAddress === undefined ? 'fib daddr type local' : `ip daddr ${checkAddress(f.hostAddress)}`;
      const body = `${match} ${f.protocol} dport ${checkPort(f.hostPort, 'host port')} dnat to ${guest}:${checkPort(f.guestPort, 'guest port')} comment "${tag}"`;
      return [`add rule ${t} prerouting ${body}`, `add rule ${t} output ${body}`];
    });
    for (const p of vm.hostPorts) {
      commands.push(`add rule ${t} ${HOST_PORTS_CHAIN} iifname "${br}" ip saddr ${guest} ip daddr ${gateway} ${p.protocol} dport ${checkPort(p.port, 'host port')} accept comment "${tag}"`);
    }
    if (vm.open) commands.push(`add element ${t} ${OPEN_SET} { ${guest} }`);
    const old = await this.nft.rules('ip', this.table);
    await this.nft.batch([
      ...old.filter((r) => r.comment === tag).map((r) => `delete rule ${t} ${r.chain} handle ${r.handle}`),
      ...(await this.openRemoval(guest)),
      ...commands,
    ]);
  }

  /** The command that takes `address` out of the open set, if it is in it (a missing element is an error). */
  private async openRemoval(address: string): Promise<string[]> {
    if (!(await this.exists())) return [];
    const { sets } = await this.nft.list(['set', 'ip', this.table, OPEN_SET]);
    const present = sets.some((s) => (s.elem ?? []).includes(address));
    return present ? [`delete element ${this.t} ${OPEN_SET} { ${address} }`] : [];
  }

  /** Deletes every rule tagged `hc:<vmId>` and `guestAddress` from the open set; returns how many rules went. */
  async removeForVm(vmId: string, guestAddress?: string): Promise<number> {
    const tag = vmTag(vmId);
    const mine = (await this.nft.rules('ip', this.table)).filter((r) => r.comment === tag);
    const open = guestAddress === undefined ? [] : await this.openRemoval(checkAddress(guestAddress));
    await this.nft.batch([...mine.map((r) => `delete rule ${this.t} ${r.chain} handle ${r.handle}`), ...open]);
    return mine.length;
  }

  /** Ids of the VMs that have rules in the table (to find rules orphaned by a crash). */
  async vmIdsWithRules(): Promise<string[]> {
    const ids = new Set<string>();
    for (const r of await this.nft.rules('ip', this.table)) {
      if (r.comment?.startsWith(VM_TAG_PREFIX)) ids.add(r.comment.slice(VM_TAG_PREFIX.length));
    }
    return [...ids].sort();
  }

  /** Whether the table exists. */
  exists(): Promise<boolean> {
    return this.nft.tableExists('ip', this.table);
  }

  /** Deletes the whole table (idempotent). Does not reset route_localnet: the bridges go with it. */
  destroy(): Promise<void> {
    return this.nft.deleteTable('ip', this.table);
  }

  /**
   * Whether a socket already listens on `address:port/protocol` (`0.0.0.0` = any address), so a
   * forward would silently shadow it: DNAT happens before the host's own socket sees the packet.
   */
  async portInUse(address: string, port: number, protocol: PortProtocol): Promise<boolean> {
    const { stdout } = await this.run('ss', ['-Hlntu']);
    return ssShowsListener(stdout, address, port, protocol);
  }
}
