/**
 * A pod VM's network, in the pod's network namespace that CNI made (as Kata does it): the VM's
 * TAP is created in that namespace next to CNI's interface, and tc mirrors every frame between the
 * two (an ingress qdisc on each, a u32 match-all filter with `mirred egress redirect` to the other).
 * The guest takes CNI's address, gateway and MAC, so for the rest of the network the pod is at its
 * IP as CNI set it up; the namespace's own stack never sees the redirected traffic.
 *
 * The namespace is named by the pod's OCI spec, so it is checked first: a network namespace, not
 * hypercored's (or the init process's) own, with exactly one interface besides lo that has an
 * IPv4 address. Everything runs inside the namespace (nsenter --net); nothing touches the host's.
 */
import { statSync } from 'node:fs';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import type { PodNetwork, PodNetworks } from '../core/pod.js';
import type { CommandRunner } from './command-runner.js';

/** The TAP's name inside the pod's namespace (one VM per namespace, so it never clashes). */
export const POD_TAP = 'hctap0';

interface IpAddr {
  ifname: string;
  address?: string;
  link_type?: string;
  mtu?: number;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
}

function invalid(message: string): HypercoreError {
  return new HypercoreError(ErrorCodes.invalidArgument, message);
}

/** The namespace a path names: a network namespace file other than the daemon's and init's own. */
export function checkPodNetns(path: string, own: readonly string[] = ['/proc/self/ns/net', '/proc/1/ns/net']): void {
  if (!path.startsWith('/')) throw invalid(`pod network namespace "${path}" must be an absolute path`);
  let st;
  try {
    st = statSync(path);
  } catch {
    throw invalid(`pod network namespace ${path} does not exist`);
  }
  for (const other of own) {
    let o;
    try {
      o = statSync(other);
    } catch {
      continue; // not lost: a namespace we may not look at (init's, in some containers) is not the pod's either
    }
    if (o.dev === st.dev && o.ino === st.ino) throw invalid(`pod network namespace ${path} is the host's own network namespace; a pod must have its own (made by CNI)`);
  }
}

export class NetnsPodNetworks implements PodNetworks {
  constructor(
    private readonly run: CommandRunner,
    private readonly ownNamespaces: readonly string[] = ['/proc/self/ns/net', '/proc/1/ns/net'],
  ) {}

  private inNetns(netns: string, file: string, args: string[]): Promise<{ stdout: string }> {
    return this.run('nsenter', [`--net=${netns}`, '--', file, ...args]);
  }

  async attach(netns: string): Promise<PodNetwork> {
    checkPodNetns(netns, this.ownNamespaces);
    const addrs = JSON.parse((await this.inNetns(netns, 'ip', ['-j', 'addr', 'show'])).stdout) as IpAddr[];
    const candidates = addrs.filter((a) => a.ifname !== 'lo' && a.ifname !== POD_TAP && a.link_type === 'ether' && (a.addr_info ?? []).some((i) => i.family === 'inet'));
    if (candidates.length !== 1) {
      throw invalid(`pod network namespace ${netns} must have exactly one interface with an IPv4 address besides lo (CNI's); it has ${candidates.map((c) => c.ifname).join(', ') || 'none'}`);
    }
    const dev = candidates[0]!;
    const inet = dev.addr_info!.find((i) => i.family === 'inet')!;
    const routes = JSON.parse((await this.inNetns(netns, 'ip', ['-j', 'route', 'show', 'default'])).stdout) as IpRoute[];
    const gateway = routes.find((r) => r.dst === 'default' && r.gateway)?.gateway ?? '';
    if (!dev.address) throw invalid(`interface ${dev.ifname} in ${netns} has no MAC address`);
    try {
      await this.inNetns(netns, 'ip', ['tuntap', 'add', 'dev', POD_TAP, 'mode', 'tap']);
      await this.inNetns(netns, 'ip', ['link', 'set', POD_TAP, 'mtu', String(dev.mtu ?? 1500), 'up']);
      for (const [from, to] of [[dev.ifname, POD_TAP], [POD_TAP, dev.ifname]] as const) {
        await this.inNetns(netns, 'tc', ['qdisc', 'add', 'dev', from, 'ingress']);
        await this.inNetns(netns, 'tc', ['filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u8', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', to]);
      }
    } catch (err) {
      await this.removeMirror(netns, dev.ifname);
      throw err;
    }
    return { tap: POD_TAP, device: dev.ifname, mac: dev.address, ip: inet.local, prefixLength: inet.prefixlen, gateway, dns: [] };
  }

  async detach(netns: string, network: PodNetwork): Promise<void> {
    // CRI removes the namespace after the sandbox; with it went the TAP and the filters.
    if (!statSync(netns, { throwIfNoEntry: false })) return;
    await this.removeMirror(netns, network.device);
  }

  private async removeMirror(netns: string, device: string): Promise<void> {
    await this.inNetns(netns, 'tc', ['qdisc', 'del', 'dev', device, 'ingress']).catch(() => undefined); // not lost: absent already is the goal
    await this.inNetns(netns, 'ip', ['link', 'del', POD_TAP]).catch(() => undefined); // not lost: absent already is the goal
  }
}
