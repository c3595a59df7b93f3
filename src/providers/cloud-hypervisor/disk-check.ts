/**
 * What the provider checks on a VM's disks before Cloud Hypervisor opens them. Cloud Hypervisor
 * follows a qcow2 overlay's backing file only with `backing_files=on`, and then opens whatever path
 * the overlay's header names: that option trusts the image. So the daemon reads the header itself
 * (`qemu-img info`, which opens no backing file unless asked for the chain) and allows exactly one
 * thing: an overlay that names, as a raw file, the block image Hypercore made it over
 * (`VmDisk.backing`). Anything else is refused before a VMM starts, naming the overlay and what it
 * points at.
 */
import { InvalidArgumentError, asHypercoreError } from '../../core/errors.js';
import type { VmDisk } from '../../core/image.js';
import { runCommand } from '../../system/command.js';

/** What qemu-img says about an image header (only the fields the check reads). */
export interface ImageHeader {
  format: string;
  backingFile?: string;
  backingFormat?: string;
}

export async function readImageHeader(path: string): Promise<ImageHeader> {
  let stdout: string;
  try {
    // -U: the overlay may be open in a running VMM (a restart); only its header is read.
    ({ stdout } = await runCommand('qemu-img', ['info', '-U', '--output=json', path], { timeoutMs: 20_000 }));
  } catch (err) {
    throw new InvalidArgumentError(`the disk ${path} cannot be read as a disk image: ${asHypercoreError(err).message}`);
  }
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    throw new InvalidArgumentError(`qemu-img info ${path} printed no JSON`);
  }
  const text = (key: string): string | undefined => (typeof info[key] === 'string' ? info[key] : undefined);
  const backingFile = text('backing-filename');
  const backingFormat = text('backing-filename-format');
  return { format: text('format') ?? 'unknown', ...(backingFile !== undefined ? { backingFile } : {}), ...(backingFormat !== undefined ? { backingFormat } : {}) };
}

/** Refuses a qcow2 disk whose header is not the overlay Hypercore made; raw disks need nothing (their format is stated). */
export async function checkDisk(disk: VmDisk): Promise<void> {
  if (disk.format !== 'qcow2') return;
  const header = await readImageHeader(disk.path);
  if (header.format !== 'qcow2') throw new InvalidArgumentError(`the disk ${disk.path} is recorded as a qcow2 overlay but is ${header.format}`);
  if (header.backingFile === undefined) return;
  if (disk.backing === undefined) {
    throw new InvalidArgumentError(`the qcow2 disk ${disk.path} names a backing file (${header.backingFile}); Cloud Hypervisor is allowed to follow backing files only of the overlays Hypercore made over an image`);
  }
  if (header.backingFile !== disk.backing) {
    throw new InvalidArgumentError(`the overlay ${disk.path} names the backing file ${header.backingFile}, not the image's block image ${disk.backing} it was made over; refusing to let Cloud Hypervisor open it`);
  }
  if (header.backingFormat !== 'raw') {
    throw new InvalidArgumentError(`the overlay ${disk.path} declares its backing file ${header.backingFile} as ${header.backingFormat ?? 'of no format (to be detected)'}, not raw; refusing to let Cloud Hypervisor open it`);
  }
}
