/** hac.toml text → VmSpec: parse, apply CLI overrides, validate, check files, report every problem at once. */
import { dirname, resolve } from 'node:path';
import { TomlError } from 'smol-toml';
import { InternalError } from '../core/errors.js';
import type { VmSpec } from '../core/vm.js';
import { checkFile, fileProblem, requiredFileKeys, resolvePath, type FileState } from './files.js';
import { IssueCollector, configError } from './issues.js';
import { knownKeyPaths } from './json-schema.js';
import { formatKeyPath, getAt, type TomlTree } from './key-path.js';
import { locateKeys } from './locator.js';
import { applyOverrides, type HacOverrides } from './overrides.js';
import { hacSchema } from './schema.js';
import { toVmSpec } from './spec.js';
import { parseTomlTree } from './toml-values.js';

/** Options of `parseHac`. */
export interface ParseHacOptions {
  /** The file's name as shown in errors; its folder is the base of relative paths in the file. */
  file: string;
  /** CPUs of this host: the upper bound of `hardware.cores`. */
  hostCpus: number;
  /** CLI flags that replace file values. */
  overrides?: HacOverrides;
  /** Base of relative override paths and of a relative `file`; default `process.cwd()`. */
  cwd?: string;
  /** Replaces the filesystem check of kernel/initrd/drive (for tests); default: exists and is not a directory. */
  fileExists?: (path: string) => boolean;
}

/**
 * Parses and validates hac.toml text into a VmSpec with absolute paths.
 * @throws ConfigInvalidError listing every problem, each with `file:line:column` (or the flag) and the key.
 */
export function parseHac(text: string, options: ParseHacOptions): VmSpec {
  const cwd = options.cwd ?? process.cwd();
  const fileDir = dirname(resolve(cwd, options.file));
  const tree = parseOrThrow(text, options.file);
  const flags = applyOverrides(tree, options.overrides);
  const issues = new IssueCollector({ file: options.file, tree, locations: locateKeys(text), flags, knownKeys: knownKeyPaths() });

  const result = hacSchema({ hostCpus: options.hostCpus }).safeParse(tree);
  if (!result.success) issues.addZodIssues(result.error.issues);

  const baseOf = (segments: readonly string[]): string => (flags.has(formatKeyPath(segments)) ? cwd : fileDir);
  const check = options.fileExists;
  const stateOf = (path: string): FileState => (check ? (check(path) ? 'ok' : 'missing') : checkFile(path));
  // Checked even when other keys are invalid, so the user sees missing files in the same report.
  for (const segments of requiredFileKeys) {
    const value = getAt(tree, segments);
    if (typeof value !== 'string' || value === '') continue;
    const resolved = resolvePath(value, baseOf(segments));
    const problem = fileProblem(stateOf(resolved), resolved);
    if (problem) issues.addBadValue(segments, problem);
  }

  const error = issues.error();
  if (error) throw error;
  if (!result.success) throw new InternalError('hac.toml failed validation without a reported problem');
  return toVmSpec(result.data, (key, value) => resolvePath(value, baseOf(['hardware', key])), fileDir);
}

function parseOrThrow(text: string, file: string): TomlTree {
  try {
    return parseTomlTree(text);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    // smol-toml's message is "Invalid TOML document: <what>\n\n<code excerpt>"; keep <what>.
    const what = err.message.replace(/^Invalid TOML document: /, '').split('\n')[0] ?? err.message;
    throw configError(file, [{ path: '', message: `invalid TOML: ${what}`, location: `${file}:${err.line}:${err.column}` }], err);
  }
}
