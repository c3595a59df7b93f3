/**
 * The Cloud Hypervisor provider. Cloud Hypervisor does not daemonize: it is launched detached (own
 * session, pidfile, stdout appended to the console log) with only its API socket, then given the
 * whole VM in one `vm.create` and started with `vm.boot`. Devices are virtio-pci; the kernel is a
 * bzImage or a PVH ELF vmlinux; disks are raw or Hypercore's own qcow2 overlays (checked before
 * Cloud Hypervisor may follow their backing file); the agent channel is hybrid vsock, the same
 * protocol as Firecracker's. A launch that fails at any step ends the VMM and removes its files.
 */
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, ProviderFailedError, ProviderUnavailableError, asHypercoreError } from '../../core/errors.js';
import type { LaunchRequest, Provider, ProviderCapabilities, ProviderReport, VmmExit, VmmInfo, VmmProcess, VmPaths } from '../../core/ports.js';
import type { VmSpec } from '../../core/vm.js';
import type { AgentEndpoint } from '../../core/agent.js';
import { AGENT_VSOCK_PORT } from '../../agent/protocol/schema.js';
import { sniffKernelFile } from '../../guest/vmlinux.js';
import { launchDetached } from '../../system/detached.js';
import { watchPid } from '../../system/pid-watch.js';
import { isOurProcess, killAndWait, readPidFile, waitForExit } from '../../system/process.js';
import { tailConsoleLog } from '../console-log.js';
import { binaryVersion, fileLength, killVmm, kvmReport, launchFailureTail, waitForApiSocket, type ApiVmmProviderOptions, type VersionRules } from '../shared/api-vmm.js';
import { CloudHypervisorApi, CloudHypervisorApiError, type ApiRequest } from './api.js';
import { checkDisk } from './disk-check.js';
import { cloudHypervisorSettings } from './settings.js';
import { atLeastMinimum, MINIMUM_VERSION, parseCloudHypervisorVersion, type CloudHypervisorVersion } from './version.js';
import { vmConfig } from './vm-config.js';

export const DEFAULT_CLOUD_HYPERVISOR_BINARY = 'cloud-hypervisor';

export type CloudHypervisorProviderOptions = ApiVmmProviderOptions;

interface RuntimeFiles {
  apiSocket: string;
  vsockSocket: string;
  pidFile: string;
}

/** How long Cloud Hypervisor may take to answer on its API socket. */
const API_READY_MS = 5000;
const API_TIMEOUT_MS = 5000;
/** vm.boot creates every device and loads the kernel before it answers. */
const BOOT_TIMEOUT_MS = 30_000;
/** After the agent's power-off, how long the guest gets to end on its own before the power button. */
const POWER_OFF_GRACE_MS = 2000;
/** A unix socket path is at most 107 bytes (sun_path holds 108 with the NUL). */
const MAX_SOCKET_PATH = 107;

const VMM = 'Cloud Hypervisor';

const versionRules: VersionRules<CloudHypervisorVersion> = { vmm: VMM, parse: parseCloudHypervisorVersion, check: checkVersion };

export class CloudHypervisorProvider implements Provider {
  readonly name = 'cloud-hypervisor' as const;
  readonly capabilities: ProviderCapabilities = {
    pause: true,
    // vm.snapshot and vm.restore exist, but this provider does not implement saveSnapshot/restore.
    snapshot: false,
    agentChannels: ['vsock'],
    diskFormats: ['raw', 'qcow2'],
    hotplug: false,
    kernelFormats: ['bzimage', 'elf'],
  };

  constructor(private readonly options: CloudHypervisorProviderOptions) {}

  private binary(spec: VmSpec | undefined): string {
    return cloudHypervisorSettings.read(spec).binary ?? DEFAULT_CLOUD_HYPERVISOR_BINARY;
  }

  async checkAvailable(spec: VmSpec): Promise<void> {
    await binaryVersion(this.binary(spec), versionRules);
  }

  async describe(spec?: VmSpec): Promise<ProviderReport> {
    let version: CloudHypervisorVersion;
    try {
      version = await binaryVersion(this.binary(spec), versionRules);
    } catch (err) {
      return { name: this.name, usable: false, detail: asHypercoreError(err).message };
    }
    return kvmReport(this.name, VMM, version.text, this.options.kvmDevice);
  }

  private files(paths: VmPaths): RuntimeFiles {
    return {
      apiSocket: join(paths.runDir, 'cloud-hypervisor.sock'),
      vsockSocket: join(paths.runDir, 'vsock.sock'),
      pidFile: join(paths.runDir, 'cloud-hypervisor.pid'),
    };
  }

