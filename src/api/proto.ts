/** Loads the protobuf definition of the API at run time (the .proto file is the single source). */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), 'proto');
export const VM_PROTO_FILE = 'hypercore/v1/vm.proto';

/** The proto3 JSON conventions: lowerCamelCase fields, absent optionals left out, bytes as Buffers. */
const loaderOptions: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: true, includeDirs: [PROTO_DIR] };

interface VmServicePackage {
  hypercore: { v1: { VmService: grpc.ServiceClientConstructor } };
}

let cached: grpc.ServiceClientConstructor | undefined;

export function loadVmServiceDefinition(): grpc.ServiceClientConstructor {
  if (!cached) {
    const definition = protoLoader.loadSync(VM_PROTO_FILE, loaderOptions);
    cached = (grpc.loadPackageDefinition(definition) as unknown as VmServicePackage).hypercore.v1.VmService;
  }
  return cached;
}
