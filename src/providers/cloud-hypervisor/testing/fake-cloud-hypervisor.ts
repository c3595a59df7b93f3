/**
 * A stand-in `cloud-hypervisor` binary for contract tests on hosts without KVM: the same command
 * line, the API on --api-socket held to the official document and Cloud Hypervisor's rules, hybrid
 * vsock (to a dev-mode agent), and a "guest" that prints to the serial console and powers off on the
 * ACPI power button (or by itself). It appends every call (and any violation) as a JSON line to
 * `$FAKE_CH_RECORD_DIR/<vm id>.jsonl`, the VM id being the name of the API socket's directory.
 *
 * Environment:
 *   FAKE_CH_VERSION=v51.0            the version it reports
 *   FAKE_CH_RECORD_DIR=dir           where the call log goes
 *   FAKE_CH_AGENT_SOCKET=path        the unix socket of the "guest agent" behind vsock port 1024
 *   FAKE_CH_FAIL="PUT vm.create"     answer that call with 500 (a refused request)
 *   FAKE_CH_DIE="PUT vm.boot"        exit with code 1 when that call arrives (a VMM that dies)
 *   FAKE_CH_GUEST_LIFETIME_MS=n      the guest powers off on its own n ms after the boot
 *   FAKE_CH_IGNORE_POWER_BUTTON=1    the guest ignores the ACPI power button
 *   FAKE_CH_GUEST_WARNINGS=n         at boot, log n warnings of the kind a guest can provoke (to
 *                                    --log-file, else stderr, as Cloud Hypervisor logs)
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_VSOCK_PORT } from '../../../agent/protocol/schema.js';
import { FakeVmmServer, type RecordedCall } from '../../shared/fake-vmm.js';
import { HybridVsockEndpoint } from '../../shared/hybrid-vsock-endpoint.js';
import { OpenApiContract } from '../../shared/openapi-contract.js';
import { writeNodeProgram } from '../../shared/testing/fake-binary.js';
import { parseCloudHypervisorVersion } from '../version.js';
import { CloudHypervisorRules } from './cloud-hypervisor-rules.js';

export const CLOUD_HYPERVISOR_SPEC = fileURLToPath(new URL('../api/cloud-hypervisor.yaml', import.meta.url));

/** One line of the call log (the same shape as the fake Firecracker's). */
export type FakeRecord = ({ event: 'call' } & RecordedCall) | { event: 'start'; argv: string[]; version: string } | { event: 'exit'; code: number; why: string } | { event: 'opened'; files: string[] };

interface Cli {
  apiSocket: string;
  logFile?: string;
}

/** `--api-socket path=<p>` or a bare path, as Cloud Hypervisor takes it. */
function socketOption(value: string): string {
  const options = value.split(',');
  const path = options.find((o) => o.startsWith('path='));
  if (path) return path.slice('path='.length);
  if (options.length === 1 && !value.includes('=')) return value;
  return exitWith(1, `--api-socket ${value}: expected path=<socket>`);
}

function parseCli(argv: string[]): Cli | 'version' {
  const cli: Partial<Cli> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) exitWith(1, `error: a value is required for '${a}'`);
      return v!;
    };
    if (a === '--version' || a === '-V') return 'version';
    else if (a === '--api-socket') cli.apiSocket = socketOption(value());
    else if (a === '--log-file') cli.logFile = value();
    else exitWith(1, `error: unexpected argument '${a}' found`);
  }
  if (!cli.apiSocket) exitWith(1, 'the fake needs --api-socket (Hypercore always passes it)');
  return cli as Cli;
}

let record: (r: FakeRecord) => void = () => undefined;

function exitWith(code: number, why: string): never {
  process.stderr.write(`fake cloud-hypervisor: ${why}\n`);
  record({ event: 'exit', code, why });
  process.exit(code);
}

