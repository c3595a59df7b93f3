/**
 * TTRPC (containerd's lightweight RPC protocol) for Hypercore: framing, envelope messages, client, server.
 * Self-contained: imports only node: builtins and protobufjs.
 */
export { TtrpcClient, type CallOptions, type Metadata, type StreamOptions } from './client.js';
export { ClientStream, type StreamDesc } from './client-stream.js';
export { Code, codeName, ConnectionClosedError, statusFromError, TtrpcError } from './errors.js';
export {
  encodeFrame,
  Flags,
  FrameDecoder,
  FrameTooLargeError,
  HEADER_LENGTH,
  MESSAGE_LENGTH_MAX,
  MessageType,
  type DecodeEvent,
  type Frame,
  type FrameHeader,
} from './framing.js';
export * from './messages.js';
export { TtrpcServer, type ListenOptions } from './server.js';
export { ServerConnection } from './server-conn.js';
export { ServerStream, type CallContext, type Method, type ServiceMethods, type StreamMethod, type UnaryHandler } from './server-stream.js';
export { connectUnix, duplexTransport, streamPairTransport, type StreamPairOptions, type Transport } from './transport.js';
