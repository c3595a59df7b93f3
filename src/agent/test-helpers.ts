/**
 * Host-side helpers for the agent's tests: the HCSYNC handshake from the host's end, a typed TTRPC
 * client for the Agent service, and collecting a process's output through Io. Not used by the agent.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { TtrpcClient, type Transport } from '../ttrpc/index.js';
import { writeWithBackpressure } from '../ttrpc/transport.js';
import { SyncReplyScanner, syncRequest } from './protocol/channel-sync.js';
import { codecs, methods, type IoOutput, type UnaryMethod } from './protocol/messages.js';
import { AGENT_SERVICE } from './protocol/schema.js';
import type { CommandRunner, RootfsPaths } from './rootfs.js';

type RequestOf<M extends UnaryMethod> = Parameters<(typeof methods)[M]['request']['encode']>[0];
type ResponseOf<M extends UnaryMethod> = ReturnType<(typeof methods)[M]['response']['decode']>;

/** Host side of the handshake over any byte pipe; resolves with a transport positioned after the reply. */
export async function hostSync(readable: Readable, write: (b: Uint8Array) => boolean | Promise<unknown>, close: () => void, garbage?: Buffer): Promise<Transport> {
  const nonce = randomBytes(8).toString('hex');
  const iterator = readable[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  if (garbage) await write(garbage);
  await write(syncRequest(nonce));
  const scanner = new SyncReplyScanner(nonce);
  let rest: Buffer | undefined;
  while (rest === undefined) {
    const next = await iterator.next();
    if (next.done) throw new Error('channel closed before the sync reply');
    rest = scanner.push(next.value);
  }
  const first = rest;
  return {
    readable: (async function* () {
      if (first.length > 0) yield first;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
    write,
    close,
  };
}

/** Everything a process wrote plus its exit, as read through one Io stream. */
export interface Collected {
  stdout: Buffer;
  stderr: Buffer;
  messages: IoOutput[];
  final: IoOutput;
}

/** A test client of the Agent service. */
export class AgentTestClient {
  constructor(readonly ttrpc: TtrpcClient) {}

  /** Connects to an agent listening on a unix socket (`--listen`), doing the handshake first. */
  static async connect(path: string, garbage?: Buffer): Promise<AgentTestClient> {
    const sock = net.connect(path);
    sock.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const transport = await hostSync(sock, (b) => writeWithBackpressure(sock, b), () => sock.destroy(), garbage);
    return new AgentTestClient(new TtrpcClient(transport));
  }

  /** A unary call with the protocol's codecs. */
  async call<M extends UnaryMethod>(method: M, request: RequestOf<M>): Promise<ResponseOf<M>> {
    const codec = methods[method];
    const payload = (codec.request.encode as (m: RequestOf<M>) => Uint8Array)(request);
    const res = await this.ttrpc.call(AGENT_SERVICE, method, payload);
    return codec.response.decode(res) as ResponseOf<M>;
  }

  /** Opens an Io stream for `processId` from `fromOffset`. */
  io(processId: string, fromOffset = 0) {
    const stream = this.ttrpc.stream(AGENT_SERVICE, 'Io', {
      streamingClient: true,
      streamingServer: true,
      payload: codecs.IoInput.encode({ processId, fromOffset }),
    });
    return {
      stream,
      send: (stdin: Uint8Array) => stream.send(codecs.IoInput.encode({ stdin })),
      closeStdin: () => stream.send(codecs.IoInput.encode({ closeStdin: true })),
      /** Reads until the final message (exited). */
      collect: async (onMessage?: (m: IoOutput) => void): Promise<Collected> => {
        const messages: IoOutput[] = [];
        for await (const raw of stream) {
          const m = codecs.IoOutput.decode(raw);
          messages.push(m);
          onMessage?.(m);
          if (m.exited) break;
        }
        const final = messages[messages.length - 1];
        if (!final?.exited) throw new Error('Io ended without an exit message');
        const of = (fd: number): Buffer => Buffer.concat(messages.filter((m) => !m.exited && m.fd === fd).map((m) => Buffer.from(m.data ?? new Uint8Array(0))));
        return { stdout: of(1), stderr: of(2), messages, final };
      },
    };
  }

  /** Starts a process and collects its whole output. */
  async run(args: string[], extra: { terminal?: boolean; user?: string; env?: string[]; cwd?: string } = {}): Promise<Collected & { processId: string }> {
    const { processId } = await this.call('CreateProcess', { process: { args, ...extra } });
    const io = this.io(processId);
    await io.closeStdin();
    return { ...(await io.collect()), processId };
  }

  close(): void {
    this.ttrpc.close();
  }
}

/** A fake guest: /sys/block with serials, /dev with plain files as disks, /proc/mounts, /run/hc. */
export async function fakeGuest(dir: string, disks: Record<string, string>): Promise<RootfsPaths> {
  const paths = { sysBlock: join(dir, 'sys/block'), dev: join(dir, 'dev'), mounts: join(dir, 'mounts'), runDir: join(dir, 'run/hc') };
  await mkdir(paths.dev, { recursive: true });
  await writeFile(paths.mounts, 'proc /proc proc rw 0 0\n');
  for (const [name, serial] of Object.entries(disks)) {
    await mkdir(join(paths.sysBlock, name), { recursive: true });
    await writeFile(join(paths.sysBlock, name, 'serial'), serial);
    await writeFile(join(paths.dev, name), Buffer.alloc(4096));
  }
  await mkdir(join(paths.sysBlock, 'loop0'), { recursive: true });
  return paths;
}

/** Records commands; `mount` adds its target to the fake /proc/mounts; `fail` makes matching commands fail. */
export function recordingRunner(paths: RootfsPaths, fail: (cmd: string) => boolean = () => false): { run: CommandRunner; commands: string[] } {
  const commands: string[] = [];
  const run: CommandRunner = async (file, args) => {
    const cmd = [file, ...args].join(' ');
    commands.push(cmd);
    if (fail(cmd)) throw new Error(`${file} failed: boom`);
    if (file === 'mount') await appendFile(paths.mounts, `x ${args[args.length - 1]} x rw 0 0\n`);
  };
  return { run, commands };
}

/**
 * A fake crun (crun can not run containers on the test host): it runs the config's process
 * directly on the host, writes the pid files as crun does, prints crun's real error messages (crun
 * 1.8.1) for "nosuch", logs its arguments to crun.log beside itself, and passes the descriptors
 * of `--preserve-fds` on (the exec helper is run as /proc/self/fd/3).
 */
export const FAKE_CRUN = `#!${process.execPath}
const fs = require('fs');
const { spawn } = require('child_process');
const signals = require('os').constants.signals;
const argv = process.argv.slice(2);
fs.appendFileSync(__dirname + '/crun.log', JSON.stringify(argv) + '\\n');
const opt = (name) => { const a = argv.find((x) => x.startsWith('--' + name + '=')); return a && a.slice(name.length + 3); };
const after = (name) => argv[argv.indexOf(name) + 1];
const cmd = argv.find((a) => !a.startsWith('--'));
const finish = (child) => child.on('exit', (code, sig) => process.exit(sig ? 128 + signals[sig] : code));
if (cmd === 'run') {
  const bundle = after('--bundle');
  const config = JSON.parse(fs.readFileSync(bundle + '/config.json', 'utf8'));
  const args = config.process.args;
  if (args[0] === 'fail-create') {
    fs.writeFileSync(opt('log'), JSON.stringify({ msg: 'mount \`proc\` to \`/proc\`: Operation not permitted', level: 'error' }) + '\\n');
    process.stderr.write('mount \`proc\` to \`/proc\`: Operation not permitted\\n');
    process.exit(1);
  }
  if (args[0] === 'nosuch') { process.stderr.write('executable file \`nosuch\` not found in $PATH: No such file or directory\\n'); process.exit(1); }
  const env = Object.fromEntries(config.process.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const child = spawn(args[0], args.slice(1), { stdio: 'inherit', env, cwd: '/' });
  fs.writeFileSync(after('--pid-file'), String(child.pid));
  fs.writeFileSync(__dirname + '/fake-main.pid', String(child.pid));
  finish(child);
} else if (cmd === 'exec') {
  const rest = argv.slice(argv.indexOf('hc-main') + 1);
  if (rest[0] === 'nosuch') { process.stderr.write('executable file \`nosuch\` not found in $PATH: No such file or directory\\n'); process.exit(255); }
  const env = Object.fromEntries(argv.filter((a) => a.startsWith('--env=')).map((a) => a.slice(6)).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const preserved = Array.from({ length: Number(opt('preserve-fds') ?? 0) }, (_, i) => 3 + i);
  const child = spawn(rest[0], rest.slice(1), { stdio: ['inherit', 'inherit', 'inherit', ...preserved], env, cwd: opt('cwd') });
  fs.writeFileSync(opt('pid-file'), String(child.pid));
  finish(child);
} else if (cmd === 'kill') {
  process.kill(Number(fs.readFileSync(__dirname + '/fake-main.pid', 'utf8')), argv[argv.length - 1]);
} else if (cmd === 'delete') {
  process.stderr.write('container not found\\n');
  process.exit(1);
}
`;
