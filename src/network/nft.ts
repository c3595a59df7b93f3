/**
 * The nftables plumbing shared by Hypercore's tables: atomic batches, JSON listings of rules and
 * sets, and the naming rules that keep every table, rule tag and value safe to splice into an
 * nft command line.
 *
 * Layout: every hypercored owns one `ip hypercore-<scope>` table (NAT, port forwards, what guests
 * may reach on the host) and one `bridge hypercore-<scope>` table (MAC/IP anti-spoofing and
 * guest-to-guest isolation), where `<scope>` is derived from its state root. Rules of one bridge
 * are tagged `hc-br:<bridge>`, rules of one VM `hc:<vmId>`, so either can be removed without
 * touching the others.
 */
import { createHash } from 'node:crypto';
import { ErrorCodes, HypercoreError, InvalidArgumentError } from '../core/errors.js';
import type { CommandRunner } from './command-runner.js';

export type NftFamily = 'ip' | 'bridge';

/** Every table Hypercore creates starts with this (the old shared layout was exactly this name). */
export const TABLE_PREFIX = 'hypercore';
export const VM_TAG_PREFIX = 'hc:';
export const BRIDGE_TAG_PREFIX = 'hc-br:';

/** One match, verdict or statement of a rule, as `nft -j` prints it (only what we read). */
export interface NftExpr {
  match?: { op: string; left: { payload?: { protocol: string; field: string }; meta?: { key: string }; fib?: unknown }; right: unknown };
  [statement: string]: unknown;
}

export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
  expr?: NftExpr[];
}

export interface NftSet {
  family: string;
  table: string;
  name: string;
  elem?: unknown[];
}

/** What one `nft -j list ...` returned. */
export interface NftListing {
  tables: { family: string; name: string }[];
  rules: NftRule[];
  sets: NftSet[];
}

/** The table name of the hypercored whose state lives under `scope` (its root directory). */
export function tableNameFor(scope: string): string {
  return `${TABLE_PREFIX}-${createHash('sha256').update(scope).digest('hex').slice(0, 8)}`;
}

/** Throws unless `value` can be spliced into an nft command line without breaking out of it. */
export function checkName(value: string, what: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) throw new InvalidArgumentError(`${what} "${value}" contains characters not allowed in a firewall rule`);
  return value;
}

export const vmTag = (vmId: string): string => `${VM_TAG_PREFIX}${checkName(vmId, 'VM id')}`;
export const bridgeTag = (bridge: string): string => `${BRIDGE_TAG_PREFIX}${checkName(bridge, 'bridge name')}`;

/** The value a rule compares `protocol field` with (e.g. `tcp dport`), if it has such a match. */
export function matchValue(rule: NftRule, protocol: string, field: string): unknown {
  const m = rule.expr?.find((e) => e.match?.left.payload?.protocol === protocol && e.match.left.payload.field === field);
  return m?.match?.right;
}

/** Runs nft through the runner: batches are one netlink transaction, so they apply whole or not at all. */
export class Nft {
  constructor(private readonly run: CommandRunner) {}

  async batch(commands: string[]): Promise<void> {
    if (commands.length > 0) await this.run('nft', [commands.join('; ')]);
  }

  /** Lists `args` (e.g. `['ruleset', 'ip']`) as JSON. */
  async list(args: string[]): Promise<NftListing> {
    const { stdout } = await this.run('nft', ['-j', 'list', ...args]);
    let items: Array<{ table?: { family: string; name: string }; rule?: NftRule; set?: NftSet }>;
    try {
      items = stdout.trim() === '' ? [] : ((JSON.parse(stdout) as { nftables?: typeof items }).nftables ?? []);
    } catch (err) {
      throw new HypercoreError(ErrorCodes.internal, `could not parse the JSON output of nft -j list ${args.join(' ')}`, { cause: err });
    }
    return {
      tables: items.flatMap((i) => (i.table ? [i.table] : [])),
      rules: items.flatMap((i) => (i.rule ? [i.rule] : [])),
      sets: items.flatMap((i) => (i.set ? [i.set] : [])),
    };
  }

  /** Rules and sets of every Hypercore table of `family` (this daemon's, other roots' and the old shared one). */
  async hypercoreTables(family: NftFamily): Promise<NftListing> {
    const all = await this.list(['ruleset', family]);
    const ours = (t: string): boolean => t === TABLE_PREFIX || t.startsWith(`${TABLE_PREFIX}-`);
    return { tables: all.tables.filter((t) => ours(t.name)), rules: all.rules.filter((r) => ours(r.table)), sets: all.sets.filter((s) => ours(s.table)) };
  }

  async tableExists(family: NftFamily, table: string): Promise<boolean> {
    const { tables } = await this.list(['tables', family]);
    return tables.some((t) => t.name === table);
  }

  /** Rules of one table (none if it does not exist). */
  async rules(family: NftFamily, table: string): Promise<NftRule[]> {
    if (!(await this.tableExists(family, table))) return [];
    return (await this.list(['table', family, table])).rules;
  }

  /** Deletes the rules of `table` that `pick` selects, in one transaction; returns how many. */
  async deleteRules(family: NftFamily, table: string, pick: (rule: NftRule) => boolean): Promise<number> {
    const doomed = (await this.rules(family, table)).filter(pick);
    await this.batch(doomed.map((r) => `delete rule ${family} ${table} ${r.chain} handle ${r.handle}`));
    return doomed.length;
  }

  async deleteTable(family: NftFamily, table: string): Promise<void> {
    if (await this.tableExists(family, table)) await this.run('nft', ['delete', 'table', family, table]);
  }
}
