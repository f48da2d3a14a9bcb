/**
 * A full decode of an image measured in its own process (bench/child-decode.ts): every region
 * read with Image.readInto, or Image.verify(). Own process for the same reasons as writes
 * (bench/write-job.ts): its CPU seconds and peak RSS are the reader's alone.
 */
import { fileURLToPath } from 'node:url';
import type { ThreadCpu } from './measure.js';
import { runNodeChild } from './write-job.js';

export interface DecodeJob {
  image: string;
  /** 'read': every region in {@link DECODE_READ} reads into one reused buffer; 'verify': Image.verify(). */
  mode: 'read' | 'verify';
  /** The image is encrypted with the bench key (write-job.ts BENCH_KEY). */
  encrypted?: boolean;
  /** Decoder worker threads (default: the reader's). */
  workers?: number;
  /** With 'read': compare every read with the input file (an untimed correctness run). */
  checkAgainst?: { input: string; totalBytes: number; regions: number };
}

export interface DecodeResult {
  /** openImage to the last byte decoded (or verify's report), process start excluded. */
  seconds: number;
  /** CPU seconds, all threads, same span. */
  cpuSeconds: number;
  /** CPU seconds per thread before close() (which ends the decoder's workers), busiest first. */
  threads: ThreadCpu[];
  /** Plain bytes decoded (read) or checked (verify). */
  bytes: number;
  /** verify: the report's ok; read: true. */
  ok: boolean;
  peakRss: number;
}

/** Bytes per read() of a full decode: the reader coalesces the chunks of one read into batches. */
export const DECODE_READ = 8 * 1024 * 1024;

const CHILD = fileURLToPath(new URL('./child-decode.js', import.meta.url));

/**
 * Runs one decode in `node [execArgv] build/bench/child-decode.js JOB`.
 * @throws Error with the child's message when it fails (a mismatch with the input included).
 */
export function runDecodeJob(job: DecodeJob, execArgv: readonly string[] = []): Promise<DecodeResult> {
  return runNodeChild<DecodeResult>(CHILD, job, execArgv);
}
