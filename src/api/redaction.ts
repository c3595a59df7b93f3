/**
 * What the API shows of a VM's metadata. The daemon's store keeps secrets (state.db is the
 * daemon's user's alone); they leave the daemon only into the guest. This is the one place they
 * are hidden on the way out: every response that carries a VM or its metadata, on both
 * transports, passes through here. File contents are left out too (they are often keys or
 * passwords, and may be 1 MiB): responses give each file's size instead.
 */
import { SECRET_SHOWN_AS, type MetadataValues } from '../core/metadata.js';
import type { MetadataFileSpec, MetadataSpec, Vm, VmSpec } from '../core/vm.js';

/** A file as responses show it: no content, its size in bytes. */
export type PublicMetadataFile = Omit<MetadataFileSpec, 'content'> & { size: number };
export type PublicMetadataSpec = Omit<MetadataSpec, 'files'> & { files: PublicMetadataFile[] };
/** A VM as responses show it. */
export type PublicVm = Omit<Vm, 'spec'> & { spec: Omit<VmSpec, 'metadata'> & { metadata?: PublicMetadataSpec } };

function hidden(secrets: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.keys(secrets).map((key) => [key, SECRET_SHOWN_AS]));
}

export function publicMetadata(m: MetadataValues): MetadataValues {
  return { values: { ...m.values }, secrets: hidden(m.secrets) };
}

export function publicVm(record: Vm): PublicVm {
  let vm = record;
  if (vm.defineOnly) {
    // Bookkeeping of a create in progress, not part of the API's Vm.
    const { defineOnly: _defineOnly, ...rest } = vm;
    vm = rest;
  }
  const m = vm.spec.metadata;
  if (!m) return vm as PublicVm;
  const metadata: PublicMetadataSpec = {
    ...publicMetadata(m),
    sshAuthorizedKeys: [...m.sshAuthorizedKeys],
    files: m.files.map(({ path, mode, owner, content }) => ({ path, mode, owner, size: Buffer.byteLength(content, 'utf8') })),
  };
  return { ...vm, spec: { ...vm.spec, metadata } };
}
