/**
 * Upgrade from the layout before per-daemon tables: one `ip hypercore` table shared by every
 * hypercored on the host (chains postrouting, prerouting, output, forward, guard; base rules
 * tagged `hc-base`, VM rules `hc:<vmId>`) and one bridge per subnet named from the subnet alone.
 * A daemon removes only what is provably its own: rules of VMs it has leases for, base rules that
 * name one of its old bridges, and old bridges whose ports are all its TAPs. Whatever another
 * daemon (another root, still on the old version) uses stays, and so does the table while any
 * rule is left in it.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../core/ports.js';
import type { CommandRunner } from './command-runner.js';
import { HostNetwork } from './host-network.js';
import { Nft, TABLE_PREFIX, VM_TAG_PREFIX } from './nft.js';

const LEGACY_TABLE = TABLE_PREFIX;

/** The bridge name the old layout gave `subnet`. */
export function legacyBridgeNameFor(subnet: string): string {
  return `hcbr${createHash('sha256').update(subnet).digest('hex').slice(0, 8)}`;
}

/** What this daemon owns: leased VMs, their TAPs and subnets. */
export interface LegacyOwner {
  vmIds: ReadonlySet<string>;
  taps: ReadonlySet<string>;
  subnets: ReadonlySet<string>;
}

/** Removes this daemon's share of the old layout; returns what it removed (empty when there was none). */
export async function removeLegacyLayout(run: CommandRunner, owner: LegacyOwner, log: Pick<Logger, 'info'>): Promise<string[]> {
  const nft = new Nft(run);
  const host = new HostNetwork(run);
  const removed: string[] = [];
  const bridges = [...owner.subnets].map(legacyBridgeNameFor);
  if (await nft.tableExists('ip', LEGACY_TABLE)) {
    const mine = (rule: { comment?: string; expr?: unknown }): boolean => {
      if (rule.comment?.startsWith(VM_TAG_PREFIX)) return owner.vmIds.has(rule.comment.slice(VM_TAG_PREFIX.length));
      // Base rules name their bridge in a match; the old table only ever held one bridge's set.
      const text = JSON.stringify(rule.expr ?? []);
      return rule.comment === 'hc-base' && bridges.some((b) => text.includes(`"${b}"`));
    };
    const count = await nft.deleteRules('ip', LEGACY_TABLE, mine);
    if (count > 0) removed.push(`${count} rules of this daemon in the old shared table ip ${LEGACY_TABLE}`);
    if ((await nft.rules('ip', LEGACY_TABLE)).length === 0) {
      await nft.deleteTable('ip', LEGACY_TABLE);
      removed.push(`the old shared table ip ${LEGACY_TABLE}, now empty`);
    }
  }
  for (const bridge of bridges) {
    if (!(await host.exists(bridge))) continue;
    const ports = await host.portsOf(bridge);
    if (!ports.every((p) => owner.taps.has(p))) continue;
    // Its TAPs are released, not deleted: a running guest's TAP moves to the new bridge on re-attach.
    await host.deleteBridge(bridge);
    removed.push(`old bridge ${bridge}`);
  }
  if (removed.length > 0) log.info({ removed }, 'removed the old shared network layout of this daemon');
  return removed;
}
