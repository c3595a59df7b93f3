/**
 * Server interceptors: one counts calls by method and status (metrics); one authenticates and
 * authorizes each call on the remote listener before its handler runs. A refused call gets its
 * status at once; its metadata never reaches the handler, so the handler is never started.
 */
import * as grpc from '@grpc/grpc-js';
import type { RemoteAuth, TlsPeer } from './auth/authenticate.js';
import { grpcScope } from './auth/scopes.js';
import { grpcStatusOf } from './grpc-errors.js';

/** Calls `record(method path, status name)` once per call, when its status is sent. */
export function countingInterceptor(record: (path: string, status: string) => void): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      sendStatus: (status, next) => {
        record(method.path, grpc.status[status.code] ?? String(status.code));
        next(status);
      },
    });
}

/** The addresses of a call's connection, as grpc-js reports them. */
export type ConnectionInfo = ReturnType<grpc.ServerInterceptingCallInterface['getConnectionInfo']>;

export interface AuthLog {
  warn(obj: object, msg?: string): void;
}

/**
 * Needs each call's credentials: the certificate state of its connection (looked up by the
 * connection's addresses, which the listener registered) and its `authorization` metadata.
 */
export function authInterceptor(auth: RemoteAuth, tlsPeerOf: (connection: ConnectionInfo) => TlsPeer | undefined, log: AuthLog): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const connection = call.getConnectionInfo();
            try {
              const caller = auth.authenticate(tlsPeerOf(connection), metadata.get('authorization').map(String)[0]);
              auth.authorize(caller, grpcScope(method.path), method.path);
            } catch (err) {
              const status = grpcStatusOf(err);
              log.warn({ method: method.path, peer: `${connection.remoteAddress}:${connection.remotePort}`, err: status.details }, 'remote call refused');
              call.sendStatus(status);
              return;
            }
            pass(metadata);
          },
        }),
    });
}
