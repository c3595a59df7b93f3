/**
 * Makes the remote API's certificates: a CA, a server certificate for the daemon and a client
 * certificate, under Docker's file names (see material.ts).
 *
 * Keys are EC P-256, made by Node's crypto (OpenSSL underneath) and written by us with mode 0600
 * from the first byte. Certificates are made by Debian's `openssl` program: Node can parse X.509
 * but not issue it, and the openssl CLI is the reference tool for this job (Docker's own TLS guide
 * uses it), always present where ca-certificates is, and adds no npm dependency. Its input is
 * ours alone: subject alternative names are checked to be IP addresses or DNS names first, so no
 * text of the user's reaches openssl's extension syntax unchecked.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { InvalidArgumentError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { TLS_FILES } from './material.js';

/** `openssl req` reads no configuration file (-config /dev/null): the result never depends on the host's openssl.cnf. */
const NO_CONFIG = ['-config', '/dev/null'];
const CA_DAYS = 3650;
/** What browsers accept at most; the files are remade with `tls init --force`. */
const LEAF_DAYS = 825;
const DNS_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** CNs are ours or checked: letters, digits and a few separators, so they cannot break openssl's -subj syntax. */
const COMMON_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$/;

/** `IP:…` or `DNS:…` for a SAN given by the user; InvalidArgumentError otherwise. */
export function subjectAltName(value: string): string {
  if (isIP(value) !== 0) return `IP:${value}`;
  if (DNS_NAME.test(value) && value.length <= 253) return `DNS:${value}`;
  throw new InvalidArgumentError(`--san ${JSON.stringify(value)}: must be an IP address or a DNS name`, [{ path: '--san', message: 'an IP address or a DNS name', value }]);
}

function writeKey(path: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600); // whatever the umask
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // a positive number
  return `0x${bytes.toString('hex')}`;
}

async function selfSignedCa(dir: string): Promise<void> {
  await runCommand('openssl', [
    'req', ...NO_CONFIG, '-x509', '-new', '-sha256', '-days', String(CA_DAYS), '-set_serial', serial(),
    '-key', join(dir, TLS_FILES.caKey), '-subj', '/CN=Hypercore CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash',
    '-out', join(dir, TLS_FILES.ca),
  ], { timeoutMs: 30_000 });
}

export interface LeafRequest {
  /** The directory with ca.pem and ca-key.pem that signs. */
  caDir: string;
  keyPath: string;
  certPath: string;
  commonName: string;
  usage: 'server' | 'client';
  /** For a server: `IP:…`/`DNS:…` entries. */
  altNames?: readonly string[];
  /** Validity from now; a negative number gives a certificate that has already expired (for tests). */
  days?: number;
}

/** Writes a new key (0600) and a certificate for it signed by the CA in `caDir`. */
export async function issueCertificate(req: LeafRequest): Promise<void> {
  if (!COMMON_NAME.test(req.commonName)) throw new InvalidArgumentError(`common name ${JSON.stringify(req.commonName)}: letters, digits, space and . _ @ - only (at most 64)`);
  writeKey(req.keyPath);
  const extensions = req.usage === 'server'
    ? ['-addext', 'extendedKeyUsage=serverAuth', '-addext', 'keyUsage=critical,digitalSignature', ...(req.altNames?.length ? ['-addext', `subjectAltName=${req.altNames.join(',')}`] : [])]
    : ['-addext', 'extendedKeyUsage=clientAuth', '-addext', 'keyUsage=critical,digitalSignature'];
  const csr = await runCommand('openssl', ['req', ...NO_CONFIG, '-new', '-sha256', '-key', req.keyPath, '-subj', `/CN=${req.commonName}`, ...extensions], { timeoutMs: 30_000 });
  await runCommand('openssl', [
    'x509', '-req', '-sha256', '-days', String(req.days ?? LEAF_DAYS), '-set_serial', serial(), '-copy_extensions', 'copyall',
    '-CA', join(req.caDir, TLS_FILES.ca), '-CAkey', join(req.caDir, TLS_FILES.caKey), '-out', req.certPath,
  ], { input: csr.stdout, timeoutMs: 30_000 });
}

export interface TlsInitOptions {
  /** Extra subject alternative names of the server certificate, as the user typed them. */
  sans?: readonly string[];
  /** Replace files that exist. */
  force?: boolean;
}

/** Every file `tls init` writes, in the order it writes them. */
export const TLS_INIT_FILES = [TLS_FILES.caKey, TLS_FILES.ca, TLS_FILES.serverKey, TLS_FILES.serverCert, TLS_FILES.clientKey, TLS_FILES.clientCert] as const;

/**
 * Writes a CA, a server certificate for localhost, 127.0.0.1, ::1 and `sans`, and a client
 * certificate into `dir` (made 0700 if new). Refuses to replace existing files unless `force`;
 * on failure removes what it wrote. Returns the paths written.
 */
export async function initTlsDir(dir: string, options: TlsInitOptions = {}): Promise<string[]> {
  const altNames = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...(options.sans ?? []).map(subjectAltName)];
  const paths = TLS_INIT_FILES.map((name) => join(dir, name));
  const existing = paths.filter((p) => existsSync(p));
  if (existing.length > 0 && !options.force) throw new InvalidArgumentError(`${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; use --force to replace ${existing.length === 1 ? 'it' : 'them'} (clients holding the old certificates will be refused)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const p of existing) rmSync(p);
  try {
    writeKey(join(dir, TLS_FILES.caKey));
    await selfSignedCa(dir);
    await issueCertificate({ caDir: dir, keyPath: join(dir, TLS_FILES.serverKey), certPath: join(dir, TLS_FILES.serverCert), commonName: 'hypercored', usage: 'server', altNames });
    await issueCertificate({ caDir: dir, keyPath: join(dir, TLS_FILES.clientKey), certPath: join(dir, TLS_FILES.clientCert), commonName: 'hypercore-client', usage: 'client' });
  } catch (err) {
    for (const p of paths) rmSync(p, { force: true });
    throw err;
  }
  return paths;
}
