/**
 * `hypercore exec`, `attach` and `run`: interactive sessions over the daemon's WebSocket exec and
 * attach routes, on the unix socket or a remote listener (the gRPC Exec/Attach messages in JSON; a
 * WebSocket client loads in a fraction of gRPC's time, which an `exec` would otherwise pay on every
 * call). With a terminal the local tty goes raw and window resizes follow; the command's exit code
 * becomes the CLI's.
 */
import type { Command } from 'commander';
import { constants } from 'node:os';
import type { WebSocket } from 'ws';
import { ErrorCodes, HypercoreError, type ErrorCode, type ValidationIssue } from '../core/errors.js';
import type { ProcessInput } from '../api/process-session.js';
import { hostCpuCount } from '../system/host.js';
import { daemonUnavailable, type ApiClient } from './api-client.js';
import { describeEndpoint, remoteUnavailable, type Endpoint } from './endpoint.js';

/** Commander collector for repeatable options (-e A=1 -e B=2). */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** ctrl-p ctrl-q, as in Docker: leave an attached session, the process keeps running. */
const DETACH_SEQUENCE = [0x10, 0x11];
/** Input queued on the socket before local stdin is paused (the process reads slowly). */
const STDIN_HIGH_WATER_BYTES = 1024 * 1024;
/** Largest message the daemon may send: an output chunk as base64 JSON (the agent sends at most 64 KiB). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** A remote daemon's TLS handshake and WebSocket upgrade must come within this. */
const REMOTE_HANDSHAKE_TIMEOUT_MS = 30_000;

interface SessionOptions {
  interactive: boolean;
  tty: boolean;
  detachKeys: boolean;
}

/** A message of the exec/attach WebSocket, as the daemon sends it (bytes as base64). */
interface WireOutput {
  fd?: number;
  data?: string;
  exited?: boolean;
  exitCode?: number;
  signal?: string;
  processId?: string;
  error?: { code?: string; message?: string; details?: ValidationIssue[] };
}

/** A shell's exit status for a process killed by `signal`: 128 + its number (SIGSEGV → 139); 129 if the name is unknown. */
export function exitCodeOfSignal(signal: string): number {
  return 128 + ((constants.signals as Record<string, number>)[signal] ?? 1);
}

function wire(input: ProcessInput): string {
  return JSON.stringify(input.stdin ? { ...input, stdin: Buffer.from(input.stdin).toString('base64') } : input);
}

/** Reads an HTTP error answer (the upgrade was refused) as the daemon's error. */
function refused(res: NodeJS.ReadableStream & { statusCode?: number }): Promise<HypercoreError> {
  return new Promise((resolve) => {
    let text = '';
    res.on('data', (c: Buffer) => {
      if (text.length < 64 * 1024) text += c.toString('utf8');
    });
    res.on('end', () => {
      try {
        const e = (JSON.parse(text) as WireOutput).error ?? {};
        resolve(new HypercoreError((e.code ?? ErrorCodes.internal) as ErrorCode, e.message ?? `HTTP ${res.statusCode}`, { details: e.details ?? [] }));
      } catch {
        resolve(new HypercoreError(ErrorCodes.internal, `the daemon refused the session: HTTP ${res.statusCode}`));
      }
    });
  });
}

/** Why the endpoint could not be reached, for a connection error; the error itself otherwise. */
function connectError(err: NodeJS.ErrnoException, endpoint: Endpoint): unknown {
  if (endpoint.kind === 'remote') return remoteUnavailable(endpoint, err.code, err.message) ?? new HypercoreError(ErrorCodes.daemonUnavailable, `${describeEndpoint(endpoint)}: ${err.message}`, { cause: err });
  const unavailable = daemonUnavailable(err.code, endpoint.socketPath);
  return unavailable ? new HypercoreError(ErrorCodes.daemonUnavailable, unavailable, { cause: err }) : err;
}

/**
 * Reports a session that failed to connect: `decisive` for the daemon's refusal of the upgrade (its
 * error, to be shown over anything else), not for a connection error (why the endpoint was not reached).
 */
export function onConnectFailure(ws: WebSocket, endpoint: Endpoint, fail: (err: unknown, decisive: boolean) => void): void {
  ws.on('unexpected-response', (_req, res) => {
    void refused(res).then((err) => {
      fail(err, true);
      ws.terminate();
    });
  });
  ws.on('error', (err: NodeJS.ErrnoException) => fail(connectError(err, endpoint), false));
}

/**
 * The session's WebSocket: on the unix socket, or on a remote listener (wss with the daemon's CA
 * and the client certificate, and/or the bearer token; ws only for a loopback --insecure-loopback daemon).
 */
export function openSocket(Socket: typeof WebSocket, endpoint: Endpoint, path: string): WebSocket {
  const common = { perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES };
  if (endpoint.kind === 'unix') return new Socket(`ws+unix:${endpoint.socketPath}:${path}`, common);
  const tls = endpoint.tls;
  return new Socket(`${endpoint.origin.replace(/^http/, 'ws')}${path}`, {
    ...common,
    ...(tls ? { ca: tls.ca, ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}) } : {}),
    ...(endpoint.token ? { headers: { authorization: `Bearer ${endpoint.token}` } } : {}),
    handshakeTimeout: REMOTE_HANDSHAKE_TIMEOUT_MS,
  });
}

/**
 * Runs one exec or attach WebSocket to its end; resolves to the exit code the CLI should return.
 * `path` names the VM (`/v1/vms/{id}/exec`); an exec's `first` message is its `start`.
 */
