/**
 * Vectors are versioned forever (spec/FORMAT.md section 10, spec/vectors/README.md): every
 * file listed in spec/vectors/v1/MANIFEST.sha256 still exists with the same sha256. New files
 * are allowed (appended to the manifest). The manifest's first lines, the vectors of format
 * 1.0 as first published, are pinned by their hash here, so that changing a vector needs more
 * than regenerating it and its manifest line together.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');
/** Lines of the manifest as first published, and the sha256 of exactly those lines (with their newlines). */
const PINNED_LINES = 80;
const PINNED_SHA256 = 'f1af881fc9aea238a171678978bc8fcdaefbadb76f74fe687e789cd955e8f754';

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const manifest = readFileSync(join(V1, 'MANIFEST.sha256'), 'utf8');
const lines = manifest.split('\n').filter((l) => l.length > 0);
const entries = lines.map((l) => {
  const m = /^([0-9a-f]{64}) {2}(\S.*)$/.exec(l);
  if (!m) throw new Error(`MANIFEST.sha256: malformed line ${JSON.stringify(l)}`);
  return { hash: m[1]!, file: m[2]! };
});

test('the first published manifest lines are unchanged (edit nothing; append new vectors)', () => {
  expect(lines.length).toBeGreaterThanOrEqual(PINNED_LINES);
  expect(sha256(lines.slice(0, PINNED_LINES).map((l) => `${l}\n`).join(''))).toBe(PINNED_SHA256);
});

test('the manifest lists each file once', () => {
  expect(new Set(entries.map((e) => e.file)).size).toBe(entries.length);
});

test.each(entries)('$file is unchanged', ({ hash, file }) => {
  const path = join(V1, file);
  if (!existsSync(path)) throw new Error(`${file} disappeared: vectors in v1 are kept forever (spec/vectors/README.md)`);
  expect({ file, sha256: sha256(readFileSync(path)) }).toEqual({ file, sha256: hash });
});
