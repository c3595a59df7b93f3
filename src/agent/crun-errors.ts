/**
 * Docker-style results for commands crun could not start. crun writes its own error line to the
 * process's stderr (which is our pipe or pty) and exits 1 (`run`) or 255 (`exec`); Docker instead
 * reports `exec: "x": executable file not found in $PATH` with exit code 127. Observed with crun
 * 1.8.1: `executable file \`x\` not found in $PATH: No such file or directory` (also for absolute
 * paths) and `chdir \`/dir\`: No such file or directory`.
 *
 * The filter holds back the start of the output only while it still looks like one of those lines,
 * so ordinary output (which does not begin with these words) passes through at once.
 */
import { notFoundMessage } from './launch.js';

interface Pattern {
  prefix: string;
  line: RegExp;
  result: (m: RegExpExecArray) => CrunFailure;
}

/** What a recognised crun error turns into. */
export interface CrunFailure {
  exitCode: number;
  message: string;
}

const PATTERNS: readonly Pattern[] = [
  {
    prefix: 'executable file `',
    line: /^executable file `(.*)` not found in \$PATH: No such file or directory\r?\n$/,
    result: (m) => ({ exitCode: 127, message: notFoundMessage(m[1]!) }),
  },
  {
    prefix: 'chdir `',
    line: /^chdir `(.*)`: No such file or directory\r?\n$/,
    result: (m) => ({ exitCode: 126, message: `chdir to cwd ("${m[1]}") failed: no such file or directory` }),
  },
];

/** Longest line we wait for before deciding it is not a crun error. */
const MAX_HELD = 4096;

/** Output to pass on. */
export interface Piece {
  fd: number;
  data: Buffer;
}

/** Per-process filter: `push` every output chunk, `finish` at exit. */
export class CrunErrorFilter {
  private held: Piece[] = [];
  private passing = false;
  private failure: CrunFailure | undefined;

  /** True while output is held back (the process should arm a flush timer). */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /** Returns what may be passed on now. */
  push(fd: number, data: Buffer): Piece[] {
    if (this.passing) return [{ fd, data }];
    this.held.push({ fd, data });
    const text = Buffer.concat(this.held.map((p) => p.data)).toString('utf8');
    const verdict = classify(text);
    if (verdict === 'other') return this.flush();
    this.failure = verdict === 'maybe' ? undefined : verdict;
    return [];
  }

  /** Gives up holding (e.g. after a timeout): everything held is passed on unchanged. */
  flush(): Piece[] {
    this.passing = true;
    this.failure = undefined;
    const out = this.held;
    this.held = [];
    return out;
  }

  /**
   * At exit: a recognised crun error with a non-zero exit becomes the Docker message on stderr and
   * its exit code; otherwise the held output is passed on and the exit code kept.
   */
  finish(exitCode: number): { pieces: Piece[]; exitCode: number } {
    const failure = this.failure;
    if (failure && exitCode !== 0) {
      this.held = [];
      this.passing = true;
      return { pieces: [{ fd: 2, data: Buffer.from(`${failure.message}\n`) }], exitCode: failure.exitCode };
    }
    return { pieces: this.flush(), exitCode };
  }
}

/** 'maybe' = could still become a crun error line; a CrunFailure = it is one; 'other' = it is not. */
export function classify(text: string): 'maybe' | 'other' | CrunFailure {
  if (text.length > MAX_HELD) return 'other';
  for (const p of PATTERNS) {
    if (p.prefix.startsWith(text)) return 'maybe';
    if (!text.startsWith(p.prefix)) continue;
    const nl = text.indexOf('\n');
    if (nl < 0) return 'maybe';
    // Exactly one line: crun prints its error and exits; more output means it is the program's.
    if (nl !== text.length - 1) return 'other';
    const m = p.line.exec(text);
    return m ? p.result(m) : 'other';
  }
  return 'other';
}
