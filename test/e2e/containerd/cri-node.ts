/**
 * A Kubernetes node in miniature for the shim's end-to-end tests and its benchmark: a local
 * docker-registry with a pause image, a hypercored of the caller's, a network namespace made here
 * and treated as the node (CNI's bridge + host-local network lives there, never on the host), a
 * private containerd 1.6 in it with the CRI plugin, and a CRI client making kubelet's calls.
 * `stop()` removes all of it, whatever a failed caller left: tasks, containerd, its mounts, the
 * daemon and its VMs, the namespace, the registry.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, type RegistryProcess } from '../../../src/images/registry/testing/registry-process.js';
import { createNetns, type TestNetns } from '../../../src/network/test-netns.js';
import { pushBusyboxImage } from '../busybox-image.js';
import type { TestDaemon } from '../harness.js';
import { CriClient } from './cri-client.js';
import { PrivateContainerd } from './private-containerd.js';

export const HYPERCORE_RUNTIME = 'io.containerd.hypercore.v2';

/** containerd namespaces: CRI's, and the one `ctr` uses for tasks of its own. */
export const CRI_NAMESPACE = 'k8s.io';
export const CTR_NAMESPACE = 'hc';

export interface CriNodeOptions {
  /** Prefix of the node's network namespace name. */
  netnsPrefix: string;
  /** The first three octets of the pod network (a /24), e.g. `10.231.7`. */
  subnet: string;
}

export class CriNode {
  registry!: RegistryProcess;
  netns!: TestNetns;
  containerd!: PrivateContainerd;
  cri!: CriClient;
  /** The sandbox ("pause") image, pulled into CRI's namespace. */
  pauseImage!: string;

  constructor(
    readonly daemon: TestDaemon,
    private readonly options: CriNodeOptions,
  ) {}

  /** Where CRI writes the logs of a pod's containers. */
  logDirectory(pod: string): string {
    return join(this.daemon.dir, 'logs', pod);
  }

  /** Starts the registry, the daemon, the node namespace and containerd (in that order). */
  async start(): Promise<void> {
    this.registry = await startRegistry();
    this.pauseImage = await pushBusyboxImage(this.registry, 'NAME=pause\n', { name: 'hc/pause:1', cmd: ['sleep', '2147483647'] });
    await this.daemon.start();
    this.netns = await createNetns(this.options.netnsPrefix);
    const cniConfDir = join(this.daemon.dir, 'cni');
    mkdirSync(cniConfDir, { recursive: true });
    writeFileSync(
      join(cniConfDir, '10-hc.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'hc-e2e',
        plugins: [
          { type: 'bridge', bridge: 'hccni0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: `${this.options.subnet}.0/24` }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(this.daemon.dir, 'cni-ipam') } },
          { type: 'loopback' },
        ],
      }),
    );
    this.containerd = new PrivateContainerd({ dir: join(this.daemon.dir, 'containerd'), hypercoreSocket: this.daemon.socket, netns: `/var/run/netns/${this.netns.name}`, cri: { registry: this.registry.host, sandboxImage: this.pauseImage, cniConfDir } });
    await this.containerd.start();
    this.cri = new CriClient(this.containerd.socket);
    this.pull(this.pauseImage, [CRI_NAMESPACE]);
  }

  /**
   * Pushes a busybox image (see pushBusyboxImage) and pulls it into the given containerd
   * namespaces. containerd's network is the node namespace and the registry listens on the host's
   * loopback, so ctr pulls from the host side (the client fetches).
   */
  async addImage(osRelease: string, namespaces: readonly string[], options: { name?: string; cmd?: string[] } = {}): Promise<string> {
    const image = await pushBusyboxImage(this.registry, osRelease, options);
    this.pull(image, namespaces);
    return image;
  }

  private pull(image: string, namespaces: readonly string[]): void {
    for (const ns of namespaces) {
      const pulled = this.containerd.ctr(['-n', ns, 'images', 'pull', '--plain-http', image]);
      if (pulled.code !== 0) throw new Error(`ctr -n ${ns} images pull ${image} failed: ${pulled.stderr}`);
    }
  }

  /** Removes everything; safe after a failed or partial start, and to call twice. */
  async stop(): Promise<void> {
    this.cri?.close();
    const containerd = this.containerd as PrivateContainerd | undefined;
    // What a failed caller left: tasks killed (and ctr's deleted) through containerd, then containerd.
    for (const ns of [CTR_NAMESPACE, CRI_NAMESPACE]) {
      for (const line of containerd?.ctr(['-n', ns, 'task', 'ls', '-q']).stdout.split('\n').filter(Boolean) ?? []) {
        containerd!.ctr(['-n', ns, 'task', 'kill', '-s', '9', line]);
        if (ns === CTR_NAMESPACE) containerd!.ctr(['-n', ns, 'task', 'delete', '-f', line]);
      }
    }
    await containerd?.stop();
    containerd?.unmountLeftovers();
    await this.daemon.cleanup();
    await (this.netns as TestNetns | undefined)?.cleanup();
    await (this.registry as RegistryProcess | undefined)?.stop();
  }
}

/** A pod's sandbox config as kubelet sends it (network namespace of the pod, CRI logs). */
export function sandboxConfig(name: string, logDirectory: string): object {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    logDirectory,
    linux: { securityContext: { namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

/** A container's config as kubelet sends it, with `HC_TEST` set to its name. */
export function containerConfig(name: string, command: string[], image: string): object {
  return { metadata: { name, attempt: 0 }, image: { image }, command, logPath: `${name}.log`, envs: [{ key: 'HC_TEST', value: Buffer.from(name) }] };
}
