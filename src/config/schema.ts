/**
 * The hac.toml format as one zod schema: the single source for validation, defaults and the
 * editor JSON Schema. Each field's error text says what is allowed; the error formatter adds
 * where, which key and which value, so messages stay uniform.
 */
import * as z from 'zod';
import { providerNames } from '../core/vm.js';

export const providerChoices = [...providerNames, 'auto'] as const;
export const accelModes = ['auto', 'kvm', 'tcg'] as const;
export const maxMemoryMib = 1_048_576;
export const minMemoryMib = 64;

/** Options that make the schema host-specific; without them it describes the file format only. */
export interface HacSchemaOptions {
  /** CPUs of this host: the upper bound of `hardware.cores`. */
  hostCpus?: number;
}

const tableError = { error: 'must be a table' };

function oneOf(values: readonly string[]): string {
  return `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
}

function integer(min: number, max: number | undefined, what: string) {
  const error = max === undefined ? `must be an integer of at least ${min}${what}` : `must be an integer from ${min} to ${max}${what}`;
  const schema = z.int({ error }).min(min, { error });
  return max === undefined ? schema : schema.max(max, { error });
}

function text(error: string) {
  return z.string({ error }).min(1, { error });
}

function path(what: string) {
  return text('must be a non-empty string (a path)').optional().describe(`${what}; relative paths are resolved against the hac.toml's folder`);
}

function binary(name: string) {
  return text('must be a non-empty string (a program name or path)')
    .optional()
    .describe(`the ${name} program: a name looked up on PATH, or a path (relative to the hac.toml's folder if it contains a '/')`);
}

/**
 * A table that may be left out: a missing table is validated as an empty one, so its required
 * keys are reported as missing (zod's plain `.default` would skip validation altogether).
 */
function table<T extends z.ZodObject>(schema: T) {
  return schema.prefault({} as z.input<T>);
}

const vmName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const nameError = "must be 1-63 characters of letters, digits, '_', '.' and '-', starting with a letter or digit";
const interfaceError = "must be a host interface name: 1-15 characters, no '/' or whitespace";

/** Builds the schema of a whole hac.toml file (parsed TOML, keys as written in the file). */
export function hacSchema(options: HacSchemaOptions = {}) {
  const cpus = options.hostCpus === undefined ? '' : " (this host's CPUs)";
  const spacecore = z.strictObject(
    {
      name: z.string({ error: nameError }).max(63, { error: nameError }).regex(vmName, { error: nameError }).describe('VM name'),
      description: z.string({ error: 'must be a string' }).default('').describe('free text shown in listings'),
    },
    tableError,
  );
  const hardware = z.strictObject(
    {
      cores: integer(1, options.hostCpus, cpus).default(1).describe('virtual CPUs'),
      memory: integer(minMemoryMib, maxMemoryMib, ' (MiB)').default(256).describe('guest memory in MiB'),
      kernel: path('kernel image to boot (default: the kernel installed by set-up)'),
      initrd: path('initial ramdisk (default: the one installed by set-up)'),
      kernel_args: z.string({ error: 'must be a string' }).default('').describe('extra kernel command-line arguments'),
      drive: text('must be a non-empty string (a path)').describe(
        "guest root disk image (raw ext4); relative paths are resolved against the hac.toml's folder",
      ),
      drive_readonly: z.boolean({ error: 'must be true or false' }).default(false).describe('attach the root disk read-only'),
      ref: text('must be a non-empty string (an OCI image reference)').optional().describe('OCI image reference, e.g. "docker.io/library/alpine:latest"'),
      interface: z
        .string({ error: interfaceError })
        .regex(/^[^\s/]{1,15}$/, { error: interfaceError })
        .optional()
        .describe('host network interface for outbound traffic'),
    },
    tableError,
  );
  const qemu = z.strictObject(
    {
      binary: binary('QEMU'),
      accel: z
        .enum(accelModes, { error: oneOf(accelModes) })
        .default('auto')
        .describe('acceleration: KVM, TCG emulation, or "auto" (KVM when /dev/kvm is usable)'),
    },
    tableError,
  );
  const hypervisor = z.strictObject(
    {
      provider: z
        .enum(providerChoices, { error: oneOf(providerChoices) })
        .default('auto')
        .describe('which hypervisor runs the VM ("auto" picks an available one)'),
      qemu: table(qemu).describe('QEMU (microvm machine) settings'),
      firecracker: table(z.strictObject({ binary: binary('Firecracker') }, tableError)).describe('Firecracker settings'),
      cloud_hypervisor: table(z.strictObject({ binary: binary('Cloud Hypervisor') }, tableError)).describe('Cloud Hypervisor settings'),
    },
    tableError,
  );
  return z
    .strictObject(
      {
        spacecore: table(spacecore).describe('identity of the VM'),
        hardware: table(hardware).describe('virtual hardware of the VM'),
        hypervisor: table(hypervisor).describe('hypervisor choice and per-hypervisor settings'),
      },
      tableError,
    )
    .meta({ title: 'hac.toml', description: 'Hypercore "hardware as code": one microVM per file' });
}

/** A validated hac.toml, keys as written in the file, defaults applied. */
export type HacFile = z.output<ReturnType<typeof hacSchema>>;
