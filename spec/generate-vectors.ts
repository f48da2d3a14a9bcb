/**
 * Writes the conformance vectors into spec/vectors/v1/ (`npm run vectors`). Deterministic:
 * running it again gives the same bytes, and test/vectors.test.ts checks the committed files
 * against a fresh generation.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { generateAll } from './vectors-lib.js';

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
}

const out = join(repoRoot(), 'spec', 'vectors', 'v1');
mkdirSync(join(out, 'invalid'), { recursive: true });
const files = await generateAll(out);
console.log(`wrote ${files.length} vectors to ${out}`);