  async launch(req: LaunchRequest): Promise<VmmProcess> {
    const { spec, paths, vmId } = req;
    const binary = this.binary(spec);
    const files = this.files(paths);
    await checkInputs(req, files);
    const version = await binaryVersion(binary, versionRules);
    // A Cloud Hypervisor of this VM that is still around (a launch interrupted with the daemon) holds the sockets.
    await this.kill(vmId, paths, undefined);
    await this.cleanup(vmId, paths);
    await (await open(paths.consoleLog, 'a', 0o600)).close();
    const consoleAtLaunch = await fileLength(paths.consoleLog);
    // The socket's path names the VM id, which is how the daemon recognises its own VMM in /proc.
    const args = ['--api-socket', `path=${files.apiSocket}`];
    this.options.logger.child({ vmId }).info({ binary, version: version.text, args }, 'launching Cloud Hypervisor');
    let pid: number;
    try {
      // The serial console is Cloud Hypervisor's stdout (serial mode Tty), appended to the console
      // log. Not serial mode File: Cloud Hypervisor creates that file anew (truncating earlier boots)
      // and writes without O_APPEND, past the daemon's copy-truncate rotation. Its own log (warnings
      // and errors, some of which a guest can provoke at will) goes to stderr, not --log-file, and
      // stderr goes to the console log too: the one file of the VM whose size the daemon caps.
      ({ pid } = await launchDetached({ file: binary, args, stdoutPath: paths.consoleLog, stderrPath: paths.consoleLog, pidFile: files.pidFile }));
    } catch (err) {
      await this.cleanup(vmId, paths);
      throw new ProviderFailedError(`Cloud Hypervisor failed to start VM ${spec.name}: ${asHypercoreError(err).message}`, err);
    }
    try {
      const api = new CloudHypervisorApi(files.apiSocket, { timeoutMs: API_TIMEOUT_MS });
      await waitForApiSocket(files.apiSocket, pid, VMM, () => api.send({ method: 'GET', operation: 'vmm.ping' }), API_READY_MS);
      checkVersion(await api.version(), binary);
      const config = vmConfig({
        spec,
        boot: req.boot,
        ...(req.rootDisk ? { rootDisk: req.rootDisk } : {}),
        disks: req.disks,
        ...(req.network ? { network: req.network } : {}),
        ...(req.agent ? { vsockSocket: files.vsockSocket } : {}),
      });
      await api.send({ method: 'PUT', operation: 'vm.create', body: config });
      await new CloudHypervisorApi(files.apiSocket, { timeoutMs: BOOT_TIMEOUT_MS }).send({ method: 'PUT', operation: 'vm.boot' });
    } catch (err) {
      const tail = await launchFailureTail(paths.consoleLog, consoleAtLaunch);
      await killAndWait(pid, vmId);
      await this.cleanup(vmId, paths);
      const reason = err instanceof CloudHypervisorApiError ? err.message : asHypercoreError(err).message;
      throw new ProviderFailedError(`Cloud Hypervisor failed to create VM ${spec.name}: ${reason}${tail ? `; Cloud Hypervisor said: ${tail}` : ''}`, err);
    }
    return { pid };
  }

  agentEndpoint(_vmId: string, paths: VmPaths): AgentEndpoint {
    return { kind: 'hybrid-vsock', path: this.files(paths).vsockSocket, port: AGENT_VSOCK_PORT };
  }

  private api(paths: VmPaths, timeoutMs = API_TIMEOUT_MS): CloudHypervisorApi {
    return new CloudHypervisorApi(this.files(paths).apiSocket, { timeoutMs });
  }

  async status(vmId: string, paths: VmPaths, pid: number | undefined): Promise<VmmInfo> {
    const actualPid = pid ?? (await readPidFile(this.files(paths).pidFile));
    if (actualPid === undefined || !(await isOurProcess(actualPid, vmId))) return { status: 'gone' };
    let state;
    try {
      state = await this.api(paths, 2000).state();
    } catch {
      // The process is ours and alive; a busy API does not make the VM gone.
      return { status: 'running', pid: actualPid };
    }
    if (state === 'Paused') return { status: 'paused', pid: actualPid };
    if (state === 'Running' || state === 'BreakPoint') return { status: 'running', pid: actualPid };
    // No VM, a VM created but never booted (a launch cut short with the daemon), or one shut down
    // and kept by the VMM: none can be adopted, and the VMM holds the VM's sockets.
    this.options.logger.child({ vmId }).warn({ pid: actualPid, state }, 'ending a Cloud Hypervisor whose VM is not running');
    await killAndWait(actualPid, vmId);
    return { status: 'gone' };
  }

  watch(vmId: string, paths: VmPaths, pid: number, onExit: (exit: VmmExit) => void): () => void {
    return watchPid(pid, vmId, () => {
      void describeExit(paths).then(onExit, () => onExit({ outcome: 'failed', reason: 'the Cloud Hypervisor process exited' }));
    });
  }

