/**
 * Restored: the guest runs from a snapshot, so its memory is another VM's. This makes it this VM:
 * - the clock jumps to the host's time (it stood still from the snapshot to the restore);
 * - the kernel's random pool gets the host's fresh entropy and reseeds at once (RNDRESEEDCRNG), so
 *   two guests restored from one snapshot never read the same random bytes;
 * - hostname (the VM's and the workload's UTS namespace), machine id and eth0's MAC, address,
 *   route and DNS become this VM's.
 * Node has no settimeofday, ioctl or setns, so a short Perl program (perl is in the guest system
 * image; the program uses no modules, which the image lacks) makes those calls. It reads its one
 * request from stdin, so it can be started ahead of need (see spare-process.ts) and a restore finds
 * it running. It is given the guest's own clock reading at the request's arrival, so the time until
 * perl reads its clock is added. The same program runs the `ip` commands of the network identity:
 * under TCG a process forked by perl costs the just-restored guest less than one forked by the
 * agent (node); the four cost it about 0.2 s more CPU that way.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Code, TtrpcError } from '../ttrpc/index.js';
import type { RestoredRequest } from './protocol/messages.js';

export const PERL = '/usr/bin/perl';

/** Restoring waits at most this long for the perl program. */
export const RESTORE_TIMEOUT_MS = 30_000;

/**
 * Reads the request: one stdin line of tab-separated fields: host time (ms), the guest's clock when
 * the request arrived (ms), entropy (hex), hostname, the workload's UTS namespace file ('' without a
 * workload), then eth0's MAC, address (A.B.C.D/N) and default gateway ('' when the VM has no network,
 * or no gateway). No line (stdin closed without a request): exits 0 having changed nothing.
 */
const READ_REQUEST = String.raw`
my $line = <STDIN>;
exit 0 unless defined $line;
chomp $line;
my ($host_ms, $seen_ms, $hex, $name, $ns, $mac, $addr, $gw) = split(/\t/, $line, -1);
defined $gw or die "restore request: 8 tab-separated fields expected\n";
`;

/**
 * The network identity: eth0's MAC, its one address (the source VM's goes) and default route, by
 * busybox `ip` (list form: no shell); a failed command ends the program with ip's stderr and its
 * status. Nothing without a MAC.
 */
const NETWORK_PERL = String.raw`
sub ip {
  system('ip', @_) == 0 and return;
  die 'ip ' . join(' ', @_) . ($? == -1 ? ": $!" : ' failed with status ' . ($? >> 8)) . "\n";
}
if ($mac ne "") {
  ip('link', 'set', 'dev', 'eth0', 'address', $mac);
  ip('addr', 'flush', 'dev', 'eth0');
  ip('addr', 'add', $addr, 'dev', 'eth0');
  ip('route', 'replace', 'default', 'via', $gw, 'dev', 'eth0') if $gw ne "";
}
`;

/**
 * The whole program: the request, then clock, entropy and hostnames, then the network. Syscall
 * numbers are x86_64's: gettimeofday 96, settimeofday 164, sethostname 170, setns 308;
 * RNDRESEEDCRNG is _IO('R', 7).
 */
export const RESTORE_PERL = READ_REQUEST + String.raw`
my $buf = "\0" x 16;
syscall(96, $buf, 0) == 0 or die "gettimeofday: $!\n";
my ($s, $us) = unpack("q q", $buf);
my $t = $host_ms + ($s * 1000 + int($us / 1000) - $seen_ms);
syscall(164, pack("q q", int($t / 1000), ($t % 1000) * 1000), 0) == 0 or die "settimeofday: $!\n";
open(my $r, "+<", "/dev/urandom") or die "/dev/urandom: $!\n";
my $bytes = pack("H*", $hex);
syswrite($r, $bytes) == length($bytes) or die "writing /dev/urandom: $!\n";
ioctl($r, 0x5207, 0) or die "RNDRESEEDCRNG: $!\n";
syscall(170, $name, length($name)) == 0 or die "sethostname: $!\n";
if ($ns ne "") {
  open(my $f, "<", $ns) or die "$ns: $!\n";
  syscall(308, fileno($f), 0x04000000) == 0 or die "setns $ns: $!\n";
  syscall(170, $name, length($name)) == 0 or die "sethostname in the workload: $!\n";
}
` + NETWORK_PERL;

