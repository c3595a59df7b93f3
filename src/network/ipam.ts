/**
 * IPv4 address management for the Hypercore bridge subnet: pure functions, no I/O, so the
 * allocation rules (never hand out network, gateway or broadcast) are unit-testable.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../core/errors.js';

/** A parsed IPv4 CIDR. `network` is the network address as an unsigned 32-bit integer. */
export interface Cidr {
  network: number;
  prefix: number;
  /** Number of addresses in the block (2^(32-prefix)). */
  size: number;
  /** Canonical text, e.g. `10.88.0.0/16`. */
  text: string;
}

/** Parses a dotted-quad IPv4 address to an unsigned integer; throws naming the value. */
export function ipToInt(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new InvalidArgumentError(`"${address}" is not an IPv4 address (expected four numbers 0-255 separated by dots)`);
  }
  // `>>> 0` keeps the result unsigned: JS bit operations are signed 32-bit.
  return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}

/** Formats an unsigned 32-bit integer as a dotted-quad address. */
export function intToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
}

function maskOf(prefix: number): number {
  // A shift by 32 is a no-op in JS, so /0 needs its own case.
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses `a.b.c.d/n`. Rejects host bits (10.88.0.1/16) because a subnet written that way is
 * almost always a typo for the gateway, and silently masking it would hide the mistake.
 */
export function parseCidr(text: string): Cidr {
  const match = /^([^/\s]+)\/(\d{1,2})$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`"${text}" is not an IPv4 CIDR (expected e.g. 10.88.0.0/16)`);
  const prefix = Number(match[2]);
  if (prefix > 32) throw new InvalidArgumentError(`"${text}": prefix length ${prefix} is larger than 32`);
  const address = ipToInt(match[1]!);
  const network = (address & maskOf(prefix)) >>> 0;
  if (network !== address) {
    throw new InvalidArgumentError(`"${text}" has host bits set; the subnet is ${intToIp(network)}/${prefix}`);
  }
  return { network, prefix, size: 2 ** (32 - prefix), text: `${intToIp(network)}/${prefix}` };
}

function asCidr(subnet: string | Cidr): Cidr {
  return typeof subnet === 'string' ? parseCidr(subnet) : subnet;
}

/** Whether `address` lies inside `subnet` (network and broadcast included). */
export function contains(subnet: string | Cidr, address: string): boolean {
  const c = asCidr(subnet);
  return ((ipToInt(address) & maskOf(c.prefix)) >>> 0) === c.network;
}

function requireHosts(c: Cidr): void {
  // The bridge needs a gateway and VMs need at least one more host address: /30 is the smallest.
  if (c.prefix > 30) throw new InvalidArgumentError(`subnet ${c.text} is too small for a gateway and a VM (use /30 or larger)`);
}

/** The gateway (bridge) address: the first host address of the subnet. */
export function gatewayOf(subnet: string | Cidr): string {
  const c = asCidr(subnet);
  requireHosts(c);
  return intToIp(c.network + 1);
}

/** The gateway with the subnet's prefix (`10.88.0.1/16`), as `ip addr add` wants it. */
export function gatewayCidrOf(subnet: string | Cidr): string {
  const c = asCidr(subnet);
  return `${gatewayOf(c)}/${c.prefix}`;
}

/**
 * The address for a new VM: `requested` if given (must be an in-subnet host address that is not
 * the gateway and not in `used`), otherwise the lowest free host address. Errors name the value.
 */
export function allocateAddress(subnet: string | Cidr, used: ReadonlySet<string>, requested?: string): string {
  const c = asCidr(subnet);
  requireHosts(c);
  const gateway = c.network + 1;
  const broadcast = c.network + c.size - 1;
  if (requested !== undefined) {
    const want = ipToInt(requested);
    if (!contains(c, requested)) throw new InvalidArgumentError(`address ${requested} is outside the subnet ${c.text}`);
    if (want === c.network) throw new InvalidArgumentError(`address ${requested} is reserved: it is the network address of ${c.text}`);
    if (want === broadcast) throw new InvalidArgumentError(`address ${requested} is reserved: it is the broadcast address of ${c.text}`);
    if (want === gateway) throw new InvalidArgumentError(`address ${requested} is reserved: it is the gateway (bridge) address of ${c.text}`);
    if (used.has(intToIp(want))) throw new InvalidArgumentError(`address ${requested} is already leased to another VM`);
    return intToIp(want);
  }
  for (let candidate = gateway + 1; candidate < broadcast; candidate++) {
    const text = intToIp(candidate);
    if (!used.has(text)) return text;
  }
  throw new InvalidArgumentError(`subnet ${c.text} has no free address left (${used.size} leased); choose a larger subnet`);
}

/** Whether two CIDRs share at least one address. */
export function overlaps(a: string | Cidr, b: string | Cidr): boolean {
  const x = asCidr(a);
  const y = asCidr(b);
  // Two aligned blocks overlap iff one contains the other's network: compare under the wider mask.
  const mask = maskOf(Math.min(x.prefix, y.prefix));
  return ((x.network & mask) >>> 0) === ((y.network & mask) >>> 0);
}

/**
 * A stable MAC for a VM: 02 (locally administered, unicast) followed by five bytes of
 * sha256(vmId), so a VM keeps its MAC (and any DHCP/ARP state) across restarts.
 */
export function macForVm(vmId: string): string {
  const digest = createHash('sha256').update(vmId).digest();
  const bytes = [0x02, ...digest.subarray(0, 5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Every TAP Hypercore creates starts with this, so orphans can be found by name. */
export const TAP_PREFIX = 'hc';

/**
 * The TAP device name for a VM: `hc` + the first 12 hex characters of the id (14 chars, under
 * the kernel's 15-character IFNAMSIZ limit). Ids that are not hex are hashed first.
 */
export function tapNameForVm(vmId: string): string {
  const id = vmId.toLowerCase();
  const hex = /^[0-9a-f]{12}/.test(id) ? id : createHash('sha256').update(vmId).digest('hex');
  return `${TAP_PREFIX}${hex.slice(0, 12)}`;
}
