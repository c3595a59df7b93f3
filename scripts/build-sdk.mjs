// Builds the SDK after the main tsc: writes the OpenAPI document the daemon serves to
// sdk/openapi.json, generates the SDK's types from it with openapi-typescript
// (sdk/src/generated/openapi.ts; never edited by hand), then compiles the SDK and its e2e test
// (tsconfig.sdk.json, into dist/ beside everything else).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const { openApiDocument } = await import(pathToFileURL(join(root, 'dist/src/api/openapi.js')).href);
const document = openApiDocument();
writeFileSync(join(root, 'sdk/openapi.json'), `${JSON.stringify(document, null, 2)}\n`);
const types = astToString(await openapiTS(document));
mkdirSync(join(root, 'sdk/src/generated'), { recursive: true });
writeFileSync(join(root, 'sdk/src/generated/openapi.ts'), `// Generated from the daemon's OpenAPI document by scripts/build-sdk.mjs. Do not edit.\n${types}`);
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.sdk.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
console.log(`build-sdk: types from ${Object.keys(document.paths).length} paths, compiled (${Date.now() - started} ms)`);
