/**
 * The agent's vsock listener, for VMMs whose agent channel is vsock (Firecracker, Cloud Hypervisor).
 *
 * Node has no AF_VSOCK, and libuv will not wrap a vsock fd in a net.Socket. Rather than a native
 * addon built against this node's ABI, the agent keeps its unix-socket server (the same code as in
 * development and tests, real non-blocking sockets) and runs socat as a relay:
 *   socat VSOCK-LISTEN:<port>,fork,max-children=N UNIX-CONNECT:<agent socket>
 * socat is Debian's, copied into the guest system image with its libraries; `max-children` bounds
 * the connections a host can hold open. Only the host (CID 2) can reach the port: a guest reaches
 * its own vsock listeners only through the vsock_loopback transport, which is loaded only in tests.
 *
 * The relay is the agent's child and is restarted when it exits. A relay left behind by an agent
 * that died (it still holds the port, so a new one cannot bind) is found in /proc and ended first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLog, type Log } from './log.js';

export interface VsockRelayOptions {
  port: number;
  /** The agent's unix socket the relay connects each vsock connection to. */
  agentSocket: string;
  /** Default /usr/bin/socat (the system image's). */
  socat?: string;
  /** Most host connections at once. Default 16. */
  maxConnections?: number;
  /** Delay before a relay that exited is started again. Default 1 s. */
  restartMs?: number;
  log?: Log;
  /** /proc (tests). */
  proc?: string;
}

export const DEFAULT_SOCAT = '/usr/bin/socat';
const DEFAULT_MAX_CONNECTIONS = 16;

/** A vsock port number the relay accepts: 1..2^32-2 (the top value is VMADDR_PORT_ANY). */
export function parseVsockPort(text: string): number {
  const port = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 0xfffffffe) throw new Error(`"${text}" is not a vsock port (1 to 4294967294)`);
  return port;
}

/** socat's arguments: listen on the vsock port, one child per connection, each joined to the agent's socket. */
export function relayArguments(port: number, agentSocket: string, maxConnections = DEFAULT_MAX_CONNECTIONS): string[] {
  // socat address options are separated by ',' and ':'; the socket path is ours (/run/hc/...), never a guest's.
  if (/[,:!\s]/.test(agentSocket)) throw new Error(`the agent socket path ${agentSocket} cannot be written in a socat address`);
  return [`VSOCK-LISTEN:${port},fork,max-children=${maxConnections}`, `UNIX-CONNECT:${agentSocket}`];
}

/** Pids of socat processes that listen on vsock `port` (relays of an earlier agent). */
export async function findRelays(port: number, proc = '/proc'): Promise<number[]> {
  const marker = `VSOCK-LISTEN:${port},`;
  const pids: number[] = [];
  for (const name of await readdir(proc).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const argv = (await readFile(join(proc, name, 'cmdline'), 'latin1').catch(() => '')).split('\0');
    if (argv[0]?.endsWith('socat') && argv.some((a) => a.startsWith(marker))) pids.push(Number(name));
  }
  return pids;
}

export class VsockRelay {
  private child: ChildProcess | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly log: Log;

  constructor(private readonly options: VsockRelayOptions) {
    this.log = options.log ?? silentLog;
  }

  /** Ends relays left by an earlier agent, then starts ours. */
  async start(): Promise<void> {
    for (const pid of await findRelays(this.options.port, this.options.proc)) {
      this.log(`ending a vsock relay left by an earlier agent (pid ${pid})`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.spawn();
  }

  private spawn(): void {
    if (this.stopped) return;
    const socat = this.options.socat ?? DEFAULT_SOCAT;
    const args = relayArguments(this.options.port, this.options.agentSocket, this.options.maxConnections);
    // socat's own errors (one per refused connection at most) go to the console with ours.
    const child = spawn(socat, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.child = child;
    child.once('spawn', () => this.log(`vsock relay: port ${this.options.port} -> ${this.options.agentSocket} (socat pid ${child.pid})`));
    child.once('error', (err) => this.log(`vsock relay could not start: ${err.message}`));
    child.once('close', (code, signal) => {
      this.child = undefined;
      if (this.stopped) return;
      this.log(`vsock relay exited (${signal ?? `code ${code}`}); restarting`);
      this.timer = setTimeout(() => this.spawn(), this.options.restartMs ?? 1000);
    });
  }

  /** The relay's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.child?.kill('SIGTERM');
  }
}
