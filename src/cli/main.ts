/**
 * `hypercore`: the command line's entry. `--version` is answered here, before anything else is
 * loaded; every other command line goes to the commands (program.ts), loaded on demand.
 */
import { HYPERCORE_VERSION } from '../core/version.js';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`hypercore ${HYPERCORE_VERSION}\n`);
} else {
  const { run } = await import('./program.js');
  await run(process.argv);
}
