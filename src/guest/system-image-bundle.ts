/**
 * Bundles the guest agent into one CommonJS file for /agent/agent.js of the system image. CommonJS
 * because the guest runs `node /agent/agent.js` with no package.json next to it, so an ESM file
 * would not load; one file because the guest has no node_modules.
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { build, type Message } from 'esbuild';
import { InvalidArgumentError } from '../core/errors.js';

export interface BundleAgentOptions {
  /** Entry module (TypeScript or JavaScript), e.g. `src/agent/main.ts`. */
  entry: string;
  /** Output file, replaced atomically (e.g. `dist/agent/agent.js`). */
  outfile: string;
}

export interface BundleAgentResult {
  outfile: string;
  sizeBytes: number;
  sha256: string;
  durationMs: number;
  /** esbuild's warnings, one line each (e.g. `import.meta` is empty in CommonJS output). */
  warnings: string[];
}

function describe(message: Message): string {
  const at = message.location ? `${message.location.file}:${message.location.line}:${message.location.column}: ` : '';
  return `${at}${message.text}`;
}

/** Narrows esbuild's BuildFailure (an Error with `errors`) without importing its class. */
function buildErrors(err: unknown): Message[] | undefined {
  if (typeof err !== 'object' || err === null || !('errors' in err)) return undefined;
  const errors = (err as { errors: unknown }).errors;
  return Array.isArray(errors) ? (errors as Message[]) : undefined;
}

/**
 * Bundles `entry` with everything it imports into `outfile`: platform node, CommonJS, target
 * node20, not minified (stack traces from the guest stay readable), no source map. Node built-ins
 * stay external; packages with native addons cannot be bundled and fail the guest at run time.
 */
export async function bundleAgent(options: BundleAgentOptions): Promise<BundleAgentResult> {
  const started = Date.now();
  let output: Uint8Array;
  let warnings: Message[];
  try {
    const result = await build({
      entryPoints: [options.entry],
      outfile: options.outfile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      minify: false,
      sourcemap: false,
      // Written below ourselves, so a reader never sees a half-written bundle.
      write: false,
      logLevel: 'silent',
      // Fixed so the same sources give the same bytes (the bundle's hash is a system-image input).
      charset: 'utf8',
      legalComments: 'none',
    });
    const file = result.outputFiles.find((f) => !f.path.endsWith('.map'));
    if (!file) throw new InvalidArgumentError(`esbuild produced no output for ${options.entry}`);
    output = file.contents;
    warnings = result.warnings;
  } catch (err) {
    const errors = buildErrors(err);
    if (!errors) throw err;
    const shown = errors.slice(0, 5).map(describe).join('; ');
    throw new InvalidArgumentError(`cannot bundle the agent ${options.entry}: ${shown || 'esbuild failed'}`, [
      { path: 'entry', message: 'bundling failed', value: options.entry },
    ]);
  }
  await mkdir(dirname(options.outfile), { recursive: true });
  const tmp = `${options.outfile}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, output, { mode: 0o644 });
    await rename(tmp, options.outfile);
  } finally {
    await rm(tmp, { force: true });
  }
  return {
    outfile: options.outfile,
    sizeBytes: output.byteLength,
    sha256: createHash('sha256').update(output).digest('hex'),
    durationMs: Date.now() - started,
    warnings: warnings.map(describe),
  };
}
