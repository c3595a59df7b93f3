/**
 * Errors of the registry client. Each carries one of the central image/registry codes, so the API
 * layer maps them to statuses without knowing about registries.
 */
import { ErrorCodes, HypercoreError, type ValidationIssue } from '../../core/errors.js';

/** Content did not hash to the digest (or size) it was addressed by: corrupt or tampered data. */
export class DigestMismatchError extends HypercoreError {
  readonly expected: string;
  readonly actual: string;

  constructor(what: string, expected: string, actual: string) {
    super(ErrorCodes.imageDigestMismatch, `${what}: expected ${expected}, got ${actual}; the data is corrupt or was tampered with`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** The registry has no such repository, tag, manifest, blob or platform. */
export class RegistryNotFoundError extends HypercoreError {
  constructor(message: string, details: readonly ValidationIssue[] = []) {
    super(ErrorCodes.imageNotFound, message, { details });
  }
}

/** Authentication was required and failed (no credentials, rejected credentials, token refused). */
export class RegistryAuthError extends HypercoreError {
  readonly registry: string;

  constructor(registry: string, repository: string | undefined, reason: string) {
    const what = repository === undefined ? `registry ${registry}` : `${registry}/${repository}`;
    super(ErrorCodes.registryAuth, `authentication to ${what} failed: ${reason}`);
    this.registry = registry;
  }
}

/**
 * The registry could not be reached or kept failing (network errors, 5xx, 429 after all retries),
 * or answered something the protocol does not allow.
 */
export class RegistryUnavailableError extends HypercoreError {
  /** HTTP status of the last answer, when there was one. */
  readonly status: number | undefined;

  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(ErrorCodes.registryUnavailable, message, { cause: options.cause });
    this.status = options.status;
  }
}

/** A manifest, media type or config this client cannot use (schema 1, unknown type, invalid JSON). */
export class ImageUnsupportedError extends HypercoreError {
  constructor(message: string, details: readonly ValidationIssue[] = []) {
    super(ErrorCodes.imageUnsupported, message, { details });
  }
}

/** A blob larger than the client accepts (declared or received). */
export class BlobTooLargeError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.imageLimitExceeded, message);
  }
}

/**
 * A blob transfer that broke off (connection closed early, body shorter than announced).
 * Worth retrying, unlike a digest mismatch, which would recur.
 */
export class TransferInterruptedError extends RegistryUnavailableError {}
