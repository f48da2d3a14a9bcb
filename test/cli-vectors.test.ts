/**
 * The CLI on the conformance vectors: every invalid vector makes `crimg verify` exit 1 with a
 * one-line `crimg: CODE: ...` error (or, for damage found while reading, the code in its JSON
 * report); every valid vector verifies; and the human format of `inspect` is pinned by a
 * snapshot (vectors never change, so neither may their inspection without a reason).
 *
 * Runs the built CLI in-process (test/cli-inproc.ts): every command line of this file is run
 * in beforeAll, in two child processes, and each test checks the results of its own command
 * lines. (One `node` process per command line took 97 s for ~400 of them.)
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliResult } from './cli-helpers.js';
import { crimgBatch, type BatchRun } from './cli-inproc.js';
import { tempDir } from './helpers.js';
import { budget } from './machine.js';

const V1 = join('spec', 'vectors', 'v1');
const t = tempDir();
afterAll(() => t.cleanup());

interface VectorJson { code?: string; stage?: string; from?: string; key?: string | null; passphrase?: string }

/** CLI key options for a vector's key: hex in an environment variable, or a passphrase file. */
function keyArgs(exp: VectorJson): { args: string[]; env: Record<string, string> } {
  if (typeof exp.key === 'string') return { args: ['--key-env', 'CRIMG_TEST_KEY'], env: { CRIMG_TEST_KEY: exp.key } };
  if (typeof exp.passphrase === 'string') {
    // One file per passphrase: every command line is made before any runs.
    const f = t.path(`passphrase-${Buffer.from(exp.passphrase).toString('hex')}`);
    writeFileSync(f, exp.passphrase + '\n');
    return { args: ['--passphrase-file', f], env: {} };
  }
  return { args: [], env: {} };
}

const read = (p: string): VectorJson => JSON.parse(readFileSync(p, 'utf8')) as VectorJson;
// UNSUPPORTED_FEATURE--codec-zstd is a valid zstd image since issue 16 (test/vectors.test.ts, SUPERSEDED).
const invalid = readdirSync(join(V1, 'invalid')).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4))
  .filter((n) => n !== 'UNSUPPORTED_FEATURE--codec-zstd');
const valid = readdirSync(V1).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4));
/** Valid vectors changed where a reader must accept the change (spec section 12). */
const accepted = readdirSync(join(V1, 'accepted')).filter((f) => f.endsWith('.img')).map((f) => `accepted/${f.slice(0, -4)}`);

/** The command lines of each test, by test: made once, run in beforeAll. */
const invalidLines = (name: string): { exp: VectorJson; human: BatchRun; asJson: BatchRun } => {
  const exp = read(join(V1, 'invalid', `${name}.json`));
  const from = read(join(V1, `${exp.from}.json`));
  const k = keyArgs(exp.key === null ? {} : exp.key !== undefined ? exp : from);
  return {
    exp,
    human: { args: ['verify', join(V1, 'invalid', `${name}.img`), ...k.args], env: k.env },
    asJson: { args: ['verify', '--json', join(V1, 'invalid', `${name}.img`), ...k.args], env: k.env },
  };
};
const validLines = (name: string): { verify: BatchRun; inspect: BatchRun } => {
  const k = keyArgs(read(join(V1, `${name}.json`)));
  return {
    verify: { args: ['verify', join(V1, `${name}.img`), ...k.args], env: k.env },
    inspect: { args: ['inspect', join(V1, `${name}.img`), ...k.args], env: k.env },
  };
};
const acceptedLines = (name: string): { verify: BatchRun; inspect: BatchRun; from: BatchRun } => {
  const exp = read(join(V1, `${name}.json`)) as VectorJson & { from: string };
  const k = keyArgs(exp);
  return {
    verify: { args: ['verify', join(V1, `${name}.img`), ...k.args], env: k.env },
    inspect: { args: ['inspect', '--json', join(V1, `${name}.img`), ...k.args], env: k.env },
    from: { args: ['inspect', '--json', join(V1, `${exp.from}.img`), ...k.args], env: k.env },
  };
};

const keyOf = (r: BatchRun): string => JSON.stringify([r.args, r.env]);
const results = new Map<string, CliResult>();
/** The result of a command line run in beforeAll. */
function crimg(line: BatchRun): CliResult {
  const r = results.get(keyOf(line));
  if (!r) throw new Error(`not run in beforeAll: crimg ${line.args.join(' ')}`);
  return r;
}

beforeAll(async () => {
  const lines = [
    ...invalid.flatMap((n) => { const l = invalidLines(n); return [l.human, l.asJson]; }),
    ...valid.flatMap((n) => Object.values(validLines(n))),
    ...accepted.flatMap((n) => Object.values(acceptedLines(n))),
  ];
  const half = Math.ceil(lines.length / 2);
  const batches = await Promise.all([lines.slice(0, half), lines.slice(half)].map((part) => crimgBatch(part, { timeoutMs: budget(60_000) })));
  const done = batches.flatMap((b) => b.runs);
  lines.forEach((line, i) => results.set(keyOf(line), done[i]!));
}, budget(120_000));

test.each(invalid)('crimg verify %s exits 1 naming its code', (name) => {
  const l = invalidLines(name);
  const exp = l.exp;
  const human = crimg(l.human);
  expect(human.status).toBe(1);
  if (exp.stage === 'open' || exp.code === 'KEY_REQUIRED') {
    expect(human.stderr).toMatch(new RegExp(`^crimg: ${exp.code}: `, 'm'));
    expect(human.stderr).not.toMatch(/\n\s+at /); // no stack trace
  } else {
    expect(human.stdout + human.stderr).toContain(exp.code!);
  }
  const asJson = crimg(l.asJson);
  expect(asJson.status).toBe(1);
  const report = JSON.parse(asJson.stdout) as { ok: boolean; errors: { code: string }[] };
  expect(report.ok).toBe(false);
  expect(report.errors.map((e) => e.code)).toContain(exp.code);
});

test.each(valid)('crimg verify %s exits 0; inspect matches its snapshot', (name) => {
  const l = validLines(name);
  const v = crimg(l.verify);
  expect({ status: v.status, stderr: v.stderr }).toEqual({ status: 0, stderr: '' });
  const inspect = crimg(l.inspect);
  expect(inspect.status).toBe(0);
  expect(inspect.stdout).toMatchSnapshot();
});

test.each(accepted)('crimg verify %s exits 0, and inspect shows what it shows for the vector it was made from', (name) => {
  const l = acceptedLines(name);
  const v = crimg(l.verify);
  expect({ status: v.status, stderr: v.stderr }).toEqual({ status: 0, stderr: '' });
  const inspect = crimg(l.inspect);
  expect(inspect.status).toBe(0);
  const from = crimg(l.from);
  const regions = (out: string): unknown => (JSON.parse(out) as { regions: unknown }).regions;
  expect(regions(inspect.stdout)).toEqual(regions(from.stdout));
});
