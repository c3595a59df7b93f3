/**
 * NAT and port forwarding for "nat" mode, in one nftables table (`ip hypercore`) that Hypercore
 * owns outright: it never edits other tables, so `destroy()` removes everything it ever added
 * and coexists with firewalld/Docker rules. Port-forward rules carry `comment "hc:<vmId>"` so a
 * VM's rules can be found and removed by handle without Hypercore keeping its own copy.
 *
 * Host-local forwards (127.0.0.1:PORT → guest) are supported: the output chain DNATs them, the
 * bridge gets `route_localnet=1` (the kernel otherwise refuses to route a 127.0.0.0/8 source out
 * of a non-loopback device), and 127.0.0.0/8 → bridge is masqueraded so the guest replies to the
 * gateway. A raw-priority guard drops packets arriving *from* the bridge for 127.0.0.0/8, so
 * route_localnet does not let guests reach services the host bound to loopback.
 */
import { HypercoreError, ErrorCodes, InvalidArgumentError } from '../core/errors.js';
import type { CommandRunner } from './command-runner.js';
import { ipToInt, parseCidr } from './ipam.js';
import type { PortProtocol } from './ports.js';

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

/** Marks the table's own rules, so they are never mistaken for a VM's (no `:`, unlike `hc:<id>`). */
const BASE_COMMENT = 'hc-base';
const VM_COMMENT_PREFIX = 'hc:';

interface NftRule { chain: string; handle: number; comment?: string }
interface NftListing { nftables?: Array<{ rule?: NftRule; table?: { name: string } }> }

function checkName(value: string, what: string): string {
  // Values are spliced into an nft command line: allow only characters that cannot break out of it.
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) throw new InvalidArgumentError(`${what} "${value}" contains characters not allowed in a firewall rule`);
  return value;
}

function checkPort(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new InvalidArgumentError(`${what} ${value} is not a port from 1 to 65535`);
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

/** Owns the `ip <table>` nftables table: masquerade, forward accepts and DNAT port forwards. */
export class NatRules {
  constructor(private readonly run: CommandRunner, private readonly table = 'hypercore') {
    checkName(table, 'nftables table name');
  }

  /** Runs several nft commands as one atomic transaction (one netlink batch). */
  private async nft(commands: string[]): Promise<void> {
    await this.run('nft', [commands.join('; ')]);
  }

  /**
   * Creates the table and its chains if missing and (re)writes the base rules: masquerade for
   * `subnet` leaving through anything but `bridge` (only through `outInterface` if given), accept
   * forwarding to/from the bridge, and the loopback-forward plumbing described above. Safe to
   * repeat: base chains are flushed and refilled in the same transaction, so rules never pile up.
   */
  async ensure(subnet: string, bridge: string, outInterface?: string): Promise<void> {
    const net = parseCidr(subnet).text;
    const br = checkName(bridge, 'bridge name');
    const out = outInterface === undefined ? '' : ` oifname "${checkName(outInterface, 'interface name')}"`;
    const t = `ip ${this.table}`;
    await this.nft([
      `add table ${t}`,
      `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
      `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
      // `priority dstnat` is not accepted for the output hook by older nft; -100 is its value.
      `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
      `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
      `add chain ${t} guard { type filter hook prerouting priority raw; policy accept; }`,
      `flush chain ${t} postrouting`,
      `flush chain ${t} forward`,
      `flush chain ${t} guard`,
      `add rule ${t} postrouting ip saddr ${net} oifname != "${br}"${out} masquerade comment "${BASE_COMMENT}"`,
      `add rule ${t} postrouting ip saddr 127.0.0.0/8 oifname "${br}" masquerade comment "${BASE_COMMENT}"`,
      `add rule ${t} forward iifname "${br}" accept comment "${BASE_COMMENT}"`,
      `add rule ${t} forward oifname "${br}" accept comment "${BASE_COMMENT}"`,
      `add rule ${t} guard iifname "${br}" ip daddr 127.0.0.0/8 drop comment "${BASE_COMMENT}"`,
    ]);
    // Per-device, not `all`: only our bridge may carry 127.0.0.0/8 sources (see the module comment).
    await this.run('sysctl', ['-w', `net/ipv4/conf/${br}/route_localnet=1`]);
  }

  /**
   * Adds DNAT rules forwarding host `hostAddress:hostPort` to `guestAddress:guestPort`: one in
   * prerouting (traffic from other machines and from VMs) and one in output (connections the
   * host makes to its own addresses, which never pass prerouting). Without `hostAddress` only
   * packets addressed to one of the host's own addresses match (`fib daddr type local`), so a
   * guest's outgoing traffic to the same port elsewhere is left alone.
   */
  async addPortForward(forward: PortForward): Promise<void> {
    const comment = `${VM_COMMENT_PREFIX}${checkName(forward.vmId, 'VM id')}`;
    if (forward.protocol !== 'tcp' && forward.protocol !== 'udp') throw new InvalidArgumentError(`protocol "${String(forward.protocol)}" is not tcp or udp`);
    ipToInt(forward.guestAddress);
    const match = forward.hostAddress === undefined ? 'fib daddr type local' : `ip daddr ${forward.hostAddress}`;
    if (forward.hostAddress !== undefined) ipToInt(forward.hostAddress);
    const rule = `${match} ${forward.protocol} dport ${checkPort(forward.hostPort, 'host port')} dnat to ${forward.guestAddress}:${checkPort(forward.guestPort, 'guest port')} comment "${comment}"`;
    const t = `ip ${this.table}`;
    await this.nft([`add rule ${t} prerouting ${rule}`, `add rule ${t} output ${rule}`]);
  }

  private async rules(): Promise<NftRule[]> {
    if (!(await this.exists())) return [];
    const { stdout } = await this.run('nft', ['-j', 'list', 'table', 'ip', this.table]);
    let listing: NftListing;
    try {
      listing = JSON.parse(stdout) as NftListing;
    } catch (err) {
      throw new HypercoreError(ErrorCodes.internal, `could not parse the JSON output of nft -j list table ip ${this.table}`, { cause: err });
    }
    return (listing.nftables ?? []).flatMap((item) => (item.rule ? [item.rule] : []));
  }

  /** Whether the table exists. */
  async exists(): Promise<boolean> {
    const { stdout } = await this.run('nft', ['-j', 'list', 'tables', 'ip']);
    return stdout.includes(`"name": "${this.table}"`) || stdout.includes(`"name":"${this.table}"`);
  }

  /** Deletes every rule tagged `hc:<vmId>`; returns how many were removed. */
  async removeForVm(vmId: string): Promise<number> {
    const comment = `${VM_COMMENT_PREFIX}${checkName(vmId, 'VM id')}`;
    const mine = (await this.rules()).filter((r) => r.comment === comment);
    if (mine.length > 0) await this.nft(mine.map((r) => `delete rule ip ${this.table} ${r.chain} handle ${r.handle}`));
    return mine.length;
  }

  /** Ids of the VMs that have rules in the table (to find rules orphaned by a crash). */
  async vmIdsWithRules(): Promise<string[]> {
    const ids = new Set<string>();
    for (const r of await this.rules()) {
      if (r.comment?.startsWith(VM_COMMENT_PREFIX)) ids.add(r.comment.slice(VM_COMMENT_PREFIX.length));
    }
    return [...ids].sort();
  }

  /** Deletes the whole table (idempotent). Does not reset route_localnet: the bridge goes with it. */
  async destroy(): Promise<void> {
    if (await this.exists()) await this.run('nft', ['delete', 'table', 'ip', this.table]);
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
