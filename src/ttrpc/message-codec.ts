/**
 * A typed encoder and decoder over one protobufjs message type: plain objects in, bytes out, and
 * back, converted as the caller says. Both kinds of type protobufjs has fit: a reflected
 * `protobuf.Type` (the shim's containerd messages) and a class pbjs generated as static code (the
 * agent's messages, which the guest loads without protobufjs' parser).
 */
import type { IConversionOptions } from 'protobufjs';

/** What a reflected protobufjs type and a pbjs static class both offer. */
export interface ProtobufMessageType {
  encode(message: object): { finish(): Uint8Array };
  decode(bytes: Uint8Array): object;
  fromObject(object: Record<string, unknown>): object;
  toObject(message: object, options?: IConversionOptions): Record<string, unknown>;
}

export interface MessageCodec<T> {
  encode(message: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export function messageCodec<T>(type: ProtobufMessageType, conversion: IConversionOptions): MessageCodec<T> {
  return {
    encode: (message) => type.encode(type.fromObject(message as Record<string, unknown>)).finish(),
    decode: (bytes) => type.toObject(type.decode(bytes), conversion) as T,
  };
}
