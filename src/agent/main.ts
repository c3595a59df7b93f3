/**
 * The guest agent's entry point. Bundled (scripts/bundle-agent.mjs) into one CommonJS file,
 * /agent/agent.js of the system image, run as root by /sbin/init (src/guest/agent-init.sh), which
 * restarts it when it exits.
 *
 *   node /agent/agent.js                      serve on the virtio-serial port AGENT_PORT_NAME (the VM)
 *   node dist/agent/agent.js --listen <sock>  serve on a unix socket (development, tests)
 *
 * Prints `[hypercore-agent] ready` once the channel is open and waiting for the host.
 */
import { spawn } from 'node:child_process';
import { METADATA_ADDRESS } from '../core/metadata.js';
import { TtrpcServer } from '../ttrpc/index.js';
import { listenUnix, openVirtioPort, servePort } from './channel.js';
import { consoleLog, errorText, READY_LINE } from './log.js';
import { startMetadataEndpoint } from './metadata-endpoint.js';
import { MetadataStore } from './metadata-store.js';
import { AGENT_PORT_NAME } from './protocol/schema.js';
import { parseVsockPort, VsockRelay } from './vsock-relay.js';
import { registerAgentService, type PowerOff } from './service.js';
import { RESTORE_ARG, RESTORE_TIMEOUT_MS } from './restore.js';
import { SpareProcess } from './spare-process.js';
import { defaultExecHelper } from './terminal-session.js';
import { AGENT_VERSION } from './stats.js';

interface Args {
  listen?: string;
  vsock?: number;
  portName: string;
  /** host:port of the metadata endpoint; in a VM 169.254.169.254:80, on a development host none unless given. */
  metadataAddress?: string;
}

/** Where the guest keeps the metadata for an agent restarted by init (root-only, on tmpfs). */
const GUEST_METADATA_FILE = '/run/hc/metadata.json';
/** The agent's unix socket behind the vsock relay (/run is the guest's tmpfs). */
const VSOCK_AGENT_SOCKET = '/run/hc/agent.sock';

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { portName: AGENT_PORT_NAME };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--listen') args.listen = value();
    else if (a === '--port-name') args.portName = value();
    else if (a === '--vsock') args.vsock = parseVsockPort(value());
    // `none`: the host serves the endpoint (the VM is on a NAT bridge).
    else if (a === '--metadata-address') args.metadataAddress = value();
    else throw new Error(`unknown argument ${a} (usage: agent.js [--listen <unix socket> | --vsock <port>] [--port-name <name>] [--metadata-address <host:port>])`);
  }
  return args;
}

/** In the VM: flush the disks, then ask init to power off (busybox poweroff/reboot signal PID 1). */
const guestPowerOff: PowerOff = (reboot) =>
  new Promise<void>((resolve) => {
    const sync = spawn('sync', [], { stdio: 'ignore' });
    const next = (): void => {
      spawn(reboot ? '/bin/reboot' : '/bin/poweroff', [], { stdio: 'ignore' }).on('error', (err) => consoleLog(`power-off failed: ${err.message}`));
      resolve();
    };
    sync.on('error', next);
    sync.on('close', next);
  });

/** Outside a VM a Shutdown must never power off the machine: the agent just exits. */
const devPowerOff: PowerOff = () => {
  consoleLog('shutdown: exiting (dev mode, not powering off)');
  setTimeout(() => process.exit(0), 50);
};

/** Starts the metadata endpoint; resolves once it serves, or failed (logged: the agent serves on without it). */
async function serveMetadata(store: MetadataStore, address: string | undefined): Promise<void> {
  if (address === undefined || address === 'none') return;
  const at = address.lastIndexOf(':');
  const port = Number(address.slice(at + 1));
  await startMetadataEndpoint(store, { host: address.slice(0, at), port, log: consoleLog }).catch((err: unknown) => consoleLog(`metadata endpoint unavailable: ${errorText(err)}`));
}

