/** Pulls with progress on stderr, for `image pull`, `spawn` and `run`. */
import type { HypercoreClient, Image } from '../../sdk/src/index.js';
import { ErrorCodes } from '../core/errors.js';
import { progressRenderer } from './pull-progress.js';

/** Pulls with progress on stderr (stdout stays clean for scripts). */
export async function pullWithProgress(api: HypercoreClient, reference: string, platform?: string): Promise<Image> {
  const renderer = progressRenderer(process.stderr);
  try {
    return await api.pullImage(reference, { ...(platform ? { platform } : {}), onProgress: (p) => renderer.update(p) });
  } finally {
    renderer.stop();
  }
}

/** Pulls an image the daemon does not have yet, showing progress (the daemon would pull it silently). */
export async function pullIfMissing(api: HypercoreClient, reference: string): Promise<void> {
  try {
    await api.getImage(reference);
  } catch (err) {
    // Its code, not its class: importing the SDK here would split it out of the client's chunk.
    if ((err as { code?: unknown }).code !== ErrorCodes.imageNotFound) throw err;
    await pullWithProgress(api, reference);
  }
}
