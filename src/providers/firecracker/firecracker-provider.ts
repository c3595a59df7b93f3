/**
 * The Firecracker provider. Firecracker does not daemonize: it is launched detached (own session,
 * pidfile, stdout into the console log) and configured through its API socket, then started with
 * `InstanceStart`. Disks are raw files only; the kernel is an ELF vmlinux; the agent channel is
 * hybrid vsock. A launch that fails at any step kills the VMM and removes its files.
 */
import { constants } from 'node:fs';
import { access, lstat, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, ProviderFailedError, ProviderUnavailableError, asHypercoreError } from '../../core/errors.js';
import type { LaunchRequest, Logger, Provider, ProviderCapabilities, ProviderReport, VmmExit, VmmInfo, VmmProcess, VmPaths } from '../../core/ports.js';
import type { VmSpec } from '../../core/vm.js';
import type { AgentEndpoint } from '../../core/agent.js';
import { AGENT_VSOCK_PORT } from '../../agent/protocol/schema.js';
import { sniffKernelFile } from '../../guest/vmlinux.js';
import { runCommand, tailLines } from '../../system/command.js';
import { launchDetached } from '../../system/detached.js';
import { watchPid } from '../../system/pid-watch.js';
import { isAlive, isOurProcess, killAndWait, readPidFile, waitForExit } from '../../system/process.js';
import { tailConsoleLog } from '../console-log.js';
import { FirecrackerApi, FirecrackerApiError } from './api.js';
import { configurationRequests, INSTANCE_START } from './configuration.js';
import { firecrackerSettings } from './settings.js';
import { atLeast, MINIMUM_VERSION, parseFirecrackerVersion, type FirecrackerVersion } from './version.js';

export const DEFAULT_FIRECRACKER_BINARY = 'firecracker';

export interface FirecrackerProviderOptions {
  logger: Logger;
  /** /dev/kvm (tests). */
  kvmDevice?: string;
}

interface RuntimeFiles {
  apiSocket: string;
  vsockSocket: string;
  pidFile: string;
}

