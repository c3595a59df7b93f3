/**
 * A stand-in `firecracker` binary for contract tests on hosts without KVM: the same command line,
 * the API on --api-sock held to the official document and Firecracker's ordering rules, hybrid vsock
 * (to a dev-mode agent), and a "guest" that prints to the console and ends on Ctrl-Alt-Del. It
 * appends every call (and any violation) as a JSON line to `$FAKE_FC_RECORD_DIR/<id>.jsonl`.
 *
 * Environment:
 *   FAKE_FC_VERSION=1.10.1        the version it reports
 *   FAKE_FC_RECORD_DIR=dir        where the call log goes
 *   FAKE_FC_AGENT_SOCKET=path     the unix socket of the "guest agent" behind vsock port 1024
 *   FAKE_FC_FAIL="PUT /drives/root"   answer that call with 400 (a refused configuration)
 *   FAKE_FC_DIE="PUT /boot-source"    exit with code 1 when that call arrives (a VMM that dies)
 *   FAKE_FC_GUEST_LIFETIME_MS=n   the guest powers off (reboots) on its own n ms after the start
 */
import { appendFileSync, constants, existsSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_VSOCK_PORT } from '../../../agent/protocol/schema.js';
import { FakeVmmServer, type RecordedCall } from '../../shared/fake-vmm.js';
import { HybridVsockEndpoint } from '../../shared/hybrid-vsock-endpoint.js';
import { OpenApiContract } from '../../shared/openapi-contract.js';
import { parseFirecrackerVersion } from '../version.js';
import { FirecrackerRules, type FakeConfiguration } from './firecracker-rules.js';

export const FIRECRACKER_SPEC = fileURLToPath(new URL('../api/firecracker.yaml', import.meta.url));

/** One line of the call log. */
export type FakeRecord = ({ event: 'call' } & RecordedCall) | { event: 'start'; argv: string[]; version: string } | { event: 'exit'; code: number; why: string };

interface Cli {
  apiSock: string;
  id: string;
  logPath?: string;
}

function parseCli(argv: string[]): Cli | 'version' {
  const cli: Partial<Cli> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) exitWith(153, `argument ${a} needs a value`);
      return v!;
    };
    if (a === '--version') return 'version';
    else if (a === '--api-sock') cli.apiSock = value();
    else if (a === '--id') cli.id = value();
    else if (a === '--log-path') cli.logPath = value();
    else if (a === '--level') value();
    else exitWith(153, `Arguments parsing error: Found argument '${a}' which wasn't expected`);
  }
  if (cli.id !== undefined && !/^[A-Za-z0-9-]{1,64}$/.test(cli.id)) exitWith(153, `invalid --id ${cli.id}`);
  return { apiSock: cli.apiSock ?? '/run/firecracker.socket', id: cli.id ?? 'anonymous-instance', ...(cli.logPath ? { logPath: cli.logPath } : {}) };
}

let record: (r: FakeRecord) => void = () => undefined;

function exitWith(code: number, why: string): never {
  process.stderr.write(`fake firecracker: ${why}\n`);
  record({ event: 'exit', code, why });
  process.exit(code);
}

async function main(): Promise<void> {
  const version = parseFirecrackerVersion(process.env['FAKE_FC_VERSION'] ?? '1.10.1');
  if (!version) exitWith(1, `bad FAKE_FC_VERSION ${process.env['FAKE_FC_VERSION']}`);
  const cli = parseCli(process.argv.slice(2));
  if (cli === 'version') {
    process.stdout.write(`Firecracker v${version.text}\n\nSupported snapshot data format versions: 5.0.0\n`);
    return;
  }
  const recordDir = process.env['FAKE_FC_RECORD_DIR'];
  if (recordDir) record = (r) => appendFileSync(join(recordDir, `${cli.id}.jsonl`), `${JSON.stringify(r)}\n`);
  record({ event: 'start', argv: process.argv.slice(2), version: version.text });
  if (existsSync(cli.apiSock)) exitWith(1, `Failed to open the API socket at ${cli.apiSock}: Address in use`);
  if (cli.logPath && !existsSync(cli.logPath)) exitWith(1, `Failed to open the log file ${cli.logPath}`);
  // Firecracker's messages without --log-path; the provider keeps them in the console log.
  process.stderr.write(`fake firecracker ${version.text} (${cli.id}) running\n`);

  let writeConsole: (line: string) => void = (line) => process.stdout.write(line);
  let vsock: HybridVsockEndpoint | undefined;
  const guestAgent = process.env['FAKE_FC_AGENT_SOCKET'];
  const powerOff = (): void => {
    // What a Linux guest prints when it reboots; Firecracker (reboot=k) then exits with 0.
    writeConsole('reboot: Restarting system\n');
    setTimeout(() => exitWith(0, 'the guest rebooted'), 20);
  };
  const onStart = (config: FakeConfiguration): void => {
    const serial = config.serial?.['serial_out_path'];
    if (typeof serial === 'string') {
      // As Firecracker opens it: for writing, created if missing, not in append mode (from offset 0).
      const fd = openSync(serial, constants.O_WRONLY | constants.O_CREAT | constants.O_NONBLOCK, 0o600);
      writeConsole = (line) => void writeSync(fd, line);
    }
    writeConsole(`fake firecracker ${version.text}: booting ${String(config.bootSource?.['kernel_image_path'])} with "${String(config.bootSource?.['boot_args'] ?? '')}"\n`);
    if (config.vsock) {
      vsock = new HybridVsockEndpoint((port) => (port === AGENT_VSOCK_PORT && guestAgent && existsSync(guestAgent) ? guestAgent : undefined));
      void vsock.listen(String(config.vsock['uds_path']));
    }
    const lifetime = Number(process.env['FAKE_FC_GUEST_LIFETIME_MS'] ?? '');
    if (lifetime > 0) setTimeout(powerOff, lifetime);
  };
  const rules = new FirecrackerRules(version, cli.id, { onStart, onCtrlAltDel: powerOff });
  const contract = await OpenApiContract.load(FIRECRACKER_SPEC);
  const fail = process.env['FAKE_FC_FAIL'];
  const die = process.env['FAKE_FC_DIE'];
  const server = new FakeVmmServer(contract, rules, {
    onCall: (call) => record({ event: 'call', ...call }),
    intercept: (method, path) => {
      if (die === `${method} ${path}`) exitWith(1, `dying on ${method} ${path} (FAKE_FC_DIE)`);
      if (fail === `${method} ${path}`) return { status: 400, body: { fault_message: `injected failure of ${method} ${path} (FAKE_FC_FAIL)` } };
      return undefined;
    },
  });
  await server.listen(cli.apiSock);
  process.on('SIGTERM', () => exitWith(143, 'SIGTERM'));
}

/** Writes an executable `firecracker` that runs this fake with `env`; returns its path. */
export function writeFakeFirecracker(dir: string, env: Record<string, string> = {}, name = 'firecracker'): string {
  const path = join(dir, name);
  const exports = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join('');
  writeFileSync(path, `#!/bin/sh\n${exports}exec ${shellQuote(process.execPath)} ${shellQuote(fileURLToPath(import.meta.url))} "$@"\n`, { mode: 0o755 });
  return path;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => exitWith(1, `fatal: ${String(err)}`));
}
