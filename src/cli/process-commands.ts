/**
 * `hypercore exec`, `attach` and `run`: interactive sessions on the SDK's guest processes (the
 * daemon's WebSocket exec and attach routes, on the unix socket or a remote listener). With a
 * terminal the local tty goes raw and window resizes follow; the command's exit code becomes the CLI's.
 */
import type { Command } from 'commander';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';
import type { GuestProcess, HypercoreApiError, HypercoreClient } from '../../sdk/src/index.js';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import { hostCpuCount } from '../system/host.js';

/** Commander collector for repeatable options (-e A=1 -e B=2). */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** ctrl-p ctrl-q, as in Docker: leave an attached session, the process keeps running. */
const DETACH_SEQUENCE = [0x10, 0x11];

interface SessionOptions {
  interactive: boolean;
  tty: boolean;
  detachKeys: boolean;
}

/** A shell's exit status for a process killed by `signal`: 128 + its number (SIGSEGV → 139); 129 if the name is unknown. */
export function exitCodeOfSignal(signal: string): number {
  return 128 + ((constants.signals as Record<string, number>)[signal] ?? 1);
}

/** Copies the process's output to ours at our pace (a full pipe pauses the process in the guest); resolves when it ends. */
function relay(from: Readable, to: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.once('end', resolve);
  });
}

/** Runs a guest process (exec or attach) to its end, wired to this terminal; resolves to the exit code the CLI should return. */
async function runSession(open: Promise<GuestProcess>, options: SessionOptions): Promise<number> {
  const proc = await open;
  const stdin = process.stdin;
  const stdout = process.stdout;
  // Detach keys must reach us byte by byte (in cooked mode the tty driver eats ^Q as XON), so an
  // attach puts the terminal in raw mode even when the remote process has no tty.
  const rawMode = (options.tty || options.detachKeys) && stdin.isTTY;
  let detached = false;
  const cleanup: (() => void)[] = [];
  // Input that reaches the process after it ended has nowhere to go; the exit says how it ended.
  proc.stdin.on('error', () => undefined);
  try {
    if (options.tty && stdout.isTTY) {
      const resize = (): void => proc.resize(stdout.rows, stdout.columns);
      stdout.on('resize', resize);
      cleanup.push(() => stdout.off('resize', resize));
    }
    if (rawMode) {
      stdin.setRawMode(true);
      cleanup.push(() => stdin.setRawMode(false));
    }
    if (!options.interactive) proc.stdin.end();
    else {
      let previous = -1;
      const onData = (chunk: Buffer): void => {
        if (options.detachKeys) {
          for (const byte of chunk) {
            if (previous === DETACH_SEQUENCE[0] && byte === DETACH_SEQUENCE[1]) {
              detached = true;
              process.stderr.write('\r\n[detached; the process keeps running]\r\n');
              proc.close();
              return;
            }
            previous = byte;
          }
        }
        // Input at the process's pace: a slow reader pauses our stdin.
        if (!proc.stdin.write(chunk)) {
          stdin.pause();
          proc.stdin.once('drain', () => stdin.resume());
        }
      };
      const onEnd = (): void => void proc.stdin.end();
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      cleanup.push(() => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdin.pause();
      });
    }
    // Output written before the end may still be queued: it goes out before the exit.
    const output = Promise.all([relay(proc.stdout, stdout), relay(proc.stderr, process.stderr)]);
    let exit;
    try {
      exit = await proc.exited;
    } catch (err) {
      if (detached) return 0;
      if ((err as Partial<HypercoreApiError>).code !== undefined) throw err;
      throw new HypercoreError(ErrorCodes.internal, `the daemon ended the session without an exit status: ${(err as Error).message}`, { cause: err });
    }
    await output;
    return exit.signal ? exitCodeOfSignal(exit.signal) : exit.exitCode;
  } finally {
    for (const undo of cleanup.splice(0)) undo();
  }
}

function windowSize(): { rows?: number; cols?: number } {
  return process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : {};
}

export function registerProcessCommands(program: Command, api: () => Promise<HypercoreClient>): void {
  program
    .command('exec <id> <command...>')
    .description("run a command in a VM's workload (e.g. hypercore exec web -- sh -c 'ls /'); exits with its exit code")
    .option('-i, --interactive', 'stream standard input to the command')
    .option('-t, --tty', 'allocate a pseudo-terminal (raw mode, window size follows)')
    .option('-e, --env <KEY=VALUE>', 'an environment variable (repeatable)', collect)
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user[:group]>', "user to run as: numbers, or names from the image's /etc/passwd and /etc/group")
    .action(async (id: string, command: string[], opts: { interactive?: boolean; tty?: boolean; env?: string[]; workdir?: string; user?: string }) => {
      const start = { args: command, tty: opts.tty === true, ...windowSize(), ...(opts.env ? { env: opts.env } : {}), ...(opts.workdir ? { cwd: opts.workdir } : {}), ...(opts.user ? { user: opts.user } : {}) };
      process.exitCode = await runSession((await api()).exec(id, start), { interactive: opts.interactive === true, tty: opts.tty === true, detachKeys: false });
    });

  program
    .command('attach <id>')
    .description("connect to a VM's workload (its main process); detach with ctrl-p ctrl-q")
    .action(async (id: string) => {
      const hc = await api();
      const vm = await hc.getVm(id);
      const tty = vm.spec?.workload?.tty === true;
      process.exitCode = await runSession(hc.attach(vm.id), { interactive: true, tty, detachKeys: true });
    });

  program
    .command('run <image> [command...]')
    .description('pull an image if needed, boot a VM running it, and attach (hypercore run alpine -- cat /etc/os-release)')
    .option('--rm', 'remove the VM when the workload ends')
    .option('-i, --interactive', 'keep standard input open')
    .option('-t, --tty', 'allocate a pseudo-terminal')
    .option('--name <name>', 'VM name (default: run-<random>)')
    .option('-e, --env <KEY=VALUE>', 'an environment variable (repeatable)', collect)
    .option('-d, --detach', 'print the VM id and leave it running')
    .option('--network <mode>', 'nat (default) or none')
    .action(async (image: string, command: string[], opts: { rm?: boolean; interactive?: boolean; tty?: boolean; name?: string; env?: string[]; detach?: boolean; network?: string }) => {
      const { specFromImageReference } = await import('../config/index.js');
      const spec = specFromImageReference(image, {
        hostCpus: hostCpuCount(),
        ...(opts.name ? { name: opts.name } : {}),
        overrides: { ...(command.length ? { command } : {}), ...(opts.env ? { env: opts.env } : {}), ...(opts.tty ? { tty: true } : {}), ...(opts.network ? { network: opts.network } : {}) },
      });
      const hc = await api();
      await (await import('./image-pull.js')).pullIfMissing(hc, image);
      const vm = await hc.createVm(spec);
      if (opts.detach) {
        process.stdout.write(`${vm.id}\n`);
        return;
      }
      try {
        process.exitCode = await runSession(hc.attach(vm.id, { fromStart: true }), { interactive: opts.interactive === true, tty: opts.tty === true, detachKeys: true });
      } finally {
        if (opts.rm) await hc.deleteVm(vm.id, { force: true }).catch(() => undefined);
      }
    });
}
