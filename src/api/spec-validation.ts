/**
 * Validation of a VmSpec arriving over the API (gRPC or HTTP), once, at the edge. The spec is
 * mapped back to the hac.toml tree it stands for and judged by the hac.toml schema itself, so a
 * spec is valid over the API exactly when it is valid in a file; problems are named by the
 * spec's fields (`spec.memoryMib`). On top, paths must be absolute: the API has no file folder.
 */
import { isAbsolute } from 'node:path';
import { InvalidArgumentError, type ValidationIssue } from '../core/errors.js';
import type { VmSpec } from '../core/vm.js';
import { checkFile, fileKindOf, fileProblem, requiredFileKeys } from '../config/files.js';
import { getAt, isTable } from '../config/key-path.js';
import { hacSchema, vmNameProblem } from '../config/schema.js';
import { toVmSpec } from '../config/spec.js';
import { hacTreeFromSpec, specMessage } from '../config/spec-tree.js';
import { plainValue } from '../config/toml-values.js';

/** Returns a normalised VmSpec or throws InvalidArgumentError listing every problem. */
export function validateVmSpec(input: unknown, hostCpus: number): VmSpec {
  const { tree, problems, specPathOf } = hacTreeFromSpec(input);
  const details: ValidationIssue[] = problems.map((p) => ({ ...p }));
  const seen = new Set(details.map((d) => d.path));
  const add = (path: string, message: string, value: unknown): void => {
    if (seen.has(path)) return; // one problem per field: further ones say the same
    seen.add(path);
    details.push({ path, message, ...(value === undefined ? {} : { value: plainValue(value) }) });
  };

  const result = hacSchema({ hostCpus }).safeParse(tree);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') for (const key of issue.keys) add(specPathOf([...issue.path.map(String), key]), 'unknown field', undefined);
      else add(specPathOf(issue.path.map((s) => (typeof s === 'number' ? s : String(s)))), specMessage(issue.message), getAt(tree, issue.path as PropertyKey[]));
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