  /**
   * The guest powering off ends Cloud Hypervisor. After the agent's power-off: a grace period, the
   * ACPI power button (a guest with an ACPI daemon shuts down cleanly), then `vm.shutdown` (the VM
   * stops at once) and `vmm.shutdown` (the process exits); the caller kills what is still there.
   */
  async shutdown(vmId: string, paths: VmPaths, pid: number, timeoutMs: number): Promise<boolean> {
    if (!(await isOurProcess(pid, vmId))) return true;
    if (await waitForExit(pid, Math.min(POWER_OFF_GRACE_MS, timeoutMs / 2))) return true;
    const log = this.options.logger.child({ vmId });
    await this.call(paths, { method: 'PUT', operation: 'vm.power-button' }).catch((err: unknown) => log.warn({ err: String(err) }, 'vm.power-button failed'));
    if (await waitForExit(pid, timeoutMs)) return true;
    log.warn({ pid, timeoutMs }, 'the guest did not power off; shutting the VM and Cloud Hypervisor down');
    await this.call(paths, { method: 'PUT', operation: 'vm.shutdown' }).catch((err: unknown) => log.warn({ err: String(err) }, 'vm.shutdown failed'));
    await this.call(paths, { method: 'PUT', operation: 'vmm.shutdown' }).catch((err: unknown) => log.warn({ err: String(err) }, 'vmm.shutdown failed'));
    return waitForExit(pid, API_TIMEOUT_MS);
  }

  async pause(vmId: string, paths: VmPaths, pid: number): Promise<void> {
    await this.ownCall(vmId, paths, pid, { method: 'PUT', operation: 'vm.pause' });
  }

  async resume(vmId: string, paths: VmPaths, pid: number): Promise<void> {
    await this.ownCall(vmId, paths, pid, { method: 'PUT', operation: 'vm.resume' });
  }

  private async call(paths: VmPaths, request: ApiRequest): Promise<void> {
    await this.api(paths).send(request);
  }

  private async ownCall(vmId: string, paths: VmPaths, pid: number, request: ApiRequest): Promise<void> {
    if (!(await isOurProcess(pid, vmId))) throw new ProviderFailedError(`the Cloud Hypervisor process of VM ${vmId} (pid ${pid}) is gone`);
    await this.call(paths, request);
  }

  async kill(vmId: string, paths: VmPaths, pid: number | undefined): Promise<void> {
    await killVmm(vmId, this.files(paths).pidFile, pid);
  }

  async cleanup(_vmId: string, paths: VmPaths): Promise<void> {
    await Promise.all(Object.values(this.files(paths)).map((f) => rm(f, { force: true })));
  }
}

function checkVersion(version: CloudHypervisorVersion, binary: string): void {
  if (!atLeastMinimum(version)) {
    throw new ProviderUnavailableError(
      `${binary} is Cloud Hypervisor ${version.text}; Hypercore needs v${MINIMUM_VERSION.major}.${MINIMUM_VERSION.minor} or newer (the first that takes each disk's format and follows qcow2 backing files only when told to)`,
    );
  }
}

/** Refuses, naming the file, what Cloud Hypervisor cannot or must not open, before anything starts. */
async function checkInputs(req: LaunchRequest, files: RuntimeFiles): Promise<void> {
  const kernel = req.boot.kernel;
  let kind;
  try {
    kind = await sniffKernelFile(kernel);
  } catch (err) {
    throw new InvalidArgumentError(`the kernel ${kernel} cannot be read: ${(err as Error).message}`);
  }
  if (kind === 'unknown') throw new InvalidArgumentError(`the kernel ${kernel} is neither a bzImage nor an ELF vmlinux, which is what Cloud Hypervisor boots`);
  for (const disk of req.disks) await checkDisk(disk);
  for (const socket of [files.apiSocket, files.vsockSocket]) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw new InvalidArgumentError(`the socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter run directory`);
  }
  // --api-socket takes `key=value,...`: a comma in the path would be read as the next option.
  if (files.apiSocket.includes(',')) throw new InvalidArgumentError(`the socket path ${files.apiSocket} contains a comma, which Cloud Hypervisor's --api-socket cannot take; use another run directory`);
}

/**
 * Why Cloud Hypervisor ended. It exits when its guest powers off (a guest reboot restarts the VM in
 * place instead); the kernel's last line on the console tells a power-off from a crash or a kill.
 */
export async function describeExit(paths: VmPaths): Promise<VmmExit> {
  const tail = await tailConsoleLog(paths.consoleLog, 16 * 1024).catch(() => '');
  if (/Kernel panic - not syncing/.test(tail)) return { outcome: 'failed', reason: 'the guest kernel panicked; see the console log' };
  if (/reboot: Power down/.test(tail)) return { outcome: 'stopped', reason: 'the guest powered off' };
  return { outcome: 'failed', reason: 'the Cloud Hypervisor process exited without the guest powering off (killed from outside or crashed)' };
}
