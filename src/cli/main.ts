/**
 * `hypercore`'s commands: a thin client of hypercored's API. Each command loads what it needs when
 * it runs (the hac.toml schema, table and progress rendering, WebSockets), so a command pays only
 * for its own modules: the bundle (scripts/bundle-cli.mjs) keeps each of them in its own chunk.
 */
import { Command, InvalidArgumentError as CommanderArgError } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCodes, HypercoreError, asHypercoreError } from '../core/errors.js';
import type { HacOverrides } from '../config/index.js';
import { MAX_HAC_TEXT_CHARS } from '../config/hac-text-limit.js';
import { HYPERCORE_VERSION } from '../core/version.js';
import { hostCpuCount } from '../system/host.js';
import type { HypercoreClient } from '../../sdk/src/index.js';
import { resolveEndpoint, type Endpoint, type EndpointFlags } from './endpoint.js';
import { shortId } from './ids.js';
import { registerImageCommands } from './image-commands.js';
import { registerMetadataCommands } from './metadata-commands.js';
import { registerProcessCommands } from './process-commands.js';
import { registerConsoleCommand } from './serial-console-command.js';
import { registerRemoteCommands } from './remote-commands.js';

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new CommanderArgError(`"${value}" is not an integer`);
  return n;
}

let endpoint: Endpoint | undefined;
/** The daemon the command line names (the socket, or a remote --host). */
function daemonEndpoint(program: Command): Endpoint {
  return (endpoint ??= resolveEndpoint(program.opts<EndpointFlags>(), process.env));
}

let client: HypercoreClient | undefined;
let loading: Promise<HypercoreClient> | undefined;
/** Tells the SDK's errors in the CLI's words, once the SDK is loaded. */
let translate: ((err: unknown) => unknown) | undefined;
/** The SDK's client of the daemon the command line names; loaded by the commands that call the daemon only (`--help` and `config` never load it). */
function api(program: Command): Promise<HypercoreClient> {
  return (loading ??= (async () => {
    const connected = (await import('./daemon-client.js')).connect(daemonEndpoint(program));
    translate = connected.reported;
    return (client = connected.client);
  })());
}

/** The error as the CLI tells it. */
function reported(err: unknown): unknown {
  return translate ? translate(err) : err;
}

function printError(err: unknown): void {
  const e = asHypercoreError(err);
  // Validation errors already name every problem in their message; `details` is for programs.
  process.stderr.write(`hypercore: ${e.message} [${e.code}]\n`);
}

const program = new Command('hypercore')
  .description('Hypercore: microVMs from a hac.toml')
  .version(`hypercore ${HYPERCORE_VERSION}`, '-V, --version', 'print the client version and exit (`hypercore version` also asks the daemon)')
  .option('--socket <path>', "hypercored's API socket (env HYPERCORE_SOCKET; default /run/hypercore/hypercore.sock)")
  .option('--host <url>', 'a remote hypercored, https://HOST:PORT (env HYPERCORE_HOST); instead of the socket')
  .option('--tls-dir <dir>', "with --host: ca.pem that signed the daemon's certificate, and cert.pem + key.pem to log in with (env HYPERCORE_TLS_DIR)")
  .option('--token <token>', 'with --host: a bearer token from hypercore token create (env HYPERCORE_TOKEN, which other users cannot see in ps)')
  .showHelpAfterError();

/** The hac.toml options of `spawn` and `create`: a file, and overrides of its keys. */
function hacCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--hac <file>', 'hac.toml to use', 'hac.toml')
    .option('--name <name>', 'VM name (overrides [spacecore] name)')
    .option('--provider <provider>', 'qemu, firecracker, cloud-hypervisor or auto')
    .option('--cores <n>', 'vCPUs', integer)
    .option('--memory <mib>', 'memory in MiB', integer)
    .option('--kernel <file>', 'kernel image')
    .option('--initrd <file>', 'initramfs')
    .option('--drive <file>', 'root disk image')
    .option('--kernel-args <args>', 'extra kernel command-line arguments')
    .option('--accel <mode>', 'QEMU accelerator: auto, kvm or tcg')
    .option('--image <ref>', 'OCI image to run (overrides [hardware] ref)')
    .option('--network <mode>', 'nat, bridge or none (overrides [network] mode)');
}

