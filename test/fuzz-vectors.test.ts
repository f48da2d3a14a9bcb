/**
 * The mutation fuzzer (spec/fuzz) on the vectors of spec section 12 (issue 15): the accepted
 * vectors (valid images a reader must read, which the fuzzer mutates like the valid ones) and
 * the invalid vectors of stage read and verify as seeds (`loadVectors(dir, { invalid: true })`,
 * `npm run fuzz -- --invalid`): mutations near a rule already broken still end in a CrimgError
 * or the original bytes, never another exception, a hang or a runaway allocation.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeCase } from '../spec/fuzz/mutator.js';
import { loadVectors, runCase, type CaseResult } from '../spec/fuzz/harness.js';
import { ensureBuilt } from './cli-helpers.js';
import { budget } from './machine.js';

beforeAll(() => ensureBuilt()); // the restore step and npm run fuzz run built JavaScript

const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');
const SEED = 15;
const CASES = Number(process.env.CRIMG_FUZZ_VECTORS_CASES ?? 1500);
const STEP_MS = budget(2000);

let vectors: Awaited<ReturnType<typeof loadVectors>>;
beforeAll(async () => {
  vectors = await loadVectors(V1, { invalid: true });
}, budget(60_000));

const accepted = readdirSync(join(V1, 'accepted')).filter((f) => f.endsWith('.img')).map((f) => `accepted/${f.slice(0, -4)}`);

test('loadVectors takes the accepted vectors by default, and the read and verify invalid ones on request', async () => {
  const names = vectors.infos.map((v) => v.name);
  for (const a of accepted) expect(names).toContain(a);
  expect(names).toContain('invalid/CORRUPT_CHUNK--deflate-trailing-bytes');
  expect(names).toContain('invalid/CORRUPT_INDEX--mappable-not-contiguous');
  expect(names).toContain('invalid/AUTH_FAILED--swapped-chunks');
  expect(names).not.toContain('invalid/AUTH_FAILED--tampered-chunk-table'); // its sealed table does not open: the mutator could not re-seal it
  expect(names.some((n) => n.startsWith('invalid/TRUNCATED--'))).toBe(false); // open-stage vectors are not seeds
  const plain = await loadVectors(V1);
  expect(plain.infos.map((v) => v.name)).toEqual(names.filter((n) => !n.startsWith('invalid/')));
  // An invalid seed's oracle is its from vector's content, held to the robustness properties only.
  const seed = vectors.originals.get('invalid/CORRUPT_INDEX--region-stored-bytes')!;
  expect(seed.invalid).toBe(true);
  expect(seed.regions).toEqual(vectors.originals.get('regions')!.regions);
});

test(`${CASES} seeded cases on the accepted and invalid vectors: only CrimgErrors, no hang, bounded memory`, async () => {
  // Only the vectors of section 12: the valid ones have test/fuzz.test.ts.
  const infos = vectors.infos.filter((v) => v.name.includes('/'));
  const results: CaseResult[] = [];
  for (let i = 0; i < CASES; i++) {
    const c = makeCase(infos, SEED, i);
    results.push(await runCase(c, vectors.originals.get(c.vector)!, { restore: true, stepTimeoutMs: STEP_MS }));
  }
  const failures = results.filter((r) => r.outcome.startsWith('FAIL')).map((r) => `case ${r.index} (${r.vector}) ${r.outcome}: ${r.steps.join('; ')}: ${r.failure}`);
  expect(failures).toEqual([]);
  // Every accepted vector and most seeds were mutated; the accepted ones mutated in ways a
  // reader catches at every stage.
  const picked = new Set(results.map((r) => r.vector));
  for (const a of accepted) expect({ a, picked: picked.has(a) }).toEqual({ a, picked: true });
  expect(picked.size).toBeGreaterThan(infos.length * 0.9);
  const outcomes = new Set(results.filter((r) => r.vector.startsWith('accepted/')).map((r) => r.outcome.split(':')[0]));
  for (const stage of ['open', 'read', 'verify']) expect({ stage, seen: outcomes.has(stage) }).toEqual({ stage, seen: true });
}, budget(180_000));

test('npm run fuzz -- --invalid: the seeds are named and every case is a CrimgError or clean', () => {
  const cli = join(process.cwd(), 'build', 'spec', 'fuzz', 'run.js');
  const out = execFileSync(process.execPath, [cli, '--cases', '60', '--seed', '15', '--jobs', '2', '--invalid'], { encoding: 'utf8', timeout: budget(90_000) });
  expect(out).toMatch(/invalid\/CORRUPT_CHUNK--deflate-trailing-bytes/);
  expect(out).toMatch(/accepted\/minimal--not-mappable/);
  expect(out).toMatch(/^60 cases in [\d.]+ s .*seed 15$/m);
  expect(out).not.toMatch(/FAIL:/);
});
