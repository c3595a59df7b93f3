/**
 * containerd's bundle directory: the OCI spec (config.json) a client wrote, read with a bound on
 * its size and without following links, and what its CRI annotations say about the pod.
 */
import { constants, lstatSync } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import type { BoundFile, HostSpec } from './guest-spec.js';

/** The largest config.json read (CRI's are a few KiB). */
export const MAX_SPEC_BYTES = 4 * 1024 * 1024;

export const CRI_CONTAINER_TYPE = 'io.kubernetes.cri.container-type';
export const CRI_SANDBOX_ID = 'io.kubernetes.cri.sandbox-id';
/** Pod annotations Hypercore reads (containerd's pod_annotations = ["io.hypercore.*"] passes them). */
export const VM_MEMORY_ANNOTATION = 'io.hypercore.vm.memory-mib';
export const VM_CORES_ANNOTATION = 'io.hypercore.vm.cores';

function invalid(message: string): HypercoreError {
  return new HypercoreError(ErrorCodes.invalidArgument, message);
}

/** Reads a regular file (never through a symlink) of at most `max` bytes. */
export async function readBoundedFile(path: string, max: number, what: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw invalid(`${what} ${path} cannot be opened: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw invalid(`${what} ${path} is not a regular file`);
    if (st.size > max) throw invalid(`${what} ${path} is ${st.size} bytes, more than ${max}`);
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await handle.read(buf, 0, st.size, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The bundle's OCI spec. */
export async function readBundleSpec(bundle: string): Promise<HostSpec> {
  if (!isAbsolute(bundle)) throw invalid(`bundle "${bundle}" must be an absolute path`);
  const st = await lstat(bundle).catch(() => undefined);
  if (!st?.isDirectory()) throw invalid(`bundle ${bundle} is not a directory`);
  const text = (await readBoundedFile(join(bundle, 'config.json'), MAX_SPEC_BYTES, 'the OCI spec')).toString('utf8');
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    throw invalid(`the OCI spec ${join(bundle, 'config.json')} is not JSON: ${(err as Error).message}`);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw invalid(`the OCI spec ${join(bundle, 'config.json')} is not a JSON object`);
  return spec as HostSpec;
}

/** What a bind mount's host source is, without following a symlink. */
export function inspectHostFile(path: string): BoundFile {
  try {
    const st = lstatSync(path);
    if (st.isFile()) return { kind: 'file', size: st.size };
    if (st.isDirectory()) return { kind: 'directory', size: 0 };
    return { kind: 'other', size: 0 };
  } catch {
    return { kind: 'missing', size: 0 };
  }
}

/** The pod a task belongs to, by CRI's annotations: its own (a sandbox, or `ctr run`'s one container) or a sandbox's. */
export type PodRole = { kind: 'sandbox' } | { kind: 'container'; sandboxId: string };

export function podRole(spec: HostSpec): PodRole {
  const annotations = spec.annotations ?? {};
  if (annotations[CRI_CONTAINER_TYPE] === 'container') {
    const sandboxId = annotations[CRI_SANDBOX_ID];
    if (!sandboxId) throw invalid(`a CRI container without the ${CRI_SANDBOX_ID} annotation`);
    return { kind: 'container', sandboxId };
  }
  return { kind: 'sandbox' };
}

/** A positive integer annotation, or undefined; a bad value is an error naming it. */
export function numberAnnotation(spec: HostSpec, key: string, max: number): number | undefined {
  const value = spec.annotations?.[key];
  if (value === undefined) return undefined;
  const n = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= max)) throw invalid(`annotation ${key} = "${value}" must be a whole number from 1 to ${max}`);
  return n;
}