/** How long Firecracker may take to open its API socket. */
const API_READY_MS = 5000;
const API_TIMEOUT_MS = 5000;
/** After the agent's power-off, how long the guest gets to end on its own before Ctrl-Alt-Del. */
const POWER_OFF_GRACE_MS = 2000;
const QCOW2_MAGIC = 0x514649fb;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class FirecrackerProvider implements Provider {
  readonly name = 'firecracker' as const;
  readonly capabilities: ProviderCapabilities = {
    pause: true,
    // Firecracker can snapshot (PUT /snapshot/create, /snapshot/load), but a restored VM must open its
    // own copies of the disks and the load call cannot rename drives; not implemented yet.
    snapshot: false,
    agentChannels: ['vsock'],
    diskFormats: ['raw'],
    hotplug: false,
    kernelFormats: ['elf'],
  };

  constructor(private readonly options: FirecrackerProviderOptions) {}

  private binary(spec: VmSpec | undefined): string {
    return firecrackerSettings.read(spec).binary ?? DEFAULT_FIRECRACKER_BINARY;
  }

  /** The binary's version from `--version`; throws ProviderUnavailableError naming what is wrong. */
  private async version(binary: string): Promise<FirecrackerVersion> {
    let out: string;
    try {
      out = (await runCommand(binary, ['--version'], { timeoutMs: 10_000 })).stdout;
    } catch (err) {
      throw new ProviderUnavailableError(`Firecracker is not usable: ${asHypercoreError(err).message}`, err);
    }
    const version = parseFirecrackerVersion(out);
    if (!version) throw new ProviderUnavailableError(`${binary} --version printed ${JSON.stringify(out.split('\n')[0]!.slice(0, 80))}, not a Firecracker version`);
    checkVersion(version, binary);
    return version;
  }

  async checkAvailable(spec: VmSpec): Promise<void> {
    await this.version(this.binary(spec));
  }

  async describe(spec?: VmSpec): Promise<ProviderReport> {
    const binary = this.binary(spec);
    let version: FirecrackerVersion;
    try {
      version = await this.version(binary);
    } catch (err) {
      return { name: this.name, usable: false, detail: asHypercoreError(err).message };
    }
    const kvm = this.options.kvmDevice ?? '/dev/kvm';
    try {
      await access(kvm, constants.R_OK | constants.W_OK);
    } catch {
      return { name: this.name, usable: false, version: version.text, detail: `Firecracker needs KVM, and ${kvm} cannot be opened for reading and writing` };
    }
    return { name: this.name, usable: true, version: version.text, detail: `KVM (${kvm})` };
  }

  private files(paths: VmPaths): RuntimeFiles {
    return {
      apiSocket: join(paths.runDir, 'firecracker.sock'),
      vsockSocket: join(paths.runDir, 'vsock.sock'),
      pidFile: join(paths.runDir, 'firecracker.pid'),
    };
  }

  async launch(req: LaunchRequest): Promise<VmmProcess> {
    const { spec, paths, vmId } = req;
    const binary = this.binary(spec);
    await checkInputs(req);
    const version = await this.version(binary);
    const files = this.files(paths);
    // A Firecracker of this VM that is still around (a launch interrupted with the daemon) holds the sockets.
    await this.kill(vmId, paths, undefined);
    await this.cleanup(vmId, paths);
    // No --log-path: Firecracker opens a log file without O_APPEND, which the daemon could not cap;
    // its messages go to stdout and stderr, into the console log, which the daemon caps.
    const args = ['--api-sock', files.apiSocket, '--id', vmId];
    this.options.logger.child({ vmId }).info({ binary, version: version.text, args }, 'launching Firecracker');
    let pid: number;
    try {
      // The guest's serial console is Firecracker's stdout, appended to the console log. Not PUT /serial
      // (1.14+): Firecracker opens that file without O_APPEND, so it would write over earlier boots
      // from the file's start and, after the daemon's copy-truncate rotation, past a hole.
      ({ pid } = await launchDetached({ file: binary, args, stdoutPath: paths.consoleLog, stderrPath: paths.consoleLog, pidFile: files.pidFile }));
    } catch (err) {
      await this.cleanup(vmId, paths);
      throw new ProviderFailedError(`Firecracker failed to start VM ${spec.name}: ${asHypercoreError(err).message}`, err);
    }
    try {
      const api = await this.waitForApi(files.apiSocket, pid);
      const apiVersion = await api.version();
      checkVersion(apiVersion, binary);
      const requests = configurationRequests({
        spec,
        boot: req.boot,
        ...(req.rootDisk ? { rootDisk: req.rootDisk } : {}),
        disks: req.disks,
        ...(req.network ? { network: req.network } : {}),
        ...(req.agent ? { vsockSocket: files.vsockSocket } : {}),
      });
      for (const request of [...requests, INSTANCE_START]) await api.send(request);
    } catch (err) {
      const tail = await failureTail(paths);
      await killAndWait(pid, vmId);
      await this.cleanup(vmId, paths);
      const reason = err instanceof FirecrackerApiError ? err.message : asHypercoreError(err).message;
      throw new ProviderFailedError(`Firecracker failed to configure VM ${spec.name}: ${reason}${tail ? `; Firecracker said: ${tail}` : ''}`, err);
    }
    return { pid };
  }

  /** Polls the API socket until Firecracker answers; fails at once when the process is gone. */
  private async waitForApi(socket: string, pid: number): Promise<FirecrackerApi> {
    const deadline = Date.now() + API_READY_MS;
    const api = new FirecrackerApi(socket, { timeoutMs: API_TIMEOUT_MS });
    for (;;) {
      if (!(await isAlive(pid))) throw new ProviderFailedError('Firecracker exited before its API socket answered');
      if ((await lstat(socket).catch(() => undefined))?.isSocket()) {
        try {
          await api.send({ method: 'GET', path: '/' });
          return api;
        } catch (err) {
          if (Date.now() > deadline) throw err;
        }
      }
      if (Date.now() > deadline) throw new ProviderFailedError(`Firecracker did not open its API socket ${socket} within ${API_READY_MS} ms`);
      await sleep(10);
    }
  }

  agentEndpoint(_vmId: string, paths: VmPaths): AgentEndpoint {
    return { kind: 'hybrid-vsock', path: this.files(paths).vsockSocket, port: AGENT_VSOCK_PORT };
  }

  async status(vmId: string, paths: VmPaths, pid: number | undefined): Promise<VmmInfo> {
    const files = this.files(paths);
    const actualPid = pid ?? (await readPidFile(files.pidFile));
    if (actualPid === undefined || !(await isOurProcess(actualPid, vmId))) return { status: 'gone' };
    let state;
    try {
      state = await new FirecrackerApi(files.apiSocket, { timeoutMs: 2000 }).state();
    } catch {
      // The process is ours and alive; a busy API does not make the VM gone.
      return { status: 'running', pid: actualPid };
    }
    if (state === 'Paused') return { status: 'paused', pid: actualPid };
    if (state === 'Running') return { status: 'running', pid: actualPid };
    // Never started: a launch cut short with the daemon. It cannot be adopted, and it holds the VM's sockets.
    this.options.logger.child({ vmId }).warn({ pid: actualPid }, 'ending a Firecracker that was configured but never started');
    await killAndWait(actualPid, vmId);
    return { status: 'gone' };
  }

  watch(vmId: string, paths: VmPaths, pid: number, onExit: (exit: VmmExit) => void): () => void {
    return watchPid(pid, vmId, () => {
      void describeExit(paths).then(onExit, () => onExit({ outcome: 'failed', reason: 'the Firecracker process exited' }));
    });
  }

  async shutdown(vmId: string, paths: VmPaths, pid: number, timeoutMs: number): Promise<boolean> {
    if (!(await isOurProcess(pid, vmId))) return true;
    // The agent may have just powered the guest off (a reboot, which ends Firecracker): give it a moment.
    if (await waitForExit(pid, Math.min(POWER_OFF_GRACE_MS, timeoutMs / 2))) return true;
    try {
      await new FirecrackerApi(this.files(paths).apiSocket, { timeoutMs: API_TIMEOUT_MS }).send({ method: 'PUT', path: '/actions', body: { action_type: 'SendCtrlAltDel' } });
    } catch (err) {
      this.options.logger.warn({ vmId, err: String(err) }, 'SendCtrlAltDel failed');
      return false;
    }
    return waitForExit(pid, timeoutMs);
  }

  async pause(vmId: string, paths: VmPaths, pid: number): Promise<void> {
    await this.setState(vmId, paths, pid, 'Paused');
  }

  async resume(vmId: string, paths: VmPaths, pid: number): Promise<void> {
    await this.setState(vmId, paths, pid, 'Resumed');
  }

  private async setState(vmId: string, paths: VmPaths, pid: number, state: 'Paused' | 'Resumed'): Promise<void> {
    if (!(await isOurProcess(pid, vmId))) throw new ProviderFailedError(`the Firecracker process of VM ${vmId} (pid ${pid}) is gone`);
    await new FirecrackerApi(this.files(paths).apiSocket, { timeoutMs: API_TIMEOUT_MS }).send({ method: 'PATCH', path: '/vm', body: { state } });
  }

  async kill(vmId: string, paths: VmPaths, pid: number | undefined): Promise<void> {
    const target = pid ?? (await readPidFile(this.files(paths).pidFile));
    if (target !== undefined) await killAndWait(target, vmId);
  }

  async cleanup(_vmId: string, paths: VmPaths): Promise<void> {
    await Promise.all(Object.values(this.files(paths)).map((f) => rm(f, { force: true })));
  }
}

