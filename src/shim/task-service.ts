/**
 * `containerd.task.v2.Task` over TTRPC: decodes each call, runs it on the task engine for the
 * socket's context, encodes the answer. Errors become the status codes containerd's errdefs
 * understand (NotFound, AlreadyExists, FailedPrecondition, ...), with Hypercore's message.
 */
import { asHypercoreError, ErrorCodes, type ErrorCode } from '../core/errors.js';
import { Code, TtrpcError, type ServiceMethods, type UnaryHandler } from '../ttrpc/index.js';
import { anyOf, messages, processDetails, TaskStatus, timestamp, type Codec } from './protocol/containerd.js';
import type { ShimContext, TaskEngine } from './tasks.js';

/** The shim's version, as Connect reports it. */
export const SHIM_VERSION = '1';

const codeFor: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.containerNotFound]: Code.NOT_FOUND,
  [ErrorCodes.notFound]: Code.NOT_FOUND,
  [ErrorCodes.vmNotFound]: Code.NOT_FOUND,
  [ErrorCodes.containerExists]: Code.ALREADY_EXISTS,
  [ErrorCodes.vmNameTaken]: Code.ALREADY_EXISTS,
  [ErrorCodes.containerStateConflict]: Code.FAILED_PRECONDITION,
  [ErrorCodes.vmStateConflict]: Code.FAILED_PRECONDITION,
  [ErrorCodes.invalidArgument]: Code.INVALID_ARGUMENT,
  [ErrorCodes.configInvalid]: Code.INVALID_ARGUMENT,
  [ErrorCodes.imageLimitExceeded]: Code.RESOURCE_EXHAUSTED,
  [ErrorCodes.providerUnavailable]: Code.UNAVAILABLE,
  [ErrorCodes.agentUnavailable]: Code.UNAVAILABLE,
  [ErrorCodes.daemonUnavailable]: Code.UNAVAILABLE,
};

/** An engine error as a TTRPC status. */
export function toStatus(err: unknown): TtrpcError {
  if (err instanceof TtrpcError) return err;
  const e = asHypercoreError(err);
  return new TtrpcError(codeFor[e.code] ?? Code.UNKNOWN, e.message);
}

function unary<Req, Res>(req: Codec<Req>, res: Codec<Res>, handler: (request: Req, signal: AbortSignal) => Promise<Res> | Res): UnaryHandler {
  return async (payload, call) => {
    try {
      return res.encode(await handler(req.decode(payload), call.signal));
    } catch (err) {
      throw toStatus(err);
    }
  };
}

const empty = {} as Record<string, never>;

/**
 * The Task service for one shim socket (one pod). `onIdle` runs after a Shutdown finds no task left.
 * `shimPid` is what Connect reports as the shim's process: the process that holds containerd's
 * connection (the shim keeper when there is one), so that whoever acts on that pid (e.g. kills
 * a shim that hangs) reaches the shim, not hypercored and every VM with it.
 */
export function taskService(engine: TaskEngine, ctx: ShimContext, onIdle: () => void, shimPid: () => number | Promise<number> = () => process.pid): ServiceMethods {
  const m = messages;
  return {
    Create: unary(m.CreateTaskRequest, m.CreateTaskResponse, (r) =>
      engine.create(ctx, { id: r.id, bundle: r.bundle, rootfs: r.rootfs.map((x) => ({ type: x.type, source: x.source, options: x.options })), stdio: { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal }, checkpoint: r.checkpoint }),
    ),
    Start: unary(m.StartRequest, m.StartResponse, (r) => engine.start(ctx, r.id, r.execId)),
    Delete: unary(m.DeleteRequest, m.DeleteResponse, async (r) => {
      const exit = await engine.delete(ctx, r.id, r.execId);
      return { pid: exit.pid, exitStatus: exit.exitStatus, ...(exit.exitedAt ? { exitedAt: timestamp(exit.exitedAt)! } : {}) };
    }),
    Exec: unary(m.ExecProcessRequest, m.Empty, (r) => {
      engine.exec(ctx, { id: r.id, execId: r.execId, stdio: { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal }, process: Buffer.from(r.spec?.value ?? []).toString('utf8') });
      return empty;
    }),
    ResizePty: unary(m.ResizePtyRequest, m.Empty, async (r) => {
      await engine.resize(ctx, r.id, r.execId, r.height, r.width);
      return empty;
    }),
    State: unary(m.StateRequest, m.StateResponse, (r) => {
      const s = engine.state(ctx, r.id, r.execId);
      const status = { created: TaskStatus.CREATED, running: TaskStatus.RUNNING, paused: TaskStatus.PAUSED, stopped: TaskStatus.STOPPED }[s.status];
      return {
        id: s.id,
        bundle: s.bundle,
        pid: s.pid,
        status,
        stdin: s.stdio.stdin,
        stdout: s.stdio.stdout,
        stderr: s.stdio.stderr,
        terminal: s.stdio.terminal,
        exitStatus: s.exit?.status ?? 0,
        ...(s.exit ? { exitedAt: timestamp(s.exit.at)! } : {}),
        execId: s.execId,
      };
    }),
    Pids: unary(m.PidsRequest, m.PidsResponse, async (r) => ({
      processes: (await engine.pids(ctx, r.id)).map((p) => ({ pid: p.pid, ...(p.execId ? { info: anyOf(processDetails, { execId: p.execId }) } : {}) })),
    })),
    Pause: unary(m.PauseRequest, m.Empty, async (r) => {
      await engine.pause(ctx, r.id);
      return empty;
    }),
    Resume: unary(m.ResumeRequest, m.Empty, async (r) => {
      await engine.resume(ctx, r.id);
      return empty;
    }),
    Checkpoint: unary(m.CheckpointTaskRequest, m.Empty, () => {
      throw new TtrpcError(Code.UNIMPLEMENTED, 'checkpointing a task is not supported by the Hypercore shim');
    }),
    Kill: unary(m.KillRequest, m.Empty, async (r) => {
      await engine.kill(ctx, r.id, r.execId, r.signal, r.all);
      return empty;
    }),
    CloseIO: unary(m.CloseIORequest, m.Empty, (r) => {
      if (r.stdin) engine.closeStdin(ctx, r.id, r.execId);
      return empty;
    }),
    Update: unary(m.UpdateTaskRequest, m.Empty, async (r) => {
      if (r.resources?.value && r.resources.value.length > 0) await engine.update(ctx, r.id, r.resources.value);
      return empty;
    }),
    Wait: unary(m.WaitRequest, m.WaitResponse, async (r, signal) => {
      const exit = await engine.wait(ctx, r.id, r.execId, signal);
      return { exitStatus: exit.status, exitedAt: timestamp(exit.at)! };
    }),
    Stats: unary(m.StatsRequest, m.StatsResponse, async (r) => ({ stats: await engine.stats(ctx, r.id) })),
    Connect: unary(m.ConnectRequest, m.ConnectResponse, async (r) => ({ shimPid: await shimPid(), taskPid: engine.taskPid(ctx, r.id), version: SHIM_VERSION })),
    Shutdown: unary(m.ShutdownRequest, m.Empty, () => {
      // Like runc's shim: keep serving while the pod has tasks; otherwise go, after this answer.
      if (!engine.hasTasks(ctx)) setImmediate(onIdle);
      return empty;
    }),
  };
}
