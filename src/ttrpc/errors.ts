/**
 * gRPC status codes and the error type TTRPC calls fail with.
 * Codes are the gRPC ones (google.rpc.Code), which ttrpc carries in google.rpc.Status.code.
 */
import type { AnyMessage, Status } from './messages.js';

/** gRPC status codes (google.golang.org/grpc/codes). */
export const Code = {
  OK: 0,
  CANCELED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** Name of a code number, e.g. `codeName(12) === 'UNIMPLEMENTED'`; `CODE_<n>` for unknown numbers. */
export function codeName(code: number): string {
  for (const [name, value] of Object.entries(Code)) if (value === code) return name;
  return `CODE_${code}`;
}

/**
 * A non-OK TTRPC status, locally raised (timeout, cancel, connection loss, size limit) or received from the
 * peer. `message` is exactly the status message so callers can compare it with what the server sent.
 */
export class TtrpcError extends Error {
  override readonly name: string = 'TtrpcError';
  /** gRPC status code number. */
  readonly code: number;
  /** google.rpc.Status.details as received (Any messages). */
  readonly details: AnyMessage[];

  constructor(code: number, message: string, options: { details?: AnyMessage[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? [];
  }

  /** The status to put on the wire for this error. */
  toStatus(): Status {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** The connection went away (peer closed, transport error, or local `close()`); code UNAVAILABLE. */
export class ConnectionClosedError extends TtrpcError {
  override readonly name: string = 'ConnectionClosedError';
  constructor(message: string, cause?: unknown) {
    super(Code.UNAVAILABLE, message, { cause });
  }
}

/** Builds the error for a received status (the caller has checked that it is not OK). */
export function errorFromStatus(status: Status): TtrpcError {
  return new TtrpcError(status.code, status.message, { details: status.details });
}

/**
 * Maps anything a handler threw to the status sent back. A numeric `code` in 1..16 is used as is (that is the
 * contract for handlers that want a specific code); 0 is not, because a thrown error must never reach the
 * client as success with an empty payload. DOMExceptions carry legacy numeric codes (e.g. NotFoundError = 8)
 * that are not gRPC codes, so they are never trusted; an abort of the call's own signal maps to the signal's
 * reason (DEADLINE_EXCEEDED or CANCELED).
 */
export function statusFromError(err: unknown, signal?: AbortSignal): Status {
  if (signal?.aborted && (err === signal.reason || isAbortError(err)) && signal.reason instanceof TtrpcError) {
    return signal.reason.toStatus();
  }
  if (err instanceof TtrpcError) return err.toStatus();
  const message = err instanceof Error ? err.message : String(err);
  const code = typeof err === 'object' && err !== null && !isDomException(err) ? (err as { code?: unknown }).code : undefined;
  if (typeof code === 'number' && Number.isInteger(code) && code >= 1 && code <= 16) {
    return { code, message, details: [] };
  }
  return { code: Code.UNKNOWN, message, details: [] };
}

function isDomException(err: object): boolean {
  return typeof DOMException !== 'undefined' && err instanceof DOMException;
}

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}
