/**
 * `npm run fuzz`: the mutation fuzzer over every valid vector of spec/vectors/v1.
 *
 *   npm run fuzz -- [--cases N] [--seed S] [--jobs J] [--timeout MS] [--no-restore] [--invalid]
 *   npm run fuzz -- --seed S --case I [--dump FILE]     replay one case, in this process
 *   --list OUTCOME   also print the cases of one outcome (e.g. undetected)
 *
 * The vectors are the valid and accepted ones; `--invalid` adds the invalid vectors of stage
 * read and verify as seeds (spec section 12: mutations near a rule already broken).
 * The budget is `--cases`, else env CRIMG_FUZZ_CASES, else 2000. The seed defaults to a random
 * one and is printed first: a failure is reproduced with `--seed S --case I`. Cases run in J
 * forked processes (default: one per core) with a heap limit; a case that takes longer than
 * the timeout (default 2000 ms) is killed and counted as a hang. Prints the count of each
 * outcome, every failure, and the slowest case; exits 1 when a property failed.
 * (Env CRIMG_FUZZ_SELFTEST_HANG=I / CRIMG_FUZZ_SELFTEST_CRASH=I make the worker hang or crash
 * on case I, to test the watchdog.)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCase } from './mutator.js';
import { loadVectors, runCase, type CaseResult, type HarnessOptions } from './harness.js';

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
}

function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new RangeError(`expected --option, got ${JSON.stringify(a)}`);
    const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (v !== undefined) out[k] = v;
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) out[k] = argv[++i]!;
    else out[k] = true;
  }
  return out;
}

function int(v: string | true | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`expected --${name} to be a non-negative integer, got ${String(v)}`);
  return n;
}

const args = parseArgs(process.argv.slice(2));
const dir = join(repoRoot(), 'spec', 'vectors', 'v1');
const seed = int(args.seed, 'seed', Math.floor(Math.random() * 2 ** 31));
const cases = int(args.cases ?? process.env.CRIMG_FUZZ_CASES, 'cases', 2000);
const jobs = Math.max(1, int(args.jobs, 'jobs', availableParallelism()));
const timeoutMs = int(args.timeout, 'timeout', 2000);

const load = { invalid: args.invalid === true };
const vectors = await loadVectors(dir, load);
const options: HarnessOptions = { restore: !args['no-restore'], stepTimeoutMs: timeoutMs };

console.log(`crimg fuzz: seed ${seed}, ${args.case !== undefined ? 'one case' : `${cases} cases`}, ${vectors.infos.length} vectors (${vectors.infos.map((v) => v.name).join(', ')})`);
if (!options.restore) console.log('note: restore step off (--no-restore)');

if (args.case !== undefined) {
  const c = makeCase(vectors.infos, seed, int(args.case, 'case', 0));
  if (typeof args.dump === 'string') writeFileSync(args.dump, c.bytes);
  const r = await runCase(c, vectors.originals.get(c.vector)!, options);
  console.log(JSON.stringify({ ...r, resealed: c.resealed, changed: c.changed, size: c.bytes.length }, null, 2));
  process.exit(r.outcome.startsWith('FAIL') ? 1 : 0);
}

const results: CaseResult[] = [];
const t0 = performance.now();
let next = 0;
let lastReport = t0;
const workerPath = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

/** One forked worker: sends it a case at a time, kills and replaces it on a hang or crash. */
function spawnWorker(done: () => void): void {
  const child: ChildProcess = fork(workerPath, [], { execArgv: ['--max-old-space-size=512'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let current: { index: number; at: number } | null = null;
  let finished = false;
  let timer: NodeJS.Timeout | null = null;
  const record = (r: CaseResult): void => {
    results.push(r);
    const now = performance.now();
    if (now - lastReport > 5000) {
      lastReport = now;
      console.log(`  ${results.length}/${cases} cases, ${((now - t0) / 1000).toFixed(0)} s`);
    }
  };
  const dispatch = (): void => {
    if (next >= cases) {
      finished = true;
      child.disconnect();
      done();
      return;
    }
    current = { index: next++, at: performance.now() };
    child.send({ type: 'case', index: current.index });
    timer = setTimeout(() => {
      // A case that does not answer: a hang (a synchronous loop cannot be stopped otherwise).
      if (!current) return;
      record({ index: current.index, vector: makeCase(vectors.infos, seed, current.index).vector, outcome: 'FAIL:hang', failure: `no result within ${timeoutMs} ms; the worker was killed`, ms: performance.now() - current.at, steps: makeCase(vectors.infos, seed, current.index).steps });
      current = null;
      finished = true;
      child.kill('SIGKILL');
      spawnWorker(done);
    }, timeoutMs);
  };
  child.on('message', (m: { type: string; result?: CaseResult; message?: string }) => {
    if (m.type === 'ready') return dispatch();
    if (m.type === 'fatal') throw new Error(`fuzz worker failed: ${m.message}`);
    if (timer) clearTimeout(timer);
    current = null;
    record(m.result!);
    dispatch();
  });
  child.on('exit', (code, signal) => {
    if (finished) return;
    if (timer) clearTimeout(timer);
    finished = true;
    if (current) {
      const c = makeCase(vectors.infos, seed, current.index);
      record({ index: current.index, vector: c.vector, outcome: code === null ? `FAIL:crash-${signal}` : 'FAIL:crash', failure: `worker exited (code ${code}, signal ${signal}): out of memory or a native crash`, ms: performance.now() - current.at, steps: c.steps });
    }
    spawnWorker(done);
  });
  child.send({ type: 'start', start: { dir, seed, options, load } });
}

await new Promise<void>((resolve) => {
  let live = Math.min(jobs, cases);
  if (live === 0) resolve();
  for (let j = 0; j < Math.min(jobs, cases); j++) spawnWorker(() => { if (--live === 0) resolve(); });
});

const secs = (performance.now() - t0) / 1000;
const counts = new Map<string, number>();
for (const r of results) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
const failures = results.filter((r) => r.outcome.startsWith('FAIL')).sort((a, b) => a.index - b.index);
const slowest = results.reduce((a, b) => (b.ms > a.ms ? b : a), results[0] ?? { ms: 0, index: -1, vector: '', outcome: '', steps: [] });
console.log(`\n${results.length} cases in ${secs.toFixed(1)} s (${(results.length / secs).toFixed(0)}/s), seed ${seed}`);
for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(7)}  ${k}`);
console.log(`slowest: case ${slowest.index} (${slowest.vector}) ${slowest.ms.toFixed(0)} ms: ${slowest.outcome}; ${slowest.steps.join('; ')}`);
if (failures.length) {
  console.log(`\n${failures.length} FAILURES (replay: npm run fuzz -- --seed ${seed} --case I):`);
  for (const f of failures.slice(0, 30)) console.log(`  case ${f.index} (${f.vector}) ${f.outcome}: ${f.steps.join('; ')}\n    ${(f.failure ?? '').split('\n').join('\n    ')}`);
}
if (typeof args.list === 'string') {
  const listed = results.filter((r) => r.outcome === args.list).sort((a, b) => a.index - b.index);
  console.log(`\n${listed.length} cases with outcome ${args.list}:`);
  for (const r of listed.slice(0, 100)) console.log(`  case ${r.index} (${r.vector}): ${r.steps.join('; ')}`);
}
process.exit(failures.length ? 1 : 0);
