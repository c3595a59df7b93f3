/** The one table that maps Hypercore error codes to gRPC and HTTP statuses. */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ErrorCodes, type ErrorCode, type HypercoreError } from '../core/errors.js';

interface StatusPair {
  grpc: GrpcStatus;
  http: number;
}

const table: Record<ErrorCode, StatusPair> = {
  [ErrorCodes.configInvalid]: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400 },
  [ErrorCodes.invalidArgument]: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400 },
  [ErrorCodes.notFound]: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  [ErrorCodes.vmNotFound]: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  [ErrorCodes.vmAmbiguous]: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400 },
  [ErrorCodes.vmNameTaken]: { grpc: GrpcStatus.ALREADY_EXISTS, http: 409 },
  [ErrorCodes.vmStateConflict]: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 409 },
  [ErrorCodes.providerUnavailable]: { grpc: GrpcStatus.UNAVAILABLE, http: 503 },
  [ErrorCodes.providerFailed]: { grpc: GrpcStatus.INTERNAL, http: 500 },
  [ErrorCodes.commandFailed]: { grpc: GrpcStatus.INTERNAL, http: 500 },
  [ErrorCodes.daemonUnavailable]: { grpc: GrpcStatus.UNAVAILABLE, http: 503 },
  [ErrorCodes.internal]: { grpc: GrpcStatus.INTERNAL, http: 500 },
  [ErrorCodes.imageNotFound]: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  [ErrorCodes.imageInUse]: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 409 },
  [ErrorCodes.imageDigestMismatch]: { grpc: GrpcStatus.DATA_LOSS, http: 502 },
  [ErrorCodes.imageUnsupported]: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 422 },
  [ErrorCodes.imageUnsafeLayer]: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 422 },
  [ErrorCodes.imageCorruptLayer]: { grpc: GrpcStatus.DATA_LOSS, http: 422 },
  [ErrorCodes.imageLimitExceeded]: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 413 },
  [ErrorCodes.agentUnavailable]: { grpc: GrpcStatus.UNAVAILABLE, http: 503 },
  [ErrorCodes.registryAuth]: { grpc: GrpcStatus.UNAUTHENTICATED, http: 401 },
  [ErrorCodes.registryUnavailable]: { grpc: GrpcStatus.UNAVAILABLE, http: 502 },
  [ErrorCodes.clientTooSlow]: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 429 },
  [ErrorCodes.snapshotNotFound]: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  [ErrorCodes.snapshotUnsupported]: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 409 },
  [ErrorCodes.snapshotIncompatible]: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 409 },
  [ErrorCodes.unauthenticated]: { grpc: GrpcStatus.UNAUTHENTICATED, http: 401 },
  [ErrorCodes.permissionDenied]: { grpc: GrpcStatus.PERMISSION_DENIED, http: 403 },
};

export function statusFor(err: HypercoreError): StatusPair {
  return table[err.code];
}

/** The JSON body of an HTTP error, and the metadata of a gRPC error: the same fields. */
export interface ErrorBody {
  error: { code: string; message: string; details: { path: string; message: string; location?: string; value?: unknown }[] };
}

export function errorBody(err: HypercoreError): ErrorBody {
  return { error: { code: err.code, message: err.message, details: err.details.map((d) => ({ ...d })) } };
}
