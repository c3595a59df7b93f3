/** `hypercored`: the daemon's command line. */
import { Command } from 'commander';
import { HYPERCORE_VERSION } from '../core/version.js';
import { resolveSettings, type DaemonSettings } from './settings.js';

const program = new Command('hypercored')
  .description('Hypercore daemon: owns VM state, supervises VMMs, serves the gRPC and HTTP/JSON API on a unix socket')
  .version(`hypercored ${HYPERCORE_VERSION}`, '-V, --version', 'print the version and exit')
  .option('--root <dir>', 'state directory (env HYPERCORE_ROOT; default /var/lib/hypercore)')
  .option('--run-dir <dir>', 'runtime directory for sockets and pidfiles (env HYPERCORE_RUN_DIR; default /run/hypercore)')
  .option('--socket <path>', 'API socket (env HYPERCORE_SOCKET; default <run-dir>/hypercore.sock)')
  .option('--boot-dir <dir>', 'default guest kernel and initramfs (env HYPERCORE_BOOT_DIR; default /var/lib/hypercore/boot)')
  .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent (env HYPERCORE_LOG_LEVEL; default info)')
  .option('--max-image-size <MiB>', 'largest image (compressed layers in all, and any one blob) a pull or import may bring in (env HYPERCORE_MAX_IMAGE_SIZE; default 8192)')
  .option('--workload-log-cap <size>', "cap of each VM's workload.log, e.g. 16M; one rotated file is kept beside it (env HYPERCORE_WORKLOAD_LOG_CAP; default 16M)")
  .option('--insecure-registry <host[:port]>', 'reach this registry over plain HTTP (repeatable; env HYPERCORE_INSECURE_REGISTRIES, comma-separated); localhost always is', (v: string, prev: string[] = []) => [...prev, v])
  .action(async (flags: { root?: string; runDir?: string; socket?: string; bootDir?: string; logLevel?: string; insecureRegistry?: string[]; maxImageSize?: string; workloadLogCap?: string }) => {
    let settings: DaemonSettings;
    try {
      settings = resolveSettings(flags, process.env);
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