/** The request and the network part alone, without the clock and hostname calls (tests). */
export const RESTORE_NETWORK_ONLY_PERL = READ_REQUEST + NETWORK_PERL;

export interface RestoreTarget {
  /** Runs RESTORE_PERL with its request's fields (a spare perl where there is one). */
  identity(fields: readonly string[]): Promise<unknown>;
  /** The workload container's init pid while it runs (its UTS namespace gets the hostname too). */
  workloadPid(): Promise<number | undefined>;
  /** The new hostname, for the HOSTNAME of processes started from now on. */
  renamed(hostname: string): void;
  /** /run/hc: machine-id and resolv.conf live there (bound into the workload, so rewritten in place). */
  hcDir: string;
  /** /proc */
  proc: string;
  /** The guest's clock now, in ms (Date.now; tests fix it). */
  now(): number;
}

/** VM names: letters, digits, '_', '.', '-' (sethostname takes any bytes up to 64). */
const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const MACHINE_ID = /^[0-9a-f]{32}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(\d{1,3})(\.\d{1,3}){3}$/;

function invalid(message: string): TtrpcError {
  return new TtrpcError(Code.INVALID_ARGUMENT, message);
}

/** Checks everything before changing anything: a bad request changes nothing. */
function check(req: RestoredRequest): void {
  if (!Number.isSafeInteger(req.unixTimeMs) || req.unixTimeMs <= 0) throw invalid('unix_time_ms is required');
  if (!req.entropy || req.entropy.length < 16 || req.entropy.length > 4096) throw invalid('entropy must be 16 to 4096 bytes');
  if (!HOSTNAME.test(req.hostname)) throw invalid(`hostname "${req.hostname}" is not a valid host name`);
  if (!MACHINE_ID.test(req.machineId)) throw invalid('machine_id must be 32 lowercase hex digits');
  const n = req.network;
  if (n) {
    if (!MAC.test(n.mac)) throw invalid(`network.mac "${n.mac}" is not a MAC address`);
    const [ip, prefix] = n.address.split('/');
    if (!IPV4.test(ip ?? '') || !/^\d{1,2}$/.test(prefix ?? '') || Number(prefix) > 32) throw invalid(`network.address "${n.address}" is not A.B.C.D/N`);
    if (n.gateway && !IPV4.test(n.gateway)) throw invalid(`network.gateway "${n.gateway}" is not an IPv4 address`);
    for (const d of n.dns) if (!IPV4.test(d)) throw invalid(`network.dns "${d}" is not an IPv4 address`);
  }
}

export async function applyRestore(req: RestoredRequest, target: RestoreTarget): Promise<void> {
  const seen = target.now();
  check(req);
  const pid = await target.workloadPid();
  const ns = pid === undefined ? '' : join(target.proc, String(pid), 'ns', 'uts');
  const n = req.network;
  await target.identity([String(req.unixTimeMs), String(seen), Buffer.from(req.entropy).toString('hex'), req.hostname, ns, n?.mac ?? '', n?.address ?? '', n?.gateway ?? '']);
  target.renamed(req.hostname);
  // writeFile truncates the same inode, which is what the workload's bind mount shows.
  await writeFile(join(target.hcDir, 'machine-id'), `${req.machineId}\n`);
  if (!n) return;
  await writeFile(join(target.hcDir, 'resolv.conf'), n.dns.map((d) => `nameserver ${d}\n`).join(''));
}

/** The container init's pid from crun's pid file, while that process exists. */
export async function pidFromFile(pidFile: string, proc: string): Promise<number | undefined> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return (await readFile(join(proc, String(pid), 'stat'), 'utf8').catch(() => undefined)) === undefined ? undefined : pid;
}
