/**
 * The web console on the remote listener: its page and bundled files at `/` and `/console/*`
 * (read once at start from the build's output, served from memory: a request names a file of a
 * fixed list, never a path), and its login, which turns a pasted token into the session cookie.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { HypercoreError, ErrorCodes, InvalidArgumentError } from '../core/errors.js';
import { clearedSessionCookie, sessionCookie } from './auth/browser-session.js';
import type { ApiTokens } from './auth/tokens.js';

/** Where the build (scripts/bundle-console.mjs) puts the console, from dist/src/api. */
export const CONSOLE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'console');

const CONSOLE_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};

/** Longer than any token this daemon issues; a longer one is refused before it is looked at. */
const MAX_TOKEN_CHARS = 512;

interface ConsoleFile {
  type: string;
  body: Buffer;
}

export type ConsoleAssets = ReadonlyMap<string, ConsoleFile>;

/** @throws Error naming the missing file when the console was not built. */
export function loadConsoleAssets(dir: string = CONSOLE_DIR): ConsoleAssets {
  return new Map(Object.entries(CONSOLE_FILES).map(([name, type]) => [name, { type, body: readFileSync(join(dir, name)) }]));
}

/** The page may load only its own files and talk only to its own daemon. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export function registerConsole(app: FastifyInstance, tokens: ApiTokens, assets: ConsoleAssets): void {
  const send = (name: string) => {
    const file = assets.get(name);
    if (!file) throw new HypercoreError(ErrorCodes.notFound, `the console has no file ${name}`);
    return file;
  };
  app.get('/', async (_req, reply) => {
    const file = send('index.html');
    return reply.headers(SECURITY_HEADERS).type(file.type).send(file.body);
  });
  app.get<{ Params: { file: string } }>('/console/:file', async (req, reply) => {
    const file = send(req.params.file);
    return reply.headers(SECURITY_HEADERS).type(file.type).send(file.body);
  });
  app.post<{ Body: { token?: unknown } | undefined }>('/console/login', async (req, reply) => {
    const token = req.body?.token;
    if (typeof token !== 'string' || token.trim() === '') throw new InvalidArgumentError('token is required: paste a token from `hypercore token create`', [{ path: 'token', message: 'required' }]);
    if (token.length > MAX_TOKEN_CHARS) throw new InvalidArgumentError(`token is ${token.length} characters; no token is longer than ${MAX_TOKEN_CHARS}`, [{ path: 'token', message: 'too long' }]);
    const verified = tokens.verify(token.trim());
    return reply.header('set-cookie', sessionCookie(token.trim())).send({ id: verified.id, name: verified.name, scope: verified.scope });
  });
  app.post('/console/logout', async (_req, reply) => reply.header('set-cookie', clearedSessionCookie()).code(204).send());
}
