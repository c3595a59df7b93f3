/**
 * The agent's TTRPC service, `hypercore.agent.v1.Agent`: every method of the protocol, wired to the
 * process table, the workload and /proc. Unary methods decode and encode with the shared `methods`
 * table, so the daemon and the agent cannot disagree on a message type.
 */
import { Code, TtrpcError, type CallContext, type TtrpcServer, type UnaryHandler } from '../ttrpc/index.js';
import { containerHandlers } from './container-service.js';
import { PodContainers, type PodContainersOptions } from './containers.js';
import { execMethod, ioMethod } from './io.js';
import { errorText, silentLog, type Log } from './log.js';
import { MetadataStore } from './metadata-store.js';
import { ProcessTable, type ProcessTableOptions } from './processes.js';
import { methods, type UnaryMethod } from './protocol/messages.js';
import { AGENT_SERVICE } from './protocol/schema.js';
import { helloResponse, readStats } from './stats.js';
import { Workload, type WorkloadOptions } from './workload.js';
import { applyRestore, pidFromFile, RESTORE_ARG, RESTORE_TIMEOUT_MS, type RestoreTarget } from './restore.js';
import { runCommand } from '../system/command.js';

type RequestOf<M extends UnaryMethod> = ReturnType<(typeof methods)[M]['request']['decode']>;
type ResponseOf<M extends UnaryMethod> = Parameters<(typeof methods)[M]['response']['encode']>[0];

/** How the VM is powered off after Shutdown (injected: a dev agent on the host must never power it off). */
export type PowerOff = (reboot: boolean) => void | Promise<void>;

export interface AgentServiceOptions {
  processes?: ProcessTableOptions;
  /** How Restored is applied (tests replace the commands and paths). */
  restore?: Partial<RestoreTarget>;
  workload?: Omit<WorkloadOptions, 'table' | 'log'>;
  /** Pod VMs' containers (tests point their paths elsewhere). */
  containers?: Omit<PodContainersOptions, 'table' | 'log'>;
  powerOff: PowerOff;
  log?: Log;
  /** /proc (tests may point elsewhere). */
  proc?: string;
  /** The values and secrets served to the guest (default: kept in memory only). */
  metadata?: MetadataStore;
  /** Resolves once the metadata endpoint serves (or could not): a workload may ask for its metadata first thing. */
  metadataServing?: () => Promise<void>;
}

/** The agent's state behind the service: processes and the workload. */
export interface Agent {
  table: ProcessTable;
  workload: Workload;
  containers: PodContainers;
  metadata: MetadataStore;
}

/** Creates the process table and workload and registers the Agent service on `server`. */
export function registerAgentService(server: TtrpcServer, options: AgentServiceOptions): Agent {
  const log = options.log ?? silentLog;
  const table = new ProcessTable({ log, ...options.processes });
  const workload = new Workload({ table, log, ...options.workload });
  const containers = new PodContainers({ table, log, ...options.containers });
  const metadata = options.metadata ?? new MetadataStore(undefined, log);
  let shuttingDown = false;
  const proc = options.proc ?? '/proc';
  const restoreTarget: RestoreTarget = {
    workloadPid: () => pidFromFile(workload.pidFile, proc),
    renamed: (hostname) => workload.renamed(hostname),
    hcDir: '/run/hc',
    proc,
    // Without a spare (outside the guest, tests): the helper started for the request.
    identity: (fields) => {
      const helper = workload.helperBinary;
      if (helper === null) return Promise.reject(new TtrpcError(Code.FAILED_PRECONDITION, 'Restored needs the exec helper, and there is none beside the agent'));
      return runCommand(helper, [RESTORE_ARG], { timeoutMs: RESTORE_TIMEOUT_MS, input: `${fields.join('\t')}\n` });
    },
    now: () => Date.now(),
    ...options.restore,
  };

  const unary = <M extends UnaryMethod>(name: M, handler: (req: RequestOf<M>, ctx: CallContext) => Promise<ResponseOf<M>> | ResponseOf<M>): UnaryHandler => {
    const codec = methods[name];
    return async (payload, ctx) => {
      const req = codec.request.decode(payload) as RequestOf<M>;
      const res = await handler(req, ctx);
      return (codec.response.encode as (m: ResponseOf<M>) => Uint8Array)(res);
    };
  };

  server.register(AGENT_SERVICE, {
    ...containerHandlers(containers),
    Hello: unary('Hello', () => helloResponse(workload.started, options.proc)),
    StartWorkload: unary('StartWorkload', async (req) => {
      if (!req.process) throw new TtrpcError(Code.INVALID_ARGUMENT, 'process is required');
      // Before the workload starts: it may ask for its metadata first thing.
      metadata.replace(req.metadata ?? { values: {}, secrets: {} });
      if (!metadata.empty()) await options.metadataServing?.();
      return workload.start(req);
    }),
    CreateProcess: unary('CreateProcess', async (req) => {
      if (!req.process) throw new TtrpcError(Code.INVALID_ARGUMENT, 'process is required');
      const proc = await table.spawn(req.process, { inWorkload: req.inWorkload ?? false });
      return { processId: proc.id, pid: proc.pid };
    }),
    Io: ioMethod(table),
    Exec: execMethod(table),
    Wait: unary('Wait', async (req, ctx) => {
      const exit = await table.wait(req.processId, ctx.signal);
      return { exitCode: exit.exitCode, signal: exit.signal ?? '' };
    }),
    Signal: unary('Signal', async (req) => {
      await table.signal(req.processId, req.signal);
      return {};
    }),
    Resize: unary('Resize', (req) => {
      table.resize(req.processId, req.rows, req.cols);
      return {};
    }),
    ListProcesses: unary('ListProcesses', () => ({ processes: table.list() })),
    GetStats: unary('GetStats', () => readStats(options.proc)),
    SetMetadata: unary('SetMetadata', async (req) => {
      metadata.replace(req);
      // A VM given its first values at run time gets its endpoint now.
      if (!metadata.empty()) await options.metadataServing?.();
      return {};
    }),
    Restored: unary('Restored', async (req) => {
      await applyRestore(req, restoreTarget);
      // Logged once the answer is on its way: a console line costs a just-restored TCG guest milliseconds.
      setImmediate(() => log(`restored from a snapshot: now ${req.hostname}${req.network ? ` ${req.network.address}` : ''}`));
      return {};
    }),
    Shutdown: unary('Shutdown', (req) => {
      if (!shuttingDown) {
        shuttingDown = true;
        log(`shutdown requested${req.reboot ? ' (reboot)' : ''}`);
        // After the response has been written: the power-off may stop the VM mid-write otherwise.
        setTimeout(() => {
          Promise.resolve(options.powerOff(req.reboot ?? false)).catch((err: unknown) => log(`power-off failed: ${errorText(err)}`));
        }, 100);
      }
      return {};
    }),
  });
  return { table, workload, containers, metadata };
}
