/**
 * The OCI runtime config (config.json) crun runs the workload from. Pure, so every rule is
 * unit-tested on the host; the VM is the isolation boundary, the container gives the image its
 * usual view (own pid/mount/ipc/uts/cgroup namespaces, Docker's defaults otherwise).
 *
 * Deliberate differences from `crun spec` / Docker:
 * - no network namespace: the workload shares the VM's network, which the VM's config set up;
 * - /dev/pts is a bind of the guest's devpts (not a new instance), so a pty the agent allocated for
 *   a terminal process is visible inside and `tty` prints /dev/pts/N;
 * - process.terminal is false: the agent hands crun its stdio (pipes or a pty it owns).
 */
import type { ProcessSpec, WorkloadLimits } from './protocol/messages.js';
import { buildEnv, envList, parseUser } from './launch.js';

/** The subset of the OCI runtime spec 1.0 the agent writes. */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted', string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string }[];
    cgroupsPath: string;
    resources: {
      devices: { allow: boolean; access: string; type?: string; major?: number; minor?: number }[];
      memory?: { limit: number };
      pids?: { limit: number };
    };
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface WorkloadConfigInput {
  process: ProcessSpec;
  /** Absolute path of the container's root filesystem. */
  rootfs: string;
  hostname?: string;
  limits?: WorkloadLimits;
  /** Guest files bound read-only at the same path in the container, e.g. resolv.conf: {'/etc/resolv.conf': '/run/hc/resolv.conf'}. */
  binds?: Record<string, string>;
}

/** Docker's default capability set. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** runc's (and Docker's) masked and read-only /proc and /sys paths. */
export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Character devices a container may use (Docker's allow list; 136 = the pts majors' first). */
const ALLOWED_DEVICES: readonly [number, number | undefined][] = [
  [1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2], [136, undefined], [10, 200],
];

/** The id the agent gives the workload's container. */
export const CONTAINER_ID = 'hc-main';

/** Builds config.json for the workload. Throws (INVALID_ARGUMENT) on a bad user or env entry. */
export function workloadConfig(input: WorkloadConfigInput): OciSpec {
  const spec = input.process;
  const { uid, gid } = parseUser(spec.user);
  const base = input.hostname ? [`HOSTNAME=${input.hostname}`] : [];
  const env = envList(buildEnv(spec, base, uid));
  const caps = [...DEFAULT_CAPABILITIES];
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'bind', source: '/dev/pts', options: ['rbind', 'nosuid', 'noexec'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ];
  for (const [destination, source] of Object.entries(input.binds ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    mounts.push({ destination, type: 'bind', source, options: ['rbind', 'rprivate', 'ro'] });
  }
  const resources: OciSpec['linux']['resources'] = {
    devices: [
      { allow: false, access: 'rwm' },
      ...ALLOWED_DEVICES.map(([major, minor]) => ({ allow: true, type: 'c', major, ...(minor === undefined ? {} : { minor }), access: 'rwm' })),
    ],
  };
  const memory = input.limits?.memoryBytes ?? 0;
  const pids = input.limits?.pids ?? 0;
  if (memory > 0) resources.memory = { limit: memory };
  if (pids > 0) resources.pids = { limit: pids };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid, gid },
      args: [...spec.args],
      env,
      cwd: spec.cwd || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: false },
    ...(input.hostname ? { hostname: input.hostname } : {}),
    mounts,
    linux: {
      // No "network": the container shares the VM's network namespace.
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      cgroupsPath: `/${CONTAINER_ID}`,
      resources,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}
