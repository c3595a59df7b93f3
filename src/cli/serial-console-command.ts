/**
 * `hypercore console VM`: the VM's serial console (ttyS0) in this terminal, over the daemon's serial
 * WebSocket. A terminal goes raw, so every key reaches the guest; Ctrl-] leaves, as in telnet, and
 * the VM runs on. Without a terminal, stdin is typed in and its end leaves.
 */
import type { Command } from 'commander';
import type { HypercoreClient } from '../../sdk/src/index.js';

/** Ctrl-]: leaves the console (a byte a serial console user rarely needs to send). */
const DETACH_BYTE = 0x1d;
/** Without a terminal: how long the console stays after stdin ended, for the guest's answer to come back. */
const STDIN_END_GRACE_MS = 2000;

async function runConsole(api: HypercoreClient, ref: string): Promise<void> {
  const { errorFromBody } = await import('./daemon-client.js');
  const vm = await api.getVm(ref);
  const ws = await api.serialConsole(vm.id);
  const stdin = process.stdin;
  const cleanup: (() => void)[] = [];
  await new Promise<void>((resolve, reject) => {
    let failure: unknown;
    // Safe to call again: the cleanups run once, and a promise settles once.
    const finish = (): void => {
      for (const undo of cleanup.splice(0)) undo();
      return failure ? reject(failure) : resolve();
    };
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (binary) {
        // The guest waits for no one: a stdout slower than the guest only costs this process memory up to the daemon's cut-off.
        process.stdout.write(data);
        return;
      }
      try {
        const message = JSON.parse(data.toString('utf8')) as { error?: unknown };
        if (message.error) failure = errorFromBody(0, message);
      } catch {
        // Only errors come as text; anything else is not ours to show.
      }
    });
    ws.on('error', (err) => {
      failure ??= err;
      finish();
    });
    ws.on('close', finish);
    ws.resume();
    if (stdin.isTTY) {
      stdin.setRawMode(true);
      cleanup.push(() => stdin.setRawMode(false));
      process.stderr.write(`[console of ${vm.name}; Ctrl-] leaves]\r\n`);
    }
    const onData = (chunk: Buffer): void => {
      const detach = stdin.isTTY ? chunk.indexOf(DETACH_BYTE) : -1;
      if (detach >= 0) {
        if (detach > 0) ws.send(chunk.subarray(0, detach));
        process.stderr.write('\r\n[left the console; the VM keeps running]\r\n');
        ws.close(1000);
        return;
      }
      ws.send(chunk);
    };
    // The end of stdin (a pipe) leaves, after the grace.
    const onEnd = (): void => void setTimeout(() => ws.close(1000), STDIN_END_GRACE_MS);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    cleanup.push(() => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.pause();
    });
  });
}

export function registerConsoleCommand(program: Command, api: () => Promise<HypercoreClient>): void {
  program
    .command('console <id>')
    .description("type into a VM's serial console (ttyS0; QEMU VMs); Ctrl-] leaves")
    .action(async (id: string) => {
      await runConsole(await api(), id);
    });
}
