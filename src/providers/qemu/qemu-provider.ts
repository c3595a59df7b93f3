/**
 * The QEMU provider: `qemu-system-x86_64 -M microvm`, KVM when it is usable, TCG otherwise.
 * QEMU daemonizes itself (own session, pidfile), so VMs outlive hypercored; the daemon talks to
 * it over QMP only.
 */
import { existsSync, statSync, type Stats } from 'node:fs';
import { chmod, mkdir, open, rm, stat } from 'node:fs/promises';
import { basename, delimiter, join } from 'node:path';
import { HypercoreError, ProviderFailedError, ProviderUnavailableError, SnapshotUnsupportedError, asHypercoreError } from '../../core/errors.js';
import type { VmDisk } from '../../core/image.js';
import type { LaunchRequest, Logger, Provider, ProviderCapabilities, ProviderReport, RestoreRequest, VmmExit, VmmInfo, VmmProcess, VmmSnapshot, VmPaths } from '../../core/ports.js';
import { sparseCopy } from '../../system/sparse-copy.js';
import { checkCompatible, loadDeviceState, runningVersion, saveDeviceState, SNAPSHOT_FILES, writeNotes } from './snapshot.js';
import type { VmSpec } from '../../core/vm.js';
import type { AgentEndpoint } from '../../core/agent.js';
import { runCommand } from '../../system/command.js';
import { hostTscKhz } from '../../system/host.js';
import { watchPid } from '../../system/pid-watch.js';
import { isOurProcess, killAndWait, readPidFile, waitForExit } from '../../system/process.js';
import { resolveAccel } from './accel-probe.js';
import { qemuArguments } from './command-line.js';
import { swapSlotDisk } from './disk-slots.js';
import { qemuSettings } from './settings.js';
import { QmpClient } from './qmp-client.js';

export const DEFAULT_QEMU_BINARY = 'qemu-system-x86_64';

export interface QemuProviderOptions {
  logger: Logger;
  /** Where the accel probe may write its scratch files. */
  workDir: string;
  /**
   * Where guests' RAM files live (shared file mappings, so a snapshot can save the device state
   * alone). It should be a tmpfs, like /dev/shm: on a disk filesystem the kernel would write dirty
   * guest memory back to disk. Default: the run dir of each VM.
   */
  memoryDir?: string;
}

interface RuntimeFiles {
  qmpSocket: string;
  controlSocket: string;
  pidFile: string;
  agentSocket: string;
  serialSocket: string;
  /** Guest RAM (shared file) of a VM that booted; a restored VM maps its snapshot's memory instead. */
  memoryFile: string;
}

const QMP_TIMEOUT_MS = 3000;
const LAUNCH_TIMEOUT_MS = 60_000;

export class QemuProvider implements Provider {
  readonly name = 'qemu' as const;
  readonly capabilities: ProviderCapabilities = {
    pause: true,
    snapshot: true,
    agentChannels: ['virtio-serial'],
    diskFormats: ['raw', 'qcow2'],
    hotplug: false,
    kernelFormats: ['bzimage', 'elf'],
  };

  /**
   * `--version` output by binary and the binary's identity: every create checks the binary, and
   * running QEMU for it each time costs a spawn tens of milliseconds (more under load).
   */
  private readonly versions = new Map<string, { identity: string; output: Promise<string> }>();

  constructor(private readonly options: QemuProviderOptions) {}

  private binary(spec: VmSpec | undefined): string {
    return qemuSettings.read(spec).binary ?? DEFAULT_QEMU_BINARY;
  }

  /** QEMU's `--version` output; run again only when the binary (as PATH finds it) changed. */
  private async versionOutput(binary: string): Promise<string> {
    const identity = binaryIdentity(binary);
    const known = this.versions.get(binary);
    if (known && identity !== undefined && known.identity === identity) return known.output;
    const output = runCommand(binary, ['--version'], { timeoutMs: 10_000 }).then((r) => r.stdout);
    if (identity !== undefined) this.versions.set(binary, { identity, output });
    output.catch(() => this.versions.delete(binary));
    return output;
  }

  async checkAvailable(spec: VmSpec): Promise<void> {
    const binary = this.binary(spec);
    try {
      await this.versionOutput(binary);
    } catch (err) {
      throw new ProviderUnavailableError(`QEMU is not usable: ${asHypercoreError(err).message}`, err);
    }
  }

  async describe(spec?: VmSpec): Promise<ProviderReport> {
    const binary = this.binary(spec);
    let version: string;
    try {
      version = await this.version(binary);
    } catch (err) {
      return { name: this.name, usable: false, detail: `${binary}: ${asHypercoreError(err).message}` };
    }
    try {
      const accel = await resolveAccel(qemuSettings.read(spec).accel, { qemuBinary: binary, workDir: this.options.workDir });
      return { name: this.name, usable: true, version, detail: accel.accel === 'kvm' ? `KVM: ${accel.reason}` : `TCG emulation: ${accel.reason}` };
    } catch (err) {
      return { name: this.name, usable: false, version, detail: asHypercoreError(err).message };
    }
  }

