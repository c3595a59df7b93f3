// Bundles the guest agent after tsc: dist/src/agent/main.js (and everything it imports) into one
// CommonJS file, dist/agent/agent.js, which the system image ships as /agent/agent.js.
// node-pty stays outside the bundle (native addon): src/agent/pty.ts loads it by a computed name at
// run time, and the system image copies it to /agent/node_modules/node-pty.
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist/src/agent/main.js');
const outfile = join(root, 'dist/agent/agent.js');
if (!existsSync(entry)) {
  console.error(`bundle-agent: ${entry} is missing; run tsc first`);
  process.exit(1);
}
const { bundleAgent } = await import(pathToFileURL(join(root, 'dist/src/guest/system-image-bundle.js')).href);
const result = await bundleAgent({ entry, outfile });
// The repository's package.json says "type": "module"; this one keeps `node dist/agent/agent.js`
// (development) treating the bundle as the CommonJS it is. The guest's /agent has no package.json.
writeFileSync(join(root, 'dist/agent/package.json'), '{ "type": "commonjs" }\n');
for (const w of result.warnings) console.error(`bundle-agent: warning: ${w}`);
console.log(`bundle-agent: ${outfile} ${result.sizeBytes} bytes sha256 ${result.sha256.slice(0, 12)} (${result.durationMs} ms)`);
