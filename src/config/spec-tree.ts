/**
 * A VmSpec sent over the API, turned back into the hac.toml tree it stands for, so that the one
 * hac.toml schema judges both: an address, a user id, a memory limit or a port forward is valid
 * over the API exactly when it is valid in a file. The mapping is the inverse of `toVmSpec`;
 * problems are reported under the spec's own field names (`spec.memoryMib`), not the file's.
 */
import { formatKeyPath, getAt, isTable, type KeySegment, type TomlTree } from './key-path.js';

/** One field of the wire spec and where it lives in a hac.toml. */
interface Field {
  /** Path in the hac.toml tree. */
  hac: readonly string[];
  /** Fields of a nested object, for tables (`workload`, `network`); absent for leaf values. */
  fields?: Readonly<Record<string, Field>>;
  /** Nested keys are the file's snake_case names written in camelCase (per-hypervisor tables). */
  camelCaseTable?: boolean;
  /** A table of the user's own keys (metadata values): its keys are data, named as given. */
  userKeys?: boolean;
}

const leaf = (...hac: string[]): Field => ({ hac });

/** Every field a wire VmSpec may have. */
const SPEC_FIELDS: Readonly<Record<string, Field>> = {
  name: leaf('spacecore', 'name'),
  description: leaf('spacecore', 'description'),
  cores: leaf('hardware', 'cores'),
  memoryMib: leaf('hardware', 'memory'),
  diskSizeMib: leaf('hardware', 'disk_size'),
  kernel: leaf('hardware', 'kernel'),
  initrd: leaf('hardware', 'initrd'),
  kernelArgs: leaf('hardware', 'kernel_args'),
  drive: leaf('hardware', 'drive'),
  driveReadOnly: leaf('hardware', 'drive_readonly'),
  image: leaf('hardware', 'ref'),
  hostInterface: leaf('hardware', 'interface'),
  provider: leaf('hypervisor', 'provider'),
  workload: {
    hac: ['workload'],
    fields: {
      entrypoint: leaf('workload', 'entrypoint'),
      cmd: leaf('workload', 'command'),
      env: leaf('workload', 'env'),
      workdir: leaf('workload', 'workdir'),
      user: leaf('workload', 'user'),
      tty: leaf('workload', 'tty'),
      pidsLimit: leaf('workload', 'pids_limit'),
      memoryLimitMib: leaf('workload', 'memory_limit'),
    },
  },
  network: {
    hac: ['network'],
    fields: {
      ...Object.fromEntries(['mode', 'bridge', 'gateway', 'subnet', 'ip', 'mac', 'dns', 'ports', 'isolate'].map((k) => [k, leaf('network', k)])),
      hostPorts: leaf('network', 'host_ports'),
    },
  },
  hypervisor: { hac: ['hypervisor'], camelCaseTable: true },
  metadata: {
    hac: ['metadata'],
    fields: {
      values: { hac: ['metadata', 'values'], userKeys: true },
      secrets: { hac: ['metadata', 'secrets'], userKeys: true },
      sshAuthorizedKeys: leaf('metadata', 'ssh_authorized_keys'),
      files: leaf('metadata', 'files'),
    },
  },
};

/**
 * Fields answers carry but requests may not set, and why. A pod VM is made by hypercored for a
 * containerd sandbox (its TAP, disks slots and events belong to containerd's pod); a client that
 * sends one back, e.g. by re-creating a VM from `GET /v1/vms/{id}`, is told so, not "unknown field".
 */
const ANSWER_ONLY: Readonly<Record<string, string>> = {
  pod: 'pod VMs are made through containerd (the io.containerd.hypercore.v2 runtime), not by a create request',
};

export interface SpecProblem {
  /** The spec field, e.g. `spec.workload.cmd`. */
  path: string;
  message: string;
  value?: unknown;
}

export interface SpecTree {
  /** The hac.toml tree the spec stands for (absent network = `mode = "none"`). */
  tree: TomlTree;
  /** Problems found while mapping: unknown fields, objects that are not objects. */
  problems: SpecProblem[];
  /** The spec field name for a path in the tree, for reporting the schema's findings. */
  specPathOf(hacPath: readonly KeySegment[]): string;
}

const snakeCase = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camelCase = (key: string): string => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function setAt(tree: TomlTree, path: readonly string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    if (!isTable(node[key])) node[key] = Object.create(null) as TomlTree;
    node = node[key] as TomlTree;
  }
  node[path.at(-1)!] = value;
}

