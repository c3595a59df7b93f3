/**
 * Layer-2 rules for guests, in the `bridge hypercore-<scope>` table this daemon owns: each TAP
 * may send only from its VM's MAC and IPv4 address (Ethernet source, ARP sender and IP source),
 * and only IPv4 and ARP (so no IPv6 link-local path to the host or other guests exists); and on
 * Hypercore's bridges a guest's frames reach another guest only when both are open
 * (`isolate = false`). The bridge family sees frames as the bridge switches them, whether or not
 * br_netfilter is loaded, and before the host's IP stack.
 */
import { InvalidArgumentError } from '../core/errors.js';
import type { CommandRunner } from './command-runner.js';
import { ipToInt } from './ipam.js';
import { checkName, matchValue, Nft, VM_TAG_PREFIX, vmTag } from './nft.js';

/** How a VM's TAP may talk to the other ports of its bridge. */
export type Neighbours =
  /** isolate = true on a Hypercore bridge: no frame to another guest. */
  | 'isolated'
  /** isolate = false on a Hypercore bridge: frames to the other open guests only. */
  | 'open'
  /** A host bridge Hypercore does not own: its other ports are not ours to filter. */
  | 'unfiltered';

export interface GuestLink {
  vmId: string;
  tap: string;
  mac: string;
  ip: string;
  neighbours: Neighbours;
}

/** TAPs of open guests. */
const OPEN_SET = 'open';

function checkMac(mac: string): string {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) throw new InvalidArgumentError(`MAC address "${mac}" is not six lower-case hex pairs separated by colons`);
  return mac;
}

/** Owns this daemon's `bridge <table>` nftables table. */
export class LinkGuard {
  private readonly nft: Nft;

  constructor(run: CommandRunner, readonly table: string) {
    checkName(table, 'nftables table name');
    this.nft = new Nft(run);
  }

  private get t(): string {
    return `bridge ${this.table}`;
  }

  /** Replaces the VM's rules (and its place in the open set) in one transaction. */
  async addVm(link: GuestLink): Promise<void> {
    const t = this.t;
    const tag = vmTag(link.vmId);
    const tap = checkName(link.tap, 'TAP name');
    const mac = checkMac(link.mac);
    ipToInt(link.ip);
    const rule = (chain: string, body: string): string => `add rule ${t} ${chain} iifname "${tap}" ${body} comment "${tag}"`;
    const isolation = {
      isolated: [rule('isolate', 'drop')],
      open: [rule('isolate', `oifname != @${OPEN_SET} drop`), `add element ${t} ${OPEN_SET} { "${tap}" }`],
      unfiltered: [],
    }[link.neighbours];
    await this.nft.batch([
      `add table ${t}`,
      `add set ${t} ${OPEN_SET} { type ifname; }`,
      `add chain ${t} spoof { type filter hook prerouting priority filter; policy accept; }`,
      `add chain ${t} isolate { type filter hook forward priority filter; policy accept; }`,
      ...(await this.removal(link.vmId, tap)),
      rule('spoof', `ether saddr != ${mac} drop`),
      rule('spoof', `ether type != { ip, arp } drop`),
      rule('spoof', `ether type arp arp saddr ether != ${mac} drop`),
      rule('spoof', `ether type arp arp saddr ip != ${link.ip} drop`),
      rule('spoof', `ether type ip ip saddr != ${link.ip} drop`),
      ...isolation,
    ]);
  }

  /** Commands deleting the VM's rules and its TAP's open-set element (deleting a missing element fails). */
  private async removal(vmId: string, tap?: string): Promise<string[]> {
    if (!(await this.nft.tableExists('bridge', this.table))) return [];
    const tag = vmTag(vmId);
    const listing = await this.nft.list(['table', 'bridge', this.table]);
    const commands = listing.rules.filter((r) => r.comment === tag).map((r) => `delete rule ${this.t} ${r.chain} handle ${r.handle}`);
    const open = listing.sets.find((s) => s.name === OPEN_SET)?.elem ?? [];
    if (tap !== undefined && open.includes(tap)) commands.push(`delete element ${this.t} ${OPEN_SET} { "${tap}" }`);
    return commands;
  }

  /** Deletes the VM's rules and takes `tap` out of the open set. */
  async removeForVm(vmId: string, tap: string): Promise<void> {
    await this.nft.batch(await this.removal(vmId, checkName(tap, 'TAP name')));
  }

  /** Ids of the VMs that have rules in the table. */
  async vmIdsWithRules(): Promise<string[]> {
    const ids = new Set<string>();
    for (const r of await this.nft.rules('bridge', this.table)) if (r.comment?.startsWith(VM_TAG_PREFIX)) ids.add(r.comment.slice(VM_TAG_PREFIX.length));
    return [...ids].sort();
  }

  destroy(): Promise<void> {
    return this.nft.deleteTable('bridge', this.table);
  }
}

/** MACs that VMs of any hypercored send from now (their anti-spoofing rules say so). */
export async function macsInUse(run: CommandRunner): Promise<{ vmId: string; mac: string }[]> {
  const { rules } = await new Nft(run).hypercoreTables('bridge');
  return rules.flatMap((r) => {
    const mac = matchValue(r, 'ether', 'saddr');
    return r.chain === 'spoof' && typeof mac === 'string' && r.comment?.startsWith(VM_TAG_PREFIX) ? [{ vmId: r.comment.slice(VM_TAG_PREFIX.length), mac }] : [];
  });
}