type HacOptions = { hac: string; memory?: number } & Omit<HacOverrides, 'memoryMib'>;

/** The command line's overrides of hac.toml values. */
function hacOverrides(opts: HacOptions): HacOverrides {
  const { hac: _file, memory, ...rest } = opts;
  return { ...rest, ...(memory === undefined ? {} : { memoryMib: memory }) };
}

/**
 * Reads the hac.toml (or parses its `text` already read: a pipe cannot be read twice) with the
 * command line's overrides, and pulls its image if it is missing.
 */
async function specFrom(opts: HacOptions, text?: string) {
  const { loadHacFile, parseHac } = await import('../config/index.js');
  const options = { hostCpus: hostCpuCount(), overrides: hacOverrides(opts), cwd: process.cwd() };
  const spec = text !== undefined ? parseHac(text, { file: resolve(opts.hac), ...options }) : await loadHacFile(resolve(opts.hac), options);
  if (spec.image) await (await import('./image-pull.js')).pullIfMissing(await api(program), spec.image);
  return spec;
}

/**
 * Creates a VM from the hac.toml `opts` name. On the local socket the daemon parses its text (it has
 * the schema loaded; loading and building it here cost each spawn ~45 ms), with the file's path and
 * the working directory, so that relative paths and messages are the same as here. An image the
 * daemon lacks comes back as HC_IMAGE_NOT_FOUND with nothing created, and a daemon older than that
 * route answers HC_NOT_FOUND: then, as before, this parses the same text, pulls the image showing
 * progress, and creates. A remote daemon cannot see this host's files: this parses the file itself.
 */
async function createFromHac(opts: HacOptions, options: { start?: boolean; detach?: boolean }) {
  const client = await api(program);
  const file = resolve(opts.hac);
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // loadHacFile reads it again below, for its error that names the file.
  }
  const local = daemonEndpoint(program).kind === 'unix';
  if (local && text !== undefined && text.length <= MAX_HAC_TEXT_CHARS) {
    try {
      return await client.createVmFromHacFile(text, { file, cwd: process.cwd(), overrides: hacOverrides(opts), pull: false, detach: options.detach === true, start: options.start !== false });
    } catch (err) {
      // Its code, not its class: importing the SDK here would split it out of the client's chunk.
      const code = (err as { code?: unknown }).code;
      if (code !== ErrorCodes.imageNotFound && code !== ErrorCodes.notFound) throw err;
    }
  }
  return client.createVm(await specFrom(opts, text), options);
}

hacCommand('spawn', 'create and boot a VM from a hac.toml (or resume one from a snapshot); prints the VM id last')
  .option('-d, --detach', 'return once the VMM runs, without waiting for the agent and the workload')
  .option('--from-snapshot <snapshot>', 'resume a new VM from this snapshot (id, id prefix or name) instead of booting one; only --name applies')
  .action(async (opts: HacOptions & { detach?: boolean; fromSnapshot?: string }) => {
    const { detach, fromSnapshot, ...hac } = opts;
    const vm = fromSnapshot !== undefined ? await (await api(program)).restoreSnapshot(fromSnapshot, hac.name === undefined ? {} : { name: hac.name }) : await createFromHac(hac, detach === true ? { detach: true } : {});
    process.stderr.write(`spawned ${vm.name} (${vm.provider}, pid ${vm.pid ?? '-'}); follow its console with: hypercore logs -f ${shortId(vm.id)}\n`);
    process.stdout.write(`${vm.id}\n`);
  });

hacCommand('create', 'define a VM from a hac.toml without booting it (state created); `start` boots it; prints the VM id last').action(async (opts: HacOptions) => {
  const vm = await createFromHac(opts, { start: false });
  process.stderr.write(`created ${vm.name}; boot it with: hypercore start ${shortId(vm.id)}\n`);
  process.stdout.write(`${vm.id}\n`);
});

