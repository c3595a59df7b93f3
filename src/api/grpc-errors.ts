/** How a HypercoreError travels over gRPC: the status of the code table, the message, and hc-error-* metadata. */
import * as grpc from '@grpc/grpc-js';
import { asHypercoreError } from '../core/errors.js';
import { statusFor } from './error-status.js';

/** The status of an error: code, message as details, metadata `hc-error-code` (and `hc-error-details`). */
export function grpcStatusOf(err: unknown): grpc.StatusObject {
  const e = asHypercoreError(err);
  const metadata = new grpc.Metadata();
  metadata.set('hc-error-code', e.code);
  if (e.details.length > 0) metadata.set('hc-error-details', JSON.stringify(e.details));
  return { code: statusFor(e).grpc, details: e.message, metadata };
}

/** The same, as the error a handler's callback or 'error' event takes. */
export function toServiceError(err: unknown): grpc.ServiceError {
  const status = grpcStatusOf(err);
  return Object.assign(new Error(status.details), status) as grpc.ServiceError;
}
