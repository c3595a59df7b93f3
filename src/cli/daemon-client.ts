/**
 * The CLI's way to the daemon: the SDK's client for the endpoint the command line names, and the
 * CLI's words for the SDK's errors. The commands that call the daemon load this one module (the
 * bundle makes it one chunk, the SDK inside), so `--help` and `config` load no client and a call
 * pays for one file more than the commands.
 */
import { HypercoreClient, type ConnectionOptions } from '../../sdk/src/index.js';
import { cliError } from './daemon-errors.js';
import type { Endpoint } from './endpoint.js';

export { errorFromBody } from '../../sdk/src/index.js';

/** The client of `endpoint`, and how to tell its errors. */
export function connect(endpoint: Endpoint): { client: HypercoreClient; reported: (err: unknown) => unknown } {
  return { client: new HypercoreClient(connectionOptions(endpoint)), reported: (err) => cliError(err, endpoint) };
}

/** The SDK's connection options for the endpoint. */
export function connectionOptions(endpoint: Endpoint): ConnectionOptions {
  if (endpoint.kind === 'unix') return { socketPath: endpoint.socketPath };
  const tls = endpoint.tls;
  return {
    url: endpoint.origin,
    ...(tls ? { ca: tls.ca, ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}) } : {}),
    ...(endpoint.token ? { token: endpoint.token } : {}),
  };
}
