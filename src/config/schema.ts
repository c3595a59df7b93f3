/**
 * The hac.toml format as one zod schema: the single source for validation, defaults and the
 * editor JSON Schema. Each field's error text says what is allowed; the error formatter adds
 * where, which key and which value, so messages stay uniform.
 */
import * as z from 'zod';
import { DEFAULT_DISK_SIZE_MIB, providerNames } from '../core/vm.js';
import { providerSettings } from '../providers/catalog.js';
import { tableIssueParam } from './issues.js';
import { getAt, isTable } from './key-path.js';
import { metadataRules, metadataSchema } from './metadata-schema.js';

export const providerChoices = [...providerNames, 'auto'] as const;
export const accelModes = ['auto', 'kvm', 'tcg'] as const;
export const maxMemoryMib = 1_048_576;
export const minMemoryMib = 64;
/** `hardware.disk_size` bounds (MiB): a filesystem needs a few MiB of its own; 16 TiB is ext4's limit with 4 KiB blocks. */
export const minDiskSizeMib = 64;
export const maxDiskSizeMib = 16 * 1024 * 1024;
/** Smallest `workload.memory_limit` (MiB): below this a process cannot even start. */
export const minWorkloadMemoryMib = 4;
/** Largest uid or gid (2^32 - 2; 2^32 - 1 means "no id" to the kernel). */
export const maxId = 4_294_967_294;

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


/**
 * A table that may be left out: a missing table is validated as an empty one, so its required
 * keys are reported as missing (zod's plain `.default` would skip validation altogether).
 */
function table<T extends z.ZodObject>(schema: T) {
  return schema.prefault({} as z.input<T>);
}

const vmName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** VM ids are hex; a name of hex digits only could stand for another VM's id prefix. */
const idLike = /^[0-9a-f]+$/;
const idLikeError = 'must not be hex digits only (0-9, a-f): it would read as a VM id; add another character, e.g. a dash';
const nameError = "must be 1-63 characters of letters, digits, '_', '.' and '-', starting with a letter or digit";
/** Why `name` cannot be a VM name, or undefined when it can (the rule of [spacecore] name). */
export function vmNameProblem(name: string): string | undefined {
  if (name.length > 63 || !vmName.test(name)) return nameError;
  return idLike.test(name) ? idLikeError : undefined;
}
const interfaceError = "must be a host interface name: 1-15 characters, no '/' or whitespace";
const envError = "must be a \"KEY=VALUE\" string, KEY of letters, digits and '_', not starting with a digit";
const nulError = 'must be a string without NUL characters';
const userError = `must be a numeric "uid" or "uid:gid" (each from 0 to ${maxId})`;
const memoryLimitError = `must be an integer from ${minWorkloadMemoryMib} to hardware.memory (MiB)`;

/** An array of strings that can become process arguments: exec cannot pass NUL characters. */
function argv(description: string) {
  return z
    .array(z.string({ error: 'must be a string' }).regex(/^[^\0]*$/, { error: nulError }), {
      error: 'must be an array of strings',
    })
    .optional()
    .describe(description);
}

/** `uid` / `uid:gid` with each id in range (the shape is checked by a regex, which editors see too). */
function idsInRange(value: string): boolean {
  return value.split(':').every((id) => Number(id) <= maxId);
}

/** A NIC's own address: neither multicast/broadcast (lowest bit of the first byte) nor all zeros. */
export function isUnicastMac(mac: string): boolean {
  const bytes = mac.split(':').map((b) => Number.parseInt(b, 16));
  return (bytes[0]! & 1) === 0 && bytes.some((b) => b !== 0);
}

/** Address ranges a VM subnet must not overlap: the host would route them elsewhere, or guests could pose as them. */
const reservedRanges: readonly { base: number; prefix: number; what: string }[] = [
  { base: 0x00000000, prefix: 8, what: '0.0.0.0/8 ("this network")' },
  { base: 0x7f000000, prefix: 8, what: "127.0.0.0/8 (the host's loopback)" },
  { base: 0xa9fe0000, prefix: 16, what: '169.254.0.0/16 (link-local; the metadata address lives there)' },
  { base: 0xe0000000, prefix: 4, what: '224.0.0.0/4 (multicast)' },
  { base: 0xf0000000, prefix: 4, what: '240.0.0.0/4 (reserved and broadcast)' },
];

