/**
 * Installs Hypercore's default guest boot assets (kernel as bzImage and as ELF vmlinux, stage-1
 * initramfs, manifest) into a boot
 * directory, from Debian's cloud kernel package. The package is downloaded and unpacked, never
 * installed: its maintainer scripts and hooks are for the host's own kernel, not for guests.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandFailedError, HypercoreError, ProviderFailedError, ProviderUnavailableError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { STAGE1_CARRIED_MODULES, STAGE1_MODULES } from './kernel-modules.js';
import { buildStage1Initramfs, stage1InitScriptPath } from './initramfs.js';
import { extractVmlinux } from './vmlinux.js';

/** The Debian metapackage that always depends on the current cloud kernel image. */
export const DEFAULT_KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';

/** Bumped when the way the initramfs is assembled changes, so installed assets get rebuilt. */
const STAGE1_FORMAT = 1;

/** Contents of `<bootDir>/manifest.json`. */
export interface BootManifest {
  /** `uname -r` of the guest kernel, e.g. `6.1.0-56-cloud-amd64`. */
  kernelVersion: string;
  /** Debian package the kernel came from, e.g. `linux-image-6.1.0-56-cloud-amd64`. */
  package: string;
  /** Its Debian version, e.g. `6.1.192-2`. */
  packageVersion: string;
  /** Modules in the initramfs, in load order. */
  modules: string[];
  /** ISO 8601. */
  builtAt: string;
  initrdSha256: string;
  /** sha256 of `vmlinux`, the ELF kernel extracted from vmlinuz (absent in manifests of older set-ups). */
  vmlinuxSha256?: string;
  /** Digest of the stage-1 recipe (init script, module list, format); a change forces a rebuild. */
  stage1Digest: string;
}

/** File names inside a boot directory; the guest boot contract reads them from here. */
export function bootAssetPaths(bootDir: string): { kernel: string; kernelElf: string; initrd: string; manifest: string } {
  return { kernel: join(bootDir, 'vmlinuz'), kernelElf: join(bootDir, 'vmlinux'), initrd: join(bootDir, 'initrd.img'), manifest: join(bootDir, 'manifest.json') };
}

/** `$HYPERCORE_BOOT_DIR`, else /var/lib/hypercore/boot. */
export function defaultBootDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HYPERCORE_BOOT_DIR || '/var/lib/hypercore/boot';
}

/** Reads and shape-checks a manifest; undefined when absent or unreadable (then assets are rebuilt). */
export async function readBootManifest(bootDir: string): Promise<BootManifest | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(bootAssetPaths(bootDir).manifest, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const m = parsed as Record<string, unknown>;
  const strings = ['kernelVersion', 'package', 'packageVersion', 'builtAt', 'initrdSha256', 'stage1Digest'];
  if (!strings.every((k) => typeof m[k] === 'string')) return undefined;
  if (!Array.isArray(m.modules) || !m.modules.every((x) => typeof x === 'string')) return undefined;
  if (m.vmlinuxSha256 !== undefined && typeof m.vmlinuxSha256 !== 'string') return undefined;
  return m as unknown as BootManifest;
}

// ---- apt look-ups -------------------------------------------------------------------------------

/** A package name and version as apt accepts them (`name=version`). */
export interface PackageRef {
  name: string;
  version: string;
}

const PACKAGE_NAME = /^[a-z0-9][a-z0-9.+-]+$/;
const PACKAGE_VERSION = /^[A-Za-z0-9.+~:-]+$/;

/** The `Candidate:` version from `apt-cache policy <pkg>` output, or undefined when there is none. */
export function parseAptCandidate(policyText: string): string | undefined {
  const m = /^\s*Candidate:\s*(\S+)\s*$/m.exec(policyText);
  if (!m || m[1] === '(none)' || !PACKAGE_VERSION.test(m[1]!)) return undefined;
  return m[1];
}

/**
 * The kernel image package a metapackage depends on, from its `apt-cache show <pkg>=<ver>` stanza:
 * the first `linux-image-*` alternative in `Depends:`, with its version when pinned by `(= ...)`.
 */
