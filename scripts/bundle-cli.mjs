// Bundles the CLI after tsc: dist/src/cli/hypercore.js and everything it imports into dist/cli/,
// which bin/hypercore runs (dist/cli/hypercore.js). ES modules split into chunks: the entry answers `--version` alone, and each
// command's dynamic imports (the hac.toml schema, tables, progress bars, WebSockets, the registry
// client) become chunks loaded only by the commands that use them. One file per chunk instead of
// hundreds of modules is most of the start-up saved; loading less is the rest.
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist/src/cli/hypercore.js');
const outdir = join(root, 'dist/cli');
if (!existsSync(entry)) {
  console.error(`bundle-cli: ${entry} is missing; run tsc first`);
  process.exit(1);
}
const started = Date.now();
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { hypercore: entry },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  // CommonJS packages inside ES module chunks call require() for node's built-ins.
  banner: { js: "import { createRequire as __hcCreateRequire } from 'node:module'; const require = __hcCreateRequire(import.meta.url);" },
  // ws loads these optional native speed-ups only when they are installed.
  external: ['bufferutil', 'utf-8-validate'],
  // Less to parse at every start; identifiers stay, so stack traces still name functions.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: false,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.entries(result.metafile.outputs);
const bytes = outputs.reduce((sum, [, o]) => sum + o.bytes, 0);
const main = outputs.find(([path]) => path.endsWith('/hypercore.js'))?.[1].bytes ?? 0;
console.log(`bundle-cli: ${outdir} ${outputs.length} files, ${bytes} bytes (entry ${main} bytes) (${Date.now() - started} ms)`);