async function runSession(endpoint: Endpoint, path: string, first: ProcessInput | undefined, options: SessionOptions): Promise<number> {
  const { WebSocket } = await import('ws');
  const ws = openSocket(WebSocket, endpoint, path);
  const stdin = process.stdin;
  const stdout = process.stdout;
  // Detach keys must reach us byte by byte (in cooked mode the tty driver eats ^Q as XON), so an
  // attach puts the terminal in raw mode even when the remote process has no tty.
  const rawMode = (options.tty || options.detachKeys) && stdin.isTTY;
  let detached = false;
  const cleanup: (() => void)[] = [];

  return new Promise<number>((resolve, reject) => {
    let exitCode: number | undefined;
    let failure: unknown;
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      for (const undo of cleanup.splice(0)) undo();
      if (detached) resolve(0);
      else if (failure) reject(failure);
      else if (exitCode === undefined) reject(new HypercoreError(ErrorCodes.internal, 'the daemon ended the session without an exit status'));
      else resolve(exitCode);
    };
    // Output at the pace of our stdout: a full pipe pauses the socket, so the daemon pauses the process.
    let blocked = 0;
    const onDrain = (): void => {
      if (--blocked === 0) ws.resume();
    };
    const write = (out: NodeJS.WriteStream, data: Buffer): void => {
      if (!out.write(data)) {
        if (blocked++ === 0) ws.pause();
        out.once('drain', onDrain);
      }
    };
    ws.on('message', (raw: Buffer) => {
      let out: WireOutput;
      try {
        out = JSON.parse(raw.toString('utf8')) as WireOutput;
      } catch {
        return;
      }
      if (out.error) {
        failure = new HypercoreError((out.error.code ?? ErrorCodes.internal) as ErrorCode, out.error.message ?? 'the session failed', { details: out.error.details ?? [] });
        return;
      }
      if (out.data) write(out.fd === 2 ? process.stderr : stdout, Buffer.from(out.data, 'base64'));
      if (out.exited) exitCode = out.signal ? exitCodeOfSignal(out.signal) : (out.exitCode ?? 0);
    });
    onConnectFailure(ws, endpoint, (err, decisive) => {
      failure = decisive ? err : (failure ?? err);
      finish();
    });
    ws.on('close', () => {
      // Output written before the close may still be queued on stdout: it goes out before the exit.
      finish();
    });
    ws.on('open', () => {
      if (first) ws.send(wire(first));
      if (options.tty && stdout.isTTY) {
        const resize = (): void => ws.send(wire({ rows: stdout.rows, cols: stdout.columns }));
        stdout.on('resize', resize);
        cleanup.push(() => stdout.off('resize', resize));
      }
      if (rawMode) {
        stdin.setRawMode(true);
        cleanup.push(() => stdin.setRawMode(false));
      }
      if (!options.interactive) {
        ws.send(wire({ closeStdin: true }));
        return;
      }
      let previous = -1;
      let queued = 0;
      const onData = (chunk: Buffer): void => {
        if (options.detachKeys) {
          for (const byte of chunk) {
            if (previous === DETACH_SEQUENCE[0] && byte === DETACH_SEQUENCE[1]) {
              detached = true;
              process.stderr.write('\r\n[detached; the process keeps running]\r\n');
              ws.close(1000);
              return;
            }
            previous = byte;
          }
        }
        queued += chunk.length;
        if (queued > STDIN_HIGH_WATER_BYTES) stdin.pause();
        ws.send(wire({ stdin: chunk }), () => {
          queued -= chunk.length;
          if (queued <= STDIN_HIGH_WATER_BYTES / 2 && stdin.isPaused() && !settled) stdin.resume();
        });
      };
      const onEnd = (): void => ws.send(wire({ closeStdin: true }));
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      cleanup.push(() => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdin.pause();
      });
    });
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
      const start = { args: command, tty: opts.tty === true, ...windowSize(), ...(opts.env ? { env: opts.env } : {}), ...(opts.workdir ? { cwd: opts.workdir } : {}), ...(opts.user ? { user: opts.user } : {}) };
      process.exitCode = await runSession(api().endpoint, `/v1/vms/${encodeURIComponent(id)}/exec`, { start }, { interactive: opts.interactive === true, tty: opts.tty === true, detachKeys: false });
    });

  program
    .command('attach <id>')
    .description("connect to a VM's workload (its main process); detach with ctrl-p ctrl-q")
    .action(async (id: string) => {
      const vm = await api().getVm(id);
      const tty = vm.spec.workload?.tty === true;
      process.exitCode = await runSession(api().endpoint, `/v1/vms/${vm.id}/attach`, undefined, { interactive: true, tty, detachKeys: true });
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
      const { specFromImageReference } = await import('../config/index.js');
      const spec = specFromImageReference(image, {
        hostCpus: hostCpuCount(),
        ...(opts.name ? { name: opts.name } : {}),
        overrides: { ...(command.length ? { command } : {}), ...(opts.env ? { env: opts.env } : {}), ...(opts.tty ? { tty: true } : {}), ...(opts.network ? { network: opts.network } : {}) },
      });
      await (await import('./image-pull.js')).pullIfMissing(api(), image);
      const vm = await api().createVm(spec);
      if (opts.detach) {
        process.stdout.write(`${vm.id}\n`);
        return;
      }
      try {
        process.exitCode = await runSession(api().endpoint, `/v1/vms/${vm.id}/attach?fromStart=true`, undefined, { interactive: opts.interactive === true, tty: opts.tty === true, detachKeys: true });
      } finally {
        if (opts.rm) await api().deleteVm(vm.id, true).catch(() => undefined);
      }
    });
}
