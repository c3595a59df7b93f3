/** How the CLI shows VM ids: the first 12 hex digits, as Docker shows container ids. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}
