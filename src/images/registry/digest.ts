/** Content digests (`sha256:<hex>`): computing and checking them. */
import { createHash, type Hash } from 'node:crypto';
import { InvalidArgumentError } from '../../core/errors.js';
import { DigestMismatchError } from './errors.js';
import { validateDigest } from './reference.js';

/** Throws InvalidArgumentError unless `digest` is a well-formed sha256/sha512 digest. */
export function assertDigest(digest: string): void {
  const problem = validateDigest(digest);
  if (problem) throw new InvalidArgumentError(problem);
}

/** A hasher for the algorithm of `digest` (so sha512-addressed content is checked with sha512). */
export function hasherFor(digest: string): Hash {
  assertDigest(digest);
  return createHash(digest.slice(0, digest.indexOf(':')));
}

/** The `sha256:<hex>` digest of bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The digest of `bytes` under the algorithm `like` uses. */
export function digestLike(like: string, bytes: Uint8Array): string {
  return `${like.slice(0, like.indexOf(':'))}:${hasherFor(like).update(bytes).digest('hex')}`;
}

/** Throws DigestMismatchError unless `bytes` hash to `expected`. */
export function verifyBytes(what: string, expected: string, bytes: Uint8Array): void {
  const actual = digestLike(expected, bytes);
  if (actual !== expected) throw new DigestMismatchError(`${what} does not match its digest`, expected, actual);
}
