/**
 * Guest metadata rules, the same at every edge that takes metadata (hac.toml, the API's specs,
 * `metadata set`) and in the agent: key names, the size limits, how a `set` changes a VM's
 * metadata, and the form the agent receives it in.
 */
import type { MetadataSpec } from './vm.js';

/** Where the agent serves values and secrets inside the guest (link-local, bound on the guest's own loopback). */
export const METADATA_ADDRESS = '169.254.169.254';

/** Metadata key names: safe as one URL path segment, never a JavaScript prototype key. */
export const METADATA_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const METADATA_KEY_RULE = "1-128 characters of letters, digits, '_', '.' and '-', starting with a letter or digit";

/** Most bytes of values a VM may hold: key names plus values plus secrets, UTF-8. */
export const MAX_METADATA_VALUES_BYTES = 64 * 1024;
/** Most bytes of files a VM may hold: contents and paths of its files, plus its SSH keys. */
export const MAX_METADATA_FILES_BYTES = 1024 * 1024;
/** Most files a VM may have written into its workload's root filesystem. */
export const MAX_METADATA_FILES = 256;

/** How a secret's value is shown on the host side. */
export const SECRET_SHOWN_AS = '<secret>';

/** Where `ssh_authorized_keys` are written in the workload's root filesystem. */
export const AUTHORIZED_KEYS_PATH = '/root/.ssh/authorized_keys';

/** The part of the metadata the guest serves, and `metadata set` changes at run time. */
export interface MetadataValues {
  values: Record<string, string>;
  secrets: Record<string, string>;
}

/** A file as the agent writes it: numeric mode and owner, content as bytes. */
export interface GuestFile {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  content: Uint8Array;
}

const MAX_PATH_BYTES = 4096;
const MAX_NAME_BYTES = 255;

/** Why a file's path is not a clean absolute path (as the workload sees its root), or undefined when it is. */
export function guestPathProblem(path: string): string | undefined {
  if (!path.startsWith('/') || path === '/') return 'must be an absolute path to a file';
  if (Buffer.byteLength(path) > MAX_PATH_BYTES || path.includes('\0')) return `must be at most ${MAX_PATH_BYTES} bytes, without NUL characters`;
  for (const name of path.slice(1).split('/')) {
    if (name === '' || name === '.' || name === '..') return "must be normalised: no empty, '.' or '..' parts and no trailing '/'";
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `each part must be at most ${MAX_NAME_BYTES} bytes`;
  }
  return undefined;
}

const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/** Bytes the values budget counts: every key name and value, plain and secret. */
export function valuesBytes(m: MetadataValues): number {
  let total = 0;
  for (const table of [m.values, m.secrets]) for (const [key, value] of Object.entries(table)) total += utf8Bytes(key) + utf8Bytes(value);
  return total;
}

/** Bytes the files budget counts: each file's path and content, and each SSH key line. */
export function filesBytes(m: Pick<MetadataSpec, 'files' | 'sshAuthorizedKeys'>): number {
  let total = 0;
  for (const file of m.files) total += utf8Bytes(file.path) + utf8Bytes(file.content);
  for (const key of m.sshAuthorizedKeys) total += utf8Bytes(key) + 1;
  return total;
}

/** Why these values are over the budget, or undefined when they fit. */
export function valuesBudgetProblem(m: MetadataValues): string | undefined {
  const bytes = valuesBytes(m);
  if (bytes <= MAX_METADATA_VALUES_BYTES) return undefined;
  return `values and secrets would hold ${bytes} bytes (key names and values, UTF-8); at most ${MAX_METADATA_VALUES_BYTES} (64 KiB) are allowed`;
}

/** Why these files are over the budget, or undefined when they fit. */
export function filesBudgetProblem(m: Pick<MetadataSpec, 'files' | 'sshAuthorizedKeys'>): string | undefined {
  if (m.files.length > MAX_METADATA_FILES) return `${m.files.length} files; at most ${MAX_METADATA_FILES} are allowed`;
  const bytes = filesBytes(m);
  if (bytes <= MAX_METADATA_FILES_BYTES) return undefined;
  return `files and SSH keys hold ${bytes} bytes (paths, contents and key lines, UTF-8); at most ${MAX_METADATA_FILES_BYTES} (1 MiB) are allowed`;
}

export function emptyMetadata(): MetadataSpec {
  return { values: {}, secrets: {}, sshAuthorizedKeys: [], files: [] };
}

/**
 * The metadata after `set`: each entry replaces its key. `secret` makes the keys secrets; a key that
 * is a secret already stays one, so a set that forgets `secret` cannot show a secret's new value.
 */
export function withEntries(current: MetadataSpec | undefined, entries: Readonly<Record<string, string>>, secret: boolean): MetadataSpec {
  const base = current ?? emptyMetadata();
  const values = { ...base.values };
  const secrets = { ...base.secrets };
  for (const [key, value] of Object.entries(entries)) {
    if (secret || Object.hasOwn(secrets, key)) {
      delete values[key];
      secrets[key] = value;
    } else {
      values[key] = value;
    }
  }
  return { ...base, values, secrets };
}

/** `uid` or `uid:gid`; without a gid the file's group is the uid's number, as Docker's `COPY --chown` does. */
export function parseOwner(owner: string): { uid: number; gid: number } {
  const [uid, gid = uid] = owner.split(':').map(Number);
  return { uid: uid!, gid: gid! };
}

/** The files of a spec (and its SSH keys, which the agent places itself) as the agent writes them. */
export function guestFiles(m: MetadataSpec): GuestFile[] {
  return m.files.map((f) => ({ path: f.path, mode: Number.parseInt(f.mode, 8), ...parseOwner(f.owner), content: Buffer.from(f.content, 'utf8') }));
}
