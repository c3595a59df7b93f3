/**
 * Pull progress for people: one bar per layer (bytes, speed) on a terminal, plain lines otherwise
 * (one when a layer starts, one when it completes, one per phase), so logs stay readable.
 */
import cliProgress from 'cli-progress';
import type { PullImageProgress as PullProgress } from '../../sdk/src/index.js';

function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export interface ProgressRenderer {
  update(p: PullProgress): void;
  stop(): void;
}

export function progressRenderer(out: NodeJS.WriteStream): ProgressRenderer {
  return out.isTTY ? new BarRenderer(out) : new LineRenderer(out);
}

class LineRenderer implements ProgressRenderer {
  private readonly started = new Set<string>();
  private readonly finished = new Set<string>();
  private lastPhase = '';
  constructor(private readonly out: NodeJS.WritableStream) {}
  update(p: PullProgress): void {
    if (p.phase === 'downloading' && p.layer) {
      const id = shortDigest(p.layer);
      if (!this.started.has(id)) {
        this.started.add(id);
        this.out.write(`${id}: downloading ${p.total ? mb(p.total) : ''}${p.message ? ` (${p.message})` : ''}\n`);
      }
      if (p.total !== undefined && p.current === p.total && !this.finished.has(id)) {
        this.finished.add(id);
        this.out.write(`${id}: done\n`);
      }
      return;
    }
    if (p.phase !== this.lastPhase) {
      this.lastPhase = p.phase;
      this.out.write(`${p.reference}: ${p.phase}${p.message ? ` (${p.message})` : ''}\n`);
    }
  }
  stop(): void {}
}

class BarRenderer implements ProgressRenderer {
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly multi: cliProgress.MultiBar;
  private status: cliProgress.SingleBar | undefined;
  constructor(out: NodeJS.WriteStream) {
    this.multi = new cliProgress.MultiBar(
      {
        stream: out,
        format: ' {id} [{bar}] {percentage}% {done}/{size} {speed}',
        hideCursor: true,
        clearOnComplete: false,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
  }
  update(p: PullProgress): void {
    if (p.phase === 'downloading' && p.layer && p.total !== undefined) {
      let bar = this.bars.get(p.layer);
      if (!bar) {
        bar = this.multi.create(p.total, 0, { id: shortDigest(p.layer), done: mb(0), size: mb(p.total), speed: '' });
        this.bars.set(p.layer, bar);
      }
      const started = (bar as unknown as { startTime?: number }).startTime ?? Date.now();
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      bar.update(p.current ?? 0, { done: mb(p.current ?? 0), speed: p.message ?? `${mb((p.current ?? 0) / seconds)}/s` });
      return;
    }
    this.status ??= this.multi.create(1, 0, { id: 'status      ', done: '', size: '', speed: '' }, { format: ' {id} {speed}' });
    this.status.update(0, { speed: `${p.phase}${p.message ? ` (${p.message})` : ''}` });
  }
  stop(): void {
    this.multi.stop();
  }
}
