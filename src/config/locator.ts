/**
 * Maps dotted key paths to where they are written in a TOML text. smol-toml gives us values but
 * no positions, and good errors need `file:line:column`. This is a scanner, not a parser: it runs
 * only on text that smol-toml already accepted, so it can skip anything it does not understand.
 */
import { formatKeyPath, type KeySegment } from './key-path.js';

/** 1-based line and column (UTF-16 code units, like smol-toml's own errors). */
export interface Position {
  line: number;
  column: number;
}

/** Positions of the keys and tables of one TOML text, looked up by `formatKeyPath` paths. */
export interface KeyLocations {
  /** Where the key is written; for a `[table]` header, the column of its `[`; for an array item (`a[1]`), where it starts. */
  key(path: string): Position | undefined;
  /** Where the value starts; for a table, its header's `[` (or the `{` of an inline table). */
  value(path: string): Position | undefined;
}

interface Entry {
  key: number;
  value: number;
}

/** Scans `text` once and returns a lookup of key and value positions. */
export function locateKeys(text: string): KeyLocations {
  const entries = new Map<string, Entry>();
  new Scanner(text, entries).document();
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') lineStarts.push(i + 1);
  const toPosition = (offset: number): Position => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((lineStarts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - (lineStarts[lo] ?? 0) + 1 };
  };
  return {
    key: (path) => {
      const e = entries.get(path);
      return e && toPosition(e.key);
    },
    value: (path) => {
      const e = entries.get(path);
      return e && toPosition(e.value);
    },
  };
}

const bareKeyChars = /[A-Za-z0-9_-]+/y;

class Scanner {
  private pos = 0;

  constructor(
    private readonly s: string,
    private readonly entries: Map<string, Entry>,
  ) {}

  document(): void {
    if (this.s.startsWith('\uFEFF')) this.pos = 1;
    let table: KeySegment[] = [];
    /** Items so far of each array of tables (`[[metadata.files]]`): its next header is item `count`. */
    const items = new Map<string, number>();
    for (;;) {
      this.skipTrivia();
      if (this.pos >= this.s.length) return;
      const start = this.pos;
      if (this.s[start] === '[') {
        const arrayItem = this.s[start + 1] === '[';
        this.pos += arrayItem ? 2 : 1;
        table = this.key();
        if (arrayItem) {
          const index = items.get(formatKeyPath(table)) ?? 0;
          items.set(formatKeyPath(table), index + 1);
          table = [...table, index];
        }
        this.record(table, start, start);
      } else {
        this.keyValue(table);
      }
      // Whatever is left on the line is a closing bracket, a comment or something we skip.
      this.skipToLineEnd();
    }
  }

  /** `a.b = value`; records the key under `prefix`, or nothing when `prefix` is null. */
  private keyValue(prefix: KeySegment[] | null): void {
    const keyStart = this.pos;
    const keys = this.key();
    this.skipSpaces();
    if (keys.length === 0 || this.s[this.pos] !== '=') return;
    this.pos++;
    this.skipSpaces();
    const path = prefix && [...prefix, ...keys];
    if (prefix && path) this.record(path, keyStart, this.pos);
    this.value(path);
  }

  private key(): string[] {
    const segments: string[] = [];
    for (;;) {
      this.skipSpaces();
      const c = this.s[this.pos];
      if (c === '"' || c === "'") {
        segments.push(this.string());
      } else {
        bareKeyChars.lastIndex = this.pos;
        const m = bareKeyChars.exec(this.s);
        if (!m) break;
        segments.push(m[0]);
        this.pos += m[0].length;
      }
      this.skipSpaces();
      if (this.s[this.pos] !== '.') break;
      this.pos++;
    }
    return segments;
  }

  /** Skips a value; under a known `path`, array items are recorded as `path[i]` (and keys of inline tables in them). */
  private value(path: KeySegment[] | null): void {
    const c = this.s[this.pos];
    if (c === '"' || c === "'") {
      this.string();
    } else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      this.pos++;
      for (let index = 0; ; ) {
        this.skipTrivia();
        if (this.pos >= this.s.length) return;
        if (this.s[this.pos] === close) {
          this.pos++;
          return;
        }
        const before = this.pos;
        if (c === '{') {
          this.keyValue(path);
        } else {
          const item = path && [...path, index++];
          if (item) this.record(item, before, before);
          this.value(item);
        }
        this.skipTrivia();
        if (this.s[this.pos] === ',') this.pos++;
        else if (this.pos === before) this.pos++; // never loop on something unexpected
      }
    } else {
      while (this.pos < this.s.length && !',]}#\r\n'.includes(this.s[this.pos] ?? '')) this.pos++;
    }
  }

  /** Skips a basic, literal or multi-line string and returns its (decoded, for keys) content. */
  private string(): string {
    const quote = this.s[this.pos] ?? '"';
    const triple = quote.repeat(3);
    const multiline = this.s.startsWith(triple, this.pos);
    this.pos += multiline ? 3 : 1;
    const start = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s[this.pos];
      if (c === '\\' && quote === '"') {
        this.pos += 2;
      } else if (multiline ? this.s.startsWith(triple, this.pos) : c === quote) {
        const raw = this.s.slice(start, this.pos);
        this.pos += multiline ? 3 : 1;
        // A multi-line string may end with up to two extra quotes that belong to its content.
        for (let extra = 0; multiline && extra < 2 && this.s[this.pos] === quote; extra++) this.pos++;
        return quote === '"' ? decodeBasic(raw) : raw;
      } else if (!multiline && c === '\n') {
        break;
      } else {
        this.pos++;
      }
    }
    return this.s.slice(start, this.pos);
  }

  /** First occurrence wins; parents of dotted keys and headers are implicitly defined there too. */
  private record(path: KeySegment[], key: number, value: number): void {
    for (let i = 1; i <= path.length; i++) {
      const name = formatKeyPath(path.slice(0, i));
      if (!this.entries.has(name)) this.entries.set(name, i === path.length ? { key, value } : { key, value: key });
    }
  }

  private skipSpaces(): void {
    while (this.s[this.pos] === ' ' || this.s[this.pos] === '\t') this.pos++;
  }

  /** Spaces, newlines and comments. */
  private skipTrivia(): void {
    for (;;) {
      this.skipSpaces();
      const c = this.s[this.pos];
      if (c === '#') this.skipToLineEnd();
      else if (c === '\n' || c === '\r') this.pos++;
      else return;
    }
  }

  private skipToLineEnd(): void {
    while (this.pos < this.s.length && this.s[this.pos] !== '\n') this.pos++;
  }
}

/** TOML basic-string escapes are JSON's plus a few; fall back to the raw text for the rest. */
function decodeBasic(raw: string): string {
  try {
    const decoded: unknown = JSON.parse(`"${raw}"`);
    return typeof decoded === 'string' ? decoded : raw;
  } catch {
    return raw;
  }
}
