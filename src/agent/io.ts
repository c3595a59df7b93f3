/**
 * The Io stream (bidirectional): the client's first IoInput names the process and the output
 * offset to resume from; the agent streams the buffered output from there, then live output, and
 * finally one IoOutput with the exit status once the process is over and everything was sent.
 * Later IoInputs carry stdin and close_stdin. A client that goes away changes nothing for the
 * process: its output stays in the ring for the next reader.
 */
import { Code, TtrpcError, type CallContext, type ServerStream, type StreamMethod } from '../ttrpc/index.js';
import type { ManagedProcess } from './process.js';
import type { ProcessTable } from './processes.js';
import { codecs, type IoInput } from './protocol/messages.js';

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

async function serveIo(table: ProcessTable, stream: ServerStream, ctx: CallContext): Promise<Uint8Array> {
  const first = await stream.recv();
  if (first === undefined) throw new TtrpcError(Code.INVALID_ARGUMENT, 'Io: the first IoInput must name the process');
  const input = codecs.IoInput.decode(first);
  const proc = table.get(input.processId);
  // Input runs beside the output loop; it ends with the client's side of the stream or the call.
  void pumpInput(proc, input, stream).catch(() => undefined);

  let offset = input.fromOffset ?? 0;
  let dropped = 0;
  for (;;) {
    const got = proc.output.read(offset, MAX_MESSAGE_BYTES);
    dropped += got.dropped;
    if (got.chunks.length > 0) {
      for (const chunk of got.chunks) {
        await stream.send(codecs.IoOutput.encode({ fd: chunk.fd, data: chunk.data, offset: chunk.offset, droppedBytes: dropped }));
        dropped = 0;
      }
      offset = got.next;
      continue;
    }
    offset = got.next;
    if (proc.output.closed && proc.exit) {
      const exit = proc.exit;
      return codecs.IoOutput.encode({ exited: true, exitCode: exit.exitCode, signal: exit.signal ?? '', offset, droppedBytes: dropped });
    }
    await proc.output.changed(ctx.signal);
  }
}

async function pumpInput(proc: ManagedProcess, first: IoInput, stream: ServerStream): Promise<void> {
  await applyInput(proc, first);
  for (;;) {
    const raw = await stream.recv();
    if (raw === undefined) return;
    await applyInput(proc, codecs.IoInput.decode(raw));
  }
}

async function applyInput(proc: ManagedProcess, input: IoInput): Promise<void> {
  if (input.stdin && input.stdin.length > 0) await proc.write(Buffer.from(input.stdin.buffer, input.stdin.byteOffset, input.stdin.byteLength));
  if (input.closeStdin) proc.closeStdin();
}
