/**
 * Finding and ordering the guest kernel modules the stage-1 initramfs loads. Debian's package has
 * no modules.dep and busybox `insmod` does not resolve dependencies, so the load order is computed
 * here from each module's own `depends=` entry (its .modinfo section), starting from a preferred list.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProviderUnavailableError } from '../core/errors.js';

/**
 * The modules the stage-1 init loads, in a working order (see shared facts guest.md §1): the virtio
 * transports for microvm (mmio) and q35/pc (pci), block, console, rng, balloon, net, vsock, overlay.
 */
export const STAGE1_MODULES: readonly string[] = [
  'virtio_ring',
  'virtio',
  'virtio_mmio',
  'virtio_pci_legacy_dev',
  'virtio_pci_modern_dev',
  'virtio_pci',
  'virtio_blk',
  'virtio_console',
  'virtio-rng',
  'virtio_balloon',
  'failover',
  'net_failover',
  'virtio_net',
  'vsock',
  'vmw_vsock_virtio_transport_common',
  'vmw_vsock_virtio_transport',
  'overlay',
];

/**
 * Modules the initramfs carries but does not load unless the kernel command line's `hc.mods=` names
 * them: vsock_loopback lets a guest connect to its own vsock listeners (CID 1), which tests use to
 * reach the vsock agent in a QEMU guest, where no host vsock device exists. It is never loaded by
 * default: a guest workload must not reach the agent's port from inside.
 */
export const STAGE1_CARRIED_MODULES: readonly string[] = ['vsock_loopback'];

/** Without these no guest can reach its root disk on microvm, so their absence is an error. */
export const REQUIRED_STAGE1_MODULES: readonly string[] = ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk'];

/** The kernel treats `-` and `_` in module names as the same character. */
export function canonicalModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** A module file found in the package. `name` keeps the file's spelling (`virtio-rng`). */
export interface KernelModule {
  name: string;
  path: string;
  depends: string[];
}

/** Reads the `depends=` entry of a .ko's .modinfo strings (NUL-separated `key=value` pairs). */
export function readModuleDepends(ko: Buffer): string[] {
  const key = Buffer.from('depends=');
  let at = ko.indexOf(key);
  // Only a match at the start of a modinfo string counts, i.e. after a NUL (or at offset 0).
  while (at > 0 && ko[at - 1] !== 0) at = ko.indexOf(key, at + 1);
  if (at < 0) return [];
  const end = ko.indexOf(0, at);
  const value = ko.subarray(at + key.length, end < 0 ? ko.length : end).toString('utf8');
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

async function walk(dir: string, out: string[]): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path, out);
    else if (entry.isFile()) out.push(path);
  }
}

/** What a modules directory (`lib/modules/<version>`) offers. */
export interface ModuleTree {
  /** By canonical name. */
  modules: Map<string, KernelModule>;
  /** Canonical names of modules built into the kernel (from modules.builtin). */
  builtin: Set<string>;
  /** Canonical names of modules only present compressed (.ko.xz/.ko.zst/.ko.gz), which busybox insmod cannot load. */
  compressed: Set<string>;
}

/** Scans `<modulesDir>/kernel` for .ko files and reads modules.builtin if present. */
export async function scanModuleTree(modulesDir: string): Promise<ModuleTree> {
  const files: string[] = [];
  try {
    await walk(join(modulesDir, 'kernel'), files);
  } catch (err) {
    throw new ProviderUnavailableError(`no kernel modules under ${join(modulesDir, 'kernel')}: ${(err as Error).message}`, err);
  }
  const modules = new Map<string, KernelModule>();
  const compressed = new Set<string>();
  for (const path of files.sort()) {
    const base = path.slice(path.lastIndexOf('/') + 1);
    const plain = /^(.+)\.ko$/.exec(base);
    const packed = /^(.+)\.ko\.(xz|zst|gz)$/.exec(base);
    if (plain) {
      const name = plain[1]!;
      modules.set(canonicalModuleName(name), { name, path, depends: readModuleDepends(await readFile(path)) });
    } else if (packed) compressed.add(canonicalModuleName(packed[1]!));
  }
  const builtin = new Set<string>();
  try {
    for (const line of (await readFile(join(modulesDir, 'modules.builtin'), 'utf8')).split('\n')) {
      const m = /([^/]+)\.ko$/.exec(line.trim());
      if (m) builtin.add(canonicalModuleName(m[1]!));
    }
  } catch {
    // No modules.builtin: nothing is known to be built in, which only makes the checks stricter.
  }
  return { modules, builtin, compressed };
}

/** The outcome of ordering: modules to load (dependencies first) and wanted names that were skipped. */
export interface ModulePlan {
  load: KernelModule[];
  /** Wanted (or depended-on) modules neither present as .ko nor built in, or depending on such a module. */
  missing: string[];
  /** Wanted modules that are built into the kernel, so there is nothing to load. */
  builtin: string[];
}

/**
 * Orders `wanted` so every module comes after the modules it depends on, otherwise keeping the
 * given order; dependencies not in `wanted` are pulled in. Throws when a module in `required` is
 * neither a loadable .ko nor built in.
 */
export function planModules(tree: ModuleTree, wanted: readonly string[], required: readonly string[] = []): ModulePlan {
  const load: KernelModule[] = [];
  const missing: string[] = [];
  const builtin: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const unavailable = new Set<string>();
  const visit = (name: string, chain: readonly string[]): void => {
    const key = canonicalModuleName(name);
    const seen = state.get(key);
    if (seen === 'done') return;
    if (seen === 'visiting') throw new ProviderUnavailableError(`kernel module dependency cycle: ${[...chain, name].join(' -> ')}`);
    state.set(key, 'visiting');
    const mod = tree.modules.get(key);
    if (mod) {
      for (const dep of mod.depends) visit(dep, [...chain, name]);
      // insmod of a module whose dependency is absent only fails with "Unknown symbol": leave it out.
      if (mod.depends.some((d) => unavailable.has(canonicalModuleName(d)))) {
        unavailable.add(key);
        missing.push(name);
      } else load.push(mod);
    } else if (tree.builtin.has(key)) builtin.push(name);
    else {
      unavailable.add(key);
      missing.push(name);
    }
    state.set(key, 'done');
  };
  for (const name of wanted) visit(name, []);
  const absent = required.filter((r) => missing.some((m) => canonicalModuleName(m) === canonicalModuleName(r)));
  if (absent.length > 0) {
    const hint = absent.some((a) => tree.compressed.has(canonicalModuleName(a)))
      ? ' (only compressed .ko.* files exist; busybox insmod needs uncompressed modules)'
      : '';
    throw new ProviderUnavailableError(`the guest kernel package lacks required module(s) ${absent.join(', ')}${hint}`);
  }
  return { load, missing, builtin };
}
