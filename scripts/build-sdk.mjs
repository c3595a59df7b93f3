// Generates the SDK's types before the main tsc, which compiles the SDK with everything else (the
// CLI is a client of the SDK, so its types must exist first): writes the OpenAPI document the
// daemon serves (its module compiled alone by tsconfig.openapi.json) to sdk/openapi.json, and the
// types openapi-typescript makes of it to sdk/src/generated/openapi.ts (never edited by hand).
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
console.log(`build-sdk: types from ${Object.keys(document.paths).length} paths (${Date.now() - started} ms)`);
