/**
 * Validation of a VmSpec arriving over the API (gRPC or HTTP), once, at the edge. The hac.toml
 * parser applies the same rules (core/spec-rules.ts) with file positions; this checks wire input.
 */
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { InvalidArgumentError, type ValidationIssue } from '../core/errors.js';
import { specRules } from '../core/spec-rules.js';
import type { VmSpec } from '../core/vm.js';

const absoluteFile = (what: string) =>
  z
    .string()
    .refine((p) => isAbsolute(p), { message: `${what} must be an absolute path on the daemon's host` })
    .refine((p) => !isAbsolute(p) || existsSync(p), { message: `${what} not found on the daemon's host` });

const optionalString = z.string().min(1).optional();

function specSchema(hostCpus: number) {
  return z
    .object({
      name: z.string().regex(specRules.namePattern, { message: `name must be ${specRules.nameHint}` }),
      description: z.string().default(''),
      cores: z.number().int().min(specRules.minCores).max(hostCpus, { message: `must be at most ${hostCpus} (this host's CPUs)` }).default(specRules.defaultCores),
      memoryMib: z.number().int().min(specRules.minMemoryMib).max(specRules.maxMemoryMib).default(specRules.defaultMemoryMib),
      diskSizeMib: z.number().int().min(specRules.minDiskSizeMib).max(specRules.maxDiskSizeMib).optional(),
      kernel: absoluteFile('kernel').optional(),
      initrd: absoluteFile('initrd').optional(),
      kernelArgs: z.string().default(''),
      drive: absoluteFile('drive').optional(),
      driveReadOnly: z.boolean().default(false),
      image: optionalString,
      hostInterface: z.string().regex(specRules.interfaceNamePattern).optional(),
      workload: z
        .object({
          entrypoint: z.array(z.string()).optional(),
          cmd: z.array(z.string()).optional(),
          env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=/, { message: 'must be KEY=VALUE' })).optional(),
          workdir: z.string().startsWith('/').optional(),
          user: z.string().regex(/^\d+(:\d+)?$/, { message: 'must be uid or uid:gid (numbers)' }).optional(),
          tty: z.boolean().default(false),
          pidsLimit: z.number().int().min(1).optional(),
          memoryLimitMib: z.number().int().min(4).optional(),
        })
        .strict()
        .optional(),
      network: z
        .object({
          mode: z.enum(['nat', 'bridge']),
          bridge: z.string().regex(/^[^\s/]{1,15}$/).optional(),
          gateway: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, { message: 'must be an IPv4 address' }).optional(),
          subnet: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$/, { message: 'must be an IPv4 CIDR' }).default('10.88.0.0/16'),
          ip: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, { message: 'must be an IPv4 address' }).optional(),
          mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, { message: 'must be a lower-case MAC address' }).optional(),
          dns: z.array(z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, { message: 'must be an IPv4 address' })).default([]),
          ports: z.array(z.string()).default([]),
        })
        .strict()
        .optional(),
      provider: z.enum(['qemu', 'firecracker', 'cloud-hypervisor', 'auto']).default('auto'),
      hypervisor: z
        .object({
          qemu: z.object({ binary: optionalString, accel: z.enum(['auto', 'kvm', 'tcg']).default('auto') }).strict().default({ accel: 'auto' }),
          firecracker: z.object({ binary: optionalString }).strict().default({}),
          cloudHypervisor: z.object({ binary: optionalString }).strict().default({}),
        })
        .strict()
        .default({ qemu: { accel: 'auto' }, firecracker: {}, cloudHypervisor: {} }),
    })
    .strict()
    .refine((spec) => spec.drive !== undefined || spec.image !== undefined, { message: 'set drive (a root disk to boot), image (an OCI image to run), or both', path: ['drive'] })
    .refine((spec) => spec.workload === undefined || spec.image !== undefined, { message: 'workload needs image (the agent runs it; with a drive it is ignored, as in hac.toml)', path: ['workload'] });
}

/** Returns a normalised VmSpec or throws InvalidArgumentError listing every problem. */
export function validateVmSpec(input: unknown, hostCpus: number): VmSpec {
  const result = specSchema(hostCpus).safeParse(input ?? {});
  if (result.success) return result.data as VmSpec;
  const details: ValidationIssue[] = result.error.issues.map((issue) => {
    const path = ['spec', ...issue.path.map(String)].join('.');
    let value: unknown = input;
    for (const key of issue.path) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[String(key)] : undefined;
    return { path, message: issue.message, value };
  });
  const lines = details.map((d) => `${d.path}${d.value === undefined ? '' : ` = ${JSON.stringify(d.value)}`}: ${d.message}`);
  throw new InvalidArgumentError(`invalid VM spec: ${lines.join('; ')}`, details);
}
