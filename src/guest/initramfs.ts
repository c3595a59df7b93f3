/**
 * The stage-1 initramfs: static busybox, the virtio (and vsock, overlay) modules of the guest kernel
 * and `stage1-init.sh` as /init. It only mounts the real root and switch_roots, so it stays ~1.5 MB
 * gzipped and costs the guest a fraction of a second to unpack.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { loadStaticBusybox } from './busybox.js';
import { REQUIRED_STAGE1_MODULES, STAGE1_CARRIED_MODULES, STAGE1_MODULES, planModules, scanModuleTree } from './kernel-modules.js';
import { encodeNewc, type NewcEntry } from './newc.js';

/** The busybox applets stage1-init.sh calls; only these get symlinks, to keep the archive minimal. */
export const STAGE1_APPLETS: readonly string[] = [
  'sh', 'cat', 'ls', 'mkdir', 'mount', 'umount', 'insmod', 'tr', 'sleep', 'usleep', 'switch_root', 'poweroff', 'reboot',
];

/** Path of the /init script shipped next to this module (copied to dist/ by scripts/copy-assets.mjs). */
export function stage1InitScriptPath(): string {
  return fileURLToPath(new URL('./stage1-init.sh', import.meta.url));
}

export interface Stage1Options {
  /** The kernel's modules directory, `lib/modules/<kernel version>` of the extracted package. */
  modulesDir: string;
  /** Defaults to the host's static busybox. */
  busyboxPath?: string;
  /** Modules to include, in preferred load order. Default STAGE1_MODULES. */
  modules?: readonly string[];
  /** Modules included but loaded only when `hc.mods=` names them. Default STAGE1_CARRIED_MODULES. */
  carriedModules?: readonly string[];
  /** Modules whose absence is an error. Default REQUIRED_STAGE1_MODULES. */
  requiredModules?: readonly string[];
  /** gzip (default) or none. The kernel unpacks either; gzip roughly halves the file. */
  compression?: 'gzip' | 'none';
  /** Override of the /init script (tests). Default stage1-init.sh. */
  initScriptPath?: string;
}

export interface Stage1Initramfs {
  /** The archive (gzip-compressed unless compression is none). */
  data: Buffer;
  sha256: string;
  /** Module names included, in the order /init loads them. */
  modules: string[];
  /** Modules in the archive that /init loads only when `hc.mods=` names them. */
  carried: string[];
  /** Wanted modules not found as .ko nor built in (the init skips them). */
  missing: string[];
}

/** Builds the stage-1 initramfs in memory. Deterministic: the same inputs give the same bytes. */
export async function buildStage1Initramfs(options: Stage1Options): Promise<Stage1Initramfs> {
  const [busybox, init, tree] = await Promise.all([
    loadStaticBusybox(options.busyboxPath),
    readFile(options.initScriptPath ?? stage1InitScriptPath()),
    scanModuleTree(options.modulesDir),
  ]);
  const plan = planModules(tree, options.modules ?? STAGE1_MODULES, options.requiredModules ?? REQUIRED_STAGE1_MODULES);
  const modules = await Promise.all(plan.load.map(async (m) => ({ name: m.name, data: await readFile(m.path) })));
  const loaded = new Set(plan.load.map((m) => m.name));
  // Carried modules (and any dependency not already loaded) are in the archive, not in the load list.
  const carriedPlan = planModules(tree, options.carriedModules ?? STAGE1_CARRIED_MODULES);
  const carried = await Promise.all(carriedPlan.load.filter((m) => !loaded.has(m.name)).map(async (m) => ({ name: m.name, data: await readFile(m.path) })));

  const entries: NewcEntry[] = [
    ...['bin', 'dev', 'etc', 'etc/hypercore', 'lib', 'lib/modules', 'newroot', 'proc', 'sys'].map((path): NewcEntry => ({ type: 'dir', path })),
    // The kernel opens /dev/console for init's stdio before /init runs, i.e. before devtmpfs is mounted.
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'file', path: 'bin/busybox', data: busybox.data, mode: 0o755 },
    ...STAGE1_APPLETS.map((a): NewcEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'file', path: 'init', data: init, mode: 0o755 },
    { type: 'file', path: 'etc/hypercore/modules', data: Buffer.from(modules.map((m) => `${m.name}\n`).join('')) },
    ...[...modules, ...carried].map((m): NewcEntry => ({ type: 'file', path: `lib/modules/${m.name}.ko`, data: m.data })),
  ];
  const cpio = encodeNewc(entries);
  const data = options.compression === 'none' ? cpio : gzipSync(cpio, { level: 9 });
  return {
    data,
    sha256: createHash('sha256').update(data).digest('hex'),
    modules: modules.map((m) => m.name),
    carried: carried.map((m) => m.name),
    missing: plan.missing,
  };
}
