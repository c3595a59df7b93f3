import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CallContext, ServerStream } from '../ttrpc/index.js';
import { ioMethod } from './io.js';
import { ProcessTable } from './processes.js';
import { codecs, ioOutputCost, type IoOutput } from './protocol/messages.js';

/**
 * An Io stream whose client reports what it consumed while the agent's send is still in flight (the
 * client read the message before the agent's transport write completed, as on a busy connection).
 */
function eagerClient(first: Uint8Array): { stream: ServerStream; outputs: IoOutput[] } {
  const inbox: Uint8Array[] = [first];
  let wake: (() => void) | undefined;
  let consumed = 0;
  const outputs: IoOutput[] = [];
  const stream = {
    recv: async (): Promise<Uint8Array | undefined> => {
      while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
      return inbox.shift();
    },
    send: async (message: Uint8Array): Promise<void> => {
      outputs.push(codecs.IoOutput.decode(message));
      consumed += ioOutputCost(message);
      inbox.push(codecs.IoInput.encode({ consumedBytes: consumed }));
      wake?.();
      // The credit message is handled before this send resolves.
      await new Promise((r) => setTimeout(r, 1));
    },
  };
  return { stream: stream as unknown as ServerStream, outputs };
}

test('credit reported while a send is in flight counts: the stream does not stall', async () => {
  const table = new ProcessTable({ bufferBytes: 256 * 1024 });
  const proc = await table.spawn({ args: ['seq', '1', '300000'] }, { inWorkload: false });
  const { stream, outputs } = eagerClient(codecs.IoInput.encode({ processId: proc.id, windowBytes: 128 * 1024, holdOutput: true }));
  const ctx = { signal: new AbortController().signal } as CallContext;
  const method = ioMethod(table);
  const final = await Promise.race([method.stream(stream, ctx), new Promise<'stalled'>((r) => setTimeout(() => r('stalled'), 20_000).unref())]);
  if (final === 'stalled') await proc.signal('SIGKILL');
  assert.notEqual(final, 'stalled', `the stream stalled after ${outputs.length} messages`);
  const bytes = outputs.reduce((n, o) => n + (o.data?.length ?? 0), 0);
  assert.equal(bytes, Array.from({ length: 300000 }, (_, i) => `${i + 1}\n`).join('').length);
});