export function parseKernelDependency(showText: string): { name: string; version?: string } | undefined {
  const depends = /^Depends:\s*(.*)$/m.exec(showText)?.[1];
  if (!depends) return undefined;
  for (const alternative of depends.split(/[,|]/)) {
    const m = /^\s*(linux-image-[a-z0-9.+-]+)\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?\s*$/.exec(alternative);
    if (m && PACKAGE_NAME.test(m[1]!)) return m[2] === '=' && PACKAGE_VERSION.test(m[3]!) ? { name: m[1]!, version: m[3]! } : { name: m[1]! };
  }
  return undefined;
}

const APT_ENV = { ...process.env, LC_ALL: 'C' };

async function aptCandidate(name: string): Promise<string | undefined> {
  const { stdout } = await runCommand('apt-cache', ['policy', name], { timeoutMs: 60_000, env: APT_ENV });
  return parseAptCandidate(stdout);
}

/** Resolves the metapackage to the versioned kernel image package apt would install now. */
export async function resolveKernelPackage(metapackage: string = DEFAULT_KERNEL_METAPACKAGE): Promise<PackageRef> {
  if (!PACKAGE_NAME.test(metapackage)) throw new ProviderUnavailableError(`"${metapackage}" is not a Debian package name`);
  const noLists = `; run \`apt-get update\` first (apt's package lists may be missing or stale)`;
  const metaVersion = await aptCandidate(metapackage);
  if (!metaVersion) throw new ProviderUnavailableError(`apt-cache finds no installable version of ${metapackage}${noLists}`);
  const { stdout } = await runCommand('apt-cache', ['show', `${metapackage}=${metaVersion}`], { timeoutMs: 60_000, env: APT_ENV });
  const dep = parseKernelDependency(stdout);
  if (!dep) throw new ProviderUnavailableError(`${metapackage} ${metaVersion} does not depend on a linux-image-* package (apt-cache show)`);
  const version = dep.version ?? (await aptCandidate(dep.name));
  if (!version) throw new ProviderUnavailableError(`apt-cache finds no installable version of ${dep.name}${noLists}`);
  return { name: dep.name, version };
}

// ---- install ------------------------------------------------------------------------------------

export interface InstallBootAssetsOptions {
  bootDir: string;
  /** Default DEFAULT_KERNEL_METAPACKAGE. */
  metapackage?: string;
  /** Rebuild even when the manifest says the assets are current. */
  force?: boolean;
  /** Progress lines for a human. */
  log?: (line: string) => void;
}

export interface InstallBootAssetsResult {
  /** False when the assets were already current and nothing was written. */
  changed: boolean;
  manifest: BootManifest;
  paths: { kernel: string; kernelElf: string; initrd: string; manifest: string };
}

async function stage1Digest(): Promise<string> {
  const init = await readFile(stage1InitScriptPath());
  return createHash('sha256').update(`format ${STAGE1_FORMAT}\n${STAGE1_MODULES.join(' ')}\n${STAGE1_CARRIED_MODULES.join(' ')}\n`).update(init).digest('hex');
}

async function sha256File(path: string): Promise<string | undefined> {
  try {
    return createHash('sha256').update(await readFile(path)).digest('hex');
  } catch {
    return undefined;
  }
}

/** True when the boot dir holds assets built from `pkg` with the current stage-1 recipe, intact. */
async function isCurrent(bootDir: string, pkg: PackageRef, digest: string): Promise<BootManifest | undefined> {
  const manifest = await readBootManifest(bootDir);
  if (!manifest || manifest.package !== pkg.name || manifest.packageVersion !== pkg.version || manifest.stage1Digest !== digest) return undefined;
  const paths = bootAssetPaths(bootDir);
  const kernel = await stat(paths.kernel).catch(() => undefined);
  if (!kernel?.isFile() || kernel.size === 0) return undefined;
  if (manifest.vmlinuxSha256 === undefined || (await sha256File(paths.kernelElf)) !== manifest.vmlinuxSha256) return undefined;
  return (await sha256File(paths.initrd)) === manifest.initrdSha256 ? manifest : undefined;
}

