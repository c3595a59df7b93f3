/**
 * Test helpers for src/guest: a fake kernel module tree (so tests never need the real kernel
 * package) and a minimal newc reader (so archive contents can be checked without extracting them).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** A fake .ko: arbitrary bytes around a .modinfo-like run of NUL-terminated key=value strings. */
export function fakeKo(name: string, depends: readonly string[]): Buffer {
  return Buffer.concat([
    Buffer.from('\x7fELF fake module body'),
    Buffer.from(`\0license=GPL\0depends=${depends.join(',')}\0name=${name}\0vermagic=6.1.0-test SMP\0`),
  ]);
}

/** Writes `lib/modules/<version>/kernel/<rel>.ko` files under `root`; returns the modules dir. */
export async function makeFakeModuleTree(
  root: string,
  modules: Record<string, { dir: string; depends: string[] }>,
  extra: { builtin?: string[]; compressed?: string[] } = {},
): Promise<string> {
  const modulesDir = join(root, 'lib', 'modules', '6.1.0-test');
  for (const [name, { dir, depends }] of Object.entries(modules)) {
    const path = join(modulesDir, 'kernel', dir, `${name}.ko`);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, fakeKo(name, depends));
  }
  for (const name of extra.compressed ?? []) {
    const path = join(modulesDir, 'kernel', 'drivers', 'misc', `${name}.ko.xz`);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, 'xz');
  }
  await mkdir(join(modulesDir, 'kernel'), { recursive: true });
  await writeFile(join(modulesDir, 'modules.builtin'), (extra.builtin ?? []).map((n) => `kernel/drivers/builtin/${n}.ko\n`).join(''));
  return modulesDir;
}

/** The modules (with their `depends=`) the real cloud kernel has, as a fake tree description. */
export const CLOUD_KERNEL_MODULES: Record<string, { dir: string; depends: string[] }> = {
  virtio_ring: { dir: 'drivers/virtio', depends: [] },
  virtio: { dir: 'drivers/virtio', depends: ['virtio_ring'] },
  virtio_mmio: { dir: 'drivers/virtio', depends: ['virtio', 'virtio_ring'] },
  virtio_pci_legacy_dev: { dir: 'drivers/virtio', depends: [] },
  virtio_pci_modern_dev: { dir: 'drivers/virtio', depends: [] },
  virtio_pci: { dir: 'drivers/virtio', depends: ['virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio'] },
  virtio_blk: { dir: 'drivers/block', depends: ['virtio', 'virtio_ring'] },
  virtio_console: { dir: 'drivers/char', depends: ['virtio', 'virtio_ring'] },
  'virtio-rng': { dir: 'drivers/char/hw_random', depends: ['virtio', 'virtio_ring'] },
  virtio_balloon: { dir: 'drivers/virtio', depends: ['virtio', 'virtio_ring'] },
  failover: { dir: 'net/core', depends: [] },
  net_failover: { dir: 'drivers/net', depends: ['failover'] },
  virtio_net: { dir: 'drivers/net', depends: ['virtio_ring', 'virtio', 'net_failover'] },
  vsock: { dir: 'net/vmw_vsock', depends: [] },
  vmw_vsock_virtio_transport_common: { dir: 'net/vmw_vsock', depends: ['vsock'] },
  vmw_vsock_virtio_transport: { dir: 'net/vmw_vsock', depends: ['virtio', 'vmw_vsock_virtio_transport_common', 'virtio_ring', 'vsock'] },
  overlay: { dir: 'fs/overlayfs', depends: [] },
  vsock_loopback: { dir: 'net/vmw_vsock', depends: ['vmw_vsock_virtio_transport_common', 'vsock'] },
};

/** One member of a newc archive as read back. */
export interface NewcMember {
  name: string;
  mode: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

/** Reads a newc archive (up to the trailer); throws on a malformed header. */
export function readNewc(archive: Buffer): NewcMember[] {
  const out: NewcMember[] = [];
  const align = (n: number): number => (n + 3) & ~3;
  let at = 0;
  for (;;) {
    const head = archive.subarray(at, at + 110).toString('ascii');
    if (!head.startsWith('070701')) throw new Error(`bad newc magic at offset ${at}`);
    const field = (i: number): number => parseInt(head.slice(6 + i * 8, 14 + i * 8), 16);
    const nameSize = field(11);
    const fileSize = field(6);
    const name = archive.subarray(at + 110, at + 110 + nameSize - 1).toString('utf8');
    const dataAt = align(at + 110 + nameSize);
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode: field(1), rdevMajor: field(9), rdevMinor: field(10), data: archive.subarray(dataAt, dataAt + fileSize) });
    at = align(dataAt + fileSize);
  }
}
