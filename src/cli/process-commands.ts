/**
 * `hypercore exec`, `attach` and `run`: interactive sessions over the gRPC Exec/Attach streams
 * (bidirectional, on the daemon's socket). With a terminal the local tty goes raw and window
 * resizes follow; the command's exit code becomes the CLI's.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { isIP } from 'node:net';
import { constants } from 'node:os';
import { ErrorCodes, HypercoreError, type ErrorCode } from '../core/errors.js';
import { loadVmServiceDefinition } from '../api/proto.js';
import type { ProcessInput, ProcessOutput } from '../api/process-session.js';
import { specFromImageReference } from '../config/index.js';
import { hostCpuCount } from '../system/host.js';
import { daemonUnavailable, type ApiClient } from './api-client.js';
import { describeEndpoint, remoteUnavailable, type Endpoint } from './endpoint.js';
import { pullIfMissing } from './image-commands.js';

/** Commander collector for repeatable options (-e A=1 -e B=2). */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** ctrl-p ctrl-q, as in Docker: leave an attached session, the process keeps running. */
const DETACH_SEQUENCE = [0x10, 0x11];


interface SessionOptions {
  interactive: boolean;
  tty: boolean;
  detachKeys: boolean;
}

/** A shell's exit status for a process killed by `signal`: 128 + its number (SIGSEGV → 139); 129 if the name is unknown. */
export function exitCodeOfSignal(signal: string): number {
  return 128 + ((constants.signals as Record<string, number>)[signal] ?? 1);
}

function grpcError(err: grpc.ServiceError, endpoint: Endpoint): HypercoreError {
  if (err.code === grpc.status.UNAVAILABLE && !err.metadata?.get('hc-error-code').length) {
    if (endpoint.kind === 'remote') {
      const refused = /ECONNREFUSED|connection refused/i.test(err.details ?? '');
      return remoteUnavailable(endpoint, refused ? 'ECONNREFUSED' : undefined, err.details ?? '') ?? new HypercoreError(ErrorCodes.daemonUnavailable, `${describeEndpoint(endpoint)}: ${err.details}`);
    }
    // grpc-js puts the connect error's text in the details: EACCES reads "Permission denied".
    const denied = /EACCES|permission denied/i.test(err.details ?? '');
    return new HypercoreError(ErrorCodes.daemonUnavailable, daemonUnavailable(denied ? 'EACCES' : 'ECONNREFUSED', endpoint.socketPath)!);
  }
  const code = (err.metadata?.get('hc-error-code')[0] as string | undefined) ?? ErrorCodes.internal;
  return new HypercoreError(code as ErrorCode, err.details || err.message);
}

/** A gRPC client of the endpoint, and the metadata each call carries (the bearer token). */
function grpcClientOf(endpoint: Endpoint): { client: grpc.Client; metadata: grpc.Metadata } {
  const Client = loadVmServiceDefinition();
  const metadata = new grpc.Metadata();
  if (endpoint.kind === 'unix') return { client: new Client(`unix:${endpoint.socketPath}`, grpc.credentials.createInsecure()), metadata };
  if (endpoint.token) metadata.set('authorization', `Bearer ${endpoint.token}`);
  // grpc-js sends an IP target as the TLS server name, which Node flags with a deprecation warning
  // (DEP0123) on the user's terminal; the name is still checked against the certificate's IP SANs.
  if (endpoint.secure && isIP(endpoint.host) !== 0) process.noDeprecation = true;
  const tls = endpoint.tls;
  const credentials = endpoint.secure ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null) : grpc.credentials.createInsecure();
  return { client: new Client(endpoint.grpcTarget, credentials), metadata };
}

