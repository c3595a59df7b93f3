/** `hypercore image ...`, `login` and `logout`; each loads its helpers (tables, progress, registry client) when it runs. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import type { Image } from '../core/image.js';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import type { HypercoreClient } from '../../sdk/src/index.js';

async function imageTable(images: readonly Image[]): Promise<string> {
  const { plainTable } = await import('./format.js');
  return plainTable(
    ['REFERENCE', 'DIGEST', 'PLATFORM', 'LAYERS', 'SIZE', 'CREATED'],
    images.map((i) => [i.reference, i.digest.slice(7, 19), i.platform, i.layers.length, `${(i.size / 1e6).toFixed(1)} MB`, i.createdAt]),
  );
}


async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export function registerImageCommands(program: Command, api: () => Promise<HypercoreClient>): void {
  const image = program.command('image').description('OCI images: pull, import, list, inspect, remove, prune');
  image
    .command('pull <reference>')
    .description('pull an image from its registry and build its block image')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image', 'linux/amd64')
    .action(async (reference: string, opts: { platform: string }) => {
      const { pullWithProgress } = await import('./image-pull.js');
      const pulled = await pullWithProgress(await api(), reference, opts.platform);
      process.stdout.write(`${pulled.reference}@${pulled.digest}\n`);
    });
  image
    .command('import <file>')
    .description("load a `docker save` tar or an OCI image layout tar (a path on the daemon's host)")
    .option('--reference <name>', 'name to store it under (default: the name the archive gives)')
    .action(async (file: string, opts: { reference?: string }) => {
      const renderer = (await import('./pull-progress.js')).progressRenderer(process.stderr);
      try {
        const imported = await (await api()).importImage(resolve(file), { ...(opts.reference ? { reference: opts.reference } : {}), onProgress: (p) => renderer.update(p) });
        process.stdout.write(`${imported.reference}@${imported.digest}\n`);
      } finally {
        renderer.stop();
      }
    });
  image
    .command('ls')
    .alias('list')
    .description('list local images')
    .option('--json', 'print a JSON array of image objects')
    .action(async (opts: { json?: boolean }) => {
      const images = await (await api()).listImages();
      process.stdout.write(opts.json ? `${JSON.stringify(images, null, 2)}\n` : `${await imageTable(images)}\n`);
    });
  image
    .command('inspect <reference>')
    .description('show one image as JSON')
    .action(async (reference: string) => {
      process.stdout.write(`${JSON.stringify(await (await api()).getImage(reference), null, 2)}\n`);
    });
  image
    .command('rm <references...>')
    .description('remove images (refused while a VM uses one, unless --force)')
    .option('-f, --force', 'remove even when VMs use it (their disks keep working)')
    .action(async (references: string[], opts: { force?: boolean }) => {
      for (const reference of references) {
        const image = await (await api()).getImage(reference);
        await (await api()).deleteImage(image.reference, { force: opts.force === true });
        process.stdout.write(`${image.reference}\n`);
      }
    });
  image
    .command('prune')
    .description('remove blobs and block images that no image refers to')
    .option('-a, --all', 'also remove images that no VM uses')
    .action(async (opts: { all?: boolean }) => {
      const result = await (await api()).pruneImages({ all: opts.all === true });
      for (const d of result.deleted) process.stdout.write(`deleted ${d}\n`);
      process.stdout.write(`reclaimed ${(result.reclaimedBytes / 1e6).toFixed(1)} MB\n`);
    });

  program
    .command('login <registry>')
    .description("store credentials for a registry (in Docker's config.json, which hypercored reads too)")
    .requiredOption('-u, --username <user>', 'user name')
    .option('--password-stdin', 'read the password from standard input')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .action(async (registry: string, opts: { username: string; passwordStdin?: boolean; password?: string }) => {
      const password = opts.passwordStdin ? await readStdin() : opts.password;
      if (!password) throw new HypercoreError(ErrorCodes.invalidArgument, 'a password is required: use --password-stdin (or -p)');
      const { CredentialStore } = await import('../images/registry/credentials.js');
      const { RegistryClient } = await import('../images/registry/client.js');
      const store = new CredentialStore();
      // Check the credentials before storing them, as docker login does.
      const probe = new RegistryClient({ credentials: { get: async () => ({ username: opts.username, password }) } });
      await probe.ping(registry, { requireAuth: true });
      await store.login(registry, opts.username, password);
      process.stdout.write(`Login succeeded: ${registry}\n`);
    });
  program
    .command('logout <registry>')
    .description('remove stored credentials for a registry')
    .action(async (registry: string) => {
      const { CredentialStore } = await import('../images/registry/credentials.js');
      const removed = await new CredentialStore().logout(registry);
      process.stdout.write(removed ? `Removed credentials for ${registry}\n` : `No credentials stored for ${registry}\n`);
    });
}
