/**
 * The shim sockets hypercored serves: one TTRPC socket per pod (containerd's tasks of one sandbox
 * all connect to it), made when the shim binary's `start` asks for it and closed when containerd
 * shuts the last task of the pod down. hypercored serving them itself is what keeps a pod's host
 * overhead to a socket and a few records: no process per pod.
 *
 * The sockets live in a directory only root can enter (0700), each socket 0600: containerd's own
 * shims check the peer's uid, which Node cannot read, so the file modes stand in for that check.
 *
 * With the shim keeper (the daemon's case), the socket containerd connects to is the keeper's
 * (keeper/): hypercored serves the pod on a socket of its own in `back/`, and the keeper relays
 * containerd's connections there, holding them open while hypercored is away. Without one (tests),
 * hypercored listens on the pod's socket itself.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../core/ports.js';
import { TtrpcServer } from '../ttrpc/index.js';
import type { KeeperLink } from './keeper/link.js';
import { TASK_SERVICE } from './protocol/containerd.js';
import { taskService } from './task-service.js';
import type { ShimContext, TaskEngine } from './tasks.js';

interface Served {
  server: TtrpcServer;
  ctx: ShimContext;
}

export class ShimSockets {
  private readonly served = new Map<string, Served>();
  private readonly opening = new Map<string, Promise<string>>();

  constructor(
    private readonly dir: string,
    private readonly engine: TaskEngine,
    private readonly logger: Logger,
    private readonly keeper?: KeeperLink,
  ) {}

  /** Where hypercored itself serves a pod whose socket the keeper holds. */
  backOf(path: string): string {
    return join(this.dir, 'back', basename(path));
  }

  /** The socket of a pod: a short hash keeps the path well under the 108 bytes a unix socket may have. */
  pathOf(ctx: Pick<ShimContext, 'owner' | 'namespace' | 'sandboxId'>): string {
    const hash = createHash('sha256').update(`${ctx.owner}\n${ctx.namespace}\n${ctx.sandboxId}`).digest('hex').slice(0, 32);
    return join(this.dir, `${hash}.sock`);
  }

  /** Serves the pod's socket (once) and returns its path. */
  async serve(ctx: ShimContext): Promise<string> {
    const path = this.pathOf(ctx);
    if (this.served.has(path)) return path;
    let pending = this.opening.get(path);
    if (!pending) {
      pending = this.open(path, ctx).finally(() => this.opening.delete(path));
      this.opening.set(path, pending);
    }
    return pending;
  }

  isServed(ctx: Pick<ShimContext, 'owner' | 'namespace' | 'sandboxId'>): boolean {
    return this.served.has(this.pathOf(ctx));
  }

  /** Stops serving the pod's socket and removes it; containerd sees its connections close. */
  async close(ctx: Pick<ShimContext, 'owner' | 'namespace' | 'sandboxId'>): Promise<void> {
    const path = this.pathOf(ctx);
    const served = this.served.get(path);
    if (!served) return;
    this.served.delete(path);
    await served.server.close();
    await rm(this.keeper ? this.backOf(path) : path, { force: true });
    // After hypercored's own side closed, so an answer it gave last (Shutdown's) is relayed first.
    this.keeper?.unlisten(path);
    this.logger.info({ socket: path, sandboxId: ctx.sandboxId }, 'shim socket closed');
  }

  /**
   * The daemon stops: every socket of its own goes (pods keep running; the next hypercored serves
   * them again). The keeper keeps containerd's connections meanwhile.
   */
  async closeAll(): Promise<void> {
    const all = [...this.served.values()];
    this.served.clear();
    await Promise.all(all.map((s) => s.server.close()));
  }

  get count(): number {
    return this.served.size;
  }

  private async open(path: string, ctx: ShimContext): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const server = new TtrpcServer();
    const onIdle = (): void => void this.close(ctx).catch((err: unknown) => this.logger.warn({ socket: path, err: String(err) }, 'closing a shim socket failed'));
    server.register(TASK_SERVICE, taskService(this.engine, ctx, onIdle, () => (this.keeper ? this.keeper.keeperPid() : process.pid)));
    if (this.keeper) {
      await mkdir(join(this.dir, 'back'), { recursive: true, mode: 0o700 });
      await server.listen(this.backOf(path), { mode: 0o600 });
      try {
        await this.keeper.listen(path, this.backOf(path));
      } catch (err) {
        await server.close();
        throw err;
      }
    } else {
      await server.listen(path, { mode: 0o600 });
    }
    this.served.set(path, { server, ctx });
    this.logger.info({ socket: path, namespace: ctx.namespace, sandboxId: ctx.sandboxId }, 'serving a shim socket');
    return path;
  }
}