/** Runs one Exec/Attach stream to its end; resolves to the exit code the CLI should return. */
function runSession(endpoint: Endpoint, method: 'Exec' | 'Attach', first: ProcessInput, options: SessionOptions): Promise<number> {
  const { client, metadata } = grpcClientOf(endpoint);
  const call = (client as unknown as Record<string, (metadata: grpc.Metadata) => grpc.ClientDuplexStream<ProcessInput, ProcessOutput>>)[method]!.call(client, metadata);
  const stdin = process.stdin;
  const stdout = process.stdout;
  // Detach keys must reach us byte by byte (in cooked mode the tty driver eats ^Q as XON), so an
  // attach puts the terminal in raw mode even when the remote process has no tty.
  const rawMode = (options.tty || options.detachKeys) && stdin.isTTY;
  let detached = false;
  const cleanup: (() => void)[] = [];

  return new Promise<number>((resolve, reject) => {
    let exitCode = 0;
    const finish = (err?: unknown) => {
      for (const undo of cleanup.splice(0)) undo();
      client.close();
      if (err && !detached) reject(err);
      else resolve(detached ? 0 : exitCode);
    };
    call.on('data', (out: ProcessOutput) => {
      if (out.data && out.data.length > 0) (out.fd === 2 ? process.stderr : stdout).write(out.data);
      if (out.exited) exitCode = out.signal ? exitCodeOfSignal(out.signal) : (out.exitCode ?? 0);
    });
    call.on('end', () => finish());
    call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED && detached ? finish() : finish(grpcError(err, endpoint))));
    call.write(first);

    if (options.tty && stdout.isTTY) {
      const resize = () => call.write({ rows: stdout.rows, cols: stdout.columns });
      stdout.on('resize', resize);
      cleanup.push(() => stdout.off('resize', resize));
    }
    if (rawMode) {
      stdin.setRawMode(true);
      cleanup.push(() => stdin.setRawMode(false));
    }
    if (options.interactive) {
      let previous = -1;
      const onData = (chunk: Buffer) => {
        if (options.detachKeys) {
          for (const byte of chunk) {
            if (previous === DETACH_SEQUENCE[0] && byte === DETACH_SEQUENCE[1]) {
              detached = true;
              process.stderr.write('\r\n[detached; the process keeps running]\r\n');
              call.cancel();
              return;
            }
            previous = byte;
          }
        }
        call.write({ stdin: chunk });
      };
      const onEnd = () => call.write({ closeStdin: true });
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      cleanup.push(() => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdin.pause();
      });
    } else {
      call.write({ closeStdin: true });
    }
  });
}

function windowSize(): { rows?: number; cols?: number } {
  return process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : {};
}

export function registerProcessCommands(program: Command, api: () => ApiClient): void {
  program
    .command('exec <id> <command...>')
    .description("run a command in a VM's workload (e.g. hypercore exec web -- sh -c 'ls /'); exits with its exit code")
    .option('-i, --interactive', 'stream standard input to the command')
    .option('-t, --tty', 'allocate a pseudo-terminal (raw mode, window size follows)')
    .option('-e, --env <KEY=VALUE>', 'an environment variable (repeatable)', collect)
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user[:group]>', "user to run as: numbers, or names from the image's /etc/passwd and /etc/group")
    .action(async (id: string, command: string[], opts: { interactive?: boolean; tty?: boolean; env?: string[]; workdir?: string; user?: string }) => {
      const start = { id, args: command, tty: opts.tty === true, ...windowSize(), ...(opts.env ? { env: opts.env } : {}), ...(opts.workdir ? { cwd: opts.workdir } : {}), ...(opts.user ? { user: opts.user } : {}) };
      process.exitCode = await runSession(api().endpoint, 'Exec', { start }, { interactive: opts.interactive === true, tty: opts.tty === true, detachKeys: false });
    });

  program
    .command('attach <id>')
    .description("connect to a VM's workload (its main process); detach with ctrl-p ctrl-q")
    .action(async (id: string) => {
      const vm = await api().getVm(id);
      const tty = vm.spec.workload?.tty === true;
      process.exitCode = await runSession(api().endpoint, 'Attach', { attach: { id: vm.id } }, { interactive: true, tty, detachKeys: true });
    });

  program
    .command('run <image> [command...]')
    .description('pull an image if needed, boot a VM running it, and attach (hypercore run alpine -- cat /etc/os-release)')
    .option('--rm', 'remove the VM when the workload ends')
    .option('-i, --interactive', 'keep standard input open')
    .option('-t, --tty', 'allocate a pseudo-terminal')
    .option('--name <name>', 'VM name (default: run-<random>)')
    .option('-e, --env <KEY=VALUE>', 'an environment variable (repeatable)', collect)
    .option('-d, --detach', 'print the VM id and leave it running')
    .option('--network <mode>', 'nat (default) or none')
    .action(async (image: string, command: string[], opts: { rm?: boolean; interactive?: boolean; tty?: boolean; name?: string; env?: string[]; detach?: boolean; network?: string }) => {
      const spec = specFromImageReference(image, {
        hostCpus: hostCpuCount(),
        ...(opts.name ? { name: opts.name } : {}),
        overrides: { ...(command.length ? { command } : {}), ...(opts.env ? { env: opts.env } : {}), ...(opts.tty ? { tty: true } : {}), ...(opts.network ? { network: opts.network } : {}) },
      });
      await pullIfMissing(api(), image);
      const vm = await api().createVm(spec);
      if (opts.detach) {
        process.stdout.write(`${vm.id}\n`);
        return;
      }
      try {
        process.exitCode = await runSession(api().endpoint, 'Attach', { attach: { id: vm.id, fromStart: true } }, { interactive: opts.interactive === true, tty: opts.tty === true, detachKeys: true });
      } finally {
        if (opts.rm) await api().deleteVm(vm.id, true).catch(() => undefined);
      }
    });
}
