/** The core's PodAgent (a pod VM's containers), spoken as TTRPC calls of the agent's container methods. */
import type { GuestContainerCreate, GuestContainerStats, GuestTerminal, PodAgent, ProcessStarted } from '../core/pod-agent.js';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import { AGENT_SERVICE } from '../agent/protocol/schema.js';
import { containerMethods, type ContainerMethod } from '../agent/protocol/container-messages.js';
import { Code, TtrpcError, type TtrpcClient } from '../ttrpc/index.js';

type Req<M extends ContainerMethod> = Parameters<(typeof containerMethods)[M]['request']['encode']>[0];
type Res<M extends ContainerMethod> = ReturnType<(typeof containerMethods)[M]['response']['decode']>;

/** Creating a container mounts its disk and checks its command; under TCG that can take a while. */
const CALL_TIMEOUT_MS = 60_000;

/** Agent errors keep their meaning: a missing container is NOT_FOUND, a bad request INVALID_ARGUMENT. */
function fromRemote(err: unknown, what: string): HypercoreError {
  if (err instanceof HypercoreError) return err;
  if (err instanceof TtrpcError) {
    const code =
      err.code === Code.NOT_FOUND ? ErrorCodes.containerNotFound
      : err.code === Code.INVALID_ARGUMENT ? ErrorCodes.invalidArgument
      : err.code === Code.ALREADY_EXISTS ? ErrorCodes.containerExists
      : err.code === Code.FAILED_PRECONDITION ? ErrorCodes.containerStateConflict
      : ErrorCodes.agentUnavailable;
    return new HypercoreError(code, err.message, { cause: err });
  }
  return new HypercoreError(ErrorCodes.agentUnavailable, `agent ${what} failed: ${String(err)}`, { cause: err });
}

export class TtrpcPodAgent implements PodAgent {
  constructor(private readonly client: TtrpcClient) {}

  private async call<M extends ContainerMethod>(method: M, request: Req<M>): Promise<Res<M>> {
    const codec = containerMethods[method];
    try {
      const bytes = await this.client.call(AGENT_SERVICE, method, codec.request.encode(request as never), { timeoutMs: CALL_TIMEOUT_MS });
      return codec.response.decode(bytes) as Res<M>;
    } catch (err) {
      throw fromRemote(err, method);
    }
  }

  async createContainer(req: GuestContainerCreate): Promise<void> {
    await this.call('CreateContainer', {
      containerId: req.containerId,
      diskSerial: req.diskSerial,
      configJson: req.config,
      files: req.files,
      ...(req.sandboxId ? { sandboxId: req.sandboxId } : {}),
      shareNamespaces: req.shareNamespaces,
    });
  }

  startContainer(containerId: string, term: GuestTerminal): Promise<ProcessStarted> {
    return this.call('StartContainer', { containerId, terminal: term.terminal, rows: term.rows ?? 0, cols: term.cols ?? 0 });
  }

  execContainer(containerId: string, execId: string, processJson: Uint8Array, term: GuestTerminal): Promise<ProcessStarted> {
    return this.call('ExecContainer', { containerId, execId, processJson, terminal: term.terminal, rows: term.rows ?? 0, cols: term.cols ?? 0 });
  }

  async killContainer(containerId: string, signal: string, all: boolean): Promise<void> {
    await this.call('KillContainer', { containerId, signal, all });
  }

  async pauseContainer(containerId: string): Promise<void> {
    await this.call('PauseContainer', { containerId });
  }

  async resumeContainer(containerId: string): Promise<void> {
    await this.call('ResumeContainer', { containerId });
  }

  async deleteContainer(containerId: string): Promise<void> {
    await this.call('DeleteContainer', { containerId });
  }

  async updateContainer(containerId: string, resourcesJson: Uint8Array): Promise<void> {
    await this.call('UpdateContainer', { containerId, resourcesJson });
  }

  containerStatus(containerId: string): Promise<{ oomKills: number; paused: boolean }> {
    return this.call('GetContainerStatus', { containerId });
  }

  containerStats(containerId: string): Promise<GuestContainerStats> {
    return this.call('ContainerStats', { containerId });
  }

  async containerPids(containerId: string): Promise<number[]> {
    return (await this.call('ContainerPids', { containerId })).pids;
  }
}
