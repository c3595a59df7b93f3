/**
 * The shim keeper process (keeper.ts): `node main.js --control PATH`. hypercored starts it
 * detached, in its own session, so it outlives hypercored. It exits when it has kept nothing (no
 * hypercored, no pod socket) for a minute.
 */
import { Keeper } from './keeper.js';

const IDLE_EXIT_MS = 60_000;
const IDLE_CHECK_MS = 5_000;

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} shim keeper ${process.pid}: ${message}\n`);
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--control');
  const control = i > 0 ? process.argv[i + 1] : undefined;
  if (!control || !control.startsWith('/')) throw new Error('usage: main.js --control /path/to/keeper.sock (hypercored starts the shim keeper)');
  const keeper = new Keeper(control, log);
  await keeper.start();
  log(`listening on ${control}`);
  let idleSince = Date.now();
  setInterval(() => {
    if (!keeper.idle) idleSince = Date.now();
    else if (Date.now() - idleSince >= IDLE_EXIT_MS) {
      log('nothing to keep; exiting');
      void keeper.stop().finally(() => process.exit(0));
    }
  }, IDLE_CHECK_MS);
  // Signals from a terminal or a service manager are not hypercored's: only SIGKILL (or idleness) ends the keeper.
  process.on('SIGHUP', () => {});
  process.on('SIGINT', () => {});
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