  private files(paths: VmPaths): RuntimeFiles {
    return {
      qmpSocket: join(paths.runDir, 'qmp.sock'),
      controlSocket: join(paths.runDir, 'qmp-control.sock'),
      pidFile: join(paths.runDir, 'qemu.pid'),
      agentSocket: this.agentSocket(paths),
      serialSocket: this.serialConsole(paths),
      memoryFile: this.options.memoryDir ? join(this.options.memoryDir, `${basename(paths.runDir)}.ram`) : join(paths.runDir, 'memory'),
    };
  }

  async launch(req: LaunchRequest): Promise<VmmProcess> {
    const files = this.files(req.paths);
    // Created here 0600 (QEMU's umask would make it group-readable); QEMU sizes it.
    if (this.options.memoryDir) await mkdir(this.options.memoryDir, { recursive: true, mode: 0o700 });
    await (await open(files.memoryFile, 'w', 0o600)).close();
    const accel = await resolveAccel(qemuSettings.read(req.spec).accel, { qemuBinary: this.binary(req.spec), workDir: this.options.workDir });
    return this.start(req, accel, { memory: { path: files.memoryFile, share: true } });
  }

  async saveSnapshot(vmId: string, paths: VmPaths, _pid: number, dir: string): Promise<VmmSnapshot> {
    const files = this.files(paths);
    if (!existsSync(files.memoryFile)) {
      throw new SnapshotUnsupportedError(`VM ${vmId} runs on a private copy of a snapshot's memory (it was restored from one); stop and start it to take snapshots of it`);
    }
    try {
      const qmp = await QmpClient.connect(files.controlSocket, { timeoutMs: QMP_TIMEOUT_MS });
      try {
        const version = await runningVersion(qmp);
        const kvm = await qmp.execute<{ enabled: boolean }>('query-kvm');
        await saveDeviceState(qmp, dir);
        // Still paused: the guest's RAM file is as the device state expects it.
        await sparseCopy(files.memoryFile, join(dir, SNAPSHOT_FILES.memory));
        const memoryMib = Math.round((await stat(files.memoryFile)).size / (1024 * 1024));
        await writeNotes(dir, { version, accel: kvm.enabled ? 'kvm' : 'tcg', memoryMib });
        return { vmmVersion: version, files: Object.values(SNAPSHOT_FILES) };
      } finally {
        qmp.close();
      }
    } catch (err) {
      if (err instanceof HypercoreError) throw err;
      throw new ProviderFailedError(`QEMU could not save a snapshot of VM ${vmId}: ${asHypercoreError(err).message}`, err);
    }
  }

  async restore(req: RestoreRequest): Promise<VmmProcess> {
    const binary = this.binary(req.spec);
    const accel = await resolveAccel(qemuSettings.read(req.spec).accel, { qemuBinary: binary, workDir: this.options.workDir });
    const { dir } = req.snapshot;
    await checkCompatible(dir, req.snapshot.vmm, { version: await this.version(binary), accel: accel.accel, memoryMib: req.spec.memoryMib });
    const vmm = await this.start(req, accel, { memory: { path: join(dir, SNAPSHOT_FILES.memory), share: false }, incoming: true });
    try {
      // While QEMU waits for the device state: the agent's channel connects now (see RestoreRequest).
      await req.beforeResume?.();
      const qmp = await QmpClient.connect(this.files(req.paths).controlSocket, { timeoutMs: QMP_TIMEOUT_MS });
      try {
        await loadDeviceState(qmp, dir);
      } finally {
        qmp.close();
      }
    } catch (err) {
      await this.kill(req.vmId, req.paths, vmm.pid).catch(() => undefined);
      throw new ProviderFailedError(`QEMU could not resume VM ${req.spec.name} from the snapshot: ${asHypercoreError(err).message}`, err);
    }
    return vmm;
  }

  /** `--version`'s version, as describe() reports it and a snapshot records it. */
  private async version(binary: string): Promise<string> {
    return parseVersion(await this.versionOutput(binary));
  }

