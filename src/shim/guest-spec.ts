/**
 * containerd's OCI runtime spec (the bundle's config.json, written for the host) turned into the
 * spec the guest's crun runs the container from. The VM is the isolation boundary and shares no
 * filesystem with the host, so:
 * - host bind mounts of regular files (CRI's /etc/hosts, /etc/resolv.conf, /etc/hostname, ...) are
 *   copied in (at most 1 MiB each) and bound from the container's directory in the guest;
 * - CRI's /dev/shm bind (the sandbox's shm directory) becomes a tmpfs of the container's own;
 * - /dev/pts is the guest's devpts, bound, so the pty the agent gives a terminal process is there;
 * - any other bind of a host directory is refused: there is no way to share it;
 * - the network namespace is dropped (the VM's network is the pod's); namespaces CRI joins by
 *   path (the sandbox's ipc, uts, pid) are joined in the guest instead, by the sandbox container's
 *   guest pid;
 * - hooks, SELinux/AppArmor labels and host cgroup paths are dropped: they name host things.
 * Pure: every rule is unit-tested.
 */
import { ErrorCodes, HypercoreError } from '../core/errors.js';

/** The subset of the OCI runtime spec read here; everything else is passed through or dropped as listed. */
export interface HostSpec {
  ociVersion?: string;
  process?: Record<string, unknown> & { args?: unknown; terminal?: boolean; apparmorProfile?: string; selinuxLabel?: string };
  root?: { path?: string; readonly?: boolean };
  hostname?: string;
  mounts?: HostSpecMount[];
  annotations?: Record<string, string>;
  hooks?: unknown;
  linux?: Record<string, unknown> & {
    namespaces?: { type: string; path?: string }[];
    resources?: Record<string, unknown>;
  };
}

export interface HostSpecMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

/** A host file a bind mount names, as it was found (the caller reads it; see readBoundFile). */
export interface BoundFile {
  kind: 'file' | 'directory' | 'missing' | 'other';
  size: number;
}

/** The largest host file copied into a container for a bind mount. */
export const MAX_BOUND_FILE_BYTES = 1024 * 1024;
/** At most this many bind-mounted files per container. */
export const MAX_BOUND_FILES = 32;

/** Where the agent puts the copied files (relative to the container's directory; see agent/containers.ts). */
export const GUEST_FILES_DIR = 'files';

export interface GuestSpec {
  config: Record<string, unknown>;
  /** Host files to copy, by the name the guest config refers to. */
  files: { name: string; hostPath: string }[];
  /** Namespaces to join from the sandbox container. */
  shareNamespaces: string[];
}

const SHAREABLE = ['ipc', 'uts', 'pid'];
const KEPT_RESOURCES = ['memory', 'cpu', 'pids', 'devices'];
/** Mount types that name no host path. */
const VIRTUAL_TYPES = new Set(['proc', 'sysfs', 'tmpfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2']);

function invalid(message: string): HypercoreError {
  return new HypercoreError(ErrorCodes.invalidArgument, message);
}

