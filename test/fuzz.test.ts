/**
 * The mutation fuzzer (spec/fuzz) on a fixed seed and a budget that fits CI: every case ends in
 * a CrimgError or correct bytes, never another exception, a hang, a runaway allocation, or wrong
 * bytes returned silently. The long run is `npm run fuzz` (spec/fuzz/run.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeCase, Rng } from '../spec/fuzz/mutator.js';
import { loadVectors, runCase, type CaseResult } from '../spec/fuzz/harness.js';
import { ensureBuilt } from './cli-helpers.js';
import { budget } from './machine.js';

beforeAll(() => ensureBuilt()); // these run built JavaScript in child processes

const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');
const SEED = 20_260_601;
const CASES = Number(process.env.CRIMG_FUZZ_TEST_CASES ?? 4000);
/** A case's budget per step: a hang is a case past it. 2 s on a quiet machine, scaled to this one. */
const STEP_MS = budget(2000);

let vectors: Awaited<ReturnType<typeof loadVectors>>;
beforeAll(async () => {
  vectors = await loadVectors(V1);
});

test('the mutator is deterministic: a case is its seed and number', () => {
  const a = new Rng(5);
  const b = new Rng(5);
  expect(Array.from({ length: 8 }, () => a.u32())).toEqual(Array.from({ length: 8 }, () => b.u32()));
  for (const i of [0, 1, 77, 1234]) {
    const x = makeCase(vectors.infos, SEED, i);
    const y = makeCase(vectors.infos, SEED, i);
    expect(Buffer.from(x.bytes).equals(Buffer.from(y.bytes))).toBe(true);
    expect(x.steps).toEqual(y.steps);
  }
});

test(`${CASES} seeded cases: only CrimgErrors, no hang, bounded memory, no silently wrong bytes`, async () => {
  const results: CaseResult[] = [];
  for (let i = 0; i < CASES; i++) {
    const c = makeCase(vectors.infos, SEED, i);
    results.push(await runCase(c, vectors.originals.get(c.vector)!, { restore: true, stepTimeoutMs: STEP_MS }));
  }
  const failures = results.filter((r) => r.outcome.startsWith('FAIL'))
    .map((r) => `case ${r.index} (${r.vector}) ${r.outcome}: ${r.steps.join('; ')}: ${r.failure}`);
  expect(failures).toEqual([]);
  const counts: Record<string, number> = {};
  for (const r of results) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
  // The mutations reach every layer: header, validation, footer, index, chunks and tags.
  for (const o of ['open:BAD_MAGIC', 'open:TRUNCATED', 'open:CORRUPT_HEADER', 'open:CORRUPT_VALIDATION', 'open:CORRUPT_INDEX',
    'open:LIMIT_EXCEEDED', 'open:AUTH_FAILED', 'read:CORRUPT_CHUNK', 'read:CORRUPT_INDEX', 'read:AUTH_FAILED', 'verify:CORRUPT_INDEX']) {
    expect({ o, seen: (counts[o] ?? 0) > 0 }).toEqual({ o, seen: true });
  }
  // Issue 14's structures: names aliased, cut and out of the table, the string table made
  // invalid UTF-8, the region table grown by up to 2^12 gaps sharing one name (valid images
  // that open and pass every lookup) or with a footer claiming more regions.
  for (const what of ['gaps appended', ' name -> [', 'string table byte', 'footer claims']) {
    expect({ what, reached: results.some((r) => r.steps.some((s) => s.includes(what))) }).toEqual({ what, reached: true });
  }
  expect(results.some((r) => r.steps.some((s) => s.includes('gaps appended')) && r.outcome.startsWith('undetected'))).toBe(true);
  const slowest = results.reduce((a, b) => (b.ms > a.ms ? b : a));
  expect(slowest.ms).toBeLessThan(STEP_MS);
}, budget(120_000));

const cli = join(process.cwd(), 'build', 'spec', 'fuzz', 'run.js');
test('npm run fuzz: forked workers with a watchdog, counts per outcome, the seed', () => {
  const out = execFileSync(process.execPath, [cli, '--cases', '200', '--seed', '7', '--jobs', '2'], { encoding: 'utf8', timeout: budget(60_000) });
  expect(out).toMatch(/seed 7, 200 cases/);
  expect(out).toMatch(/^200 cases in [\d.]+ s .*seed 7$/m);
  expect(out).toMatch(/^slowest: case \d+/m);
  expect(out).not.toMatch(/FAIL:|FAILURES/);
}, budget(70_000));

test('the watchdog counts a hanging and a crashing case as failures and goes on', () => {
  const r = spawnSync(process.execPath, [cli, '--cases', '40', '--seed', '7', '--jobs', '2', '--timeout', String(STEP_MS)], {
    encoding: 'utf8', timeout: budget(60_000), env: { ...process.env, CRIMG_FUZZ_SELFTEST_HANG: '5', CRIMG_FUZZ_SELFTEST_CRASH: '17' },
  });
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/^40 cases in/m);
  expect(r.stdout).toMatch(/^ +1 +FAIL:hang$/m);
  expect(r.stdout).toMatch(/^ +1 +FAIL:crash-SIGSEGV$/m);
  expect(r.stdout).toMatch(/case 5 \(.*\) FAIL:hang/);
  expect(r.stdout).toMatch(/case 17 \(.*\) FAIL:crash-SIGSEGV/);
}, budget(70_000));