/** Maps a wire spec (JSON) to its hac.toml tree. Never throws: everything wrong is a problem. */
export function hacTreeFromSpec(input: unknown): SpecTree {
  const tree: TomlTree = Object.create(null);
  const problems: SpecProblem[] = [];
  /** hac path (formatted) → spec path, for everything the input set. */
  const names = new Map<string, string>([
    ['spacecore', 'spec'],
    ['hardware', 'spec'],
    ['hypervisor', 'spec.hypervisor'],
    ['network', 'spec.network'],
    ['workload', 'spec.workload'],
    ['metadata', 'spec.metadata'],
  ]);
  const walk = (value: unknown, fields: Readonly<Record<string, Field>>, specPath: string): void => {
    if (!isTable(value)) {
      problems.push({ path: specPath, message: 'must be an object', value });
      return;
    }
    for (const [key, item] of Object.entries(value)) {
      const field = fields[key];
      const path = `${specPath}.${key}`;
      const answerOnly = fields === SPEC_FIELDS ? ANSWER_ONLY[key] : undefined;
      if (answerOnly !== undefined) {
        if (item !== undefined && item !== null) problems.push({ path, message: answerOnly });
        continue;
      }
      if (!field) {
        problems.push({ path, message: 'unknown field' });
        continue;
      }
      if (item === undefined || item === null) continue;
      names.set(formatKeyPath(field.hac), path);
      if (field.fields) {
        setAt(tree, field.hac, Object.create(null));
        walk(item, field.fields, path);
      } else if (field.camelCaseTable) {
        const copy = copyCamelCaseTable(item, path, field.hac);
        const existing = getAt(tree, field.hac);
        // `provider` already put `hypervisor.provider` there: merge, do not replace.
        setAt(tree, field.hac, isTable(existing) && isTable(copy) ? Object.assign(existing, copy) : copy);
      } else {
        setAt(tree, field.hac, Array.isArray(item) ? [...(item as unknown[])] : item);
        if (field.userKeys && isTable(item)) for (const key of Object.keys(item)) names.set(formatKeyPath([...field.hac, key]), `${path}.${key}`);
      }
    }
  };
  /** `hypervisor.cloudHypervisor.binary` → `hypervisor.cloud_hypervisor.binary`, two levels deep. */
  const copyCamelCaseTable = (value: unknown, specPath: string, hacPath: readonly string[]): unknown => {
    if (!isTable(value)) return value;
    const out: TomlTree = Object.create(null);
    for (const [key, item] of Object.entries(value)) {
      const hacKey = snakeCase(key);
      names.set(formatKeyPath([...hacPath, hacKey]), `${specPath}.${key}`);
      out[hacKey] = isTable(item) && hacPath.length < 2 ? copyCamelCaseTable(item, `${specPath}.${key}`, [...hacPath, hacKey]) : item;
    }
    return out;
  };
  walk(isTable(input) ? input : input === undefined || input === null ? {} : input, SPEC_FIELDS, 'spec');
  if (!isTable(tree['network'])) setAt(tree, ['network', 'mode'], 'none');
  // Every table the file format knows, so required keys inside them are reported as missing.
  for (const table of ['spacecore', 'hardware']) if (!isTable(tree[table])) tree[table] = Object.create(null);

  const specPathOf = (hacPath: readonly KeySegment[]): string => {
    for (let n = hacPath.length; n > 0; n--) {
      const known = names.get(formatKeyPath(hacPath.slice(0, n)));
      if (known === undefined) continue;
      const rest = hacPath.slice(n).map((s) => (typeof s === 'number' ? `[${s}]` : `.${camelCase(s)}`)).join('');
      return `${known}${rest}`;
    }
    // A key the spec did not set (a default's own problem, or a missing required key).
    const fieldName = Object.entries(SPEC_FIELDS).find(([, f]) => formatKeyPath(f.hac) === formatKeyPath(hacPath.slice(0, 2)))?.[0];
    return fieldName ? `spec.${fieldName}` : `spec.${hacPath.map(String).join('.')}`;
  };
  return { tree, problems, specPathOf };
}

/** Spec field names for the hac.toml keys a schema message mentions (`hardware.ref` → `image`). */
const messageNames: readonly [RegExp, string][] = Object.entries(SPEC_FIELDS)
  .flatMap(([name, field]) => [[name, field] as const, ...Object.entries(field.fields ?? {}).map(([sub, f]) => [`${name}.${sub}`, f] as const)])
  .filter(([, field]) => !field.fields && !field.camelCaseTable)
  .map(([name, field]) => [new RegExp(`\\b${field.hac.join('\\.')}\\b`, 'g'), name] as [RegExp, string])
  .sort((a, b) => b[0].source.length - a[0].source.length);

/** A schema message in the spec's words: file keys become the spec's field names. */
export function specMessage(message: string): string {
  let out = message;
  for (const [pattern, name] of messageNames) out = out.replace(pattern, name);
  return out;
}
