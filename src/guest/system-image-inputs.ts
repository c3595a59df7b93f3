/**
 * The inputs of the guest system image: host files (node, crun, socat, their shared libraries, busybox),
 * the agent bundle and the init script, each with its sha256. The image is cached under the hash
 * of these inputs, so a new node or crun from apt, a rebuilt agent or an edited init gives a new
 * image, and an unchanged host reuses the old one.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, open, readdir, realpath, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProviderUnavailableError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { isStaticElf, loadStaticBusybox } from './busybox.js';

/**
 * Version of the image layout this code writes (directories, /etc files, modes). Part of the key:
 * bump it whenever system-image.ts changes what it puts into the tree besides the input files.
 */
export const SYSTEM_IMAGE_FORMAT = 2;

/** Where the guest finds things; the agent may rely on these paths. */
export const GUEST_PATHS = {
  node: '/usr/bin/node',
  crun: '/usr/bin/crun',
  /** The agent's vsock relay (agent/vsock-relay.ts). */
  socat: '/usr/bin/socat',
  busybox: '/bin/busybox',
  agent: '/agent/agent.js',
  /** The agent's exec helper (static), found by the agent next to its script. */
  execHelper: '/agent/exec-helper',
  /** node-pty for the agent's terminals (a native addon, so not in the bundle); found by require from /agent/agent.js. */
  agentNodePty: '/agent/node_modules/node-pty',
  init: '/sbin/init',
} as const;

/** Where crun usually is; Debian's package installs /usr/bin/crun. */
export const CRUN_CANDIDATES: readonly string[] = ['/usr/bin/crun', '/usr/local/bin/crun'];

export type SystemImageInputRole = 'node' | 'crun' | 'socat' | 'lib' | 'busybox' | 'agent' | 'agent-module' | 'exec-helper' | 'init';

/** One file copied into the image. */
export interface SystemImageInput {
  role: SystemImageInputRole;
  /** Absolute path inside the guest. */
  guestPath: string;
  /** Host file the bytes come from (symlinks resolved). */
  hostPath: string;
  sha256: string;
  sizeBytes: number;
  /** File mode in the image. */
  mode: number;
}

export interface SystemImageInputs {
  format: number;
  /** Sorted by guestPath. */
  files: SystemImageInput[];
}

export interface SystemImageInputOptions {
  /** The bundled agent (one CommonJS file). Default: `dist/agent/agent.js` of this checkout. */
  agentBundle?: string;
  /** The agent's exec helper. Default: `exec-helper` next to the agent bundle. */
  execHelper?: string;
  /** Default: the running node (`process.execPath`). */
  nodeBinary?: string;
  /** Default: the first of CRUN_CANDIDATES that exists. */
  crunBinary?: string;
  /** Default: /usr/bin/socat. */
  socatBinary?: string;
  /** Default: the host's static busybox (see busybox.ts). */
  busyboxPath?: string;
  /** Override of /sbin/init (tests). Default: agent-init.sh next to this module. */
  initScript?: string;
  /** node-pty's package directory. Default: the one this checkout's node_modules resolves to. */
  nodePtyDir?: string;
}

/** The init script shipped next to this module (copied to dist/ by scripts/copy-assets.mjs). */
export function agentInitScriptPath(): string {
  return fileURLToPath(new URL('./agent-init.sh', import.meta.url));
}

/** `dist/agent/agent.js` of this checkout (this module runs as dist/src/guest/*.js). */
export function defaultAgentBundlePath(): string {
  return fileURLToPath(new URL('../../agent/agent.js', import.meta.url));
}

/** The node-pty package directory that `require('node-pty')` finds from this module. */
export function defaultNodePtyDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('node-pty/package.json'));
  } catch {
    throw new ProviderUnavailableError('node-pty is not installed (the agent needs it for terminals); run npm install');
  }
}

async function listJs(root: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const rel = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listJs(root, rel)));
    else if (entry.name.endsWith('.js') && !entry.name.endsWith('.test.js')) out.push(rel);
  }
  return out;
}

/**
 * node-pty's run-time files: package.json, lib/**\/*.js (its own tests left out) and the native
 * addon. The guest's node is the host's node, so the addon's ABI matches.
 */
