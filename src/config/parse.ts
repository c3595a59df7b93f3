/** hac.toml text → VmSpec: parse, apply CLI overrides, validate, check files, report every problem at once. */
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { TomlError } from 'smol-toml';
import { InternalError } from '../core/errors.js';
import type { VmSpec } from '../core/vm.js';
import { checkFile, fileKindOf, fileProblem, requiredFileKeys, resolvePath, type FileState } from './files.js';
import { IssueCollector, configError } from './issues.js';
import { knownKeyPaths } from './json-schema.js';
import { formatKeyPath, getAt, type TomlTree } from './key-path.js';
import { locateKeys, type KeyLocations } from './locator.js';
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
  const tree = parseOrThrow(text, options.file);
  return validate(tree, {
    label: options.file,
    locations: locateKeys(text),
    fileDir: dirname(resolve(cwd, options.file)),
    cwd,
    flags: applyOverrides(tree, options.overrides),
    hostCpus: options.hostCpus,
    fileExists: options.fileExists,
  });
}

/** Options of `specFromImageReference`. */
export interface ImageReferenceOptions {
  /** CPUs of this host: the upper bound of `hardware.cores`. */
  hostCpus: number;
  /** VM name (`--name`); default `run-` and 6 random hex digits. `overrides.name` wins over it. */
  name?: string;
  /** CLI flags, as for a hac.toml; `overrides.image` replaces `ref`. */
  overrides?: HacOverrides;
  /** Base of relative override paths (kernel, initrd, drive); default `process.cwd()`. */
  cwd?: string;
  /** Replaces the filesystem check of kernel/initrd/drive (for tests). */
  fileExists?: (path: string) => boolean;
}

/** Where problems of `specFromImageReference` are reported when no flag set the value. */
export const imageArgumentLabel = 'IMAGE';
/** What `specFromImageReference` errors call their input (`invalid arguments (2 problems):`). */
export const runArgumentsLabel = 'arguments';

/**
 * The VmSpec of `hypercore run IMAGE`: no hac.toml, so every default, `ref` as the image and the
 * flags on top, validated by the same schema as a file (errors name `IMAGE` or the flag).
 * Without `overrides.drive` the VM boots the guest system image and runs `ref` as its workload.
 * @throws ConfigInvalidError listing every problem.
 */
export function specFromImageReference(ref: string, options: ImageReferenceOptions): VmSpec {
  const cwd = options.cwd ?? process.cwd();
  const tree: TomlTree = Object.create(null);
  const spacecore: TomlTree = Object.create(null);
  const hardware: TomlTree = Object.create(null);
  spacecore.name = options.name ?? `run-${randomBytes(3).toString('hex')}`;
  hardware.ref = ref;
  tree.spacecore = spacecore;
  tree.hardware = hardware;
  const flags = new Map([[formatKeyPath(['hardware', 'ref']), imageArgumentLabel]]);
  if (options.name !== undefined) flags.set(formatKeyPath(['spacecore', 'name']), '--name');
  for (const [path, flag] of applyOverrides(tree, options.overrides)) flags.set(path, flag);
  return validate(tree, { label: runArgumentsLabel, fileDir: cwd, cwd, flags, hostCpus: options.hostCpus, fileExists: options.fileExists });
}

interface Source {
  /** The file name (or what the input is called) in error locations and the summary line. */
  label: string;
  /** Key positions in the file text; absent without a file. */
  locations?: KeyLocations;
  /** Base of relative paths written in the file. */
  fileDir: string;
  /** Base of relative paths given as flags. */
  cwd: string;
  /** Paths set by flags (`formatKeyPath` form) and the flag that set each. */
  flags: ReadonlyMap<string, string>;
  hostCpus: number;
  fileExists: ((path: string) => boolean) | undefined;
}

/** Validates a tree (overrides already applied) and maps it; every problem goes into one error. */
function validate(tree: TomlTree, source: Source): VmSpec {
  const { flags, cwd, fileDir } = source;
  const issues = new IssueCollector({ file: source.label, tree, locations: source.locations, flags, knownKeys: knownKeyPaths() });

  const result = hacSchema({ hostCpus: source.hostCpus }).safeParse(tree);
  if (!result.success) issues.addZodIssues(result.error.issues);

  const baseOf = (segments: readonly string[]): string => (flags.has(formatKeyPath(segments)) ? cwd : fileDir);
  const check = source.fileExists;
  const stateOf = (path: string, segments: readonly string[]): FileState => (check ? (check(path) ? 'ok' : 'missing') : checkFile(path, fileKindOf(segments)));
  // Checked even when other keys are invalid, so the user sees missing files in the same report.
  for (const segments of requiredFileKeys) {
    const value = getAt(tree, segments);
    if (typeof value !== 'string' || value === '') continue;
    const resolved = resolvePath(value, baseOf(segments));
    const problem = fileProblem(stateOf(resolved, segments), `(resolved to ${resolved})`);
    if (problem) issues.addBadValue(segments, problem);
  }

  const error = issues.error();
  if (error) throw error;
  if (!result.success) throw new InternalError(`${source.label} failed validation without a reported problem`);
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
