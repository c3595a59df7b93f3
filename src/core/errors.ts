/**
 * Typed errors. Every error a user can see carries a stable `code`; the API layer maps codes to
 * gRPC and HTTP statuses in one table (`api/error-status.ts`), so the core never thinks about transports.
 */

export const ErrorCodes = {
  configInvalid: 'HC_CONFIG_INVALID',
  invalidArgument: 'HC_INVALID_ARGUMENT',
  notFound: 'HC_NOT_FOUND',
  vmNotFound: 'HC_VM_NOT_FOUND',
  vmAmbiguous: 'HC_VM_AMBIGUOUS',
  vmNameTaken: 'HC_VM_NAME_TAKEN',
  vmStateConflict: 'HC_VM_STATE_CONFLICT',
  providerUnavailable: 'HC_PROVIDER_UNAVAILABLE',
  providerFailed: 'HC_PROVIDER_FAILED',
  commandFailed: 'HC_COMMAND_FAILED',
  daemonUnavailable: 'HC_DAEMON_UNAVAILABLE',
  imageNotFound: 'HC_IMAGE_NOT_FOUND',
  imageInUse: 'HC_IMAGE_IN_USE',
  imageDigestMismatch: 'HC_IMAGE_DIGEST_MISMATCH',
  imageUnsupported: 'HC_IMAGE_UNSUPPORTED',
  imageUnsafeLayer: 'HC_IMAGE_UNSAFE_LAYER',
  imageCorruptLayer: 'HC_IMAGE_CORRUPT_LAYER',
  imageLimitExceeded: 'HC_IMAGE_LIMIT_EXCEEDED',
  registryAuth: 'HC_REGISTRY_AUTH',
  agentUnavailable: 'HC_AGENT_UNAVAILABLE',
  registryUnavailable: 'HC_REGISTRY_UNAVAILABLE',
  clientTooSlow: 'HC_CLIENT_TOO_SLOW',
  snapshotNotFound: 'HC_SNAPSHOT_NOT_FOUND',
  snapshotUnsupported: 'HC_SNAPSHOT_UNSUPPORTED',
  snapshotIncompatible: 'HC_SNAPSHOT_INCOMPATIBLE',
  unauthenticated: 'HC_UNAUTHENTICATED',
  permissionDenied: 'HC_PERMISSION_DENIED',
  internal: 'HC_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** One problem found while validating input; `path` is the key (e.g. `hardware.cores`). */
export interface ValidationIssue {
  path: string;
  message: string;
  /** `file:line:column` when the input came from a file. */
  location?: string;
  value?: unknown;
}

export class HypercoreError extends Error {
  readonly code: ErrorCode;
  readonly details: readonly ValidationIssue[];

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: readonly ValidationIssue[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? [];
  }
}

export class ConfigInvalidError extends HypercoreError {
  constructor(message: string, details: readonly ValidationIssue[] = [], cause?: unknown) {
    super(ErrorCodes.configInvalid, message, { details, cause });
  }
}

export class InvalidArgumentError extends HypercoreError {
  constructor(message: string, details: readonly ValidationIssue[] = []) {
    super(ErrorCodes.invalidArgument, message, { details });
  }
}

/** A client fell so far behind a stream that the daemon stopped holding data for it. */
export class ClientTooSlowError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.clientTooSlow, message);
  }
}

/** A remote caller without valid credentials (no client certificate or token, or a bad one). */
export class UnauthenticatedError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.unauthenticated, message);
  }
}

/** A caller whose credentials do not allow what it asked for (a scope, a host path). */
export class PermissionDeniedError extends HypercoreError {
  constructor(message: string, details: readonly ValidationIssue[] = []) {
    super(ErrorCodes.permissionDenied, message, { details });
  }
}

export class VmNotFoundError extends HypercoreError {
  constructor(ref: string) {
    super(ErrorCodes.vmNotFound, `no VM matches "${ref}" (by id, id prefix or name)`);
  }
}

export class VmAmbiguousError extends HypercoreError {
  constructor(ref: string, ids: readonly string[]) {
    super(ErrorCodes.vmAmbiguous, `"${ref}" matches ${ids.length} VMs (${ids.join(', ')}); use more characters of the id`);
  }
}

export class VmNameTakenError extends HypercoreError {
  constructor(name: string, id: string) {
    super(ErrorCodes.vmNameTaken, `the name "${name}" is already used by VM ${id}; choose another with --name or remove that VM`);
  }
}

export class VmStateConflictError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.vmStateConflict, message);
  }
}

export class ProviderUnavailableError extends HypercoreError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCodes.providerUnavailable, message, { cause });
  }
}

export class ProviderFailedError extends HypercoreError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCodes.providerFailed, message, { cause });
  }
}

/** A child process that failed: carries the command, exit status and the tail of its stderr. */
export class CommandFailedError extends HypercoreError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string;

  constructor(init: { command: string; exitCode: number | null; signal: string | null; stderrTail: string; reason?: string }) {
    const status = init.reason ?? (init.signal ? `was killed by ${init.signal}` : `exited with code ${init.exitCode}`);
    const tail = init.stderrTail.trim();
    super(ErrorCodes.commandFailed, `${init.command} ${status}${tail ? `: ${tail}` : ''}`);
    this.command = init.command;
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.stderrTail = init.stderrTail;
  }
}

export class ImageNotFoundError extends HypercoreError {
  constructor(ref: string, where = 'in the local image store') {
    super(ErrorCodes.imageNotFound, `image "${ref}" not found ${where}`);
  }
}

export class ImageInUseError extends HypercoreError {
  constructor(ref: string, vmNames: readonly string[]) {
    super(ErrorCodes.imageInUse, `image "${ref}" is used by VM(s) ${vmNames.join(', ')}; remove them first or use force`);
  }
}

export class SnapshotNotFoundError extends HypercoreError {
  constructor(ref: string) {
    super(ErrorCodes.snapshotNotFound, `no snapshot matches "${ref}" (by id, id prefix or name)`);
  }
}

/** The VM's provider (or this VMM) cannot take snapshots. */
export class SnapshotUnsupportedError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.snapshotUnsupported, message);
  }
}

/** A snapshot this host cannot restore: another VMM version or accelerator saved it. */
export class SnapshotIncompatibleError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.snapshotIncompatible, message);
  }
}

export class InternalError extends HypercoreError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCodes.internal, message, { cause });
  }
}

/** Wraps anything thrown into a HypercoreError so callers can rely on `code`. */
export function asHypercoreError(err: unknown): HypercoreError {
  if (err instanceof HypercoreError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message, err);
}
