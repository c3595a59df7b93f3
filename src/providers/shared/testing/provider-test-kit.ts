/** Pieces the VMM providers' contract tests share: a dev-mode guest agent, waiting on watchers, stray processes. */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listenUnix } from '../../../agent/channel.js';
import { registerAgentService } from '../../../agent/service.js';
import { isAlive } from '../../../system/process.js';
import { TtrpcServer } from '../../../ttrpc/index.js';

/** Waits for `promise` while keeping the event loop alive (the pid watcher's timer does not). */
export async function held<T>(promise: Promise<T>, ms = 10_000): Promise<T> {
  const timer = setTimeout(() => undefined, ms);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
  }
}

/** The in-guest agent's service on a unix socket in `dir`, standing for the guest behind a fake VMM's vsock. */
export async function startGuestAgent(dir: string): Promise<{ socket: string; close(): void }> {
  const socket = join(dir, 'agent.sock');
  const server = new TtrpcServer();
  registerAgentService(server, { powerOff: () => undefined });
  const listener = await listenUnix(server, socket);
  return { socket, close: () => listener.close() };
}

/** Fails when a live process has `marker` in its command line (a VMM a test should have ended). */
export async function assertNoProcessWith(marker: string): Promise<void> {
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker) && (await isAlive(Number(pid)))) assert.fail(`process ${pid} is still running: ${cmdline.replaceAll('\0', ' ')}`);
  }
}
