/**
 * Swapping a disk into a pod VM's root disk slot over QMP (see slotArguments): the slot's raw node
 * is pointed back at its empty node, the previous disk's node deleted, and the new disk added and
 * put in with blockdev-reopen; block_resize then tells the guest the device's new size. Verified
 * on QEMU 7.2 microvm, which has no hotplug.
 */
import type { VmDisk } from '../../core/image.js';
import { slotNode } from './command-line.js';
import type { QmpClient } from './qmp-client.js';

const QMP_TIMEOUT_MS = 10_000;

interface NamedNode {
  'node-name'?: string;
  image?: { 'virtual-size'?: number };
}

export async function swapSlotDisk(qmp: QmpClient, slot: number, disk: VmDisk | undefined): Promise<void> {
  const { node, empty, disk: diskNode } = slotNode(slot);
  const exec = <T>(command: string, args: object) => qmp.execute<T>(command, args, { timeoutMs: QMP_TIMEOUT_MS });
  await exec('blockdev-reopen', { options: [{ driver: 'raw', 'node-name': node, file: empty }] });
  const nodes = await exec<NamedNode[]>('query-named-block-nodes', { flat: true });
  if (nodes.some((n) => n['node-name'] === diskNode)) await exec('blockdev-del', { 'node-name': diskNode });
  if (!disk) return;
  await exec('blockdev-add', { driver: disk.format, 'node-name': diskNode, 'read-only': disk.readOnly, file: { driver: 'file', filename: disk.path } });
  try {
    const added = (await exec<NamedNode[]>('query-named-block-nodes', { flat: true })).find((n) => n['node-name'] === diskNode);
    const size = added?.image?.['virtual-size'];
    if (!size) throw new Error(`QEMU reports no size for ${disk.path}`);
    await exec('blockdev-reopen', { options: [{ driver: 'raw', 'node-name': node, file: diskNode }] });
    await exec('block_resize', { 'node-name': node, size });
  } catch (err) {
    await exec('blockdev-reopen', { options: [{ driver: 'raw', 'node-name': node, file: empty }] }).catch(() => undefined);
    await exec('blockdev-del', { 'node-name': diskNode }).catch(() => undefined);
    throw err;
  }
}
