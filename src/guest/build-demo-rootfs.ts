/**
 * CLI: node dist/src/guest/build-demo-rootfs.js OUTPUT [--marker TEXT] [--size MIB]
 * Writes the busybox demo root image (see demo-rootfs.ts) used by the README demo and e2e tests.
 */
import { parseArgs } from 'node:util';
import { asHypercoreError } from '../core/errors.js';
import { buildDemoRootfs, DEMO_MARKER } from './demo-rootfs.js';

const usage = `usage: build-demo-rootfs OUTPUT [--marker TEXT] [--size MIB]
  --marker TEXT  line printed by the guest's init (default "${DEMO_MARKER}")
  --size MIB     image size in MiB (default 16; the file is sparse)`;

async function main(): Promise<number> {
  let parsed: { values: { marker?: string; size?: string; help?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({
      options: { marker: { type: 'string' }, size: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`build-demo-rootfs: ${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const output = positionals[0]!;
  try {
    const sizeMiB = values.size === undefined ? undefined : Number(values.size);
    await buildDemoRootfs({ output, marker: values.marker, sizeMiB });
    process.stdout.write(`wrote ${output}\n`);
    return 0;
  } catch (err) {
    const e = asHypercoreError(err);
    process.stderr.write(`build-demo-rootfs: ${e.message} [${e.code}]\n`);
    return 1;
  }
}

process.exitCode = await main();
