/** Copies of sparse files (disks, guest memory) that stay sparse. */
import { runCommand } from './command.js';

/** A copy of a many-GiB sparse disk must not be cut short by a timeout meant for small commands. */
const COPY_TIMEOUT_MS = 30 * 60_000;

/**
 * `cp` with holes kept (SEEK_DATA/SEEK_HOLE) and a reflink where the filesystem supports one. The
 * copy gets the daemon's umask (0600), not the source's mode. Node's copyFile would write the holes.
 */
export async function sparseCopy(source: string, target: string): Promise<void> {
  await runCommand('cp', ['--reflink=auto', '--sparse=always', '--no-preserve=all', '--', source, target], { timeoutMs: COPY_TIMEOUT_MS });
}
