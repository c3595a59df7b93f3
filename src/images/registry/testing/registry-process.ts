/**
 * Test helper: runs a real `docker-registry` (distribution 2.8) on 127.0.0.1 with a random port
 * and a temp storage dir, optionally behind htpasswd basic auth. Always `stop()` it (in `after`).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** A running registry. */
export interface RegistryProcess {
  /** `127.0.0.1:<port>`, usable as the registry part of a reference. */
  host: string;
  /** Storage root (blobs live under `docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`). */
  storage: string;
  /** Path of a blob's data file in the storage (to corrupt it in tests). */
  blobPath(digest: string): string;
  stop(): Promise<void>;
}

/** Starts a registry; with `htpasswd`, it requires those Basic credentials. */
export async function startRegistry(options: { htpasswd?: { username: string; password: string } } = {}): Promise<RegistryProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-registry-'));
  const storage = join(dir, 'data');
  let auth = '';
  if (options.htpasswd) {
    const { stdout } = await promisify(execFile)('htpasswd', ['-Bbn', options.htpasswd.username, options.htpasswd.password]);
    await writeFile(join(dir, 'htpasswd'), stdout);
    auth = `auth:\n  htpasswd:\n    realm: hc-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  // Port 0: the kernel picks a free port and the registry logs it, so parallel test files never collide.
  const config = `version: 0.1
log: { level: info, accesslog: { disabled: true } }
storage:
  cache: { blobdescriptor: inmemory }
  filesystem: { rootdirectory: ${storage} }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:0
  secret: hc-test-secret
${auth}`;
  await writeFile(join(dir, 'config.yml'), config);
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`docker-registry did not start in 10 s:\n${log}`)), 10_000);
      const onData = (chunk: Buffer): void => {
        log += chunk.toString();
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('error', (err) => reject(err));
      child.once('exit', (code) => reject(new Error(`docker-registry exited with ${code}:\n${log}`)));
    });
    const host = `127.0.0.1:${port}`;
    // Wait until the API answers (200, or 401 behind auth) rather than trusting the log line alone.
    for (let i = 0; ; i++) {
      const status = await fetch(`http://${host}/v2/`).then((r) => r.status, () => 0);
      if (status === 200 || status === 401) break;
      if (i > 100) throw new Error(`docker-registry on ${host} does not answer /v2/ (last status ${status})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const blobPath = (digest: string): string => {
      const hex = digest.slice('sha256:'.length);
      return join(storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    };
    return { host, storage, blobPath, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
