/** Shared fixtures of the ttrpc tests (not part of the public API). */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TtrpcClient } from './client.js';
import { FrameDecoder, type DecodeEvent } from './framing.js';
import { TtrpcServer } from './server.js';

/** A server listening on a unix socket in a fresh temp dir, and a client connected to it. */
export interface Fixture {
  server: TtrpcServer;
  client: TtrpcClient;
  path: string;
  cleanup(): Promise<void>;
}

/** Starts `server` on a temp unix socket and connects a client. */
export async function socketFixture(server: TtrpcServer): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'ttrpc-test-'));
  const path = join(dir, 'ttrpc.sock');
  await server.listen(path);
  const client = await TtrpcClient.connect(path);
  return {
    server,
    client,
    path,
    cleanup: async () => {
      client.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A raw socket speaking frames, to send what a well-behaved client never would. */
export interface RawConn {
  write(buf: Uint8Array): void;
  /** Next decoded event (frame or oversize notice). */
  next(): Promise<DecodeEvent>;
  close(): void;
}

/** Opens a raw framed connection to a unix socket. */
export async function rawConnect(path: string): Promise<RawConn> {
  const sock = net.connect(path);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const decoder = new FrameDecoder();
  const events: DecodeEvent[] = [];
  let wake: (() => void) | null = null;
  sock.on('data', (chunk: Buffer) => {
    events.push(...decoder.push(chunk));
    wake?.();
  });
  sock.on('error', () => {});
  return {
    write: (buf) => {
      sock.write(buf);
    },
    next: async () => {
      while (events.length === 0) {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('raw: no frame within 10 s')), 10_000);
          wake = () => {
            clearTimeout(t);
            wake = null;
            resolve();
          };
        });
      }
      return events.shift() as DecodeEvent;
    },
    close: () => {
      sock.destroy();
    },
  };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the reason when `signal` aborts; rejects after `ms` so a broken abort fails, not hangs. */
export function aborted(signal: AbortSignal, ms = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return resolve(signal.reason);
    const t = setTimeout(() => reject(new Error(`signal not aborted within ${ms} ms`)), ms);
    t.unref();
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve(signal.reason);
      },
      { once: true },
    );
  });
}
