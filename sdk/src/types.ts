/** The API's messages, as named in the daemon's OpenAPI document (generated from its protos). */
import type { components, operations } from './generated/openapi.js';

type Schemas = components['schemas'];

export type Vm = Schemas['Vm'];
/** A VM's spec as a create request sends it: every field optional. */
export type VmSpec = Schemas['VmSpec'];
/** A VM's spec as answers carry it (`Vm['spec']`): the fields the daemon always sets are required. */
export type VmSpecAnswer = Schemas['VmSpecAnswer'];
export type VmEvent = Schemas['VmEvent'];
export type StartTrace = Schemas['StartTrace'];
export type CreateVmRequest = Schemas['CreateVmRequest'];
export type Snapshot = Schemas['Snapshot'];
export type Image = Schemas['Image'];
export type PullImageProgress = Schemas['PullImageProgress'];
export type PullImageRequest = Schemas['PullImageRequest'];
export type ImportImageRequest = Schemas['ImportImageRequest'];
export type PruneImagesResponse = Schemas['PruneImagesResponse'];
export type ApiToken = Schemas['ApiToken'];
export type CreateTokenRequest = Schemas['CreateTokenRequest'];
export type CreateTokenResponse = Schemas['CreateTokenResponse'];
export type DoctorResponse = Schemas['DoctorResponse'];
export type PruneNetworksResponse = Schemas['PruneNetworksResponse'];
export type VersionResponse = Schemas['VersionResponse'];
export type VmMetadata = Schemas['VmMetadata'];
export type ExecStart = Schemas['ExecStart'];
export type ProcessInput = Schemas['ProcessInput'];
export type ProcessOutput = Schemas['ProcessOutput'];
export type ErrorBody = Schemas['Error'];
/** Every error code the API can answer with. */
export type ErrorCode = ErrorBody['error']['code'];

/** The JSON body an operation takes (from the document's requestBody). */
export type RequestBody<Op extends keyof operations> = operations[Op] extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;
export type StopVmOptions = RequestBody<'StopVm'>;
/** The options of a create from a hac.toml file of the daemon's host (its body without the text). */
export type CreateVmFromHacFileOptions = Omit<RequestBody<'CreateVmFromHacFile'>, 'hac'>;
export type CreateSnapshotOptions = RequestBody<'CreateSnapshot'>;
export type SetMetadataRequest = RequestBody<'SetMetadata'>;
