/**
 * `npm run bench`: the format's figures on a memory-like input, against baselines measured in
 * the same run (cat, plain fs reads, the compression tools, openssl speed). Medians of 3 runs
 * after a warm-up. CRIMG_BENCH_MIB sets the input size (default 512); CRIMG_BENCH_CPU_PROF=DIR
 * adds CPU profiles of a deflate:1 write and decode (bench/codec-section.ts). Prints a table;
 * writes the figures to bench/out/results-format.json.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TARGETS, type BenchContext } from './context.js';
import { writeMemoryLikeFile } from './memory-like.js';
import { MiB, envMiB, since } from './measure.js';
import { formatTable, pct, type Row } from './table.js';
import { writeSection } from './write-section.js';
import { readSection } from './read-section.js';
import { CODEC_TARGETS, codecSection } from './codec-section.js';

const SEED = 1;
const REGIONS = 200;

const inputMiB = envMiB('CRIMG_BENCH_MIB', 512, 8);
const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'out');

const dir = await mkdtemp(join(tmpdir(), 'crimg-bench-'));
const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
process.once('SIGINT', () => { cleanup(); process.exit(130); });
const log = (text: string): void => { process.stderr.write(`  ... ${text}\n`); };

try {
  const started = process.hrtime.bigint();
  const input = join(dir, 'input.bin');
  const total = inputMiB * MiB;
  log(`generating ${inputMiB} MiB of memory-like input in ${dir}`);
  const t0 = process.hrtime.bigint();
  const stats = await writeMemoryLikeFile(input, total, SEED);
  const genSeconds = since(t0);
  const ctx: BenchContext = { dir, input, total, small: total / 8, regions: REGIONS, stats, log };

  const write = await writeSection(ctx);
  const read = await readSection(ctx, write.image, write.smallImage);
  const codec = await codecSection(ctx);
  const rows: Row[] = [...write.rows, ...read.rows, ...codec.rows];

  console.log(`crimg bench: ${inputMiB} MiB memory-like input (seed ${SEED}), ${REGIONS} regions in the realistic layout;`);
  const share = (n: number): string => pct(n / stats.pages);
  console.log(`pages: ${share(stats.zeroPages)} zero, ${share(stats.structuredPages)} structured, ${share(stats.randomPages)} random; generated in ${genSeconds.toFixed(2)} s`);
  console.log(`node ${process.version}, ${cpus().length} cores; medians of 3 runs after 1 warm-up (7 for the no-fsync writes); ratio > 1 means better than the baseline`);
  console.log(`(sizes: ratio = image / ideal; inspect: ratio = large / small time)\n`);
  console.log(formatTable(rows));
  const failed = rows.filter((r) => r.result === 'FAIL');
  const passed = rows.filter((r) => r.result === 'PASS').length;
  console.log(`\n${passed} PASS, ${failed.length} FAIL${failed.length ? `: ${failed.map((r) => r.measure).join('; ')}` : ''}; total ${since(started).toFixed(0)} s`);

  await mkdir(outDir, { recursive: true });
  const json = {
    date: new Date().toISOString(), node: process.version, cores: cpus().length, inputMiB, seed: SEED, regions: REGIONS,
    input: { ...stats, generateSeconds: genSeconds }, targets: { ...TARGETS, ...CODEC_TARGETS }, rows,
    raw: { write: write.raw, read: read.raw, codec: codec.raw },
  };
  await writeFile(join(outDir, 'results-format.json'), JSON.stringify(json, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  console.log(`results: ${join(outDir, 'results-format.json')}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
