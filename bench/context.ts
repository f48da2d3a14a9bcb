/**
 * What every section of `npm run bench` shares: the input file, its size and page statistics,
 * the temp directory, and the targets the figures are judged against.
 */
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isTempOf } from '../image/_output-file.js';
import type { MemoryLikeStats } from './memory-like.js';
import { syncAll } from './measure.js';

export interface BenchContext {
  /** Temp directory (under os.tmpdir(), same filesystem for input and outputs). */
  dir: string;
  /** The memory-like input file. */
  input: string;
  /** Input bytes. */
  total: number;
  /** Bytes of the small image for the open+inspect comparison (total / 8: 64 MiB at 512 MiB). */
  small: number;
  /** Regions of the realistic layout. */
  regions: number;
  stats: MemoryLikeStats;
  /** Log a progress line (stderr: stdout carries the table). */
  log: (text: string) => void;
}

/** Targets: given (writer vs cat, peak RSS, inspect growth) and proposed here for the rest. */
export const TARGETS = {
  /** No-codec write at least as fast as `cat INPUT > OUT`. */
  writeVsCat: 1.0,
  /** Peak RSS of the writer process. */
  peakRss: 256 * 1024 * 1024,
  /** open+regions time of the large image over the small one's: same order. */
  inspectGrowth: 2.0,
  /** Image size over the ideal (input minus its zero pages). */
  sizeOverIdeal: 1.05,
  /** read() in 8 MiB reads over plain fs reads of the input. */
  seqReadVsFs: 0.5,
  /** read() of random 4 KiB over plain 4 KiB preads: each read fetches and checks a whole chunk. */
  randomReadVsFs: 0.25,
  /** verify() over a plain sequential read of the image file (image bytes per second). */
  verifyVsFs: 0.5,
} as const;

/** A path in the temp directory. */
export const tmp = (ctx: BenchContext, name: string): string => join(ctx.dir, name);

/**
 * Removes `paths` and any temporary file a killed writer left for them
 * (`.NAME.<hex>.crimg-tmp`, image/_output-file.ts), and flushes dirty pages: the untimed
 * preparation of a write run.
 */
export async function freshOutput(...paths: string[]): Promise<void> {
  for (const p of paths) {
    await rm(p, { force: true });
    const names = await readdir(dirname(p)).catch(() => [] as string[]);
    for (const n of names) if (isTempOf(n, basename(p))) await rm(join(dirname(p), n), { force: true });
  }
  syncAll();
}