/** The end of the console log (where Firecracker's own messages go), for the error of a failed launch. */
async function failureTail(paths: VmPaths): Promise<string> {
  const tail = await tailConsoleLog(paths.consoleLog, 4096).catch(() => '');
  return tailLines(tail, 1024).replace(/\s+/g, ' ').trim();
}

function checkVersion(version: FirecrackerVersion, binary: string): void {
  if (!atLeast(version, MINIMUM_VERSION)) {
    throw new ProviderUnavailableError(
      `${binary} is Firecracker ${version.text}; Hypercore needs ${MINIMUM_VERSION.major}.${MINIMUM_VERSION.minor} or newer (the first with ACPI, which the guest kernel needs to find its devices)`,
    );
  }
}

/** Refuses what Firecracker cannot load, naming the file: a bzImage kernel, qcow2 disks. */
async function checkInputs(req: LaunchRequest): Promise<void> {
  const kernel = req.boot.kernel;
  let kind;
  try {
    kind = await sniffKernelFile(kernel);
  } catch (err) {
    throw new InvalidArgumentError(`the kernel ${kernel} cannot be read: ${(err as Error).message}`);
  }
  if (kind === 'bzimage') {
    throw new InvalidArgumentError(`the kernel ${kernel} is a compressed bzImage; Firecracker boots only an uncompressed ELF vmlinux (set-up extracts one from the default kernel into the boot directory as vmlinux)`);
  }
  if (kind !== 'elf') throw new InvalidArgumentError(`the kernel ${kernel} is not an ELF vmlinux, which is what Firecracker boots`);
  const disks = [...(req.rootDisk ? [{ name: 'root', path: req.rootDisk.path, format: 'raw' as const }] : []), ...req.disks];
  for (const disk of disks) {
    if (disk.format !== 'raw' || (await isQcow2(disk.path))) {
      throw new InvalidArgumentError(`the disk ${disk.path} is qcow2; Firecracker reads raw disk images only (convert it with: qemu-img convert -O raw)`);
    }
  }
}

async function isQcow2(path: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new InvalidArgumentError(`the disk ${path} cannot be opened: ${(err as Error).message}`);
  }
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && head.readUInt32BE(0) === QCOW2_MAGIC;
  } finally {
    await handle.close();
  }
}

/**
 * Why Firecracker ended. It exits when its guest reboots (Hypercore's guests reboot to power off,
 * see configuration.ts) and when the guest panics (panic=1 reboots); the console tells them apart.
 * Without the kernel's restart line, the process was killed or crashed.
 */
export async function describeExit(paths: VmPaths): Promise<VmmExit> {
  const tail = await tailConsoleLog(paths.consoleLog, 16 * 1024).catch(() => '');
  if (/Kernel panic - not syncing/.test(tail)) return { outcome: 'failed', reason: 'the guest kernel panicked; see the console log' };
  if (/reboot: Restarting system|reboot: machine restart/.test(tail)) return { outcome: 'stopped', reason: 'the guest powered off' };
  return { outcome: 'failed', reason: 'the Firecracker process exited without the guest powering off (killed from outside or crashed)' };
}