function isBind(m: HostSpecMount): boolean {
  return m.type === 'bind' || m.type === 'rbind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

/**
 * Translates `spec`. `inspect` tells what a bind mount's host source is (without following
 * symlinks). `sandbox` says whether this container is its pod's sandbox (which shares nothing: it
 * is what the others join).
 */
export function guestSpec(spec: HostSpec, inspect: (path: string) => BoundFile, sandbox: boolean): GuestSpec {
  const args = spec.process?.args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string') || args[0] === '') throw invalid('the OCI spec has no process to run (process.args is empty)');
  const files: GuestSpec['files'] = [];
  const mounts: HostSpecMount[] = [];
  for (const m of spec.mounts ?? []) {
    if (typeof m.destination !== 'string' || !m.destination.startsWith('/')) throw invalid(`mount destination "${String(m.destination)}" must be an absolute path`);
    if (m.type === 'devpts') {
      // The agent gives a terminal process a pty of the guest's devpts: a new instance would not
      // show it, and `tty` would say "not a tty". The pod's containers share the guest's ptys.
      mounts.push({ destination: m.destination, type: 'bind', source: '/dev/pts', options: ['rbind', 'nosuid', 'noexec'] });
      continue;
    }
    if (!isBind(m)) {
      if (m.type && !VIRTUAL_TYPES.has(m.type)) throw invalid(`mount of type "${m.type}" at ${m.destination} is not supported in a Hypercore pod (only proc, sysfs, tmpfs, devpts, mqueue, cgroup and bind mounts of files)`);
      mounts.push({ destination: m.destination, type: m.type ?? 'tmpfs', source: m.source ?? m.type ?? 'none', options: m.options ?? [] });
      continue;
    }
    const source = m.source ?? '';
    if (m.destination === '/dev/shm') {
      // CRI binds the sandbox's shm directory; in the guest each container gets its own tmpfs.
      mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] });
      continue;
    }
    if (!source.startsWith('/')) throw invalid(`bind mount at ${m.destination}: source "${source}" must be an absolute host path`);
    const found = inspect(source);
    if (found.kind === 'directory') throw invalid(`bind mount of host directory ${source} at ${m.destination} is not supported in a Hypercore pod: the VM shares no filesystem with the host (files up to ${MAX_BOUND_FILE_BYTES / 1024} KiB are copied in)`);
    if (found.kind === 'missing') throw invalid(`bind mount at ${m.destination}: host file ${source} does not exist`);
    if (found.kind === 'other') throw invalid(`bind mount at ${m.destination}: host ${source} is not a regular file (devices, sockets, FIFOs and symlinks are not copied into a VM)`);
    if (found.size > MAX_BOUND_FILE_BYTES) throw invalid(`bind mount at ${m.destination}: host file ${source} is ${found.size} bytes, more than the ${MAX_BOUND_FILE_BYTES} copied into a VM`);
    if (files.length >= MAX_BOUND_FILES) throw invalid(`more than ${MAX_BOUND_FILES} bind-mounted files in one container`);
    const name = `f${files.length}`;
    files.push({ name, hostPath: source });
    const options = (m.options ?? []).filter((o) => o !== 'rbind' && o !== 'bind');
    mounts.push({ destination: m.destination, type: 'bind', source: `${GUEST_FILES_DIR}/${name}`, options: ['bind', ...options] });
  }

  const namespaces: { type: string }[] = [];
  const shareNamespaces: string[] = [];
  for (const ns of spec.linux?.namespaces ?? []) {
    if (ns.type === 'network') continue;
    if (ns.type === 'user') throw invalid('user namespaces are not supported in Hypercore pods');
    if (ns.path) {
      if (sandbox || !SHAREABLE.includes(ns.type)) throw invalid(`namespace ${ns.type} at ${ns.path} cannot be joined in a Hypercore pod (only the sandbox's ${SHAREABLE.join(', ')} can)`);
      shareNamespaces.push(ns.type);
    }
    namespaces.push({ type: ns.type });
  }

  const { apparmorProfile: _a, selinuxLabel: _s, ...process } = spec.process ?? {};
  const resources: Record<string, unknown> = {};
  for (const key of KEPT_RESOURCES) if (spec.linux?.resources?.[key] !== undefined) resources[key] = spec.linux.resources[key];
  const linux: Record<string, unknown> = { namespaces, resources };
  for (const key of ['maskedPaths', 'readonlyPaths', 'sysctl', 'seccomp', 'devices', 'rootfsPropagation']) {
    if (spec.linux?.[key] !== undefined) linux[key] = spec.linux[key];
  }
  const config: Record<string, unknown> = {
    ociVersion: spec.ociVersion ?? '1.0.2',
    process: { ...process, terminal: false },
    root: { readonly: spec.root?.readonly ?? false },
    ...(spec.hostname ? { hostname: spec.hostname } : {}),
    mounts,
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
    linux,
  };
  return { config, files, shareNamespaces };
}

/** The pod's network namespace: the path of the spec's network namespace, if it names one. */
export function networkNamespacePath(spec: HostSpec): string | undefined {
  const path = spec.linux?.namespaces?.find((n) => n.type === 'network')?.path;
  return path && path.startsWith('/') ? path : undefined;
}
