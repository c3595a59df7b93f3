// Builds the web console into dist/console/: the page, one script bundle and one stylesheet
// (xterm.js's included), which the daemon serves on its remote listener. The page's TypeScript is
// type-checked here with the DOM library, apart from the daemon's Node-only tsconfig.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src/console/web');
const out = join(root, 'dist/console');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(source, 'tsconfig.json')], { stdio: 'inherit' });
mkdirSync(out, { recursive: true });
const started = Date.now();
await build({
  entryPoints: { console: join(source, 'main.ts') },
  outdir: out,
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(source, 'index.html'), join(out, 'index.html'));
console.log(`bundle-console: dist/console (${Date.now() - started} ms)`);
