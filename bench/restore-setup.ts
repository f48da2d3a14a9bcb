/**
 * What the restore benchmarks (bench/restore-map.ts, bench/restore-copy.ts) share: a temp
 * directory with the memory-like input, images written from it in the ~200-region layout
 * (bench/layout.ts, one child process per write), the C baseline built with gcc into the same
 * directory, and the standalone entry point that prints the table.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeMemoryLikeFile, type MemoryLikeStats } from './memory-like.js';
import { MiB, envMiB } from './measure.js';
import { formatTable, type Row } from './table.js';
import { runWriteJob, type WriteResult } from './write-job.js';
import { collect } from './tools.js';

/** Regions of the realistic layout, as in `npm run bench`. */
export const REGIONS = 200;
export const SEED = 1;

export interface RestoreBenchContext {
  /** Temp directory under os.tmpdir(). */
  dir: string;
  /** The memory-like input file (`total` bytes). */
  input: string;
  total: number;
  stats: MemoryLikeStats;
  log: (text: string) => void;
}

/** The input size: CRIMG_BENCH_RESTORE_MIB (default 1024 MiB). */
export function inputBytes(): number {
  return envMiB('CRIMG_BENCH_RESTORE_MIB', 1024, 64) * MiB;
}

/** Makes the temp directory and the memory-like input. */
export async function makeContext(name: string, total: number): Promise<RestoreBenchContext> {
  const dir = await mkdtemp(join(tmpdir(), `crimg-${name}-`));
  const log = (text: string): void => { process.stderr.write(`  ... ${text}\n`); };
  const input = join(dir, 'input.bin');
  log(`generating ${total / MiB} MiB of memory-like input in ${dir}`);
  const stats = await writeMemoryLikeFile(input, total, SEED);
  return { dir, input, total, stats, log };
}

/** An image of the first `totalBytes` of `input`, in the realistic layout. */
export function writeImage(input: string, output: string, totalBytes: number, compress?: string, layout?: 'compact' | 'sparse'): Promise<WriteResult> {
  return runWriteJob({ input, output, totalBytes, regions: REGIONS, fsync: false, ...(compress !== undefined && { compress }), ...(layout !== undefined && { layout }) });
}

/** `totalBytes` of random bytes (no zero page at all) to `path`. */
export async function writeRandomFile(path: string, totalBytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const piece = Buffer.allocUnsafe(4 * MiB);
    for (let o = 0; o < totalBytes; o += piece.length) {
      const n = Math.min(piece.length, totalBytes - o);
      randomFillSync(piece, 0, n);
      await fh.write(piece, 0, n);
    }
  } finally {
    await fh.close();
  }
}

/** bench/c/NAME.c of the source tree (from build/bench/ or bench/). */
function cSource(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const fromBuild = join(here, '..', '..', 'bench', 'c', `${name}.c`);
  return here.endsWith(join('build', 'bench')) ? fromBuild : join(here, 'c', `${name}.c`);
}

/**
 * Compiles bench/c/NAME.c with `gcc -O2 -pthread` into `dir`.
 * @returns the binary, or the reason it could not be built.
 */
export function compileC(name: string, dir: string): { binary: string } | { skipped: string } {
  const binary = join(dir, name);
  const run = spawnSync('gcc', ['-O2', '-pthread', '-o', binary, cSource(name)], { encoding: 'utf8' });
  if (run.error) return { skipped: `gcc not available (${run.error.message})` };
  if (run.status !== 0) return { skipped: `gcc failed: ${run.stderr.trim().split('\n')[0]}` };
  return { binary };
}

/** Runs a C baseline and parses the JSON object it prints. */
export async function runC<T>(binary: string, args: readonly string[]): Promise<T> {
  const { code, out, err } = await collect(binary, args);
  if (code !== 0) throw new Error(`${binary} ${args.join(' ')} exited with ${code}: ${err.trim()}`);
  return JSON.parse(out) as T;
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === url;
}

/**
 * Runs a benchmark standalone: makes the context, runs `body`, prints the table and a
 * PASS/FAIL line, removes the temp directory (also on Ctrl-C).
 */
export async function runStandalone(
  name: string,
  title: (ctx: RestoreBenchContext) => string,
  body: (ctx: RestoreBenchContext) => Promise<{ rows: Row[] }>,
): Promise<void> {
  const started = process.hrtime.bigint();
  const ctx = await makeContext(name, inputBytes());
  const cleanup = (): void => rmSync(ctx.dir, { recursive: true, force: true });
  process.once('SIGINT', () => { cleanup(); process.exit(130); });
  try {
    const { rows } = await body(ctx);
    console.log(title(ctx));
    console.log(formatTable(rows));
    const failed = rows.filter((r) => r.result === 'FAIL');
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`\n${rows.filter((r) => r.result === 'PASS').length} PASS, ${failed.length} FAIL${failed.length ? `: ${failed.map((r) => r.measure).join('; ')}` : ''}; total ${seconds.toFixed(0)} s`);
  } finally {
    await rm(ctx.dir, { recursive: true, force: true });
  }
}
