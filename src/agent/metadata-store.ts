/**
 * The values and secrets the agent serves. The host sends them at StartWorkload and on each
 * `metadata set`, never again, so they are also kept in a root-only file on the guest's tmpfs: an
 * agent that init restarts serves them on as before.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { METADATA_KEY_PATTERN, METADATA_KEY_RULE, valuesBudgetProblem, type MetadataValues } from '../core/metadata.js';
import { isTable } from '../config/key-path.js';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { metadataSource } from '../metadata-service/http-answer.js';
import { errorText, silentLog, type Log } from './log.js';

/** Larger than any valid metadata (64 KiB of values, JSON-escaped); a bigger file is not ours. */
const MAX_FILE_BYTES = 1024 * 1024;

/** The metadata if every key is valid, no key is both a value and a secret, and it fits the budget; else why not. */
function checked(m: MetadataValues): MetadataValues {
  for (const table of [m.values, m.secrets]) {
    for (const [key, value] of Object.entries(table)) {
      if (!METADATA_KEY_PATTERN.test(key)) throw new TtrpcError(Code.INVALID_ARGUMENT, `metadata key ${JSON.stringify(key.slice(0, 64))}: must be ${METADATA_KEY_RULE}`);
      if (typeof value !== 'string') throw new TtrpcError(Code.INVALID_ARGUMENT, `metadata key ${key}: the value must be a string`);
    }
  }
  const both = Object.keys(m.values).find((key) => Object.hasOwn(m.secrets, key));
  if (both !== undefined) throw new TtrpcError(Code.INVALID_ARGUMENT, `metadata key ${both} is both a value and a secret`);
  const tooLarge = valuesBudgetProblem(m);
  if (tooLarge) throw new TtrpcError(Code.INVALID_ARGUMENT, `metadata: ${tooLarge}`);
  return { values: { ...m.values }, secrets: { ...m.secrets } };
}

export class MetadataStore {
  private current: MetadataValues = { values: {}, secrets: {} };

  /** With `file`, starts from what it holds (if anything valid) and keeps it up to date. */
  constructor(
    private readonly file?: string,
    private readonly log: Log = silentLog,
  ) {
    if (file) this.current = this.load(file);
  }

  /** Every key and its value, secrets included: the guest's own workload may read them all. */
  all(): Record<string, string> {
    return { ...metadataSource(this.current).all() };
  }

  /** Whether there is nothing to serve (no values, no secrets). */
  empty(): boolean {
    return Object.keys(this.current.values).length === 0 && Object.keys(this.current.secrets).length === 0;
  }

  lookup(key: string): string | undefined {
    return metadataSource(this.current).lookup(key);
  }

  /** Replaces everything; invalid metadata changes nothing. Logs counts only, never a value. */
  replace(next: MetadataValues): void {
    const valid = checked(next);
    if (this.file) {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const temporary = `${this.file}.tmp`;
      writeFileSync(temporary, JSON.stringify(valid), { mode: 0o600 });
      renameSync(temporary, this.file);
    }
    this.current = valid;
    this.log(`metadata: ${Object.keys(valid.values).length} values, ${Object.keys(valid.secrets).length} secrets`);
  }

  private load(file: string): MetadataValues {
    try {
      if (statSync(file).size > MAX_FILE_BYTES) throw new Error('the file is too large');
      const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (!isTable(parsed) || !isTable(parsed['values']) || !isTable(parsed['secrets'])) throw new Error('not metadata');
      return checked({ values: parsed['values'] as Record<string, string>, secrets: parsed['secrets'] as Record<string, string> });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log(`metadata: ignoring ${file} (${errorText(err)})`);
      return { values: {}, secrets: {} };
    }
  }
}
