/** `hypercored`: the daemon's command line. */
import { Command } from 'commander';
import { HYPERCORE_VERSION } from '../core/version.js';
import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG_FILE, readDaemonConfig } from './config-file.js';
import { resolveSettings, type DaemonSettings, type SettingsInput } from './settings.js';

const repeatable = (v: string, prev: string[] = []): string[] => [...prev, v];

const program = new Command('hypercored')
  .description('Hypercore daemon: owns VM state, supervises VMMs, serves the gRPC and HTTP/JSON API on a unix socket')
  .version(`hypercored ${HYPERCORE_VERSION}`, '-V, --version', 'print the version and exit')
  .option('--root <dir>', 'state directory (env HYPERCORE_ROOT; default /var/lib/hypercore)')
  .option('--run-dir <dir>', 'runtime directory for sockets and pidfiles (env HYPERCORE_RUN_DIR; default /run/hypercore)')
  .option('--socket <path>', 'API socket (env HYPERCORE_SOCKET; default <run-dir>/hypercore.sock)')
  .option('--boot-dir <dir>', 'default guest kernel and initramfs (env HYPERCORE_BOOT_DIR; default /var/lib/hypercore/boot)')
  .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent (env HYPERCORE_LOG_LEVEL; default info)')
  .option('--max-image-size <MiB>', 'largest image (compressed layers in all, and any one blob) a pull or import may bring in (env HYPERCORE_MAX_IMAGE_SIZE; default 8192)')
  .option('--memory-dir <dir>', "where guests' RAM files live; a tmpfs (env HYPERCORE_MEMORY_DIR; default /dev/shm/hypercore-<hash of the root>)")
  .option('--workload-log-cap <size>', "cap of each VM's workload.log, e.g. 16M; one rotated file is kept beside it (env HYPERCORE_WORKLOAD_LOG_CAP; default 16M)")
  .option('--insecure-registry <host[:port]>', 'reach this registry over plain HTTP (repeatable; env HYPERCORE_INSECURE_REGISTRIES, comma-separated); localhost always is', repeatable)
  .option('--config <file>', `configuration file, TOML (env HYPERCORE_CONFIG; default ${DEFAULT_CONFIG_FILE} when it exists)`)
  .option('--listen <url>', 'also serve the API on https://ADDR:PORT for other hosts, with mTLS or tokens (repeatable; config remote.listen)', repeatable)
  .option('--tls-dir <dir>', "the remote listener's ca.pem, server-cert.pem and server-key.pem, as hypercore tls init writes them (config remote.tls_dir)")
  .option('--insecure-loopback', 'allow --listen http://127.0.0.1:PORT: plain TCP on loopback, tokens only (config remote.insecure_loopback)')
  .option('--allow-host-path <dir>', 'a directory under which remote callers may name kernels, initrds, drives, VMM binaries and archives (repeatable; config remote.allow_host_paths; default: none)', repeatable)
  .option('--allow-bridge <name>', 'a host bridge that remote callers\' VMs may join with mode = "bridge" (repeatable; config remote.allow_bridges; default: none)', repeatable)
  .action(async (flags: SettingsInput & { config?: string }) => {
    let settings: DaemonSettings;
    try {
      const configFile = flags.config ?? process.env['HYPERCORE_CONFIG'] ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
      settings = resolveSettings(flags, process.env, configFile === undefined ? undefined : readDaemonConfig(configFile));
    } catch (err) {
      // Before the logger exists: its level is one of the settings.
      process.stderr.write(`hypercored: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    }
    // Loaded only to run: `--version` and `--help` need none of it.
    const { Daemon } = await import('./daemon.js');
    const daemon = new Daemon(settings);
    try {
      await daemon.start();
    } catch (err) {
      daemon.logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'hypercored failed to start');
      process.stderr.write(`hypercored: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    }
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      daemon.logger.info({ signal }, 'shutting down');
      void daemon.stop().then(() => process.exit(0), () => process.exit(1));
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });

await program.parseAsync(process.argv);
