/**
 * The mounts of the workload's root filesystem as a list of steps, and two ways to run them: the
 * exec helper's `mount` subcommand, one small static process for all of them (the guest's way:
 * under emulation each process start costs tens of milliseconds, and mount(8) first loads its
 * libraries), or mount(8) once per mount through a CommandRunner (tests, hosts without the helper).
 * Either way the steps run in order and stop at the first failure, which names its step so the
 * caller can put something else in its place.
 */
import { mkdir } from 'node:fs/promises';
import { runCommand } from '../system/command.js';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { errorText } from './log.js';
import type { CommandRunner } from './rootfs.js';

/** A directory to create (with its parents; one that exists is fine). */
export interface MkdirStep {
  kind: 'mkdir';
  path: string;
}

/** One mount(2), options as mount(8) takes them (`ro`/`rw`, then the filesystem's own). */
export interface MountStep {
  kind: 'mount';
  fstype: string;
  source: string;
  target: string;
  options?: string;
}

export type RootfsStep = MkdirStep | MountStep;

/** The step that failed (its index in the list) and why; the steps after it did not run. */
export interface StepFailure {
  index: number;
  reason: string;
}

/** Runs the steps in order; resolves with the first failure, or undefined when all were done. */
export type MountRunner = (steps: readonly RootfsStep[]) => Promise<StepFailure | undefined>;

/** mount(8) per mount step, through `run`; directories with fs.mkdir. */
export function commandMounts(run: CommandRunner): MountRunner {
  return async (steps) => {
    for (const [index, step] of steps.entries()) {
      try {
        if (step.kind === 'mkdir') await mkdir(step.path, { recursive: true });
        else await run('mount', ['-t', step.fstype, ...(step.options ? ['-o', step.options] : []), step.source, step.target]);
      } catch (err) {
        return { index, reason: errorText(err) };
      }
    }
    return undefined;
  };
}

/** The exec helper's command line for `steps` (see `exec-helper mount` in exec-helper.c). */
export function helperMountArgs(steps: readonly RootfsStep[]): string[] {
  return ['mount', ...steps.flatMap((s) => (s.kind === 'mkdir' ? ['mkdir', s.path] : ['mount', s.fstype, s.source, s.target, s.options || '-']))];
}

/** Reads the helper's answer, `ok` or `failed INDEX REASON`; anything else is not the helper's protocol. */
export function parseHelperMountOutput(stdout: string, steps: number): StepFailure | undefined {
  const line = stdout.trim();
  if (line === 'ok') return undefined;
  const m = /^failed (\d{1,6}) (.+)$/s.exec(line);
  if (!m || Number(m[1]) >= steps) throw new TtrpcError(Code.INTERNAL, `the exec helper's mount answered ${JSON.stringify(line.slice(0, 200))}, not "ok" or "failed <step> <reason>"`);
  return { index: Number(m[1]), reason: m[2]! };
}

/** Runs `file args` and resolves with its stdout; rejects when it cannot run or exits non-zero. */
export type OutputRunner = (file: string, args: readonly string[]) => Promise<{ stdout: string }>;

/** All steps in one run of the exec helper at `binary`. */
export function helperMounts(binary: string, run: OutputRunner = (file, args) => runCommand(file, args, { timeoutMs: 120_000 })): MountRunner {
  return async (steps) => {
    if (steps.length === 0) return undefined;
    let stdout: string;
    try {
      ({ stdout } = await run(binary, helperMountArgs(steps)));
    } catch (err) {
      throw new TtrpcError(Code.INTERNAL, `the exec helper could not run the rootfs mounts: ${errorText(err)}`);
    }
    return parseHelperMountOutput(stdout, steps.length);
  };
}
