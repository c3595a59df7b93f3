/**
 * Validation of a VmSpec arriving over the API (gRPC or HTTP), once, at the edge. The spec is
 * mapped back to the hac.toml tree it stands for and judged by the hac.toml schema itself, so a
 * spec is valid over the API exactly when it is valid in a file; problems are named by the
 * spec's fields (`spec.memoryMib`). On top, paths must be absolute: the API has no file folder.
 */
import { isAbsolute } from 'node:path';
import type * as z from 'zod';
import { InvalidArgumentError, PermissionDeniedError, type ValidationIssue } from '../core/errors.js';
import type { VmSpec } from '../core/vm.js';
import { checkFile, fileKindOf, fileProblem, requiredFileKeys } from '../config/files.js';
import { tableIssueParam } from '../config/issues.js';
import { getAt, isTable, type TomlTree } from '../config/key-path.js';
import { hacSchema, vmNameProblem } from '../config/schema.js';
import { toVmSpec } from '../config/spec.js';
import { hacTreeFromSpec, specMessage } from '../config/spec-tree.js';
import { mayHoldSecrets } from '../config/secret-paths.js';
import { plainValue } from '../config/toml-values.js';
import { SECRET_SHOWN_AS } from '../core/metadata.js';
import { admitBridge, admitHostPath, anyHostPath, type HostPathPolicy } from './auth/host-paths.js';

/**
 * The value a problem shows: none for a rule about a whole table (the table may be large, or hold
 * secrets), `<secret>` for a secret, else the value as sent.
 */
function shownValue(tree: TomlTree, issue: z.core.$ZodIssue): unknown {
  if (issue.code === 'custom' && issue.params?.[tableIssueParam] === true) return undefined;
  const value = getAt(tree, issue.path as PropertyKey[]);
  return mayHoldSecrets(issue.path, value) ? SECRET_SHOWN_AS : value;
}

/** Where the spec names host files: the file keys, and each hypervisor's `binary`. */
function hostPathKeys(tree: unknown): { segments: string[]; kind: 'file' | 'program' }[] {
  const keys: { segments: string[]; kind: 'file' | 'program' }[] = requiredFileKeys.map((k) => ({ segments: [...k], kind: 'file' }));
  const hypervisor = getAt(tree, ['hypervisor']);
  for (const [name, settings] of Object.entries(isTable(hypervisor) ? hypervisor : {})) {
    if (isTable(settings) && typeof settings['binary'] === 'string') keys.push({ segments: ['hypervisor', name, 'binary'], kind: 'program' });
  }
  return keys;
}

/**
 * Applies the caller's host-path policy to the tree before anything looks at the files: a path
 * it refuses fails the whole spec with PermissionDeniedError (403), and an admitted one is
 * replaced by its resolved form, which is what the VM then uses.
 */
function admitHostPaths(tree: unknown, policy: HostPathPolicy, specPathOf: (segments: readonly (string | number)[]) => string): void {
  if (policy.kind === 'any') return;
  const denied: ValidationIssue[] = [];
  for (const { segments, kind } of hostPathKeys(tree)) {
    const value = getAt(tree, segments);
    if (typeof value !== 'string' || value === '') continue;
    const admission = admitHostPath(policy, value, kind);
    if ('denied' in admission) denied.push({ path: specPathOf(segments), message: admission.denied, value });
    else (getAt(tree, segments.slice(0, -1)) as Record<string, unknown>)[segments.at(-1)!] = admission.path;
  }
  const network = getAt(tree, ['network']);
  const bridge = isTable(network) && network['mode'] === 'bridge' ? network['bridge'] : undefined;
  if (typeof bridge === 'string') {
    const refusal = admitBridge(policy, bridge);
    if (refusal) denied.push({ path: specPathOf(['network', 'bridge']), message: refusal.denied, value: bridge });
  }
  if (denied.length > 0) {
    const what = denied.every((d) => d.value === bridge && d.path === specPathOf(['network', 'bridge'])) ? 'host bridge' : 'host path';
    throw new PermissionDeniedError(`${what} refused: ${denied.map((d) => `${d.path} = ${JSON.stringify(d.value)}: ${d.message}`).join('; ')}`, denied);
  }
}

/**
 * The hac.toml schema for a host of `hostCpus` CPUs, built once: building it costs more than a
 * create's own work, and a schema is immutable, so every request can share it.
 */
const schemas = new Map<number, ReturnType<typeof hacSchema>>();
function schemaFor(hostCpus: number): ReturnType<typeof hacSchema> {
  let schema = schemas.get(hostCpus);
  if (!schema) schemas.set(hostCpus, (schema = hacSchema({ hostCpus })));
  return schema;
}

/**
 * Returns a normalised VmSpec or throws InvalidArgumentError listing every problem; a host path
 * that `hostPaths` does not allow throws PermissionDeniedError first.
 */
export function validateVmSpec(input: unknown, hostCpus: number, hostPaths: HostPathPolicy = anyHostPath): VmSpec {
  const { tree, problems, specPathOf } = hacTreeFromSpec(input);
  admitHostPaths(tree, hostPaths, specPathOf);
  const details: ValidationIssue[] = problems.map((p) => ({ ...p }));
  const seen = new Set(details.map((d) => d.path));
  const add = (path: string, message: string, value: unknown): void => {
    if (seen.has(path)) return; // one problem per field: further ones say the same
    seen.add(path);
    details.push({ path, message, ...(value === undefined ? {} : { value: plainValue(value) }) });
  };

  const result = schemaFor(hostCpus).safeParse(tree);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') for (const key of issue.keys) add(specPathOf([...issue.path.map(String), key]), 'unknown field', undefined);
      else add(specPathOf(issue.path.map((s) => (typeof s === 'number' ? s : String(s)))), specMessage(issue.message), shownValue(tree, issue));
    }
  }
  for (const segments of requiredFileKeys) {
    const value = getAt(tree, segments);
    if (typeof value !== 'string' || value === '') continue;
    const problem = isAbsolute(value) ? fileProblem(checkFile(value, fileKindOf(segments)), "on the daemon's host") : "must be an absolute path on the daemon's host";
    if (problem) add(specPathOf(segments), problem, value);
  }
  const hypervisor = getAt(tree, ['hypervisor']);
  for (const [name, settings] of Object.entries(isTable(hypervisor) ? hypervisor : {})) {
    const binary = isTable(settings) ? settings['binary'] : undefined;
    if (typeof binary === 'string' && binary.includes('/') && !isAbsolute(binary)) add(specPathOf(['hypervisor', name, 'binary']), "must be a program name or an absolute path on the daemon's host", binary);
  }

  if (details.length > 0 || !result.success) {
    const lines = details.map((d) => `${d.path}${d.value === undefined ? '' : ` = ${JSON.stringify(d.value)}`}: ${d.message}`);
    throw new InvalidArgumentError(`invalid VM spec: ${lines.join('; ')}`, details);
  }
  return toVmSpec(result.data, (_key, value) => value, '/');
}

/** A VM name given outside a spec (a restore's new name): the same rule as `[spacecore] name`. */
export function validateVmName(name: unknown): string {
  const problem = typeof name === 'string' ? vmNameProblem(name) : 'must be a string';
  if (problem) throw new InvalidArgumentError(`name = ${JSON.stringify(name)}: ${problem}`, [{ path: 'name', message: problem, value: name }]);
  return name as string;
}