  /** Starts QEMU detached with the launch's devices; resolves once it runs (or waits for an incoming state). */
  private async start(req: LaunchRequest, accel: { accel: 'kvm' | 'tcg'; reason: string }, extra: { memory: { path: string; share: boolean }; incoming?: boolean }): Promise<VmmProcess> {
    const { spec, paths, vmId } = req;
    const binary = this.binary(spec);
    const files = this.files(paths);
    const tscKhz = hostTscKhz();
    // Only agent VMs get the agent's virtio-serial port.
    const { agentSocket, memoryFile: _memory, ...vmmFiles } = files;
    const args = qemuArguments({ vmId, spec, boot: req.boot, ...(req.rootDisk ? { rootDisk: req.rootDisk } : {}), disks: req.disks, ...(req.slots ? { slots: req.slots } : {}), ...(req.agent ? { agentSocket } : {}), ...(req.network ? { network: req.network } : {}), accel: accel.accel, consoleLog: paths.consoleLog, ...vmmFiles, ...(tscKhz ? { tscKhz } : {}), ...extra });
    this.options.logger.child({ vmId }).info({ accel: accel.accel, accelReason: accel.reason, args }, extra.incoming ? 'launching QEMU to restore a snapshot' : 'launching QEMU');
    // -daemonize sets QEMU's umask to 027, so files it creates would be group-readable: the
    // console log is created here first (QEMU appends to it) and its sockets are narrowed after.
    await (await open(paths.consoleLog, 'a', 0o600)).close();
    try {
      // -daemonize: QEMU returns only once the VM is set up (or failed, with the reason on stderr).
      // A pod's TAP lives in the pod's network namespace: QEMU must open it from there.
      if (req.netns) await runCommand('nsenter', [`--net=${req.netns}`, '--', binary, ...args], { timeoutMs: LAUNCH_TIMEOUT_MS, detached: true });
      else await runCommand(binary, args, { timeoutMs: LAUNCH_TIMEOUT_MS, detached: true });
    } catch (err) {
      throw new ProviderFailedError(`QEMU failed to start VM ${spec.name}: ${asHypercoreError(err).message}`, err);
    }
    for (const socket of [files.qmpSocket, files.controlSocket, files.serialSocket, ...(req.agent ? [agentSocket] : [])]) await chmod(socket, 0o600);
    const pid = await readPidFile(files.pidFile);
    if (pid === undefined || !(await isOurProcess(pid, vmId))) {
      throw new ProviderFailedError(`QEMU reported success but no running process was found for VM ${spec.name} (pidfile ${files.pidFile})`);
    }
    return { pid };
  }

  private agentSocket(paths: VmPaths): string {
    return join(paths.runDir, 'agent.sock');
  }

  serialConsole(paths: VmPaths): string {
    return join(paths.runDir, 'serial.sock');
  }

  agentEndpoint(_vmId: string, paths: VmPaths): AgentEndpoint {
    return { kind: 'unix', path: this.agentSocket(paths) };
  }

  async status(vmId: string, paths: VmPaths, pid: number | undefined): Promise<VmmInfo> {
    const files = this.files(paths);
    const actualPid = pid ?? (await readPidFile(files.pidFile));
    if (actualPid === undefined || !(await isOurProcess(actualPid, vmId))) return { status: 'gone' };
    try {
      const qmp = await QmpClient.connect(files.controlSocket, { timeoutMs: QMP_TIMEOUT_MS });
      try {
        const status = await qmp.queryStatus();
        // postmigrate: paused after a snapshot's save (`cont` lets it run on, as from paused).
        if (status.status === 'paused' || status.status === 'postmigrate') return { status: 'paused', pid: actualPid };
        if (status.status === 'shutdown') return { status: 'shutdown', pid: actualPid };
        return { status: 'running', pid: actualPid };
      } finally {
        qmp.close();
      }
    } catch {
      // The process is ours and alive; a busy or wedged QMP does not make the VM gone.
      return { status: 'running', pid: actualPid };
    }
  }

  watch(vmId: string, paths: VmPaths, pid: number, onExit: (exit: VmmExit) => void): () => void {
    let stopped = false;
    let qmp: QmpClient | undefined;
    let shutdownReason: string | undefined;
    const exitFromReason = (): VmmExit => describeShutdown(shutdownReason);
    // Polling the pid is the fallback when QMP cannot be reached; the QMP connection closing is the fast path.
    const stopPolling = watchPid(pid, vmId, () => finish(exitFromReason()));
    const finish = (exit: VmmExit) => {
      if (stopped) return;
      stopped = true;
      stopPolling();
      qmp?.close();
      onExit(exit);
    };
    void QmpClient.connect(this.files(paths).qmpSocket, { timeoutMs: QMP_TIMEOUT_MS })
      .then((client) => {
        if (stopped) return client.close();
        qmp = client;
        client.on('event', (ev) => {
          if (ev.event === 'SHUTDOWN') shutdownReason = typeof ev.data?.['reason'] === 'string' ? ev.data['reason'] : 'unknown';
        });
        client.onClose(() => {
          if (stopped) return;
          void waitForExit(pid, 2000).then(() => finish(exitFromReason()));
        });
      })
      .catch((err) => this.options.logger.warn({ vmId, err: String(err) }, 'QMP watch unavailable; polling the pid'));
    return () => {
      stopped = true;
      stopPolling();
      qmp?.close();
    };
  }

