/**
 * The shim binary's client of hypercored: one JSON POST over the daemon's unix socket. Kept to
 * node:http so the binary starts fast (containerd runs it for every task).
 */
import http from 'node:http';

export class DaemonCallError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    /** Nothing listened on the socket (hypercored is down or restarting). */
    readonly unreachable = false,
  ) {
    super(message);
  }
}

/** How often a call waiting for hypercored to come back tries again. */
const RETRY_INTERVAL_MS = 200;

/** The largest answer accepted from the daemon. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

export function postJson<T>(socket: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath: socket, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': payload.length }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RESPONSE_BYTES) req.destroy(new DaemonCallError(`hypercored's answer to ${path} is larger than ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return reject(new DaemonCallError(`hypercored answered ${path} with status ${res.statusCode} and no JSON`));
        }
        if ((res.statusCode ?? 500) >= 400) {
          const error = (json as { error?: { code?: string; message?: string } }).error;
          return reject(new DaemonCallError(error?.message ?? `hypercored answered ${path} with status ${res.statusCode}`, error?.code));
        }
        resolve(json as T);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new DaemonCallError(`hypercored did not answer ${path} within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof DaemonCallError) return reject(err);
      const unreachable = err.code === 'ECONNREFUSED' || err.code === 'ENOENT';
      reject(new DaemonCallError(`cannot reach hypercored at ${socket} (${err.code ?? err.message}); is it running? Set HYPERCORE_SOCKET in containerd's environment or "socket" in the runtime's options file if it listens elsewhere`, undefined, unreachable));
    });
    req.end(payload);
  });
}

/**
 * As postJson, but while nothing listens on `socket` it tries again until `timeoutMs` has passed:
 * a hypercored that restarts (it crashed, or is being upgraded) gets the call once it is back.
 */
export async function postJsonOnceUp<T>(socket: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await postJson<T>(socket, path, body, Math.max(1, deadline - Date.now()));
    } catch (err) {
      if (!(err instanceof DaemonCallError) || !err.unreachable || Date.now() + RETRY_INTERVAL_MS >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, RETRY_INTERVAL_MS));
    }
  }
}
