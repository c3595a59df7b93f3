/**
 * A private containerd 1.6 for the shim's end-to-end tests: its own root, state, sockets and config
 * in the test's directory (never the host's containerd), the Hypercore runtime on its PATH, and
 * hypercored's socket in its environment (HYPERCORE_SOCKET), as a node's containerd would have.
 *
 * With `cri`, the CRI plugin is configured as these hosts need it: `restrict_oom_score_adj`, the
 * runtimes `hypercore` and `runc` (declaring one replaces the defaults), a sandbox image from the
 * test's registry, that plain-HTTP registry as a mirror of itself, netns mounts under the state dir,
 * and CNI with a private conf_dir. With `netns`, containerd runs in that network namespace (made by
 * the test), so CNI's bridge, routes and forwarding sysctl are the namespace's, not the host's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, sleep, terminate } from '../harness.js';

export interface CriSetup {
  /** The registry host:port the images come from (plain HTTP). */
  registry: string;
  /** The sandbox ("pause") image reference. */
  sandboxImage: string;
  /** CNI config directory (the test writes its network config there). */
  cniConfDir: string;
}

export interface PrivateContainerdOptions {
  dir: string;
  /** hypercored's API socket, given to the shim through containerd's environment. */
  hypercoreSocket: string;
  cri?: CriSetup;
  /** Run containerd in this network namespace (a path, e.g. /var/run/netns/NAME). */
  netns?: string;
}

export interface CtrResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class PrivateContainerd {
  readonly dir: string;
  readonly socket: string;
  readonly ttrpcSocket: string;
  readonly root: string;
  readonly state: string;
  private proc: ChildProcess | undefined;

  constructor(private readonly options: PrivateContainerdOptions) {
    this.dir = options.dir;
    this.root = join(this.dir, 'root');
    this.state = join(this.dir, 'state');
    this.socket = join(this.dir, 'containerd.sock');
    this.ttrpcSocket = join(this.dir, 'containerd.sock.ttrpc');
  }

  get logFile(): string {
    return join(this.dir, 'containerd.log');
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  config(): string {
    const lines = [
      'version = 2',
      `root = "${this.root}"`,
      `state = "${this.state}"`,
      '[grpc]',
      `  address = "${this.socket}"`,
      '[ttrpc]',
      `  address = "${this.ttrpcSocket}"`,
      '[debug]',
      '  level = "debug"',
    ];
    const cri = this.options.cri;
    if (cri) {
      lines.push(
        '[plugins."io.containerd.grpc.v1.cri"]',
        `  sandbox_image = "${cri.sandboxImage}"`,
        '  restrict_oom_score_adj = true',
        '  netns_mounts_under_state_dir = true',
        '  disable_tcp_service = true',
        '[plugins."io.containerd.grpc.v1.cri".containerd]',
        '  default_runtime_name = "runc"',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '  runtime_type = "io.containerd.runc.v2"',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hypercore]',
        '  runtime_type = "io.containerd.hypercore.v2"',
        '  pod_annotations = ["io.hypercore.*"]',
        '[plugins."io.containerd.grpc.v1.cri".cni]',
        '  bin_dir = "/usr/lib/cni"',
        `  conf_dir = "${cri.cniConfDir}"`,
        `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."${cri.registry}"]`,
        `  endpoint = ["http://${cri.registry}"]`,
      );
    }
    return `${lines.join('\n')}\n`;
  }

  /** Starts containerd (the repository's bin/ first on its PATH) and waits until it answers. */
  async start(): Promise<void> {
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.state, { recursive: true });
    writeFileSync(join(this.dir, 'config.toml'), this.config());
    const log = openSync(this.logFile, 'a');
    const env = { ...process.env, PATH: `${join(repoRoot, 'bin')}:${process.env['PATH'] ?? ''}`, HYPERCORE_SOCKET: this.options.hypercoreSocket };
    const command = ['containerd', '--config', join(this.dir, 'config.toml')];
    const [file, ...args] = this.options.netns ? ['nsenter', `--net=${this.options.netns}`, '--', ...command] : command;
    this.proc = spawn(file!, args, { env, stdio: ['ignore', log, log] });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`containerd exited with ${this.proc.exitCode}:\n${this.log().slice(-4000)}`);
      if (existsSync(this.socket) && this.ctr(['version']).code === 0) return;
      await sleep(100);
    }
    throw new Error(`containerd did not come up in 20 s:\n${this.log().slice(-4000)}`);
  }

  /** Runs ctr against this containerd (namespace `hc` unless the args name one). */
  ctr(args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): CtrResult {
    const r = spawnSync('ctr', ['--address', this.socket, ...args], { encoding: 'utf8', timeout: options.timeoutMs ?? 240_000, input: options.input });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /**
   * ctr in a pseudo-terminal (script(1)), for `-t`. script's stdin stays open until ctr has exited:
   * when its stdin ends, script types the terminal's end-of-file character, which ctr's raw terminal
   * would pass to the container's (where it is echoed as ^@ into the output under test).
   */
  ctrInTerminal(args: readonly string[], timeoutMs = 240_000): Promise<CtrResult> {
    const command = ['ctr', '--address', this.socket, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    const proc = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    return new Promise((resolve, reject) => {
      proc.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      proc.on('close', (code) => {
        clearTimeout(timer);
        proc.stdin!.destroy();
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  /** Starts `ctr ... args` in the background (e.g. `events`), collecting its output. */
  ctrBackground(args: readonly string[]): { proc: ChildProcess; output: () => string } {
    const proc = spawn('ctr', ['--address', this.socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    return { proc, output: () => out };
  }

  async stop(): Promise<void> {
    await terminate(this.proc);
  }

  /** Mounts containerd made under its root or state (snapshots, netns) that are still there. */
  leftoverMounts(): string[] {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(this.dir));
  }

  /** Unmounts what containerd left (it leaves snapshot mounts of tasks it did not clean up). */
  unmountLeftovers(): void {
    for (const m of this.leftoverMounts().reverse()) spawnSync('umount', ['-l', m]);
  }
}
