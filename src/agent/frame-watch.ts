/**
 * Watches the TTRPC byte stream from the host for the start of a *new* host connection.
 *
 * On virtio-serial the guest does not always see EOF when a host goes away (a read that was not
 * pending at that moment never returns 0), so the next host's `HCSYNC <nonce>` line can arrive in
 * the middle of the old connection's stream. It always arrives at a frame boundary, and no TTRPC
 * frame can start with those bytes (their length would be over 1 GiB, far beyond the 4 MiB
 * limit), so checking at boundaries tells a new host apart from data without false positives.
 */
import { SYNC_PREFIX } from './protocol/channel-sync.js';

const HEADER_LENGTH = 10;
const SYNC = Buffer.from(SYNC_PREFIX, 'latin1');

export interface WatchResult {
  /** Bytes of the current connection to pass on to TTRPC. */
  forward: Buffer;
  /** Set when a new host's handshake starts: the bytes from `HCSYNC` on. */
  resync?: Buffer;
}

export class FrameBoundaryWatch {
  private carry = Buffer.alloc(0);
  /** Bytes left of the frame being passed through; 0 at a boundary. */
  private remaining = 0;

  push(chunk: Uint8Array): WatchResult {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : Buffer.from(chunk);
    this.carry = Buffer.alloc(0);
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < data.length) {
      if (this.remaining === 0) {
        const available = data.length - pos;
        // At a boundary: wait for a whole header (or enough to rule the sync line in or out).
        if (available < HEADER_LENGTH) {
          this.carry = data.subarray(pos);
          break;
        }
        if (data.subarray(pos, pos + SYNC.length).equals(SYNC)) return { forward: Buffer.concat(out), resync: data.subarray(pos) };
        this.remaining = HEADER_LENGTH + data.readUInt32BE(pos);
      }
      const take = Math.min(this.remaining, data.length - pos);
      out.push(data.subarray(pos, pos + take));
      pos += take;
      this.remaining -= take;
    }
    return { forward: Buffer.concat(out) };
  }
}