program
  .command('ls')
  .alias('list')
  .description('list VMs')
  .option('--json', 'print a JSON array of VM objects (the API fields)')
  .action(async (opts: { json?: boolean }) => {
    const vms = await (await api(program)).listVms();
    process.stdout.write(opts.json ? `${JSON.stringify(vms, null, 2)}\n` : `${(await import('./format.js')).vmTable(vms)}\n`);
  });

program
  .command('inspect <id>')
  .description('show one VM (id, unique id prefix, or name)')
  .option('--json', 'print the VM object as JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    const vm = await (await api(program)).getVm(id);
    process.stdout.write(opts.json ? `${JSON.stringify(vm, null, 2)}\n` : `${(await import('./format.js')).vmSummary(vm)}\n`);
  });

program
  .command('logs <id>')
  .description("print a VM's serial console output")
  .option('-f, --follow', 'keep printing new output')
  .action(async (id: string, opts: { follow?: boolean }) => {
    for await (const chunk of (await api(program)).streamLogs(id, { follow: opts.follow === true })) {
      if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
    }
  });

program
  .command('start <id>')
  .description('boot a stopped VM again')
  .action(async (id: string) => {
    const vm = await (await api(program)).startVm(id);
    process.stdout.write(`${vm.id}\n`);
  });

program
  .command('pause <id>')
  .description("freeze a running VM's vCPUs; its memory stays, exec waits for resume")
  .action(async (id: string) => {
    process.stdout.write(`${(await (await api(program)).pauseVm(id)).id}\n`);
  });

program
  .command('resume <id>')
  .description('let a paused VM run on')
  .action(async (id: string) => {
    process.stdout.write(`${(await (await api(program)).resumeVm(id)).id}\n`);
  });

program
  .command('stop <ids...>')
  .description('power a VM off: ACPI shutdown, then killed after the timeout')
  .option('-t, --time <seconds>', 'seconds to wait for the guest to power off before killing it', integer, 10)
  .option('--force', 'kill at once')
  .action(async (ids: string[], opts: { time: number; force?: boolean }) => {
    for (const id of ids) {
      const vm = await (await api(program)).stopVm(id, { timeoutSeconds: opts.time, force: opts.force === true });
      process.stdout.write(`${vm.id}\n`);
    }
  });

program
  .command('rm <ids...>')
  .description('remove VMs and their files')
  .option('-f, --force', 'stop running VMs first')
  .action(async (ids: string[], opts: { force?: boolean }) => {
    for (const id of ids) {
      const vm = await (await api(program)).getVm(id);
      await (await api(program)).deleteVm(vm.id, { force: opts.force === true });
      process.stdout.write(`${vm.id}\n`);
    }
  });

program
  .command('clone <id>')
  .description('snapshot a running VM and resume COUNT new VMs from it, each with its own identity; prints their ids')
  .option('--count <n>', 'how many clones (1 to 32)', integer, 1)
  .action(async (id: string, opts: { count: number }) => {
    for (const vm of await (await api(program)).cloneVm(id, opts.count)) process.stdout.write(`${vm.id}\n`);
  });

const snapshot = program.command('snapshot').description("a VM's memory, device state and disks at one instant; `spawn --from-snapshot` resumes new VMs from it");
snapshot
  .command('create <id>')
  .description('snapshot a running or paused VM (it runs on afterwards); prints the snapshot id')
  .option('--name <name>', 'snapshot name (default: <vm name>-<UTC time>)')
  .option('--leave-paused', 'keep the VM paused afterwards')
  .action(async (id: string, opts: { name?: string; leavePaused?: boolean }) => {
    const s = await (await api(program)).createSnapshot(id, { ...(opts.name !== undefined ? { name: opts.name } : {}), leavePaused: opts.leavePaused === true });
    const { formatBytes } = await import('./format.js');
    process.stderr.write(`snapshot ${s.name} of ${s.vmName}: the VM was paused ${s.pauseMs} ms; ${formatBytes(s.sizeBytes)} on disk\n`);
    process.stdout.write(`${s.id}\n`);
  });
