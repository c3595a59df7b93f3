/**
 * CLI: node dist/src/guest/install-boot-assets.js [--boot-dir DIR] [--force]
 * Installs the default guest kernel and stage-1 initramfs (see boot-assets.ts). Run by the set-up
 * script after `apt-get update`; safe to run again (does nothing when current).
 */
import { parseArgs } from 'node:util';
import { asHypercoreError } from '../core/errors.js';
import { defaultBootDir, installBootAssets } from './boot-assets.js';

const usage = `usage: install-boot-assets [--boot-dir DIR] [--force]
  --boot-dir DIR  where to put vmlinuz, vmlinux, initrd.img, manifest.json
                  (default $HYPERCORE_BOOT_DIR or /var/lib/hypercore/boot; now ${defaultBootDir()})
  --force         rebuild even when the installed assets are current`;

async function main(): Promise<number> {
  let values: { 'boot-dir'?: string; force?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { 'boot-dir': { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`install-boot-assets: ${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  try {
    const bootDir = values['boot-dir'] ?? defaultBootDir();
    await installBootAssets({ bootDir, force: values.force ?? false, log: (line) => process.stdout.write(`${line}\n`) });
    return 0;
  } catch (err) {
    const e = asHypercoreError(err);
    process.stderr.write(`install-boot-assets: ${e.message} [${e.code}]\n`);
    return 1;
  }
}

process.exitCode = await main();