/** Runs one step, turning a failed command into an error that names the step. */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CommandFailedError) throw new ProviderFailedError(`${what} failed: ${err.message}`, err);
    if (err instanceof HypercoreError) throw err;
    throw new ProviderFailedError(`${what} failed: ${(err as Error).message}`, err);
  }
}

/** Writes `data` next to `path` and renames it into place, so readers never see a partial file. */
async function writeAtomic(path: string, data: Buffer | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Installs vmlinuz, initrd.img and manifest.json into `bootDir` from the current Debian cloud
 * kernel; does nothing when they are already current. manifest.json is written last, so an
 * interrupted install is redone by the next run.
 */
export async function installBootAssets(options: InstallBootAssetsOptions): Promise<InstallBootAssetsResult> {
  const log = options.log ?? (() => {});
  const paths = bootAssetPaths(options.bootDir);
  const pkg = await step('resolving the guest kernel package with apt-cache', () => resolveKernelPackage(options.metapackage));
  const digest = await stage1Digest();
  if (!options.force) {
    const current = await isCurrent(options.bootDir, pkg, digest);
    if (current) {
      log(`boot assets in ${options.bootDir} are current (${pkg.name} ${pkg.version}); nothing to do`);
      return { changed: false, manifest: current, paths };
    }
  }

  const work = await mkdtemp(join(tmpdir(), 'hc-boot-assets-'));
  try {
    log(`downloading ${pkg.name} ${pkg.version}`);
    await step(`downloading ${pkg.name}=${pkg.version} (apt-get download)`, () =>
      runCommand('apt-get', ['download', `${pkg.name}=${pkg.version}`], { cwd: work, timeoutMs: 15 * 60_000, env: APT_ENV }),
    );
    const debs = (await readdir(work)).filter((f) => f.endsWith('.deb'));
    if (debs.length !== 1) throw new ProviderFailedError(`apt-get download left ${debs.length} .deb files in ${work}, expected 1`);
    const root = join(work, 'root');
    await step(`unpacking ${debs[0]} (dpkg -x)`, () => runCommand('dpkg', ['-x', join(work, debs[0]!), root], { timeoutMs: 5 * 60_000 }));

    const versions = await readdir(join(root, 'lib', 'modules')).catch(() => [] as string[]);
    if (versions.length !== 1) throw new ProviderFailedError(`${pkg.name} has ${versions.length} lib/modules/<version> directories, expected 1`);
    const kernelVersion = versions[0]!;
    const vmlinuz = join(root, 'boot', `vmlinuz-${kernelVersion}`);
    const kernel = await step(`reading ${pkg.name}'s /boot/vmlinuz-${kernelVersion}`, () => readFile(vmlinuz));
    log(`extracting vmlinux from vmlinuz-${kernelVersion}`);
    const vmlinux = await step(`extracting vmlinux from vmlinuz-${kernelVersion}`, () => extractVmlinux(kernel));

    log(`building the stage-1 initramfs for ${kernelVersion}`);
    const initrd = await step('building the stage-1 initramfs', () => buildStage1Initramfs({ modulesDir: join(root, 'lib', 'modules', kernelVersion) }));
    if (initrd.missing.length > 0) log(`modules not in ${pkg.name} (skipped): ${initrd.missing.join(', ')}`);

    const manifest: BootManifest = {
      kernelVersion,
      package: pkg.name,
      packageVersion: pkg.version,
      modules: initrd.modules,
      builtAt: new Date().toISOString(),
      initrdSha256: initrd.sha256,
      vmlinuxSha256: createHash('sha256').update(vmlinux).digest('hex'),
      stage1Digest: digest,
    };
    await step(`writing boot assets to ${options.bootDir}`, async () => {
      await mkdir(options.bootDir, { recursive: true });
      await writeAtomic(paths.kernel, kernel);
      await writeAtomic(paths.kernelElf, vmlinux);
      await writeAtomic(paths.initrd, initrd.data);
      await writeAtomic(paths.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
    });
    log(`installed ${paths.kernel} (${kernel.length} bytes), ${paths.kernelElf} (${vmlinux.length} bytes) and ${paths.initrd} (${initrd.data.length} bytes, ${initrd.modules.length} modules)`);
    return { changed: true, manifest, paths };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
