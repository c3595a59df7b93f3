/** Reading a hac.toml from disk. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { VmSpec } from '../core/vm.js';
import { configError } from './issues.js';
import type { HacOverrides } from './overrides.js';
import { parseHac } from './parse.js';

/** Options of `loadHacFile`. */
export interface LoadHacOptions {
  /** CPUs of this host: the upper bound of `hardware.cores`. */
  hostCpus: number;
  /** CLI flags that replace file values. */
  overrides?: HacOverrides;
  /** Base of relative override paths and of a relative file path; default `process.cwd()`. */
  cwd?: string;
}

const readProblems: Record<string, string> = {
  ENOENT: 'file not found',
  EISDIR: 'is a directory, not a file',
  EACCES: 'permission denied',
};

/**
 * Reads and validates a hac.toml. Relative paths inside it resolve against its folder.
 * @throws ConfigInvalidError when the file cannot be read or is invalid (see `parseHac`).
 */
export async function loadHacFile(path: string, options: LoadHacOptions): Promise<VmSpec> {
  let text: string;
  try {
    text = await readFile(resolve(options.cwd ?? process.cwd(), path), 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : '';
    const reason = readProblems[code] ?? (err instanceof Error ? err.message : String(err));
    throw configError(path, [{ path: '', message: `cannot read ${path}: ${reason}`, location: path }], err);
  }
  return parseHac(text, { file: path, ...options });
}
