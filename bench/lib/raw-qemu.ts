/**
 * Raw QEMU, the baseline the boot and exec benches compare Hypercore with: the provider's own command
 * line for a spec, run in the foreground with the console on stdout, timed to a line on that console.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { qemuArguments, type QemuLaunchPlan } from '../../src/providers/qemu/command-line.js';
import { DEFAULT_QEMU_BINARY } from '../../src/providers/qemu/qemu-provider.js';
import { GuestBootContract } from '../../src/guest/boot-contract.js';
import { hostTscKhz } from '../../src/system/host.js';
import { bootDir } from '../../test/e2e/harness.js';
import { killHard, type ChildSet } from './processes.js';

/** The first line of `qemu-system-x86_64 --version`, or `?`. */
export function qemuVersion(): string {
  try {
    return execFileSync(DEFAULT_QEMU_BINARY, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '?';
  } catch {
    return '?';
  }
}

/** A command line turned into a foreground one: console on stdout, no -daemonize/-qmp/-pidfile. */
export function foreground(full: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < full.length; i++) {
    const a = full[i]!;
    if (a === '-daemonize') continue;
    if (a === '-qmp' || a === '-pidfile') {
      i++; // drop the option and its value
      continue;
    }
    if (a === '-chardev' && full[i + 1]!.includes(',id=console,')) {
      i++;
      continue;
    }
    if (a === '-serial') {
      out.push('-serial', 'stdio');
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/**
 * The provider's command line for this plan (default kernel and initrd, the host's TSC), in the
 * foreground; `disks` as a spawned VM of that spec gets them, so both sides boot the same guest.
 */
export function rawQemuArguments(plan: Pick<QemuLaunchPlan, 'vmId' | 'spec' | 'accel' | 'agentSocket' | 'disks'> & { rootDisk: { path: string; readOnly: boolean } }): string[] {
  const tscKhz = hostTscKhz();
  const boot = new GuestBootContract(bootDir).plan({ spec: plan.spec, kernelFormats: ['bzimage'], rootDisk: plan.rootDisk, ...(plan.agentSocket ? { agentChannel: 'virtio-serial' as const } : {}) });
  return foreground(
    qemuArguments({
      ...plan,
      boot,
      consoleLog: '/dev/null',
      serialSocket: '/dev/null',
      qmpSocket: '/dev/null',
      controlSocket: '/dev/null',
      pidFile: '/dev/null',
      ...(tscKhz ? { tscKhz } : {}),
    }),
  );
}

/** How raw QEMU is started, for printing: `setpriv --pdeathsig KILL -- qemu ARGS` (arguments with blanks or quotes JSON-quoted). */
export function rawQemuCommandLine(args: readonly string[]): string {
  return `setpriv --pdeathsig KILL -- ${DEFAULT_QEMU_BINARY} ${args.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
}

export interface RawBootOptions {
  /** The console text that ends the timing. */
  line: string;
  /** What errors call that text (`marker`, `ready line`). */
  what: string;
  timeoutMs: number;
  /** How many characters of QEMU's stderr go into errors. */
  stderrTail: number;
  children: ChildSet;
}

/**
 * Starts raw QEMU under `setpriv --pdeathsig KILL` and resolves when `line` appears on its console,
 * with the time since the spawn and the still running process (the caller kills it). On a timeout,
 * a failed start or an early exit, QEMU is killed and the promise rejects.
 */
export function bootRawQemu(args: readonly string[], o: RawBootOptions): Promise<{ ms: number; proc: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const proc = o.children.add(spawn('setpriv', ['--pdeathsig', 'KILL', '--', DEFAULT_QEMU_BINARY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    let done = false;
    const fail = (message: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void killHard(proc).then(() => reject(new Error(message)));
    };
    const timer = setTimeout(
      () => fail(`raw QEMU: no ${o.what} within ${o.timeoutMs} ms; stderr: ${err.slice(-o.stderrTail)}; console tail: ${out.slice(-2000)}`),
      o.timeoutMs,
    );
    proc.stdout.on('data', (c: Buffer) => {
      if (done) return;
      out += c.toString('latin1');
      if (out.includes(o.line)) {
        const ms = performance.now() - t0;
        done = true;
        clearTimeout(timer);
        resolve({ ms, proc });
      }
    });
    proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
    proc.once('error', (e) => fail(`raw QEMU: cannot start setpriv/QEMU: ${e.message}`));
    proc.once('exit', (code, signal) => fail(`raw QEMU exited (${code ?? signal}) before the ${o.what}; stderr: ${err.slice(-o.stderrTail)}; console tail: ${out.slice(-2000)}`));
  });
}
