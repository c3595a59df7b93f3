/**
 * Errors: each API error code is its own class, so callers can `catch (e) { if (e instanceof
 * VmNotFoundError) ... }`. The map below is typed by the document's list of codes, so a code the
 * daemon gains without a class here fails the SDK's build.
 */
import type { ErrorBody, ErrorCode } from './types.js';

export type ErrorDetail = NonNullable<ErrorBody['error']['details']>[number];

/** Any error the daemon answered with: its stable code, message, details and HTTP status. */
export class HypercoreApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status: number,
    readonly details: readonly ErrorDetail[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

type ErrorClass = new (code: ErrorCode, message: string, status: number, details?: readonly ErrorDetail[], options?: { cause?: unknown }) => HypercoreApiError;
const subclass = (name: string): ErrorClass => ({ [name]: class extends HypercoreApiError {} })[name] as ErrorClass;

export const ConfigInvalidError = subclass('ConfigInvalidError');
export const InvalidArgumentError = subclass('InvalidArgumentError');
export const NotFoundError = subclass('NotFoundError');
export const VmNotFoundError = subclass('VmNotFoundError');
export const VmAmbiguousError = subclass('VmAmbiguousError');
export const VmNameTakenError = subclass('VmNameTakenError');
export const VmStateConflictError = subclass('VmStateConflictError');
export const ProviderUnavailableError = subclass('ProviderUnavailableError');
export const ProviderFailedError = subclass('ProviderFailedError');
export const CommandFailedError = subclass('CommandFailedError');
export const DaemonUnavailableError = subclass('DaemonUnavailableError');
export const ImageNotFoundError = subclass('ImageNotFoundError');
export const ImageInUseError = subclass('ImageInUseError');
export const ImageDigestMismatchError = subclass('ImageDigestMismatchError');
export const ImageUnsupportedError = subclass('ImageUnsupportedError');
export const ImageUnsafeLayerError = subclass('ImageUnsafeLayerError');
export const ImageCorruptLayerError = subclass('ImageCorruptLayerError');
export const ImageLimitExceededError = subclass('ImageLimitExceededError');
export const RegistryAuthError = subclass('RegistryAuthError');
export const AgentUnavailableError = subclass('AgentUnavailableError');
export const RegistryUnavailableError = subclass('RegistryUnavailableError');
export const ClientTooSlowError = subclass('ClientTooSlowError');
export const SnapshotNotFoundError = subclass('SnapshotNotFoundError');
export const SnapshotUnsupportedError = subclass('SnapshotUnsupportedError');
export const SnapshotIncompatibleError = subclass('SnapshotIncompatibleError');
export const UnauthenticatedError = subclass('UnauthenticatedError');
export const PermissionDeniedError = subclass('PermissionDeniedError');
export const ContainerNotFoundError = subclass('ContainerNotFoundError');
export const ContainerExistsError = subclass('ContainerExistsError');
export const ContainerStateConflictError = subclass('ContainerStateConflictError');
export const InternalError = subclass('InternalError');

export const errorClasses: Readonly<Record<ErrorCode, ErrorClass>> = {
  HC_CONFIG_INVALID: ConfigInvalidError,
  HC_INVALID_ARGUMENT: InvalidArgumentError,
  HC_NOT_FOUND: NotFoundError,
  HC_VM_NOT_FOUND: VmNotFoundError,
  HC_VM_AMBIGUOUS: VmAmbiguousError,
  HC_VM_NAME_TAKEN: VmNameTakenError,
  HC_VM_STATE_CONFLICT: VmStateConflictError,
  HC_PROVIDER_UNAVAILABLE: ProviderUnavailableError,
  HC_PROVIDER_FAILED: ProviderFailedError,
  HC_COMMAND_FAILED: CommandFailedError,
  HC_DAEMON_UNAVAILABLE: DaemonUnavailableError,
  HC_IMAGE_NOT_FOUND: ImageNotFoundError,
  HC_IMAGE_IN_USE: ImageInUseError,
  HC_IMAGE_DIGEST_MISMATCH: ImageDigestMismatchError,
  HC_IMAGE_UNSUPPORTED: ImageUnsupportedError,
  HC_IMAGE_UNSAFE_LAYER: ImageUnsafeLayerError,
  HC_IMAGE_CORRUPT_LAYER: ImageCorruptLayerError,
  HC_IMAGE_LIMIT_EXCEEDED: ImageLimitExceededError,
  HC_REGISTRY_AUTH: RegistryAuthError,
  HC_AGENT_UNAVAILABLE: AgentUnavailableError,
  HC_REGISTRY_UNAVAILABLE: RegistryUnavailableError,
  HC_CLIENT_TOO_SLOW: ClientTooSlowError,
  HC_SNAPSHOT_NOT_FOUND: SnapshotNotFoundError,
  HC_SNAPSHOT_UNSUPPORTED: SnapshotUnsupportedError,
  HC_SNAPSHOT_INCOMPATIBLE: SnapshotIncompatibleError,
  HC_UNAUTHENTICATED: UnauthenticatedError,
  HC_PERMISSION_DENIED: PermissionDeniedError,
  HC_CONTAINER_NOT_FOUND: ContainerNotFoundError,
  HC_CONTAINER_EXISTS: ContainerExistsError,
  HC_CONTAINER_STATE_CONFLICT: ContainerStateConflictError,
  HC_INTERNAL: InternalError,
};

/** The error an Error body stands for; a body that is not one (a proxy's page, garbage) is an InternalError naming the status. */
export function errorFromBody(status: number, body: unknown): HypercoreApiError {
  const error = (body as Partial<ErrorBody> | undefined)?.error;
  const code = error?.code;
  if (typeof code === 'string' && code in errorClasses) {
    return new errorClasses[code](code, typeof error?.message === 'string' ? error.message : `HTTP ${status}`, status, Array.isArray(error?.details) ? error.details : []);
  }
  return new InternalError('HC_INTERNAL', `the daemon answered HTTP ${status} without an error body`, status);
}
