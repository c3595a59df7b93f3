/** Pushes the busybox test image (see oci-builder) to a local registry for the agent e2e tests. */
import { RegistryClient } from '../../src/images/registry/client.js';
import { parseReference } from '../../src/images/registry/reference.js';
import type { RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { buildImage, buildLayer, busyboxLayerEntries } from '../../src/images/testing/oci-builder.js';

/**
 * Pushes `hc/busybox:1` (cmd /bin/sh, the given os-release) and returns its reference; `name` and
 * `cmd` push the same busybox under another name with another command (a pause image, say).
 */
export async function pushBusyboxImage(registry: RegistryProcess, osRelease: string, options: { name?: string; cmd?: string[] } = {}): Promise<string> {
  const client = new RegistryClient({});
  const image = buildImage([await buildLayer(busyboxLayerEntries(osRelease))], { cmd: options.cmd ?? ['/bin/sh'] });
  const imageRef = `${registry.host}/${options.name ?? 'hc/busybox:1'}`;
  const ref = parseReference(imageRef);
  for (const b of [...image.layers, image.config]) await client.pushBlob(ref, b.digest, b.bytes);
  await client.pushManifest(ref, image.manifest.mediaType, image.manifest.bytes);
  await client.close();
  return imageRef;
}
