/**
 * containerd-shim-hypercore-v2: the binary containerd runs for the runtime io.containerd.hypercore.v2.
 * containerd 1.6 runs it only as
 *
 *   <binary> -namespace NS -address ADDR -publish-binary BIN [-id ID] [-debug] start    (cwd: the bundle)
 *   <binary> -namespace NS -address ADDR -publish-binary BIN -id ID -bundle DIR delete
 *
 * with TTRPC_ADDRESS in the environment and, for `start`, the runtime options on stdin (a
 * protobuf Any; runtimeoptions.v1.Options names an options file). Both are one call to hypercored,
 * which serves the pod's TTRPC socket (through the shim keeper, one process per host that holds
 * containerd's connections across hypercored restarts): `start` prints the socket's address (containerd reads
 * stdout and stderr together, so nothing else may be printed, and no process may stay behind
 * holding them) and writes it to the bundle's `address` file; `delete` prints a DeleteResponse.
 *
 * hypercored is found at, in order: `socket` in the runtime's options file, HYPERCORE_SOCKET in
 * containerd's environment, /run/hypercore/hypercore.sock.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonCallError, postJson, postJsonOnceUp } from './daemon-client.js';
import { recordPendingDelete } from './pending-deletes.js';
import { parseFlags, type Flags } from './flags.js';
import { messages, timestamp } from './protocol/containerd.js';

const DEFAULT_SOCKET = '/run/hypercore/hypercore.sock';
/** containerd gives `delete` 5 s; leave it time to read the answer. */
const DELETE_TIMEOUT_MS = 4000;
/** A sandbox's `start` may wait for nothing long: the VM is made at Create. */
const START_TIMEOUT_MS = 30_000;
const MAX_OPTIONS_BYTES = 64 * 1024;
/** Exit status of a task whose end nobody could tell. */
const LOST_EXIT_STATUS = 255;
/** The daemon socket `start` used, kept in the bundle for `delete` (which gets no options). */
const SOCKET_FILE = 'hypercore-socket';

function readStdin(): Buffer {
  try {
    const buf = readFileSync(0);
    if (buf.length > MAX_OPTIONS_BYTES) throw new Error(`runtime options on stdin are larger than ${MAX_OPTIONS_BYTES} bytes`);
    return buf;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN' || (err as NodeJS.ErrnoException).code === 'EOF') return Buffer.alloc(0);
    throw err;
  }
}

/** `socket` from the options file that runtimeoptions.v1.Options names, if any. */
async function socketFromOptions(stdin: Buffer): Promise<string | undefined> {
  if (stdin.length === 0) return undefined;
  const any = messages.Any.decode(stdin);
  if (!any.typeUrl.endsWith('runtimeoptions.v1.Options')) return undefined;
  const options = messages.RuntimeOptions.decode(any.value);
  if (!options.configPath) return undefined;
  const text = readFileSync(options.configPath);
  if (text.length > MAX_OPTIONS_BYTES) throw new Error(`options file ${options.configPath} is larger than ${MAX_OPTIONS_BYTES} bytes`);
  const { parse } = await import('smol-toml');
  const socket = parse(text.toString('utf8'))['socket'];
  if (socket === undefined) return undefined;
  if (typeof socket !== 'string' || !socket.startsWith('/')) throw new Error(`options file ${options.configPath}: socket must be an absolute path`);
  return socket;
}

function need(flags: Flags, name: keyof Flags): string {
  const v = flags[name];
  if (!v) throw new Error(`-${name} is required`);
  return v;
}

async function start(flags: Flags): Promise<void> {
  const bundle = process.cwd();
  const socket = (await socketFromOptions(readStdin())) ?? process.env['HYPERCORE_SOCKET'] ?? DEFAULT_SOCKET;
  const ttrpcAddress = process.env['TTRPC_ADDRESS'];
  if (!ttrpcAddress) throw new Error('TTRPC_ADDRESS is not set (containerd sets it for its shims)');
  const { address } = await postJson<{ address: string }>(socket, '/v1/shim/start', { namespace: need(flags, 'namespace'), id: need(flags, 'id'), bundle, address: need(flags, 'address'), ttrpcAddress }, START_TIMEOUT_MS);
  writeFileSync(join(bundle, 'address'), address, { mode: 0o600 });
  writeFileSync(join(bundle, SOCKET_FILE), socket, { mode: 0o600 });
  process.stdout.write(address);
}

async function remove(flags: Flags): Promise<void> {
  const bundle = flags.bundle ?? process.cwd();
  let socket = process.env['HYPERCORE_SOCKET'] ?? DEFAULT_SOCKET;
  try {
    socket = readFileSync(join(bundle, SOCKET_FILE), 'utf8').trim() || socket;
  } catch {
    // No record of `start` (it failed, or the bundle is gone): the default socket it is.
  }
  const call = { namespace: need(flags, 'namespace'), id: need(flags, 'id'), bundle, address: need(flags, 'address') };
  // containerd runs `delete` at once when hypercored's connection drops (it takes the shim for
  // dead): a hypercored that restarts within the time containerd allows still cleans up the task,
  // and one that takes longer finds the call left for it.
  let exit: { pid: number; exitStatus: number; exitedAt?: string };
  try {
    exit = await postJsonOnceUp(socket, '/v1/shim/delete', call, DELETE_TIMEOUT_MS);
  } catch (err) {
    if (!(err instanceof DaemonCallError) || !err.unreachable) throw err;
    recordPendingDelete(socket, call);
    // What containerd itself reports for a task whose shim it could not ask.
    exit = { pid: 0, exitStatus: LOST_EXIT_STATUS, exitedAt: new Date().toISOString() };
  }
  process.stdout.write(messages.DeleteResponse.encode({ pid: exit.pid, exitStatus: exit.exitStatus, ...(exit.exitedAt ? { exitedAt: timestamp(exit.exitedAt)! } : {}) }));
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  switch (flags.command) {
    case 'start':
      return start(flags);
    case 'delete':
      return remove(flags);
    default:
      throw new Error(`usage: containerd-shim-hypercore-v2 -namespace NS -address ADDR [-id ID] [-bundle DIR] start|delete (got ${flags.command ?? 'no command'}); containerd runs this binary, people need not`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    // For `start`, containerd shows this text in the error of the task's create.
    process.stderr.write(`hypercore shim: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
