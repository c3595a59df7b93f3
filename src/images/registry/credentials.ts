/**
 * Registry credentials in Docker's `config.json`, so `docker login` and `hypercore login` share
 * them. Only inline `auths` entries are supported; credential helpers (`credsStore`,
 * `credHelpers`) run external programs and are left to a later change.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigInvalidError } from '../../core/errors.js';
import { dockerHubRegistry } from './reference.js';

/** A user name and password (or token used as password). */
export interface Credentials {
  username: string;
  password: string;
}

/** Anything that can look up credentials for a registry; the client depends only on this. */
export interface CredentialSource {
  get(registry: string): Promise<Credentials | undefined>;
}

/** The key Docker uses for Docker Hub in `auths`. */
export const dockerHubAuthKey = 'https://index.docker.io/v1/';

type DockerConfig = Record<string, unknown> & { auths?: Record<string, Record<string, unknown>> };

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (Docker's lookup). */
export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : join(homedir(), '.docker');
  return join(dir, 'config.json');
}

/**
 * Reduces an `auths` key to the registry it names: Docker wrote keys as URLs in the past
 * (`https://host/v1/`), so scheme and path are dropped; the Hub's legacy names map to docker.io.
 */
export function normaliseAuthKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' || host === 'registry.hub.docker.com' ? dockerHubRegistry : host;
}

function authKeyFor(registry: string): string {
  const name = normaliseAuthKey(registry);
  return name === dockerHubRegistry ? dockerHubAuthKey : name;
}

function decodeEntry(entry: Record<string, unknown>): Credentials | undefined {
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const text = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  return undefined;
}

/** Reads and writes registry logins in a Docker-format config.json. */
export class CredentialStore implements CredentialSource {
  /** Path of the config.json this store uses. */
  readonly path: string;

  constructor(options: { path?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.path = options.path ?? defaultDockerConfigPath(options.env);
  }

  /** Credentials for `registry` (`docker.io`, `host:port`), or undefined when not logged in. */
  async get(registry: string): Promise<Credentials | undefined> {
    const auths = (await this.read()).auths ?? {};
    const wanted = normaliseAuthKey(registry);
    // Exact key first (what we write), then any key that normalises to the same registry.
    const exact = auths[authKeyFor(registry)];
    if (exact) return decodeEntry(exact);
    for (const [key, entry] of Object.entries(auths)) {
      if (normaliseAuthKey(key) === wanted) {
        const found = decodeEntry(entry);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** Stores credentials for `registry`, keeping every other key of the file. */
  async login(registry: string, username: string, password: string): Promise<void> {
    if (username === '' || username.includes(':')) throw new ConfigInvalidError('the user name must be non-empty and must not contain ":"');
    const config = await this.read();
    const auths = { ...(config.auths ?? {}) };
    auths[authKeyFor(registry)] = { auth: Buffer.from(`${username}:${password}`, 'utf8').toString('base64') };
    await this.write({ ...config, auths });
  }

  /** Removes the login for `registry`; returns false when there was none. */
  async logout(registry: string): Promise<boolean> {
    const config = await this.read();
    const auths = { ...(config.auths ?? {}) };
    const wanted = normaliseAuthKey(registry);
    const keys = Object.keys(auths).filter((key) => normaliseAuthKey(key) === wanted);
    if (keys.length === 0) return false;
    for (const key of keys) delete auths[key];
    await this.write({ ...config, auths });
    return true;
  }

  private async read(): Promise<DockerConfig> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    if (text.trim() === '') return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConfigInvalidError(`${this.path} is not valid JSON: ${(err as Error).message}`, [], err);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigInvalidError(`${this.path} must contain a JSON object`);
    const config = parsed as DockerConfig;
    if (config.auths !== undefined && (typeof config.auths !== 'object' || config.auths === null)) throw new ConfigInvalidError(`"auths" in ${this.path} must be an object`);
    return config;
  }

  /** Writes via a temp file + fsync + rename so a crash never leaves a half-written file; 0600 because it holds secrets. */
  private async write(config: DockerConfig): Promise<void> {
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.config.json.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(config, null, '\t')}\n`);
      await handle.chmod(0o600); // the umask cannot widen it, but be explicit
      await handle.sync();
      await handle.close();
      await rename(tmp, this.path);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }
}
