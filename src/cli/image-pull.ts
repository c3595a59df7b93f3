/** Pulls with progress on stderr, for `image pull`, `spawn` and `run`. */
import type { Image } from '../core/image.js';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import type { ApiClient } from './api-client.js';
import { progressRenderer } from './pull-progress.js';

/** Pulls with progress on stderr (stdout stays clean for scripts). */
export async function pullWithProgress(api: ApiClient, reference: string, platform?: string): Promise<Image> {
  const renderer = progressRenderer(process.stderr);
  try {
    return await api.pullImage(reference, platform, (p) => renderer.update(p));
  } finally {
    renderer.stop();
  }
}

/** Pulls an image the daemon does not have yet, showing progress (the daemon would pull it silently). */
export async function pullIfMissing(api: ApiClient, reference: string): Promise<void> {
  try {
    await api.getImage(reference);
  } catch (err) {
    if (!(err instanceof HypercoreError) || err.code !== ErrorCodes.imageNotFound) throw err;
    await pullWithProgress(api, reference);
  }
}