/**
 * The restore spare starts this long after the agent, when the boot's work (workload start, first
 * execs) is done, so it does not slow a cold start; a snapshot taken before it is ready restores
 * with a helper started on demand.
 */
const FIRST_SPARE_AFTER_MS = 8_000;
/** After a restore, the next spare waits until the restored VM's first execs are through. */
const RESPARE_AFTER_MS = 3_000;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  consoleLog(`starting: agent ${AGENT_VERSION}, node ${process.version}, pid ${process.pid}`);
  const server = new TtrpcServer();
  // Outside a VM the metadata stays in memory: /run/hc is the guest's.
  const metadata = new MetadataStore(args.listen !== undefined ? undefined : GUEST_METADATA_FILE, consoleLog);
  const metadataAddress = args.metadataAddress ?? (args.listen !== undefined ? undefined : `${METADATA_ADDRESS}:80`);
  // On a NAT bridge the daemon serves the endpoint (init passes `--metadata-address none`).
  // Elsewhere it holds 169.254.169.254:80 in the network namespace the workload shares, where a
  // server binding port 80 on every address (0.0.0.0:80) would then fail with EADDRINUSE. So it
  // listens only in VMs that have metadata: started when StartWorkload or SetMetadata first brings
  // values (they wait for it), or at once, off the boot path, when an agent restarted by init finds
  // values kept from before.
  let metadataServing: Promise<void> | undefined;
  const serveOnce = (): Promise<void> => (metadataServing ??= serveMetadata(metadata, metadataAddress));
  // In the guest: the exec helper in its restore mode for the Restored request, started ahead of
  // need (see spare-process.ts).
  const helper = args.listen === undefined ? defaultExecHelper() : null;
  const restoreSpare = helper !== null ? new SpareProcess(helper, [RESTORE_ARG], { timeoutMs: RESTORE_TIMEOUT_MS, respareAfterMs: RESPARE_AFTER_MS, log: consoleLog }) : undefined;
  const agent = registerAgentService(server, {
    log: consoleLog,
    powerOff: args.listen !== undefined ? devPowerOff : guestPowerOff,
    metadata,
    metadataServing: serveOnce,
    ...(restoreSpare ? { restore: { identity: (fields: readonly string[]) => restoreSpare.request(fields) } } : {}),
  });
  restoreSpare?.prepareIn(FIRST_SPARE_AFTER_MS);
  const serveKept = (): void => {
    if (!metadata.empty()) void serveOnce();
  };
  if (args.listen) {
    await listenUnix(server, args.listen, consoleLog);
    consoleLog(`listening on ${args.listen}`);
    console.log(READY_LINE);
    serveKept();
  } else if (args.vsock !== undefined) {
    await listenUnix(server, VSOCK_AGENT_SOCKET, consoleLog);
    const relay = new VsockRelay({ port: args.vsock, agentSocket: VSOCK_AGENT_SOCKET, log: consoleLog });
    await relay.start();
    // A relay outliving the agent would hold the port; the next agent would have to end it.
    process.once('exit', () => relay.stop());
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        relay.stop();
        process.exit(0);
      });
    }
    consoleLog(`listening on vsock port ${args.vsock}`);
    console.log(READY_LINE);
    serveKept();
    void agent.workload.adopt();
  } else {
    const port = await openVirtioPort(args.portName, undefined, consoleLog);
    console.log(READY_LINE);
    serveKept();
    // After "ready": adopting a container left by a previous agent must not delay the boot.
    void agent.workload.adopt();
    await servePort(server, port, { log: consoleLog });
  }
}

// A stray error in a handler must not take the agent (and every process's output buffer) down.
process.on('uncaughtException', (err) => consoleLog(`uncaught exception: ${err.stack ?? err.message}`));
process.on('unhandledRejection', (err) => consoleLog(`unhandled rejection: ${errorText(err)}`));

main().catch((err: unknown) => {
  consoleLog(`fatal: ${errorText(err)}`);
  process.exit(1);
});