async function main(): Promise<void> {
  const version = parseCloudHypervisorVersion(process.env['FAKE_CH_VERSION'] ?? 'v51.0');
  if (!version) exitWith(1, `bad FAKE_CH_VERSION ${process.env['FAKE_CH_VERSION']}`);
  const cli = parseCli(process.argv.slice(2));
  if (cli === 'version') {
    process.stdout.write(`cloud-hypervisor ${version.text}\n`);
    return;
  }
  const recordDir = process.env['FAKE_CH_RECORD_DIR'];
  const vmId = basename(dirname(cli.apiSocket));
  if (recordDir) record = (r) => appendFileSync(join(recordDir, `${vmId}.jsonl`), `${JSON.stringify(r)}\n`);
  record({ event: 'start', argv: process.argv.slice(2), version: version.text });
  if (existsSync(cli.apiSocket)) exitWith(1, `Error creating HTTP API server: ${cli.apiSocket}: Address in use`);
  // Cloud Hypervisor creates its log file anew; without one it logs to stderr.
  if (cli.logFile) writeFileSync(cli.logFile, '');
  const logLine = (line: string): void => (cli.logFile ? appendFileSync(cli.logFile, line) : void process.stderr.write(line));

  let vsock: HybridVsockEndpoint | undefined;
  let lifetime: NodeJS.Timeout | undefined;
  const guestAgent = process.env['FAKE_CH_AGENT_SOCKET'];
  const stopGuest = (): void => {
    if (lifetime) clearTimeout(lifetime);
    void vsock?.close();
    vsock = undefined;
  };
  const powerOff = (): void => {
    // What a Linux guest prints when it powers off; Cloud Hypervisor then exits with 0.
    stopGuest();
    process.stdout.write('reboot: Power down\n');
    setTimeout(() => exitWith(0, 'the guest powered off'), 20);
  };
  const rules = new CloudHypervisorRules(version, {
    onBoot: (config) => {
      record({ event: 'opened', files: rules.opened });
      const payload = (config['payload'] ?? {}) as Record<string, unknown>;
      // Serial mode Tty is the process's stdout; anything else the fake does not print to.
      if ((config['serial'] as Record<string, unknown> | undefined)?.['mode'] === 'Tty') {
        process.stdout.write(`fake cloud-hypervisor ${version.text}: booting ${String(payload['kernel'])} with "${String(payload['cmdline'] ?? '')}"\n`);
      }
      const device = config['vsock'] as Record<string, unknown> | undefined;
      if (device) {
        vsock = new HybridVsockEndpoint((port) => (port === AGENT_VSOCK_PORT && guestAgent && existsSync(guestAgent) ? guestAgent : undefined));
        void vsock.listen(String(device['socket']));
      }
      const warnings = Number(process.env['FAKE_CH_GUEST_WARNINGS'] ?? '0');
      for (let i = 0; i < warnings; i++) logLine(`cloud-hypervisor: ${i}ms: <vcpu0> WARN:virtio-devices/src/vsock/packet.rs -- guest-provoked warning ${i}\n`);
      const ms = Number(process.env['FAKE_CH_GUEST_LIFETIME_MS'] ?? '');
      if (ms > 0) lifetime = setTimeout(powerOff, ms);
    },
    onPowerButton: () => {
      if (process.env['FAKE_CH_IGNORE_POWER_BUTTON'] !== '1') setTimeout(powerOff, 20);
    },
    onVmShutdown: stopGuest,
    onVmmShutdown: () => setTimeout(() => exitWith(0, 'vmm.shutdown'), 20),
  });
  const contract = await OpenApiContract.load(CLOUD_HYPERVISOR_SPEC);
  const fail = process.env['FAKE_CH_FAIL'];
  const die = process.env['FAKE_CH_DIE'];
  const server = new FakeVmmServer(contract, rules, {
    onCall: (call) => record({ event: 'call', ...call }),
    intercept: (method, path) => {
      const call = `${method} ${path.replace(/^\/api\/v1\//, '')}`;
      if (die === call) exitWith(1, `dying on ${call} (FAKE_CH_DIE)`);
      if (fail === call) return { status: 500, body: [`injected failure of ${call} (FAKE_CH_FAIL)`] };
      return undefined;
    },
  });
  await server.listen(cli.apiSocket);
  process.on('SIGTERM', () => exitWith(143, 'SIGTERM'));
}

/** Writes an executable `cloud-hypervisor` that runs this fake with `env`; returns its path. */
export function writeFakeCloudHypervisor(dir: string, env: Record<string, string> = {}, name = 'cloud-hypervisor'): string {
  return writeNodeProgram(dir, name, fileURLToPath(import.meta.url), env);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => exitWith(1, `fatal: ${String(err)}`));
}
