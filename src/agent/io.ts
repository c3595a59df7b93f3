/**
 * The Io stream (bidirectional): the client's first IoInput names the process and the output
 * offset to resume from; the agent streams the buffered output from there, then live output, and
 * finally one IoOutput with the exit status once the process is over and everything was sent.
 * Later IoInputs carry stdin, close_stdin and output credit. A client that goes away changes nothing
 * for the process: its output stays in the ring for the next reader.
 *
 * Flow control: ttrpc has none, and the host shares one connection among all streams, so the host
 * grants credit instead (window_bytes, then consumed_bytes as its reader takes output): the agent
 * sends no more than the window ahead of the reader. A client that holds the output (hold_output)
 * thereby pauses the process when it stops reading; see output-buffer.ts.
 *
 * Exec is CreateProcess and Io in one call, one round trip less for a short exec: its first IoInput
 * carries the process to start instead of naming one, its first IoOutput says which process started,
 * and the stream then goes on as Io, holding the output from byte 0 (nothing is lost before the
 * first read, as no other reader could have come first).
 */
import { Code, TtrpcError, type CallContext, type ServerStream, type StreamMethod } from '../ttrpc/index.js';
import { OutputCredit } from './output-credit.js';
import type { ManagedProcess } from './process.js';
import type { ProcessTable } from './processes.js';
import { codecs, ioOutputCost, type IoInput } from './protocol/messages.js';

/** Output bytes per IoOutput message (well below ttrpc's 4 MiB frame limit). */
const MAX_MESSAGE_BYTES = 64 * 1024;

/** The Io method for TtrpcServer.register. */
export function ioMethod(table: ProcessTable): StreamMethod {
  return {
    streamingClient: true,
    streamingServer: true,
    stream: (stream, ctx) => serveIo(table, stream, ctx),
  };
}

/** The Exec method for TtrpcServer.register. */
export function execMethod(table: ProcessTable): StreamMethod {
  return {
    streamingClient: true,
    streamingServer: true,
    stream: (stream, ctx) => serveExec(table, stream, ctx),
  };
}

async function serveIo(table: ProcessTable, stream: ServerStream, ctx: CallContext): Promise<Uint8Array | void> {
  const first = await stream.recv();
  if (first === undefined) throw new TtrpcError(Code.INVALID_ARGUMENT, 'Io: the first IoInput must name the process');
  const input = codecs.IoInput.decode(first);
  return serveOutput(table.get(input.processId), input, stream, ctx);
}

async function serveExec(table: ProcessTable, stream: ServerStream, ctx: CallContext): Promise<Uint8Array | void> {
  const first = await stream.recv();
  const input = first === undefined ? undefined : codecs.IoInput.decode(first);
  if (!input?.create?.process) throw new TtrpcError(Code.INVALID_ARGUMENT, 'Exec: the first IoInput must carry the process to create');
  const proc = await table.spawn(input.create.process, { inWorkload: input.create.inWorkload ?? false });
  await stream.send(codecs.IoOutput.encode({ started: { processId: proc.id, pid: proc.pid } }));
  return serveOutput(proc, { ...input, fromOffset: 0, holdOutput: true }, stream, ctx);
}

/** The output loop of Io and Exec for `proc`, from the first IoInput's offset and credit; its stdin and credit beside. */
async function serveOutput(proc: ManagedProcess, input: IoInput, stream: ServerStream, ctx: CallContext): Promise<Uint8Array | void> {
  // The stream ends with the call, or when the client closes its side (its way to cancel).
  const stop = new AbortController();
  const onCallEnd = (): void => stop.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onCallEnd();
  ctx.signal.addEventListener('abort', onCallEnd, { once: true });
  const credit = new OutputCredit(input.windowBytes ?? 0);
  // Input runs beside the output loop.
  void pumpInput(proc, input, stream, credit)
    .catch(() => undefined)
    .finally(() => stop.abort(new Error('Io: the client closed the stream')));

  let offset = input.fromOffset ?? 0;
  const hold = input.holdOutput ? proc.output.hold(offset) : undefined;
  if (hold) proc.readerArrived();
  let dropped = 0;
  try {
    for (;;) {
      if (credit.room <= 0) {
        await credit.changed(stop.signal);
        continue;
      }
      const got = proc.output.read(offset, Math.min(MAX_MESSAGE_BYTES, credit.room));
      dropped += got.dropped;
      if (got.chunks.length > 0) {
        for (const chunk of got.chunks) {
          const message = codecs.IoOutput.encode({ fd: chunk.fd, data: chunk.data, offset: chunk.offset, droppedBytes: dropped });
          // Spent before the send: the client may report it consumed before `send` resolves here.
          credit.spend(ioOutputCost(message));
          await stream.send(message);
          dropped = 0;
        }
        offset = got.next;
        hold?.advance(offset);
        continue;
      }
      offset = got.next;
      hold?.advance(offset);
      if (proc.output.closed && proc.exit) {
        const exit = proc.exit;
        return codecs.IoOutput.encode({ exited: true, exitCode: exit.exitCode, signal: exit.signal ?? '', offset, droppedBytes: dropped });
      }
      await proc.output.changed(stop.signal);
    }
  } catch (err) {
    // The client closing its side is a normal end; the call's own end (deadline, connection) is not.
    if (stop.signal.aborted && !ctx.signal.aborted) return;
    throw err;
  } finally {
    hold?.release();
    ctx.signal.removeEventListener('abort', onCallEnd);
  }
}

/**
 * Reads the client's messages: credit takes effect at once, stdin is written in order behind it. Credit
 * must not wait behind stdin: a process blocked on its full stdout (no credit) may be the one not
 * reading its stdin.
 */
async function pumpInput(proc: ManagedProcess, first: IoInput, stream: ServerStream, credit: OutputCredit): Promise<void> {
  let writing: Promise<void> = applyInput(proc, first);
  for (;;) {
    const raw = await stream.recv();
    if (raw === undefined) return;
    const input = codecs.IoInput.decode(raw);
    if (input.consumedBytes) credit.consumed(input.consumedBytes);
    writing = writing.then(() => applyInput(proc, input));
  }
}

async function applyInput(proc: ManagedProcess, input: IoInput): Promise<void> {
  if (input.stdin && input.stdin.length > 0) await proc.write(Buffer.from(input.stdin.buffer, input.stdin.byteOffset, input.stdin.byteLength));
  if (input.closeStdin) proc.closeStdin();
}
