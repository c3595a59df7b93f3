/**
 * The `[metadata]` table of hac.toml: values, secrets, SSH keys and files for the guest's agent to
 * deliver. Its own module, as its rules (key names, budgets, paths) are its own; the error
 * formatters ask `mayHoldSecrets` (secret-paths.ts) so a secret's value is never written into a message.
 */
import * as z from 'zod';
import {
  AUTHORIZED_KEYS_PATH,
  filesBudgetProblem,
  guestPathProblem,
  METADATA_KEY_PATTERN,
  METADATA_KEY_RULE,
  valuesBudgetProblem,
} from '../core/metadata.js';
import type { MetadataFileSpec } from '../core/vm.js';
import { tableIssueParam } from './issues.js';
import { getAt, isTable, type KeySegment } from './key-path.js';

const keyError = `key names must be ${METADATA_KEY_RULE}`;
const ownerError = 'must be a numeric "uid" or "uid:gid" (each from 0 to 4294967294)';
const maxId = 4_294_967_294;
/** One authorized_keys line: options allowed, then a known key type and its base64 blob. */
const sshKeyLine = /(^|\s)(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+={0,3}(\s|$)/;
const sshKeyError = 'must be one public key line, e.g. "ssh-ed25519 AAAA... user@host"';
/** Where the container mounts its own filesystems: a file written there would be hidden. */
const mountedOver = ['/proc', '/sys', '/dev'];

function keyValues(description: string) {
  return z
    .record(z.string().regex(METADATA_KEY_PATTERN), z.string({ error: 'must be a string' }), {
      error: (issue) => (issue.code === 'invalid_key' ? keyError : 'must be a table of key = "value" strings'),
    })
    .default({})
    .describe(description);
}

const file = z.strictObject(
  {
    path: z
      .string({ error: 'must be a string (an absolute path)' })
      .superRefine((path, ctx) => {
        const problem = guestPathProblem(path) ?? (mountedOver.some((m) => path === m || path.startsWith(`${m}/`)) ? 'must not be under /proc, /sys or /dev: the container mounts its own filesystems there' : undefined);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe("absolute path in the workload's root filesystem; missing directories are created (root, 0755)"),
    mode: z
      .string({ error: 'must be an octal mode string like "0640"' })
      .regex(/^0?[0-7]{3}$/, { error: 'must be an octal mode string like "0640" (permission bits only, at most "0777")' })
      .default('0644')
      .describe('permission bits, octal'),
    owner: z
      .string({ error: ownerError })
      .regex(/^\d{1,10}(:\d{1,10})?$/, { error: ownerError })
      .refine((owner) => owner.split(':').every((id) => Number(id) <= maxId), { error: ownerError })
      .default('0:0')
      .describe('numeric "uid" or "uid:gid" owning the file (without gid: the group of the same number)'),
    content: z.string({ error: "must be a string (the file's text)" }).describe("the file's text (UTF-8)"),
  },
  { error: 'must be a table' },
);

export const metadataSchema = z
  .strictObject(
    {
      values: keyValues('plain key/values: served to the guest at http://169.254.169.254/v1/metadata and shown on the host'),
      secrets: keyValues('key/values served to the guest like values, but never shown on the host side (shown as "<secret>")'),
      ssh_authorized_keys: z
        .array(z.string({ error: sshKeyError }).max(16 * 1024, { error: sshKeyError }).regex(/^[^\r\n\0]+$/, { error: sshKeyError }).regex(sshKeyLine, { error: sshKeyError }), {
          error: 'must be an array of public key lines',
        })
        .default([])
        .describe(`public keys written to ${AUTHORIZED_KEYS_PATH} in the workload's root filesystem (replacing the image's)`),
      files: z.array(file, { error: 'must be an array of tables ([[metadata.files]])' }).default([]).describe("files written into the workload's root filesystem before it starts"),
    },
    { error: 'must be a table' },
  )
  .optional()
  .describe('configuration, secrets, SSH keys and files for the guest (image VMs only: its agent delivers them); at most 64 KiB of values and secrets, 1 MiB of files and keys');

/** The rules across `[metadata]` and the rest of the file; `value` is whatever parsing produced. */
export function metadataRules(value: unknown, ctx: z.RefinementCtx): void {
  const metadata = getAt(value, ['metadata']);
  if (!isTable(metadata)) return;
  const table = { [tableIssueParam]: true };
  const hardware = getAt(value, ['hardware']);
  if (isTable(hardware) && (hardware['drive'] !== undefined || hardware['ref'] === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['metadata'],
      params: table,
      message: 'metadata needs an image VM (hardware.ref without hardware.drive): its agent delivers the metadata, and a drive or kernel-only VM runs none',
    });
  }
  const values = metadata['values'];
  const secrets = metadata['secrets'];
  if (isStrings(values) && isStrings(secrets)) {
    for (const key of Object.keys(secrets).filter((k) => Object.hasOwn(values, k))) {
      ctx.addIssue({ code: 'custom', path: ['metadata', 'secrets', key], message: 'is also in metadata.values: a key is either a value or a secret' });
    }
    const tooLarge = valuesBudgetProblem({ values, secrets });
    if (tooLarge) ctx.addIssue({ code: 'custom', path: ['metadata'], params: table, message: `metadata ${tooLarge}` });
  }
  const files = metadata['files'];
  const keys = metadata['ssh_authorized_keys'];
  if (!Array.isArray(files) || !files.every(isFile) || !Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return;
  const seen = new Map<string, number>();
  files.forEach((f, i) => {
    const path: KeySegment[] = ['metadata', 'files', i, 'path'];
    const earlier = seen.get(f.path);
    if (earlier !== undefined) ctx.addIssue({ code: 'custom', path, message: `is also the path of metadata.files[${earlier}]` });
    else seen.set(f.path, i);
    if (f.path === AUTHORIZED_KEYS_PATH && keys.length > 0) ctx.addIssue({ code: 'custom', path, message: 'is where metadata.ssh_authorized_keys go; list the keys there instead' });
  });
  const tooMuch = filesBudgetProblem({ files, sshAuthorizedKeys: keys as string[] });
  if (tooMuch) ctx.addIssue({ code: 'custom', path: ['metadata'], params: table, message: `metadata ${tooMuch}` });
}

function isStrings(value: unknown): value is Record<string, string> {
  return isTable(value) && Object.values(value).every((v) => typeof v === 'string');
}

function isFile(value: unknown): value is MetadataFileSpec {
  return isTable(value) && typeof value['path'] === 'string' && typeof value['content'] === 'string';
}
