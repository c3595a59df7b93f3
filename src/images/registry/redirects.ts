/**
 * Which redirects a registry client follows. The distribution spec lets a registry send blob (and
 * manifest) GETs elsewhere, typically to object storage or a CDN over HTTPS; a hostile registry
 * could instead point the daemon at the host's own services, the cloud metadata endpoint or a plain
 * HTTP address. The rules:
 * - only GET and HEAD are redirected, at most MAX_REDIRECTS hops, only to http(s) URLs;
 * - never from https to http, and to http only from a registry that is itself spoken to over http
 *   (loopback or listed as insecure);
 * - never to link-local, multicast or unspecified addresses (169.254.169.254 is the metadata service);
 * - to loopback and private addresses only when the registry itself is loopback, private or listed
 *   as insecure (a local registry may well keep its blobs on a local store; a public one may not);
 * - credentials are sent only to the registry's own origin (the transport's rule).
 * Addresses are checked on the URL and again on what a host name resolves to, when connecting.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { RegistryUnavailableError } from './errors.js';

export const MAX_REDIRECTS = 5;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Whether a response is a redirect this client may follow. */
export function isRedirect(status: number, method: string): boolean {
  return REDIRECT_STATUSES.has(status) && (method === 'GET' || method === 'HEAD');
}

export type AddressKind = 'public' | 'loopback' | 'private' | 'forbidden';

function blockList(ranges: readonly (readonly [string, number, 'ipv4' | 'ipv6'])[]): BlockList {
  const list = new BlockList();
  for (const [net, prefix, type] of ranges) list.addSubnet(net, prefix, type);
  return list;
}

const loopback = blockList([['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']]);
const privateRanges = blockList([
  ['10.0.0.0', 8, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT
  ['fc00::', 7, 'ipv6'], // unique local
]);
const forbidden = blockList([
  ['0.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['224.0.0.0', 3, 'ipv4'], // multicast, reserved, broadcast
  ['::', 128, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
]);

/** What kind of address `ip` (an IP literal) is, for the redirect rules. */
export function addressKind(ip: string): AddressKind {
  const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  if (forbidden.check(ip, type)) return 'forbidden';
  if (loopback.check(ip, type)) return 'loopback';
  if (privateRanges.check(ip, type)) return 'private';
  return 'public';
}

/** How far a registry's redirects are trusted. */
export interface RedirectTrust {
  /** The registry is loopback, private or listed as insecure: it may redirect to local addresses and over http. */
  local: boolean;
}

function refused(from: URL, to: string, why: string): RegistryUnavailableError {
  return new RegistryUnavailableError(`the registry at ${from.host} redirected to ${to}, which is not followed: ${why}`);
}

/** Why the address is not acceptable under `trust`, or undefined when it is. */
export function addressRefusal(ip: string, trust: RedirectTrust): string | undefined {
  const kind = addressKind(ip);
  if (kind === 'forbidden') return `${ip} is a link-local, multicast or unspecified address`;
  if (kind !== 'public' && !trust.local) return `${ip} is a ${kind} address and the registry is not a local one`;
  return undefined;
}

/** Throws RegistryUnavailableError unless a redirect from `from` to `to` may be followed (see the module doc). */
export function checkRedirect(from: URL, to: URL, trust: RedirectTrust, hops: number): void {
  const shown = `${to.protocol}//${to.host}${to.pathname}`;
  if (hops > MAX_REDIRECTS) throw refused(from, shown, `more than ${MAX_REDIRECTS} redirects`);
  if (to.protocol !== 'https:' && to.protocol !== 'http:') throw refused(from, shown, 'only http and https are followed');
  if (to.protocol === 'http:' && from.protocol === 'https:') throw refused(from, shown, 'it would downgrade https to plain http');
  if (to.protocol === 'http:' && !trust.local) throw refused(from, shown, 'plain http is followed only for loopback and insecure registries');
  if (to.username || to.password) throw refused(from, shown, 'it carries credentials in the URL');
  const host = to.hostname.replace(/^\[|\]$/g, '');
  if (host.toLowerCase() === 'localhost' && !trust.local) throw refused(from, shown, 'localhost is a loopback address and the registry is not a local one');
  if (isIP(host)) {
    const why = addressRefusal(host, trust);
    if (why) throw refused(from, shown, why);
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for the sockets of redirect hops: resolves as usual, then refuses a host name whose
 * addresses break the rules, so a name cannot smuggle in what an IP literal may not be.
 */
export function guardedLookup(trust: RedirectTrust) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      const bad = list.map((a) => addressRefusal(a.address, trust)).find((why) => why !== undefined);
      if (bad) {
        const error: NodeJS.ErrnoException = new Error(`redirect target ${hostname} refused: ${bad}`);
        error.code = 'EHCREDIRECT';
        return callback(error, []);
      }
      if (options.all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
