/**
 * hypercored's configuration file (TOML; `--config`, HYPERCORE_CONFIG, else
 * /etc/hypercore/hypercored.toml when it exists). It holds the remote listener's settings, which a
 * deployment wants written down rather than typed on a command line:
 *
 *   [remote]
 *   listen = ["https://0.0.0.0:7443"]
 *   tls_dir = "/etc/hypercore/tls"
 *   insecure_loopback = false
 *   allow_host_paths = ["/srv/vms"]
 *   allow_bridges = ["br-lab"]
 *
 * Flags win over the file. Unknown keys are refused, so a typo never silently leaves a door open
 * or shut; relative paths are relative to the file's folder.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import * as z from 'zod';
import { ConfigInvalidError, type ValidationIssue } from '../core/errors.js';
import { formatKeyPath } from '../config/key-path.js';

export const DEFAULT_CONFIG_FILE = '/etc/hypercore/hypercored.toml';

/** The file's settings, paths made absolute; absent keys stay absent. */
export interface DaemonConfigFile {
  file: string;
  remote: {
    listen?: string[];
    tlsDir?: string;
    insecureLoopback?: boolean;
    allowHostPaths?: string[];
    allowBridges?: string[];
  };
}

const text = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' });
const schema = z.strictObject(
  {
    remote: z
      .strictObject(
        {
          listen: z.array(text, { error: 'must be an array of URLs like "https://0.0.0.0:7443"' }).optional(),
          tls_dir: text.optional(),
          insecure_loopback: z.boolean({ error: 'must be true or false' }).optional(),
          allow_host_paths: z.array(text, { error: 'must be an array of directories' }).optional(),
          allow_bridges: z.array(text, { error: 'must be an array of host bridge names' }).optional(),
        },
        { error: 'must be a table' },
      )
      .optional(),
  },
  { error: 'must be a table' },
);

/** @throws ConfigInvalidError naming the file and each bad key. */
export function readDaemonConfig(file: string): DaemonConfigFile {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigInvalidError(`cannot read the hypercored configuration ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let tree: unknown;
  try {
    tree = parse(source);
  } catch (err) {
    const where = err instanceof TomlError ? `${file}:${err.line}:${err.column}` : file;
    throw new ConfigInvalidError(`${where}: not valid TOML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const result = schema.safeParse(tree);
  if (!result.success) {
    const problems: ValidationIssue[] = result.error.issues.flatMap((issue) =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => ({ path: formatKeyPath([...issue.path, key]), message: 'unknown key' }))
        : [{ path: formatKeyPath(issue.path), message: issue.message }],
    );
    throw new ConfigInvalidError(`invalid hypercored configuration ${file}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, problems);
  }
  const base = dirname(resolve(file));
  const remote = result.data.remote ?? {};
  return {
    file,
    remote: {
      ...(remote.listen ? { listen: remote.listen } : {}),
      ...(remote.tls_dir ? { tlsDir: resolve(base, remote.tls_dir) } : {}),
      ...(remote.insecure_loopback !== undefined ? { insecureLoopback: remote.insecure_loopback } : {}),
      ...(remote.allow_host_paths ? { allowHostPaths: remote.allow_host_paths.map((p) => resolve(base, p)) } : {}),
      ...(remote.allow_bridges ? { allowBridges: remote.allow_bridges } : {}),
    },
  };
}
