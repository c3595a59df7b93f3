/** The agent's container methods (pod VMs), as TTRPC handlers of the Agent service. */
import type { ServiceMethods, UnaryHandler } from '../ttrpc/index.js';
import type { PodContainers } from './containers.js';
import { containerMethods, type ContainerMethod } from './protocol/container-messages.js';
import { codecs } from './protocol/messages.js';

type RequestOf<M extends ContainerMethod> = ReturnType<(typeof containerMethods)[M]['request']['decode']>;
type ResponseOf<M extends ContainerMethod> = Parameters<(typeof containerMethods)[M]['response']['encode']>[0];

function unary<M extends ContainerMethod>(name: M, handler: (req: RequestOf<M>) => Promise<ResponseOf<M>>): UnaryHandler {
  const codec = containerMethods[name];
  return async (payload) => {
    const res = await handler(codec.request.decode(payload) as RequestOf<M>);
    return (codec.response.encode as (m: ResponseOf<M>) => Uint8Array)(res);
  };
}

const empty = codecs.Empty.decode(new Uint8Array(0));

export function containerHandlers(containers: PodContainers): ServiceMethods {
  return {
    CreateContainer: unary('CreateContainer', async (req) => {
      await containers.create(req);
      return empty;
    }),
    StartContainer: unary('StartContainer', (req) => containers.start(req)),
    ExecContainer: unary('ExecContainer', (req) => containers.exec(req)),
    KillContainer: unary('KillContainer', async (req) => {
      await containers.kill(req);
      return empty;
    }),
    PauseContainer: unary('PauseContainer', async (req) => {
      await containers.pause(req.containerId);
      return empty;
    }),
    ResumeContainer: unary('ResumeContainer', async (req) => {
      await containers.resume(req.containerId);
      return empty;
    }),
    DeleteContainer: unary('DeleteContainer', async (req) => {
      await containers.delete(req.containerId);
      return empty;
    }),
    UpdateContainer: unary('UpdateContainer', async (req) => {
      await containers.update(req);
      return empty;
    }),
    GetContainerStatus: unary('GetContainerStatus', (req) => containers.status(req.containerId)),
    ContainerStats: unary('ContainerStats', (req) => containers.stats(req.containerId)),
    ContainerPids: unary('ContainerPids', async (req) => ({ pids: await containers.pids(req.containerId) })),
  };
}
