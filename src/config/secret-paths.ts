/** Which keys of a hac.toml (or of the spec tree the API maps to one) hold secrets. */

const SECRETS: readonly string[] = ['metadata', 'secrets'];

/**
 * True when `value`, found at `segments`, is `metadata.secrets`, is in it, or holds it (a table on
 * the way there). Error messages and details never show such a value as written: an error is
 * printed, logged and returned to API clients.
 */
export function mayHoldSecrets(segments: readonly PropertyKey[], value: unknown): boolean {
  if (segments.length >= SECRETS.length) return SECRETS.every((s, i) => segments[i] === s);
  return typeof value === 'object' && value !== null && segments.every((s, i) => s === SECRETS[i]);
}