  async pause(vmId: string, paths: VmPaths): Promise<void> {
    await this.control(vmId, paths, 'stop');
  }

  async resume(vmId: string, paths: VmPaths): Promise<void> {
    await this.control(vmId, paths, 'cont');
  }

  /** One QMP command on the control socket; a failure is the provider's error, naming the VM. */
  private async control(vmId: string, paths: VmPaths, command: string): Promise<void> {
    try {
      const qmp = await QmpClient.connect(this.files(paths).controlSocket, { timeoutMs: QMP_TIMEOUT_MS });
      try {
        await qmp.execute(command, {}, { timeoutMs: QMP_TIMEOUT_MS });
      } finally {
        qmp.close();
      }
    } catch (err) {
      throw new ProviderFailedError(`QEMU did not accept "${command}" for VM ${vmId}: ${asHypercoreError(err).message}`, err);
    }
  }

  async swapDisk(vmId: string, paths: VmPaths, slot: number, disk: VmDisk | undefined): Promise<void> {
    try {
      const qmp = await QmpClient.connect(this.files(paths).controlSocket, { timeoutMs: QMP_TIMEOUT_MS });
      try {
        await swapSlotDisk(qmp, slot, disk);
      } finally {
        qmp.close();
      }
    } catch (err) {
      throw new ProviderFailedError(`QEMU could not ${disk ? `put ${disk.path} in` : 'empty'} disk slot ${slot} of VM ${vmId}: ${asHypercoreError(err).message}`, err);
    }
  }

  async shutdown(vmId: string, paths: VmPaths, pid: number, timeoutMs: number): Promise<boolean> {
    if (!(await isOurProcess(pid, vmId))) return true;
    try {
      const qmp = await QmpClient.connect(this.files(paths).controlSocket, { timeoutMs: QMP_TIMEOUT_MS });
      try {
        // ACPI power button: microvm keeps ACPI on, so the guest sees a power-off request.
        await qmp.execute('system_powerdown', {}, { timeoutMs: QMP_TIMEOUT_MS });
      } finally {
        qmp.close();
      }
    } catch (err) {
      this.options.logger.warn({ vmId, err: String(err) }, 'graceful power-off request failed');
      return false;
    }
    return waitForExit(pid, timeoutMs);
  }

  async kill(vmId: string, paths: VmPaths, pid: number | undefined): Promise<void> {
    const target = pid ?? (await readPidFile(this.files(paths).pidFile));
    if (target !== undefined) await killAndWait(target, vmId);
  }

  async cleanup(_vmId: string, paths: VmPaths): Promise<void> {
    const files = this.files(paths);
    await Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
  }
}

/**
 * Where PATH finds `binary` and that file's identity (device, inode, size, times); undefined when it
 * is not found. Every create asks, and PATH may list many directories before QEMU's: a synchronous
 * stat of a missing file answers in microseconds, where each awaited one is a thread-pool round trip.
 */
function binaryIdentity(binary: string): string | undefined {
  const candidates = binary.includes('/') ? [binary] : (process.env['PATH'] ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, binary));
  for (const path of candidates) {
    const st = statOrUndefined(path);
    if (st?.isFile()) return `${path}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  }
  return undefined;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined; // a PATH entry that is not a directory, or one we may not search
  }
}

/** "QEMU emulator version 7.2.22 (Debian ...)" → "7.2.22 (Debian ...)". */
export function parseVersion(stdout: string): string {
  return stdout.split('\n')[0]!.replace(/^QEMU emulator version\s*/, '').trim();
}

/** Turns QEMU's SHUTDOWN reason into the VM's outcome (QEMU runs with -no-reboot, so a reset ends it too). */
export function describeShutdown(reason: string | undefined): VmmExit {
  switch (reason) {
    case 'guest-shutdown':
      return { outcome: 'stopped', reason: 'the guest powered off' };
    case 'host-qmp-quit':
    case 'host-qmp-system-reset':
    case 'host-signal':
      return { outcome: 'stopped', reason: `QEMU was stopped from the host (${reason})` };
    case 'guest-reset':
      return { outcome: 'failed', reason: 'the guest rebooted or its kernel panicked (QEMU runs with -no-reboot); see the console log' };
    case 'guest-panic':
      return { outcome: 'failed', reason: 'the guest kernel panicked; see the console log' };
    case undefined:
      return { outcome: 'failed', reason: 'the QEMU process exited unexpectedly (killed from outside or crashed)' };
    default:
      return { outcome: 'failed', reason: `QEMU shut down (${reason})` };
  }
}
