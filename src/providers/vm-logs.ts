/**
 * The VM's log files as the daemon writes them: `console.log` (the VMM's serial output, plus the
 * workload's output and notes about it) and `workload.log` (the workload's output only, for `run`), each
 * capped at its size live plus one rotated generation. Beside them, `workload.offset` stores how far
 * into the workload's output the logs go: copying resumes there after a daemon restart. It is a stored
 * counter, not a file size, because the files are capped and rotated.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkloadLog } from '../core/agent-supervisor.js';
import { KeyedLock } from '../core/keyed-lock.js';
import type { Vm } from '../core/vm.js';
import { appendCapped, readConsoleLog, rotateIfNeeded, tailConsoleLog } from './console-log.js';

export const DEFAULT_WORKLOAD_LOG_CAP_BYTES = 16 * 1024 * 1024;

export interface VmLogCaps {
  /** Cap of console.log (and of console.log.1). */
  consoleBytes: number;
  /** Cap of workload.log (and of workload.log.1). */
  workloadBytes: number;
}

interface VmLogPaths {
  consoleLog: string;
  stateDir: string;
}

export class VmLogFiles implements WorkloadLog {
  /** One writer per VM at a time: appends, notes and the rotation timer never interleave. */
  private readonly lock = new KeyedLock();

  constructor(
    private readonly pathsOf: (vmId: string) => VmLogPaths,
    private readonly caps: VmLogCaps,
  ) {}

  append(vm: Vm, data: Uint8Array, nextOffset: number): Promise<void> {
    const { consoleLog, stateDir } = this.pathsOf(vm.id);
    return this.lock.run(vm.id, async () => {
      await appendCapped(consoleLog, data, this.caps.consoleBytes, 'copy-truncate');
      await appendCapped(join(stateDir, 'workload.log'), data, this.caps.workloadBytes, 'rename');
      // Written after the bytes: a crash in between repeats this chunk after a restart, never skips one.
      const counter = join(stateDir, 'workload.offset');
      await writeFile(`${counter}.tmp`, `${nextOffset}\n`, { mode: 0o600 });
      await rename(`${counter}.tmp`, counter);
    });
  }

  note(vm: Vm, line: string): Promise<void> {
    return this.lock.run(vm.id, () => appendCapped(this.pathsOf(vm.id).consoleLog, Buffer.from(line), this.caps.consoleBytes, 'copy-truncate'));
  }

  read(vm: Vm): AsyncIterable<Uint8Array> {
    return readConsoleLog(join(this.pathsOf(vm.id).stateDir, 'workload.log'), { follow: false });
  }

  async resumeOffset(vm: Vm): Promise<number> {
    const { stateDir } = this.pathsOf(vm.id);
    const text = (await readFile(join(stateDir, 'workload.offset'), 'utf8').catch(() => undefined))?.trim();
    // No counter: a VM logged by a daemon from before the counter, whose workload.log was never rotated.
    if (text === undefined) return (await stat(join(stateDir, 'workload.log')).catch(() => undefined))?.size ?? 0;
    const offset = Number(text);
    return text !== '' && Number.isSafeInteger(offset) && offset >= 0 ? offset : 0;
  }

  tail(vm: Vm, bytes: number): Promise<string> {
    return tailConsoleLog(this.pathsOf(vm.id).consoleLog, bytes);
  }

  /**
   * Rotates console.log once the VMM's own writes took it past its cap. Only the daemon's writes are
   * capped on the spot: the VMM appends to the file directly, so its output is caught by this timer.
   */
  rotateConsole(vm: Vm): Promise<boolean> {
    return this.lock.run(vm.id, () => rotateIfNeeded(this.pathsOf(vm.id).consoleLog, this.caps.consoleBytes));
  }
}
