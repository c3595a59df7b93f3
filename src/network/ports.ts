/**
 * Port-forward specs as users write them (`8080:80`, `127.0.0.1:5353:53/udp`): parsing only, pure,
 * so every bad spec is rejected with a message that quotes it before anything touches nftables.
 */
import { InvalidArgumentError } from '../core/errors.js';
import { ipToInt } from './ipam.js';

/** Transport protocols a port forward can carry. */
export type PortProtocol = 'tcp' | 'udp';

/** One parsed `[ADDRESS:]HOST_PORT:GUEST_PORT[/tcp|/udp]` spec. */
export interface PortSpec {
  /** The host address to listen on; absent means every local address (127.0.0.1 included). */
  hostAddress?: string;
  hostPort: number;
  guestPort: number;
  protocol: PortProtocol;
}

const FORMAT = '[ADDRESS:]HOST_PORT:GUEST_PORT[/tcp|/udp], e.g. 8080:80 or 127.0.0.1:5353:53/udp';

function port(spec: string, text: string, which: string, kind = 'port forward'): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new InvalidArgumentError(`${kind} "${spec}": ${which} port "${text}" is not a number from 1 to 65535`);
  }
  return Number(text);
}

/** Parses one spec; throws InvalidArgumentError naming the spec and the bad part. */
export function parsePortSpec(spec: string): PortSpec {
  const trimmed = spec.trim();
  const [body, proto, ...extra] = trimmed.split('/');
  if (extra.length > 0 || body === undefined || body === '') {
    throw new InvalidArgumentError(`port forward "${spec}" is not valid; expected ${FORMAT}`);
  }
  const protocol = (proto ?? 'tcp').toLowerCase();
  if (protocol !== 'tcp' && protocol !== 'udp') {
    throw new InvalidArgumentError(`port forward "${spec}": protocol "${proto}" is not supported (use tcp or udp)`);
  }
  const parts = body.split(':');
  if (parts.length !== 2 && parts.length !== 3) {
    // A lone port is rejected rather than guessed: Docker reads it as "random host port", others as "same port".
    throw new InvalidArgumentError(`port forward "${spec}" is not valid; expected ${FORMAT}`);
  }
  const hostAddress = parts.length === 3 ? parts[0]! : undefined;
  if (hostAddress !== undefined) {
    try {
      ipToInt(hostAddress);
    } catch {
      throw new InvalidArgumentError(`port forward "${spec}": "${hostAddress}" is not an IPv4 address`);
    }
  }
  const hostPort = port(spec, parts[parts.length - 2]!, 'host');
  const guestPort = port(spec, parts[parts.length - 1]!, 'guest');
  return { ...(hostAddress !== undefined ? { hostAddress } : {}), hostPort, guestPort, protocol };
}

/**
 * Parses several specs and rejects two that claim the same host port and protocol on the same
 * address (a spec without address claims every address, so it clashes with any other).
 */
export function parsePortSpecs(specs: readonly string[]): PortSpec[] {
  const parsed = specs.map((spec) => ({ spec, port: parsePortSpec(spec) }));
  parsed.forEach((a, i) => {
    const clash = parsed.slice(0, i).find((b) =>
      b.port.hostPort === a.port.hostPort && b.port.protocol === a.port.protocol &&
      (a.port.hostAddress === undefined || b.port.hostAddress === undefined || a.port.hostAddress === b.port.hostAddress));
    if (clash) throw new InvalidArgumentError(`port forwards "${clash.spec}" and "${a.spec}" both use host port ${a.port.hostPort}/${a.port.protocol}`);
  });
  return parsed.map((p) => p.port);
}

/** One `[network] host_ports` entry: a port on the gateway address a guest may reach. */
export interface HostPort {
  port: number;
  protocol: PortProtocol;
}

/** Parses `PORT[/tcp|/udp]` (what `host_ports` holds); throws naming the entry. */
export function parseHostPort(spec: string): HostPort {
  const match = /^(\d{1,5})(?:\/(tcp|udp))?$/i.exec(spec.trim());
  if (!match) throw new InvalidArgumentError(`host port "${spec}" is not valid; expected PORT[/tcp|/udp], e.g. 8080 or 53/udp`);
  return { port: port(spec, match[1]!, 'host', 'host port'), protocol: (match[2]?.toLowerCase() ?? 'tcp') as PortProtocol };
}
