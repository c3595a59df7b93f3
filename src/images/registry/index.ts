/** Public surface of the OCI distribution client; import from here rather than from the parts. */
export { RegistryClient, defaultPlatform, type RegistryClientOptions, type ResolveOptions, type DownloadOptions, type PingOptions, type PingResult } from './client.js';
export type { BlobStream, DownloadedBlob, FetchBlobOptions } from './blobs.js';
export type { BlobSource, PushedBlob } from './push.js';
export { formatPlatform, normalisePlatform, parsePlatform, selectPlatform, type FetchedManifest, type PlatformSpec, type ResolvedImage } from './manifests.js';
export { dockerHubApiHost, dockerHubRegistry, formatReference, isInsecureByDefault, parseReference, registryApiHost, validateDigest, type ImageReference } from './reference.js';
export { CredentialStore, defaultDockerConfigPath, dockerHubAuthKey, type CredentialSource, type Credentials } from './credentials.js';
export { DigestMismatchError, ImageUnsupportedError, RegistryAuthError, RegistryNotFoundError, RegistryUnavailableError, TransferInterruptedError } from './errors.js';
export { parseWwwAuthenticate, type AuthChallenge } from './auth.js';
export { InFlight, Limiter } from './concurrency.js';
export { sha256Digest } from './digest.js';
export * from './media-types.js';
export type { TransportOptions } from './transport.js';
