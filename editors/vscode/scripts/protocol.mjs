// Generates src/generated/lsp_ext.ts (the wire types) from protocol/lsp_ext.schema.json, the JSON
// schema tests/protocol_schema.rs emits from the Rust types. test/protocol_mirror.ts then makes
// `tsc` fail when src/lsp_ext.ts disagrees with them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileFromFile } from 'json-schema-to-typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const banner = [
    '/* eslint-disable */',
    '// Generated from protocol/lsp_ext.schema.json by `npm run protocol`; do not edit.',
    "import type * as lsp from 'vscode-languageserver-protocol';",
].join('\n');
const types = await compileFromFile(join(root, 'protocol/lsp_ext.schema.json'), {
    bannerComment: banner,
    unreachableDefinitions: true,
    additionalProperties: false,
    format: false,
});
const out = join(root, 'src/generated/lsp_ext.ts');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, types);