/** Why a syntactically valid IPv4 CIDR cannot be a VM subnet, or undefined when it can. */
export function subnetProblem(cidr: string): string | undefined {
  const [address, prefixText] = cidr.split('/');
  const octets = address!.split('.').map(Number);
  if (octets.some((o) => o > 255)) return 'must be an IPv4 CIDR like "10.88.0.0/16" (each number at most 255)';
  const prefix = Number(prefixText);
  if (prefix > 30) return 'must be /30 or larger: the bridge needs a gateway address and VMs at least one more';
  const start = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const end = (start | (prefix === 0 ? 0xffffffff : ~(0xffffffff << (32 - prefix)))) >>> 0;
  for (const r of reservedRanges) {
    const rEnd = (r.base | ~(0xffffffff << (32 - r.prefix))) >>> 0;
    if (start <= rEnd && end >= r.base) return `must not overlap ${r.what}`;
  }
  return undefined;
}

/** Builds the schema of a whole hac.toml file (parsed TOML, keys as written in the file). */
export function hacSchema(options: HacSchemaOptions = {}) {
  const cpus = options.hostCpus === undefined ? '' : " (this host's CPUs)";
  const spacecore = z.strictObject(
    {
      name: z
        .string({ error: nameError })
        .max(63, { error: nameError })
        .regex(vmName, { error: nameError })
        .refine((name) => !idLike.test(name), { error: idLikeError })
        .describe('VM name'),
      description: z.string({ error: 'must be a string' }).default('').describe('free text shown in listings'),
    },
    tableError,
  );
  const hardware = z.strictObject(
    {
      cores: integer(1, options.hostCpus, cpus).default(1).describe('virtual CPUs'),
      memory: integer(minMemoryMib, maxMemoryMib, ' (MiB)').default(256).describe('guest memory in MiB'),
      disk_size: integer(minDiskSizeMib, maxDiskSizeMib, ' (MiB)')
        .default(DEFAULT_DISK_SIZE_MIB)
        .describe("most the VM can write onto its image disk, in MiB: the room on the workload's root filesystem (sparse: host space is used only as the guest writes)"),
      kernel: path('kernel image to boot (default: the kernel installed by set-up)'),
      initrd: path('initial ramdisk (default: the one installed by set-up)'),
      kernel_args: z.string({ error: 'must be a string' }).default('').describe('extra kernel command-line arguments'),
      drive: text('must be a non-empty string (a path)')
        .optional()
        .describe(
          "guest root disk image (raw ext4) to boot; relative paths are resolved against the hac.toml's folder. " +
            'Set drive, ref or both: with drive the VM boots this disk as its root, and ref, if also set, is attached as an extra disk',
        ),
      drive_readonly: z.boolean({ error: 'must be true or false' }).default(false).describe('attach the root disk read-only'),
      ref: text('must be a non-empty string (an OCI image reference)')
        .optional()
        .describe(
          'OCI image reference, e.g. "docker.io/library/alpine:latest". Without drive, the VM boots ' +
            "Hypercore's guest system image and runs this image as its workload under the in-guest agent (see [workload]); " +
            'with drive, the image is attached as an extra disk',
        ),
      interface: z
        .string({ error: interfaceError })
        .regex(/^[^\s/]{1,15}$/, { error: interfaceError })
        .optional()
        .describe('host network interface for outbound traffic'),
    },
    tableError,
  );
  const workload = z.strictObject(
    {
      entrypoint: argv("replaces the image's Entrypoint; [] clears it"),
      command: argv("replaces the image's Cmd (the arguments after the entrypoint); [] clears it"),
      env: z
        .array(z.string({ error: envError }).regex(/^[A-Za-z_][A-Za-z0-9_]*=/, { error: envError }).regex(/^[^\0]*$/, { error: nulError }), { error: 'must be an array of "KEY=VALUE" strings' })
        .optional()
        .describe('"KEY=VALUE" environment entries added to the image\'s Env (a KEY given here wins)'),
      workdir: z
        .string({ error: "must be an absolute path (starting with '/')" })
        .regex(/^\//, { error: "must be an absolute path (starting with '/')" })
        .regex(/^[^\0]*$/, { error: nulError })
        .optional()
        .describe("working directory in the image's filesystem; replaces the image's WorkingDir"),
      user: z
        .string({ error: userError })
        .regex(/^\d{1,10}(:\d{1,10})?$/, { error: userError })
        .refine(idsInRange, { error: userError })
        .optional().describe('numeric "uid" or "uid:gid" to run as; replaces the image\'s User'),
      tty: z.boolean({ error: 'must be true or false' }).default(false).describe('give the process a terminal (a pty) instead of pipes'),
      pids_limit: integer(1, undefined, '').optional().describe('most processes and threads the workload may have (its pids.max)'),
      memory_limit: z
        .int({ error: memoryLimitError })
        .min(minWorkloadMemoryMib, { error: memoryLimitError })
        .optional()
        .describe(`memory limit of the workload in MiB, from ${minWorkloadMemoryMib} to hardware.memory (unset: limited only by the VM's memory)`),
    },
    tableError,
  );
  const ipv4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
  const portSpec = /^((\d{1,3}\.){3}\d{1,3}:)?\d{1,5}:\d{1,5}(\/(tcp|udp))?$/;
  const network = z.strictObject(
    {
      mode: z
        .enum(['nat', 'bridge', 'none'], { error: oneOf(['nat', 'bridge', 'none']) })
        .default('nat')
        .describe('"nat": a TAP on a Hypercore-managed bridge with NAT out of the host; "bridge": a TAP on an existing host bridge (set bridge, ip, subnet); "none": no network device'),
      bridge: z
        .string({ error: 'must be an interface name' })
        .regex(/^[^\s/]{1,15}$/, { error: 'must be an interface name (1-15 characters, no "/" or spaces)' })
        .optional()
        .describe('with mode = "bridge": the existing host bridge the TAP joins'),
      gateway: z
        .string({ error: 'must be an IPv4 address' })
        .regex(ipv4, { error: 'must be an IPv4 address' })
        .optional()
        .describe('with mode = "bridge": the default gateway of that network (nat mode uses the subnet\'s first address)'),
      subnet: z
        .string({ error: 'must be an IPv4 CIDR like "10.88.0.0/16"' })
        .regex(/^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$/, { error: 'must be an IPv4 CIDR like "10.88.0.0/16"' })
        .superRefine((value, ctx) => {
          const problem = subnetProblem(value);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .default('10.88.0.0/16')
        .describe('subnet of the managed bridge; its first address is the gateway'),
      ip: z.string({ error: 'must be an IPv4 address' }).regex(ipv4, { error: 'must be an IPv4 address' }).optional().describe('static guest address inside subnet (default: the next free one)'),
      mac: z
        .string({ error: 'must be a MAC address like "02:00:00:00:00:01"' })
        .regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, { error: 'must be a MAC address like "02:00:00:00:00:01"' })
        .refine(isUnicastMac, { error: 'must be a unicast MAC address: the lowest bit of its first byte is 0 (a set bit means multicast; ff:ff:ff:ff:ff:ff is broadcast), and not 00:00:00:00:00:00' })
        .optional()
        .describe('guest MAC address (default: derived from the VM id, locally administered)'),
      dns: z
        .array(z.string({ error: 'must be an IPv4 address' }).regex(ipv4, { error: 'must be an IPv4 address' }), { error: 'must be an array of IPv4 addresses' })
        .default([])
        .describe("name servers written to the guest's resolv.conf"),
      ports: z
        .array(z.string({ error: 'must be "[host_ip:]host_port:guest_port[/tcp|udp]"' }).regex(portSpec, { error: 'must be "[host_ip:]host_port:guest_port[/tcp|udp]"' }), {
          error: 'must be an array of port specs like "8080:80"',
        })
        .default([])
        .describe('port forwards from the host to the guest, e.g. ["8080:80", "127.0.0.1:5353:53/udp"]'),
      isolate: z
        .boolean({ error: 'must be true or false' })
        .default(true)
        .describe('mode = "nat": false lets the VM reach the other VMs of its subnet that set it false too'),
      host_ports: z
        .array(z.string({ error: 'must be "port[/tcp|udp]"' }).regex(/^\d{1,5}(\/(tcp|udp))?$/, { error: 'must be "port[/tcp|udp]"' }), { error: 'must be an array of ports like "8080" or "53/udp"' })
        .default([])
        .describe('mode = "nat": ports on the gateway address (the host) the guest may reach besides DNS, e.g. ["3128", "5000/udp"]'),
    },
    tableError,
  );
  const hypervisor = z.strictObject(
    {
      provider: z
        .enum(providerChoices, { error: oneOf(providerChoices) })
        .default('auto')
        .describe('which hypervisor runs the VM ("auto" picks an available one)'),
      // Each provider's own table, validated by the schema the provider declares.
      ...Object.fromEntries(providerSettings.map((p) => [p.table, table(p.file).describe(p.description)])),
    },
    tableError,
  );
  return z
    .strictObject(
      {
        spacecore: table(spacecore).describe('identity of the VM'),
        hardware: table(hardware.meta({ anyOf: [{ required: ['drive'] }, { required: ['ref'] }, { required: ['kernel'] }] })).describe(
          'virtual hardware of the VM; it needs drive (a disk to boot), ref (an OCI image to run), both, or only kernel (and initrd: a kernel-only VM, with no disk and no agent)',
        ),
        workload: workload
          .optional()
          .describe("how ref's image runs as the VM's workload (only with hardware.ref): its process, environment and limits"),
        hypervisor: table(hypervisor).describe('hypervisor choice and per-hypervisor settings'),
        network: table(network).describe('networking of the VM'),
        metadata: metadataSchema,
      },
      tableError,
    )
    // Rules across keys; they run even when other keys are invalid, so one report lists everything.
    .superRefine(crossKeyRules, { when: () => true })
    .meta({
      title: 'hac.toml',
      description: 'Hypercore "hardware as code": one microVM per file',
      dependentSchemas: { workload: { required: ['hardware'], properties: { hardware: { required: ['ref'] } } } },
    });
}

/**
 * The rules zod's per-key checks cannot express. `value` is whatever parsing produced, valid or
 * not (defaults applied to valid tables), so every step checks what it relies on.
 */
function crossKeyRules(value: unknown, ctx: z.RefinementCtx): void {
  networkRules(getAt(value, ['network']), ctx);
  metadataRules(value, ctx);
  const hardware = getAt(value, ['hardware']);
  if (!isTable(hardware)) return;
  const table = { [tableIssueParam]: true };
  const has = (key: string): boolean => hardware[key] !== undefined;
  if (!has('drive') && !has('ref') && !has('kernel')) {
    ctx.addIssue({
      code: 'custom',
      path: ['hardware'],
      params: table,
      message: 'missing required key "hardware.drive", "hardware.ref" or "hardware.kernel": a disk to boot, an OCI image to run, or a kernel (and initrd) to boot alone',
    });
  }
  const workload = getAt(value, ['workload']);
  if (!isTable(workload)) return;
  if (!has('ref')) {
    ctx.addIssue({
      code: 'custom',
      path: ['workload'],
      params: table,
      message: "workload needs hardware.ref: [workload] says how ref's image runs",
    });
  }
  const memory = hardware.memory;
  const limit = workload.memory_limit;
  const valid = (n: unknown, min: number, max: number): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= min && n <= max;
  // Only when both are valid on their own; otherwise their own errors say what is wrong.
  if (valid(memory, minMemoryMib, maxMemoryMib) && valid(limit, minWorkloadMemoryMib, Number.MAX_SAFE_INTEGER) && limit > memory) {
    ctx.addIssue({
      code: 'custom',
      path: ['workload', 'memory_limit'],
      message: `must be an integer from ${minWorkloadMemoryMib} to ${memory} (MiB; hardware.memory)`,
    });
  }
}

/** mode = "bridge" joins a network Hypercore does not manage: it needs the bridge and a static address, and has no NAT to forward ports with. */
function networkRules(network: unknown, ctx: z.RefinementCtx): void {
  if (!isTable(network) || network.mode !== 'bridge') return;
  const missing = ['bridge', 'ip'].filter((key) => network[key] === undefined).map((key) => `"network.${key}"`);
  if (missing.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['network'],
      params: { [tableIssueParam]: true },
      message: `missing required key${missing.length > 1 ? 's' : ''} ${missing.join(' and ')}: mode = "bridge" joins an existing host bridge with a static address`,
    });
  }
  if (Array.isArray(network.ports) && network.ports.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['network', 'ports'], message: 'port forwards need mode = "nat" (in bridge mode the guest is directly on that network)' });
  }
  if (Array.isArray(network.host_ports) && network.host_ports.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['network', 'host_ports'], message: 'host_ports need mode = "nat" (in bridge mode Hypercore does not filter that network)' });
  }
}

/** A validated hac.toml, keys as written in the file, defaults applied. */
export type HacFile = z.output<ReturnType<typeof hacSchema>>;
