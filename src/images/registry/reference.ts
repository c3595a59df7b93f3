/**
 * Image references (`alpine`, `user/app:v1`, `127.0.0.1:5000/x/y:tag`, `host/x@sha256:…`),
 * parsed and normalised the way Docker does (distribution/reference), so the same text names the
 * same image here and in `docker pull`.
 */
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../../core/errors.js';

/** A fully normalised image reference; at least one of `tag` and `digest` is set. */
export interface ImageReference {
  /** Registry as the user names it: `docker.io`, `ghcr.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/alpine`. */
  repository: string;
  tag?: string;
  /** `algorithm:hex`, e.g. `sha256:…`. */
  digest?: string;
}

/** The registry name Docker uses for Docker Hub. */
export const dockerHubRegistry = 'docker.io';
/** The host that actually serves Docker Hub's registry API. */
export const dockerHubApiHost = 'registry-1.docker.io';

// Grammar from distribution/reference: lowercase components joined by `.`, `_`, `__` or dashes.
const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const domainComponent = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const digestHexLength: Record<string, number> = { sha256: 64, sha512: 128 };
const maxNameLength = 255;

function invalid(text: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid image reference "${text}": ${why}`);
}

/** Checks `algorithm:hex`; sha256/sha512 must be lowercase hex of the right length. */
export function validateDigest(digest: string): string | undefined {
  if (!digestPattern.test(digest)) return `"${digest}" is not a digest (expected sha256:<64 hex digits>)`;
  const [algorithm, hex] = digest.split(':') as [string, string];
  const length = digestHexLength[algorithm];
  if (length === undefined) return `unsupported digest algorithm "${algorithm}" (use sha256 or sha512)`;
  if (hex.length !== length || !/^[0-9a-f]+$/.test(hex)) return `"${digest}" must be ${algorithm}: followed by ${length} lowercase hex digits`;
  return undefined;
}

function validDomain(domain: string): boolean {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(domain);
  if (!match) return false;
  const host = match[1] as string;
  if (match[2] !== undefined && Number(match[2]) > 65535) return false;
  if (host.startsWith('[')) return isIP(host.slice(1, -1)) === 6;
  return host.split('.').every((part) => domainComponent.test(part));
}

/**
 * Parses and normalises a reference: `alpine` → `docker.io/library/alpine:latest`. The first
 * path component is a registry when it contains `.` or `:`, is `localhost`, or has uppercase
 * letters (Docker's rule). Throws InvalidArgumentError saying what is wrong.
 */
export function parseReference(text: string): ImageReference {
  const input = text.trim();
  if (input === '') throw invalid(text, 'it is empty');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = validateDigest(digest);
    if (problem) throw invalid(text, problem);
  }
  // A tag is after the last ':' that comes after the last '/', so `host:5000/x` has no tag.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw invalid(text, `tag "${tag}" may only contain letters, digits, "_", "." and "-" (at most 128, not starting with "." or "-")`);
  }
  let registry = dockerHubRegistry;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!validDomain(registry)) throw invalid(text, `"${registry}" is not a valid registry host[:port]`);
    }
  }
  if (registry === 'index.docker.io') registry = dockerHubRegistry;
  if (repository === '') throw invalid(text, 'the repository name is empty');
  for (const component of repository.split('/')) {
    if (pathComponent.test(component)) continue;
    if (component !== component.toLowerCase()) throw invalid(text, `repository names must be lowercase ("${repository}")`);
    if (component === '') throw invalid(text, `"${repository}" has an empty path component`);
    throw invalid(text, `"${component}" may only contain a-z, 0-9 and single separators ".", "_", "__", "-"`);
  }
  if (registry === dockerHubRegistry && !repository.includes('/')) repository = `library/${repository}`;
  if (registry.length + 1 + repository.length > maxNameLength) throw invalid(text, `the name is longer than ${maxNameLength} characters`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/**
 * Formats a reference. Fully qualified by default (`docker.io/library/alpine:latest`);
 * `familiar` drops `docker.io/` and `library/` like `docker images` does.
 */
export function formatReference(ref: ImageReference, options: { familiar?: boolean } = {}): string {
  let name = `${ref.registry}/${ref.repository}`;
  if (options.familiar && ref.registry === dockerHubRegistry) {
    name = ref.repository.startsWith('library/') && ref.repository.split('/').length === 2 ? ref.repository.slice(8) : ref.repository;
  }
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The host[:port] that serves the registry API (Docker Hub's differs from its name). */
export function registryApiHost(registry: string): string {
  return registry === dockerHubRegistry ? dockerHubApiHost : registry;
}

/** Splits `host[:port]` (IPv6 in brackets) into its host part, without brackets. */
function hostOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.lastIndexOf(':');
  // A bare IPv6 address has several colons and no port.
  return colon === -1 || registry.indexOf(':') !== colon ? registry : registry.slice(0, colon);
}

/**
 * Whether the registry is spoken to over plain HTTP. Like Docker: only loopback registries
 * (localhost, 127.0.0.0/8, ::1) by default, plus entries of `insecureRegistries` — `host:port`
 * matches exactly, a bare `host` matches any port.
 */
export function isInsecureByDefault(registry: string, insecureRegistries: readonly string[] = []): boolean {
  const host = hostOf(registry).toLowerCase();
  if (host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))) return true;
  return insecureRegistries.some((entry) => {
    const e = entry.replace(/^https?:\/\//, '').replace(/\/+$/, '').toLowerCase();
    return e === registry.toLowerCase() || e === host;
  });
}
