/**
 * One interactive process session (exec or attach), independent of the transport: gRPC bidi streams
 * and WebSockets both feed `inputs` and take `send`. Closing the session (client gone) stops the
 * IO relay; the process itself keeps running in the guest, as with `docker exec` when the client drops.
 *
 * Output goes at the client's pace: `send` resolves once the transport can take more, and only then is
 * the next event pulled from the agent (which grants the guest more credit). A client that stops reading
 * thus pauses the process (exec) or makes it skip output (attach), and costs the daemon a bounded amount:
 * the agent stream's window (1 MiB) plus the transport's high-water mark.
 */
import { InvalidArgumentError } from '../core/errors.js';
import type { ProcessIo } from '../core/agent.js';
import type { VmService } from '../core/vm-service.js';

export interface ProcessInput {
  start?: { id?: string; args?: string[]; env?: string[]; cwd?: string; user?: string; tty?: boolean; rows?: number; cols?: number };
  attach?: { id?: string; fromStart?: boolean };
  stdin?: Uint8Array;
  closeStdin?: boolean;
  rows?: number;
  cols?: number;
  signal?: string;
}

export interface ProcessOutput {
  fd?: number;
  data?: Uint8Array;
  exited?: boolean;
  exitCode?: number;
  signal?: string;
  processId?: string;
}

const SIGNAL_PATTERN = /^SIG[A-Z0-9]+$/;

export async function serveProcessSession(
  service: VmService,
  mode: 'exec' | 'attach',
  inputs: AsyncIterable<ProcessInput>,
  send: (output: ProcessOutput) => void | Promise<void>,
  /** Aborted when the client is gone: the relay stops at once, even while it waits for the client. */
  clientGone?: AbortSignal,
): Promise<void> {
  const iterator = inputs[Symbol.asyncIterator]();
  const first = (await iterator.next()).value as ProcessInput | undefined;
  let vmRef: string;
  let session: { processId: string; io: ProcessIo };
  if (mode === 'exec') {
    const start = first?.start;
    if (!start?.id || !start.args?.length) throw new InvalidArgumentError('the first Exec message must be `start` with an id and a non-empty args list');
    vmRef = start.id;
    session = await service.exec(vmRef, {
      args: start.args,
      ...(start.env?.length ? { env: start.env } : {}),
      ...(start.cwd ? { cwd: start.cwd } : {}),
      ...(start.user ? { user: start.user } : {}),
      terminal: start.tty === true,
      ...(start.rows ? { rows: start.rows } : {}),
      ...(start.cols ? { cols: start.cols } : {}),
    });
  } else {
    if (!first?.attach?.id) throw new InvalidArgumentError('the first Attach message must be `attach` with an id');
    vmRef = first.attach.id;
    session = service.attach(vmRef, { fromStart: first.attach.fromStart === true });
  }
  const { processId, io } = session;
  // Closing the IO releases the process, which is paused while this client's output waits.
  const stop = (): void => io.close();
  if (clientGone?.aborted) stop();
  clientGone?.addEventListener('abort', stop, { once: true });
  await send({ processId });
  // Input runs beside output: stdin, resizes and signals until the client closes its side.
  void (async () => {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      const input = next.value;
      if (input.stdin && input.stdin.length > 0) await io.write(input.stdin);
      if (input.rows && input.cols) await service.resizeProcess(vmRef, processId, input.rows, input.cols);
      if (input.signal) {
        if (!SIGNAL_PATTERN.test(input.signal)) throw new InvalidArgumentError(`signal "${input.signal}" is not a signal name like SIGTERM`);
        await service.signalProcess(vmRef, processId, input.signal);
      }
      if (input.closeStdin) await io.closeStdin();
    }
  })().catch(() => undefined);
  try {
    for await (const event of io) {
      if (event.kind === 'output') await send({ fd: event.fd, data: event.data });
      else {
        await send({ exited: true, exitCode: event.status.exitCode, ...(event.status.signal ? { signal: event.status.signal } : {}) });
        break;
      }
    }
  } finally {
    clientGone?.removeEventListener('abort', stop);
    io.close();
  }
}
