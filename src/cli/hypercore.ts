/**
 * `hypercore`: the command line's entry (bin/hypercore runs its bundle). `--version` is answered
 * here, before anything else is loaded; every other command line goes to the commands (main.ts),
 * loaded on demand.
 */
import { HYPERCORE_VERSION } from '../core/version.js';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`hypercore ${HYPERCORE_VERSION}\n`);
} else {
  const { run } = await import('./main.js');
  await run(process.argv);
}
