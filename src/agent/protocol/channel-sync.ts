/**
 * A handshake below TTRPC that makes a virtio-serial channel safe to reconnect.
 *
 * A guest write that was blocked while no host was connected is delivered to the *next* host
 * connection (facts: guest.md §3a). Bytes of an old TTRPC conversation would then corrupt the new
 * one's framing. So each host connection starts with `HCSYNC <nonce>\n`; the agent answers
 * `HCSYNC <nonce> OK\n`, and the host discards everything before that exact line.
 */
export const SYNC_PREFIX = 'HCSYNC ';
export const MAX_SYNC_LINE = 128;

export function syncRequest(nonce: string): Buffer {
  return Buffer.from(`${SYNC_PREFIX}${nonce}\n`);
}

export function syncReply(nonce: string): Buffer {
  return Buffer.from(`${SYNC_PREFIX}${nonce} OK\n`);
}

/** Parses a sync request line (without the newline); undefined when it is not one. */
export function parseSyncRequest(line: string): string | undefined {
  if (!line.startsWith(SYNC_PREFIX)) return undefined;
  const nonce = line.slice(SYNC_PREFIX.length).trim();
  return /^[A-Za-z0-9]{8,64}$/.test(nonce) ? nonce : undefined;
}

/**
 * Host side: feed received bytes until the reply for `nonce` is seen; returns the bytes after it
 * (the start of the TTRPC stream), or undefined while still waiting. Garbage before is dropped.
 */
export class SyncReplyScanner {
  private buffered = Buffer.alloc(0);
  private readonly marker: Buffer;

  constructor(nonce: string) {
    this.marker = syncReply(nonce);
  }

  push(chunk: Buffer): Buffer | undefined {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    const at = this.buffered.indexOf(this.marker);
    if (at >= 0) return this.buffered.subarray(at + this.marker.length);
    // Keep only what could still be the start of the marker.
    if (this.buffered.length > this.marker.length) this.buffered = this.buffered.subarray(this.buffered.length - this.marker.length + 1);
    return undefined;
  }
}
