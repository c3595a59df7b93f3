/** `hypercore metadata get` and `metadata set`: an image VM's values and secrets, changed while it runs. */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../core/errors.js';
import { MAX_METADATA_VALUES_BYTES, type MetadataValues } from '../core/metadata.js';
import type { HypercoreClient } from '../../sdk/src/index.js';

/** Standard input as text, refused beyond the values budget (a value larger than that could not be set anyway). */
async function readStdinValue(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_METADATA_VALUES_BYTES) throw new InvalidArgumentError(`the value on standard input is larger than ${MAX_METADATA_VALUES_BYTES} bytes, the metadata limit`);
    chunks.push(chunk as Buffer);
  }
  // `echo value |` adds one newline that is not part of the value.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** KEY=VALUE arguments; one bare KEY takes its value from standard input (kept out of shell history and ps). */
async function parseEntries(args: readonly string[]): Promise<Record<string, string>> {
  const entries: Record<string, string> = {};
  const fromStdin = args.filter((a) => !a.includes('='));
  if (fromStdin.length > 1) throw new InvalidArgumentError(`only one KEY may take its value from standard input; got ${fromStdin.join(', ')}`);
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === 0) throw new InvalidArgumentError(`"${arg}": KEY=VALUE needs a KEY`);
    if (eq > 0) entries[arg.slice(0, eq)] = arg.slice(eq + 1);
    else entries[arg] = await readStdinValue();
  }
  return entries;
}

/** `key=value` lines, sorted; secrets as the daemon shows them (`<secret>`). */
function metadataLines(m: MetadataValues): string {
  const all = { ...m.values, ...m.secrets };
  return Object.keys(all)
    .sort()
    .map((key) => `${key}=${all[key]}\n`)
    .join('');
}

export function registerMetadataCommands(program: Command, api: () => Promise<HypercoreClient>): void {
  const metadata = program.command('metadata').description("an image VM's metadata: values and secrets its guest reads at http://169.254.169.254/v1/metadata");
  metadata
    .command('get <id> [key]')
    .description('print every key=value (secrets as <secret>), or the value of one key')
    .option('--json', 'print {"values": {...}, "secrets": {...}}')
    .action(async (id: string, key: string | undefined, opts: { json?: boolean }) => {
      const m = await (await api()).getMetadata(id, key);
      if (opts.json) process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
      else if (key !== undefined) process.stdout.write(`${m.values[key] ?? m.secrets[key] ?? ''}\n`);
      else process.stdout.write(metadataLines(m));
    });
  metadata
    .command('set <id> <entries...>')
    .description('set KEY=VALUE entries (a bare KEY reads its value from standard input); a running guest sees them at once, a stopped one at its next start')
    .option('--secret', 'make the keys secrets: served to the guest, never shown on the host (a secret stays one when set without --secret)')
    .action(async (id: string, args: string[], opts: { secret?: boolean }) => {
      await (await api()).setMetadata(id, await parseEntries(args), opts.secret === true ? { secret: true } : {});
    });
}
