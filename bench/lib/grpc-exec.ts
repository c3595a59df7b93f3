/** `hypercore exec` without the CLI: one in-process gRPC client on the daemon's socket (no node start-up per exec). */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { loadVmServiceDefinition } from '../../src/api/proto.js';
import type { ProcessInput, ProcessOutput } from '../../src/api/process-session.js';

export type ExecClient = grpc.Client & { Exec(): grpc.ClientDuplexStream<ProcessInput, ProcessOutput> };

export function newExecClient(socket: string): ExecClient {
  const Client = loadVmServiceDefinition();
  return new Client(`unix:${socket}`, grpc.credentials.createInsecure()) as unknown as ExecClient;
}

/** One Exec stream: start, closeStdin, until the `exited` message; resolves to ms and exit code. */
export function grpcExec(client: ExecClient, id: string, args: string[], timeoutMs: number): Promise<{ ms: number; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const call = client.Exec();
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => done(() => (call.cancel(), reject(new Error(`gRPC Exec timed out after ${timeoutMs} ms`)))), timeoutMs);
    call.on('data', (out: ProcessOutput) => {
      if (!out.exited) return;
      const ms = performance.now() - t0;
      done(() => {
        call.end();
        resolve({ ms, exitCode: out.exitCode ?? 0 });
      });
    });
    call.on('error', (err: grpc.ServiceError) => done(() => reject(new Error(`gRPC Exec failed: ${err.details || err.message}`))));
    call.on('end', () => done(() => reject(new Error('gRPC Exec stream ended without an exited message'))));
    call.write({ start: { id, args } });
    call.write({ closeStdin: true });
  });
}

