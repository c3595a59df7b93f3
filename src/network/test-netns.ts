/**
 * Test helpers: throw-away network namespaces, so integration tests never touch the host's real
 * network. Each namespace gets a random name and a `cleanup()` that tests call from `after`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { runCommand } from '../system/command.js';
import { netnsRunner, type CommandRunner } from './command-runner.js';

/** Why namespace tests cannot run here, or undefined when they can (root + `ip` + `nft`). */
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  if (!['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].some((p) => existsSync(p))) return 'iproute2 (ip) is not installed';
  if (!['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].some((p) => existsSync(p))) return 'nftables (nft) is not installed';
  return undefined;
}

/** A created namespace, a runner confined to it and its cleanup. */
export interface TestNetns {
  name: string;
  run: CommandRunner;
  cleanup(): Promise<void>;
}

/** Creates `<prefix>-<random>` with loopback up. */
export async function createNetns(prefix: string): Promise<TestNetns> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await runCommand('ip', ['netns', 'add', name], { timeoutMs: 10_000 });
  const run = netnsRunner(name);
  const cleanup = async (): Promise<void> => {
    // Deleting the namespace removes every interface, route and nft table inside it.
    await runCommand('ip', ['netns', 'del', name], { timeoutMs: 10_000 }).catch(() => undefined);
  };
  try {
    await run('ip', ['link', 'set', 'lo', 'up']);
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { name, run, cleanup };
}

/** A process started inside a namespace; `stop()` kills it and waits for it to exit. */
export interface NetnsProcess {
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `node -e script` inside `ns` and resolves once it prints `ready` (it must), so the test
 * does not race the listener. `ip netns exec` execs the program, so the pid is node's own.
 */
export function spawnNodeInNetns(ns: string, script: string, timeoutMs = 10_000): Promise<NetnsProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      void stop().then(() => reject(new Error(`process in ${ns} did not become ready: ${err}`)));
    }, timeoutMs);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve({ child, stop });
      }
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process in ${ns} exited (${code}) before it was ready: ${err}`));
    });
  });
}

/** Script for a TCP client: connects, sends `message`, prints what comes back (1 s budget). */
export function tcpClientScript(host: string, port: number, message: string): string {
  return `const s=require('net').connect(${port},${JSON.stringify(host)},()=>s.write(${JSON.stringify(message)}));` +
    `s.setTimeout(3000,()=>{console.error('timeout');process.exit(2)});` +
    `s.on('data',d=>{process.stdout.write(d);s.end()});s.on('error',e=>{console.error(e.message);process.exit(1)});`;
}
