/** Loads the protobuf definitions of the API at run time (the .proto files are the single source). */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), 'proto');
export const PROTO_FILES = ['hypercore/v1/vm.proto', 'hypercore/v1/image.proto', 'hypercore/v1/token.proto'];

/**
 * The proto3 JSON conventions: lowerCamelCase fields, absent optionals left out, bytes as Buffers,
 * empty repeated fields as [] and empty maps as {}. No synthetic oneof markers: proto3 `optional` would otherwise add `_pid`-style keys.
 */
const loaderOptions: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: false, arrays: true, objects: true, includeDirs: [PROTO_DIR] };

interface HypercorePackage {
  hypercore: { v1: { VmService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor; TokenService: grpc.ServiceClientConstructor } };
}

let cached: HypercorePackage['hypercore']['v1'] | undefined;

function services(): HypercorePackage['hypercore']['v1'] {
  if (!cached) {
    const definition = protoLoader.loadSync(PROTO_FILES, loaderOptions);
    cached = (grpc.loadPackageDefinition(definition) as unknown as HypercorePackage).hypercore.v1;
  }
  return cached;
}

export function loadVmServiceDefinition(): grpc.ServiceClientConstructor {
  return services().VmService;
}

export function loadImageServiceDefinition(): grpc.ServiceClientConstructor {
  return services().ImageService;
}

export function loadTokenServiceDefinition(): grpc.ServiceClientConstructor {
  return services().TokenService;
}
