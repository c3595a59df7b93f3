/**
 * The tests' client of CRI (runtime.v1), on containerd's socket: the calls kubelet makes to run a
 * pod, from the test-only subset in cri-api.proto (upstream field numbers).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { repoRoot } from '../harness.js';

type Unary = (request: object, options: { deadline: Date }, callback: (err: grpc.ServiceError | null, response: unknown) => void) => void;

const definition = protoLoader.loadSync(join(repoRoot, 'test/e2e/containerd/cri-api.proto'), { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: false, arrays: true });
const pkg = grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor } } };

export interface ContainerStatus {
  id: string;
  state: 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
  exitCode: number;
  reason: string;
  message: string;
  logPath: string;
  startedAt: number;
  finishedAt: number;
}

export interface PodSandboxStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  network?: { ip: string };
  runtimeHandler: string;
}

export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly images: grpc.Client;

  constructor(socket: string) {
    const credentials = grpc.credentials.createInsecure();
    this.runtime = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, credentials);
    this.images = new pkg.runtime.v1.ImageService(`unix://${socket}`, credentials);
  }

  private call<T>(client: grpc.Client, method: string, request: object, timeoutMs = 240_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = (client as unknown as Record<string, Unary>)[method]!.bind(client);
      fn(request, { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  version(): Promise<{ runtimeName: string; runtimeApiVersion: string }> {
    return this.call(this.runtime, 'Version', { version: 'v1' });
  }

  pullImage(image: string): Promise<{ imageRef: string }> {
    return this.call(this.images, 'PullImage', { image: { image } });
  }

  async runPodSandbox(config: object, runtimeHandler: string): Promise<string> {
    return (await this.call<{ podSandboxId: string }>(this.runtime, 'RunPodSandbox', { config, runtimeHandler })).podSandboxId;
  }

  async podSandboxStatus(id: string): Promise<PodSandboxStatus> {
    return (await this.call<{ status: PodSandboxStatus }>(this.runtime, 'PodSandboxStatus', { podSandboxId: id })).status;
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call(this.runtime, 'StopPodSandbox', { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call(this.runtime, 'RemovePodSandbox', { podSandboxId: id });
  }

  async createContainer(podSandboxId: string, config: object, sandboxConfig: object): Promise<string> {
    return (await this.call<{ containerId: string }>(this.runtime, 'CreateContainer', { podSandboxId, config, sandboxConfig })).containerId;
  }

  async startContainer(id: string): Promise<void> {
    await this.call(this.runtime, 'StartContainer', { containerId: id });
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    await this.call(this.runtime, 'StopContainer', { containerId: id, timeout: timeoutSeconds });
  }

  async removeContainer(id: string): Promise<void> {
    await this.call(this.runtime, 'RemoveContainer', { containerId: id });
  }

  async containerStatus(id: string): Promise<ContainerStatus> {
    return (await this.call<{ status: ContainerStatus }>(this.runtime, 'ContainerStatus', { containerId: id })).status;
  }

  async listContainers(podSandboxId: string): Promise<{ id: string; state: string }[]> {
    return (await this.call<{ containers: { id: string; state: string }[] }>(this.runtime, 'ListContainers', { filter: { podSandboxId } })).containers;
  }

  /** kubelet's in-place resize of a running container (containerd sends the shim an Update). */
  async updateMemoryLimit(id: string, bytes: number): Promise<void> {
    await this.call(this.runtime, 'UpdateContainerResources', { containerId: id, linux: { memoryLimitInBytes: bytes } });
  }

  async execSync(id: string, cmd: string[], timeoutSeconds = 60): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const r = await this.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>(this.runtime, 'ExecSync', { containerId: id, cmd, timeout: timeoutSeconds }, (timeoutSeconds + 60) * 1000);
    return { stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), exitCode: r.exitCode };
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }
}
