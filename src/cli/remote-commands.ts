/** `hypercore tls init` (no daemon needed) and `hypercore token create|ls|revoke` (through the API). */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import type { ApiToken, HypercoreClient } from '../../sdk/src/index.js';
import { tokenScopes } from '../core/api-token.js';
import { age, plainTable } from './format.js';

function tokenTable(tokens: readonly ApiToken[]): string {
  return plainTable(
    ['ID', 'NAME', 'SCOPE', 'CREATED', 'LAST USED', 'REVOKED'],
    tokens.map((t) => [t.id, t.name || '-', t.scope, age(t.createdAt), t.lastUsedAt ? age(t.lastUsedAt) : '-', t.revokedAt ? age(t.revokedAt) : '-']),
  );
}

export function registerRemoteCommands(program: Command, api: () => Promise<HypercoreClient>): void {
  const tls = program.command('tls').description('certificates of the remote API (no daemon needed)');
  tls
    .command('init <dir>')
    .description("write a CA, a server certificate (localhost, 127.0.0.1, ::1 and each --san) and a client certificate into <dir>, under Docker's names")
    .option('--san <name>', "another IP address or DNS name of the daemon's host (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .option('--force', 'replace existing files (clients holding the old certificates are then refused)')
    .action(async (dir: string, opts: { san?: string[]; force?: boolean }) => {
      const target = resolve(dir);
      // openssl and key generation load only for this command.
      const { initTlsDir } = await import('../tls/pki.js');
      const written = await initTlsDir(target, { ...(opts.san ? { sans: opts.san } : {}), force: opts.force === true });
      process.stdout.write(`${written.join('\n')}\n`);
      process.stderr.write(
        `keep ca-key.pem offline once you have made the certificates you need; the daemon needs ca.pem, server-cert.pem and server-key.pem, a client ca.pem, cert.pem and key.pem\n` +
          `daemon: hypercored --listen https://0.0.0.0:7443 --tls-dir ${target}\n` +
          `client: hypercore --host https://<host>:7443 --tls-dir ${target} ls\n`,
      );
    });

  const token = program.command('token').description('bearer tokens of the remote API (scope admin, or the unix socket)');
  token
    .command('create')
    .description('create a token and print it; it is shown only this once')
    .requiredOption('--scope <scope>', `what it may do: ${tokenScopes.join(', ')} (read: look; write: also change VMs and images, exec; admin: also manage tokens)`)
    .option('--name <name>', 'what the token is for, shown by token ls')
    .action(async (opts: { scope: string; name?: string }) => {
      const { token: created, secret } = await (await api()).createToken(opts.scope, opts.name);
      process.stderr.write(`created token ${created.id} (scope ${created.scope}); it is shown only now. Use it with --token or HYPERCORE_TOKEN\n`);
      process.stdout.write(`${secret}\n`);
    });
  token
    .command('ls')
    .alias('list')
    .description('list tokens (never their secrets)')
    .option('--json', 'print a JSON array of token objects')
    .action(async (opts: { json?: boolean }) => {
      const tokens = await (await api()).listTokens();
      process.stdout.write(opts.json ? `${JSON.stringify(tokens, null, 2)}\n` : `${tokenTable(tokens)}\n`);
    });
  token
    .command('revoke <ids...>')
    .description('revoke tokens by id (or unique id prefix): refused from their next call on')
    .action(async (ids: string[]) => {
      for (const id of ids) process.stdout.write(`${(await (await api()).revokeToken(id)).id}\n`);
    });
}
