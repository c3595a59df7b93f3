/**
 * The TLS files of the remote API, under Docker's names, in one directory (`--tls-dir`): the CA
 * (ca.pem), the daemon's certificate and key (server-cert.pem, server-key.pem), and a client's
 * (cert.pem, key.pem). Loading checks them before a listener or client uses them, so a missing
 * file, a key others may read, or a certificate that does not match its key is named at start.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigInvalidError } from '../core/errors.js';

export const TLS_FILES = {
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  clientCert: 'cert.pem',
  clientKey: 'key.pem',
} as const;

/** A certificate and its private key, with the CA that the other side's certificate must chain to. */
export interface TlsIdentity {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Bounds what a hostile or mistaken file could make us read into memory. */
const MAX_PEM_BYTES = 1024 * 1024;

function readPem(dir: string, name: string, what: string, from: string): Buffer {
  const path = join(dir, name);
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) throw new ConfigInvalidError(`${from}: ${path} is missing (${what}); create the files with: hypercore tls init ${dir}`);
  if (!stat.isFile() || stat.size > MAX_PEM_BYTES) throw new ConfigInvalidError(`${from}: ${path} is not a PEM file of at most ${MAX_PEM_BYTES} bytes`);
  return readFileSync(path);
}

/** A private key must be for its owner's eyes only, as ssh insists. */
function readKey(dir: string, name: string, from: string): Buffer {
  const path = join(dir, name);
  const key = readPem(dir, name, 'a private key', from);
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new ConfigInvalidError(`${from}: ${path} has mode ${mode.toString(8).padStart(4, '0')}, so other users may read the private key; chmod 600 it`);
  return key;
}

function certificateOf(pem: Buffer, path: string, from: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new ConfigInvalidError(`${from}: ${path} is not a PEM certificate: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Checks that `cert` is for `key` and, with `dates`, that it lies in its validity period. */
function checkPair(dir: string, certName: string, keyName: string, cert: Buffer, key: Buffer, from: string, dates: boolean): void {
  const certPath = join(dir, certName);
  const x509 = certificateOf(cert, certPath, from);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ConfigInvalidError(`${from}: ${join(dir, keyName)} is not a PEM private key: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new ConfigInvalidError(`${from}: ${certPath} does not belong to the key ${join(dir, keyName)}`);
  if (!dates) return;
  const now = Date.now();
  if (Date.parse(x509.validTo) < now) throw new ConfigInvalidError(`${from}: ${certPath} expired on ${x509.validTo}; make new files with hypercore tls init`);
  if (Date.parse(x509.validFrom) > now) throw new ConfigInvalidError(`${from}: ${certPath} is not valid before ${x509.validFrom}`);
}

/** The daemon's side: ca.pem, server-cert.pem, server-key.pem. `from` names the setting for errors. */
export function loadServerIdentity(dir: string, from = '--tls-dir'): TlsIdentity {
  const ca = readPem(dir, TLS_FILES.ca, 'the CA that signs client certificates', from);
  certificateOf(ca, join(dir, TLS_FILES.ca), from);
  const cert = readPem(dir, TLS_FILES.serverCert, "the daemon's certificate", from);
  const key = readKey(dir, TLS_FILES.serverKey, from);
  checkPair(dir, TLS_FILES.serverCert, TLS_FILES.serverKey, cert, key, from, true);
  return { ca, cert, key };
}

/**
 * The client's side: ca.pem (to check the daemon), and cert.pem with key.pem when both exist (a
 * client that has none authenticates with a token instead).
 */
export function loadClientIdentity(dir: string, from: string): { ca: Buffer; cert?: Buffer; key?: Buffer } {
  const ca = readPem(dir, TLS_FILES.ca, "the CA that signed the daemon's certificate", from);
  certificateOf(ca, join(dir, TLS_FILES.ca), from);
  const hasCert = statSync(join(dir, TLS_FILES.clientCert), { throwIfNoEntry: false }) !== undefined;
  const hasKey = statSync(join(dir, TLS_FILES.clientKey), { throwIfNoEntry: false }) !== undefined;
  if (!hasCert && !hasKey) return { ca };
  const cert = readPem(dir, TLS_FILES.clientCert, 'the client certificate', from);
  const key = readKey(dir, TLS_FILES.clientKey, from);
  // The daemon judges the client certificate's dates by its own clock; a client with a skewed clock must not refuse to try.
  checkPair(dir, TLS_FILES.clientCert, TLS_FILES.clientKey, cert, key, from, false);
  return { ca, cert, key };
}
