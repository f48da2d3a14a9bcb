/**
 * The CLI on the conformance vectors: every invalid vector makes `crimg verify` exit 1 with a
 * one-line `crimg: CODE: ...` error (or, for damage found while reading, the code in its JSON
 * report); every valid vector verifies; and the human format of `inspect` is pinned by a
 * snapshot (vectors never change, so neither may their inspection without a reason).
 * Runs the built binary: `npm test` builds first.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crimg, ensureBuilt } from './cli-helpers.js';
import { tempDir } from './helpers.js';

const V1 = join('spec', 'vectors', 'v1');
const t = tempDir();
beforeAll(() => ensureBuilt());
afterAll(() => t.cleanup());

interface VectorJson { code?: string; stage?: string; from?: string; key?: string | null; passphrase?: string }

/** CLI key options for a vector's key: hex in an environment variable, or a passphrase file. */
function keyArgs(exp: VectorJson): { args: string[]; env: Record<string, string> } {
  if (typeof exp.key === 'string') return { args: ['--key-env', 'CRIMG_TEST_KEY'], env: { CRIMG_TEST_KEY: exp.key } };
  if (typeof exp.passphrase === 'string') {
    const f = t.path('passphrase');
    writeFileSync(f, exp.passphrase + '\n');
    return { args: ['--passphrase-file', f], env: {} };
  }
  return { args: [], env: {} };
}

const read = (p: string): VectorJson => JSON.parse(readFileSync(p, 'utf8')) as VectorJson;
const invalid = readdirSync(join(V1, 'invalid')).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4));
const valid = readdirSync(V1).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4));
/** Valid vectors changed where a reader must accept the change (spec section 12). */
const accepted = readdirSync(join(V1, 'accepted')).filter((f) => f.endsWith('.img')).map((f) => `accepted/${f.slice(0, -4)}`);

test.each(invalid)('crimg verify %s exits 1 naming its code', async (name) => {
  const exp = read(join(V1, 'invalid', `${name}.json`));
  const from = read(join(V1, `${exp.from}.json`));
  const k = keyArgs(exp.key === null ? {} : exp.key !== undefined ? exp : from);
  const human = await crimg(['verify', join(V1, 'invalid', `${name}.img`), ...k.args], k.env);
  expect(human.status).toBe(1);
  if (exp.stage === 'open' || exp.code === 'KEY_REQUIRED') {
    expect(human.stderr).toMatch(new RegExp(`^crimg: ${exp.code}: `, 'm'));
    expect(human.stderr).not.toMatch(/\n\s+at /); // no stack trace
  } else {
    expect(human.stdout + human.stderr).toContain(exp.code!);
  }
  const asJson = await crimg(['verify', '--json', join(V1, 'invalid', `${name}.img`), ...k.args], k.env);
  expect(asJson.status).toBe(1);
  const report = JSON.parse(asJson.stdout) as { ok: boolean; errors: { code: string }[] };
  expect(report.ok).toBe(false);
  expect(report.errors.map((e) => e.code)).toContain(exp.code);
});

test.each(valid)('crimg verify %s exits 0; inspect matches its snapshot', async (name) => {
  const exp = read(join(V1, `${name}.json`));
  const k = keyArgs(exp);
  const v = await crimg(['verify', join(V1, `${name}.img`), ...k.args], k.env);
  expect({ status: v.status, stderr: v.stderr }).toEqual({ status: 0, stderr: '' });
  const inspect = await crimg(['inspect', join(V1, `${name}.img`), ...k.args], k.env);
  expect(inspect.status).toBe(0);
  expect(inspect.stdout).toMatchSnapshot();
});

test.each(accepted)('crimg verify %s exits 0, and inspect shows what it shows for the vector it was made from', async (name) => {
  const exp = read(join(V1, `${name}.json`)) as VectorJson & { from: string; version: string };
  const k = keyArgs(exp);
  const v = await crimg(['verify', join(V1, `${name}.img`), ...k.args], k.env);
  expect({ status: v.status, stderr: v.stderr }).toEqual({ status: 0, stderr: '' });
  const inspect = await crimg(['inspect', '--json', join(V1, `${name}.img`), ...k.args], k.env);
  expect(inspect.status).toBe(0);
  const from = await crimg(['inspect', '--json', join(V1, `${exp.from}.img`), ...k.args], k.env);
  const regions = (out: string): unknown => (JSON.parse(out) as { regions: unknown }).regions;
  expect(regions(inspect.stdout)).toEqual(regions(from.stdout));
});
