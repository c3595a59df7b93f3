/**
 * Line framing for QMP: the server sends one JSON document per line, terminated by CRLF
 * (QEMU 7.2) or LF. Chunks from the socket are split into lines incrementally.
 */

/** Thrown by {@link QmpLineSplitter.push} when a line grows past the limit without a newline. */
export class QmpLineTooLongError extends Error {
  constructor(readonly limitBytes: number) {
    super(`QMP line exceeds ${limitBytes} bytes without a newline`);
    this.name = 'QmpLineTooLongError';
  }
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines. Each byte is scanned once: a new chunk is searched for
 * newlines, and an unterminated tail is kept as a list of chunks until its newline arrives.
 * Keeping bytes (not strings) until a line is complete means a multi-byte UTF-8 character
 * split across chunks decodes correctly. The unterminated tail is bounded so a peer that never
 * sends a newline cannot make the daemon grow memory without limit.
 */
export class QmpLineSplitter {
  private tail: Buffer[] = [];
  private tailBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** Returns the complete, non-empty lines this chunk finished (without CR/LF), in order. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(LF, start); nl !== -1; nl = chunk.indexOf(LF, start)) {
      const piece = chunk.subarray(start, nl);
      this.checkLimit(this.tailBytes + piece.length);
      const bytes = this.tail.length === 0 ? piece : Buffer.concat([...this.tail, piece]);
      this.tail = [];
      this.tailBytes = 0;
      const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
      if (end > 0) lines.push(bytes.toString('utf8', 0, end));
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.checkLimit(this.tailBytes + rest.length);
      // Copy: the socket may reuse its buffer, and a subarray would pin the whole chunk anyway.
      this.tail.push(Buffer.from(rest));
      this.tailBytes += rest.length;
    }
    return lines;
  }

  /** Bytes received after the last newline (a partial line). */
  get pendingBytes(): number {
    return this.tailBytes;
  }

  private checkLimit(lineBytes: number): void {
    // +1 tolerates the CR of a CRLF pair that sits right at the limit.
    if (lineBytes > this.maxLineBytes + 1) throw new QmpLineTooLongError(this.maxLineBytes);
  }
}
