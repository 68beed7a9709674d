/**
 * Writes configs/schema.json, the JSON Schema of a run config (from the zod schema in
 * src/config/index.ts). `npm run schema`; test/config-schema.test.ts fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../src/config/index.ts';

writeFileSync('configs/schema.json', JSON.stringify(configJsonSchema(), null, 2) + '\n');
console.log('wrote configs/schema.json');