export async function nodePtyFiles(dir: string): Promise<Omit<SystemImageInput, 'sha256' | 'sizeBytes'>[]> {
  const hint = 'reinstall it with npm install (its native addon is built at install time)';
  const root = await readableFile(dir, 'node-pty', hint);
  const addon = await readableFile(join(root, 'build/Release/pty.node'), "node-pty's native addon build/Release/pty.node", hint);
  const files = ['package.json', ...(await listJs(root, 'lib'))];
  const wanted = files.map((rel) => ({ role: 'agent-module' as const, guestPath: `${GUEST_PATHS.agentNodePty}/${rel}`, hostPath: join(root, rel), mode: 0o644 }));
  wanted.push({ role: 'agent-module', guestPath: `${GUEST_PATHS.agentNodePty}/build/Release/pty.node`, hostPath: addon, mode: 0o755 });
  return wanted;
}

/** Hashes are memoized by file identity, so a cache hit does not re-read ~100 MB of node each time. */
const hashMemo = new Map<string, Promise<string>>();

async function fileIdentity(path: string): Promise<{ id: string; size: number }> {
  const st = await stat(path);
  return { id: `${path}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`, size: st.size };
}

function hashStream(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** sha256 (hex) and size of a file; concurrent and repeated calls for an unchanged file share one read. */
export async function hashFile(path: string): Promise<{ sha256: string; sizeBytes: number }> {
  const { id, size } = await fileIdentity(path);
  let pending = hashMemo.get(id);
  if (!pending) {
    pending = hashStream(path);
    hashMemo.set(id, pending);
    pending.catch(() => hashMemo.delete(id));
  }
  return { sha256: await pending, sizeBytes: size };
}

/**
 * Parses `ldd` output into the absolute paths it names: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`
 * and the loader line `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file and is skipped.
 */
export function parseLdd(output: string, binary: string): string[] {
  const paths: string[] = [];
  for (const line of output.split('\n')) {
    const text = line.trim();
    if (!text) continue;
    if (/=>\s*not found/.test(text)) {
      throw new ProviderUnavailableError(`${binary} needs ${text.split(/\s/)[0]}, which the host's dynamic loader cannot find`);
    }
    const linked = /^\S+\s+=>\s+(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(text);
    const direct = /^(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(text);
    const path = linked?.[1] ?? direct?.[1];
    if (path) paths.push(path);
  }
  return paths;
}

/** ldd's answers by file identity: every agent VM's create checks the inputs, and ldd is two processes each time. */
const librariesMemo = new Map<string, Promise<string[]>>();

/** The shared libraries (with the loader) a binary needs, as ldd names them; [] for static or non-ELF files. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const { id } = await fileIdentity(binary);
  let pending = librariesMemo.get(id);
  if (!pending) {
    pending = readSharedLibraries(binary);
    librariesMemo.set(id, pending);
    pending.catch(() => librariesMemo.delete(id));
  }
  return pending;
}

async function readSharedLibraries(binary: string): Promise<string[]> {
  const handle = await open(binary, 'r');
  let head: Buffer;
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    head = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  // Scripts (test doubles) and static binaries need nothing; ldd would fail on them.
  if (head.length < 4 || head.readUInt32BE(0) !== 0x7f454c46 || isStaticElf(head)) return [];
  const { stdout } = await runCommand('ldd', [binary], { timeoutMs: 30_000 });
  return parseLdd(stdout, binary);
}

async function resolveExecutable(path: string, what: string, hint: string): Promise<string> {
  try {
    await access(path, constants.X_OK);
    return await realpath(path);
  } catch {
    throw new ProviderUnavailableError(`${what} not found or not executable at ${path}; ${hint}`);
  }
}

async function findCrun(explicit: string | undefined): Promise<string> {
  const hint = 'install crun: apt-get install crun';
  if (explicit) return resolveExecutable(explicit, 'crun', hint);
  for (const candidate of CRUN_CANDIDATES) {
    try {
      return await resolveExecutable(candidate, 'crun', hint);
    } catch {
      // next candidate
    }
  }
  throw new ProviderUnavailableError(`crun not found at ${CRUN_CANDIDATES.join(' or ')}; ${hint}`);
}

async function readableFile(path: string, what: string, hint: string): Promise<string> {
  try {
    await access(path, constants.R_OK);
    return await realpath(path);
  } catch {
    throw new ProviderUnavailableError(`${what} not found at ${path}; ${hint}`);
  }
}

/** Collects and hashes every input file. Throws ProviderUnavailableError naming what is missing. */
export async function systemImageInputs(options: SystemImageInputOptions = {}): Promise<SystemImageInputs> {
  const node = await resolveExecutable(options.nodeBinary ?? process.execPath, 'node', 'install Node.js 20 or pass nodeBinary');
  const crun = await findCrun(options.crunBinary);
  const socat = await resolveExecutable(options.socatBinary ?? GUEST_PATHS.socat, 'socat', 'install socat: apt-get install socat (the agent relays vsock through it)');
  const busybox = (await loadStaticBusybox(options.busyboxPath)).path;
  const agent = await readableFile(options.agentBundle ?? defaultAgentBundlePath(), 'the agent bundle', 'build it first (npm run build, or bundleAgent())');
  const execHelper = await readableFile(options.execHelper ?? join(dirname(agent), 'exec-helper'), "the agent's exec helper", 'build it first (npm run build; it needs gcc and libc6-dev)');
  const init = await readableFile(options.initScript ?? agentInitScriptPath(), 'the init script agent-init.sh', 'run npm run build so it is copied to dist/');

  const wanted: Omit<SystemImageInput, 'sha256' | 'sizeBytes'>[] = [
    { role: 'node', guestPath: GUEST_PATHS.node, hostPath: node, mode: 0o755 },
    { role: 'crun', guestPath: GUEST_PATHS.crun, hostPath: crun, mode: 0o755 },
    { role: 'socat', guestPath: GUEST_PATHS.socat, hostPath: socat, mode: 0o755 },
    { role: 'busybox', guestPath: GUEST_PATHS.busybox, hostPath: await realpath(busybox), mode: 0o755 },
    { role: 'agent', guestPath: GUEST_PATHS.agent, hostPath: agent, mode: 0o644 },
    { role: 'exec-helper', guestPath: GUEST_PATHS.execHelper, hostPath: execHelper, mode: 0o755 },
    { role: 'init', guestPath: GUEST_PATHS.init, hostPath: init, mode: 0o755 },
    ...(await nodePtyFiles(options.nodePtyDir ?? defaultNodePtyDir())),
  ];
  // Libraries go to the path ldd printed (what the loader searches in the guest), with the bytes of
  // the file it resolves to; the binaries share libc and the loader, so dedupe by guest path.
  const libs = new Map<string, string>();
  for (const binary of [node, crun, socat]) {
    for (const lib of await sharedLibraries(binary)) {
      const host = await realpath(lib);
      const seen = libs.get(lib);
      if (seen !== undefined && seen !== host) throw new ProviderUnavailableError(`${lib} resolves to both ${seen} and ${host}`);
      libs.set(lib, host);
    }
  }
  for (const [guestPath, hostPath] of libs) {
    if (wanted.some((w) => w.guestPath === guestPath)) continue;
    // The loader is executed directly by the kernel (PT_INTERP) and may be run by hand: keep it executable.
    wanted.push({ role: 'lib', guestPath, hostPath, mode: /\/ld-linux[^/]*$/.test(guestPath) ? 0o755 : 0o644 });
  }
  const files = await Promise.all(wanted.map(async (w) => ({ ...w, ...(await hashFile(w.hostPath)) })));
  files.sort((a, b) => (a.guestPath < b.guestPath ? -1 : a.guestPath > b.guestPath ? 1 : 0));
  return { format: SYSTEM_IMAGE_FORMAT, files };
}

/**
 * The cache key: sha256 (hex) over the format version and each file's guest path, mode and content
 * hash. Host paths are left out on purpose: the same bytes from another location give the same image.
 */
export function systemImageKey(inputs: SystemImageInputs): string {
  const canonical = JSON.stringify({
    format: inputs.format,
    files: [...inputs.files]
      .sort((a, b) => (a.guestPath < b.guestPath ? -1 : a.guestPath > b.guestPath ? 1 : 0))
      .map((f) => [f.guestPath, f.mode.toString(8), f.sha256]),
  });
  return createHash('sha256').update(canonical).digest('hex');
}
