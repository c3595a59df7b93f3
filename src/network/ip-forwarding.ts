/**
 * IPv4 forwarding is one host-wide switch that NAT'd guests need. Hypercore turns it on only when
 * it is off, and then leaves a marker (an empty nftables table) saying so; whichever hypercored
 * removes the last Hypercore NAT table on the host switches it back off and drops the marker. The
 * marker lives in the kernel, like the setting it describes: it survives a daemon restart, is
 * shared by every hypercored on the host, and is gone after a reboot, when the setting is too.
 */
import type { Logger } from '../core/ports.js';
import type { CommandRunner } from './command-runner.js';
import { Nft } from './nft.js';

/**
 * Not `hypercore-…`, so it is never taken for a daemon's table; `ip` family because forwarding
 * belongs to the NAT tables it outlives.
 */
export const FORWARDING_MARKER = 'hypercore_ip_forward_was_off';

export class IpForwarding {
  private readonly nft: Nft;

  constructor(private readonly run: CommandRunner) {
    this.nft = new Nft(run);
  }

  /** Via `sysctl` through the runner, not /proc directly, so a namespaced runner reads its namespace. */
  private async value(): Promise<string> {
    return (await this.run('sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim();
  }

  /** Turns forwarding on if it is off (and records that); returns whether it changed. */
  async enable(log: Pick<Logger, 'info'>): Promise<boolean> {
    if ((await this.value()) !== '0') return false;
    // Marker first: if the sysctl then fails, restoring "off" later is still right.
    await this.nft.batch([`add table ip ${FORWARDING_MARKER}`]);
    await this.run('sysctl', ['-w', 'net.ipv4.ip_forward=1']);
    log.info({ sysctl: 'net.ipv4.ip_forward' }, 'enabled IPv4 forwarding (net.ipv4.ip_forward=1) so VMs can reach the network; it is switched off again when the last VM goes');
    return true;
  }

  /**
   * Switches forwarding back off if Hypercore switched it on and no Hypercore NAT table is left
   * (other hypercoreds, and the old shared layout, still need it while they have one).
   * Returns whether it changed.
   */
  async restoreIfUnused(log: Pick<Logger, 'info'>): Promise<boolean> {
    if (!(await this.nft.tableExists('ip', FORWARDING_MARKER))) return false;
    if ((await this.nft.hypercoreTables('ip')).tables.length > 0) return false;
    await this.run('sysctl', ['-w', 'net.ipv4.ip_forward=0']);
    await this.nft.deleteTable('ip', FORWARDING_MARKER);
    log.info({ sysctl: 'net.ipv4.ip_forward' }, 'switched IPv4 forwarding back off: no VM needs it and Hypercore had turned it on');
    return true;
  }
}