snapshot
  .command('ls')
  .alias('list')
  .description('list snapshots')
  .option('--json', 'print a JSON array of snapshot objects (the API fields)')
  .action(async (opts: { json?: boolean }) => {
    const list = await (await api(program)).listSnapshots();
    const { formatBytes, plainTable } = await import('./format.js');
    const rows = list.map((s) => [shortId(s.id), s.name, s.vmName, s.provider, s.vmmVersion, `${s.memoryMib} MiB`, formatBytes(s.sizeBytes), s.createdAt]);
    process.stdout.write(opts.json ? `${JSON.stringify(list, null, 2)}\n` : `${plainTable(['ID', 'NAME', 'VM', 'PROVIDER', 'VMM VERSION', 'MEMORY', 'ON DISK', 'CREATED'], rows)}\n`);
  });
snapshot
  .command('rm <ids...>')
  .description('remove snapshots (VMs resumed from them run on)')
  .action(async (ids: string[]) => {
    for (const id of ids) {
      await (await api(program)).deleteSnapshot(id);
      process.stdout.write(`${id}\n`);
    }
  });

registerImageCommands(program, () => api(program));
registerProcessCommands(program, () => api(program));
registerConsoleCommand(program, () => api(program));
registerMetadataCommands(program, () => api(program));
registerRemoteCommands(program, () => api(program));

program
  .command('version')
  .description("show the versions of this client, the daemon, each hypervisor and the default guest kernel")
  .option('--json', 'print them as JSON')
  .action(async (opts: { json?: boolean }) => {
    const { printVersions } = await import('./version-command.js');
    await printVersions(await api(program), opts.json === true, reported);
  });

program
  .command('doctor')
  .description('list the hypervisors (version, or why unusable), leftovers (network leases, TAPs, rules of removed VMs) and failed VMs; exits 1 if there are problems')
  .action(async () => {
    const { problems, providers } = await (await api(program)).doctor();
    const { plainTable } = await import('./format.js');
    process.stdout.write(`${plainTable(['PROVIDER', 'USABLE', 'VERSION', 'DETAIL'], providers.map((p) => [p.name, p.usable ? 'yes' : 'no', p.version ?? '-', p.detail]))}\n\n`);
    process.stdout.write(problems.length === 0 ? 'no problems found\n' : `${problems.map((p) => `- ${p}`).join('\n')}\n`);
    if (problems.length > 0) process.exitCode = 1;
  });
program
  .command('network')
  .description('host networking')
  .command('prune')
  .description('remove TAPs, firewall rules and leases that belong to no VM')
  .action(async () => {
    const { removed } = await (await api(program)).pruneNetworks();
    process.stdout.write(removed.length === 0 ? 'nothing to remove\n' : `${removed.map((r) => `removed ${r}`).join('\n')}\n`);
  });

const config = program.command('config').description('hac.toml tools (no daemon needed)');
config
  .command('validate [file]')
  .description('check a hac.toml; exits non-zero with every problem listed')
  .action(async (file: string | undefined) => {
    const path = resolve(file ?? 'hac.toml');
    const { loadHacFile } = await import('../config/index.js');
    await loadHacFile(path, { hostCpus: hostCpuCount(), cwd: process.cwd() });
    process.stdout.write(`${file ?? 'hac.toml'}: valid\n`);
  });
config
  .command('schema')
  .description('print the JSON Schema of hac.toml (for editors)')
  .action(async () => {
    const { hacJsonSchema } = await import('../config/index.js');
    process.stdout.write(`${JSON.stringify(hacJsonSchema(), null, 2)}\n`);
  });

/** Runs the command line `argv` (node's process.argv); the exit code goes to process.exitCode. */
export async function run(argv: readonly string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
    await client?.close();
  } catch (caught) {
    const err = reported(caught);
    printError(err);
    await client?.close().catch(() => undefined);
    process.exitCode = err instanceof HypercoreError ? 1 : 2;
  }
}
