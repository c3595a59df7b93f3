/**
 * Test harness for end-to-end tests: an isolated hypercored (its own root, run dir and socket in a
 * temp dir), the real CLI, and clean-up that kills every process the test started even when it fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const bootDir = process.env['HYPERCORE_BOOT_DIR'] ?? '/var/lib/hypercore/boot';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestDaemon {
  readonly dir: string;
  readonly root: string;
  readonly runDir: string;
  readonly socket: string;
  private proc: ChildProcess | undefined;
  private logs: string[] = [];

  /** With `netns`, hypercored (and so every VMM and TAP it makes) runs in that network namespace. */
  constructor(prefix = 'hc-e2e-', readonly netns?: string) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.root = join(this.dir, 'root');
    this.runDir = join(this.dir, 'run');
    this.socket = join(this.runDir, 'hypercore.sock');
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, HYPERCORE_ROOT: this.root, HYPERCORE_RUN_DIR: this.runDir, HYPERCORE_SOCKET: this.socket, HYPERCORE_BOOT_DIR: bootDir, HYPERCORE_MEMORY_DIR: this.memoryDir };
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts hypercored (with `extraArgs`, e.g. a remote listener) and waits until its socket answers. */
  async start(extraArgs: readonly string[] = []): Promise<void> {
    const daemon = [process.execPath, join(repoRoot, 'bin', 'hypercored'), ...extraArgs];
    const [file, ...args] = this.netns ? ['ip', 'netns', 'exec', this.netns, ...daemon] : daemon;
    const proc = spawn(file!, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (c: Buffer) => this.logs.push(c.toString()));
    proc.stderr!.on('data', (c: Buffer) => this.logs.push(c.toString()));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`hypercored exited with ${proc.exitCode}:\n${this.log()}`);
      if (existsSync(this.socket) && this.cli(['ls', '--json']).code === 0) return;
      await sleep(100);
    }
    throw new Error(`hypercored did not come up in 20 s:\n${this.log()}`);
  }

  /** SIGKILL, as a crash would. VMs must survive it. */
  async kill9(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await terminate(this.proc);
  }

  log(): string {
    return this.logs.join('');
  }

  cli(args: readonly string[], input?: string): CliResult {
    // maxBuffer: `ls --json` of a thousand VMs (control-plane.test.ts) is larger than node's 1 MiB default.
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], { env: this.env, encoding: 'utf8', input, timeout: 120_000, maxBuffer: 64 << 20 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like `cli`, but async so several commands can race. */
  cliAsync(args: readonly string[]): Promise<CliResult> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], { env: this.env });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  /** Processes whose command line mentions this test's directory (VMMs, fakes). */
  strayProcesses(): number[] {
    return processesMentioning(this.dir);
  }

  vmDirs(): string[] {
    return [join(this.root, 'vms'), join(this.runDir, 'vms')].flatMap((d) => (existsSync(d) ? readdirSync(d).map((e) => join(d, e)) : []));
  }

  /** Guest RAM files of this daemon's VMs (on tmpfs, outside the test's directory). */
  get memoryDir(): string {
    return join('/dev/shm', basename(this.dir));
  }

  /** Kills everything this test started and removes its directory. Safe to call twice. */
  async cleanup(): Promise<void> {
    await this.stop();
    for (const pid of this.strayProcesses()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.memoryDir, { recursive: true, force: true });
  }
}

/** SIGTERM, then SIGKILL after 10 s: a child process the test started, stopped for good. */
export async function terminate(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (cmdline.includes(text)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** A loopback port nothing listens on now (the kernel's pick for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** The last non-empty line of a CLI's stdout: `spawn` prints the VM id there. */
export function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
}
