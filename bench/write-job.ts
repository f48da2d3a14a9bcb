/**
 * A write measured in its own process (bench/child-write.ts), so its peak RSS is the writer's
 * alone: the parent's buffers, caches and heap do not count.
 */
import { fileURLToPath } from 'node:url';
import type { WriteSummary } from '../index.js';
import type { ThreadCpu } from './measure.js';
import { collect } from './tools.js';

export interface WriteJob {
  /** The memory-like input file. */
  input: string;
  /** The image to write. */
  output: string;
  /** Bytes of the input to use, from its start. */
  totalBytes: number;
  /** Regions to cut it into (bench/layout.ts). */
  regions: number;
  fsync: boolean;
  chunkSize?: number;
  compress?: string;
  /** Cipher suite; the child uses a fixed 32-byte key (a benchmark, not a secret). */
  encrypt?: 'aes-256-gcm' | 'chacha20-poly1305';
  /** Image layout (default compact). */
  layout?: 'compact' | 'sparse';
  /** Worker threads of the encoder (default: the writer's, one per core). */
  workers?: number;
  /**
   * 'range' (default): each region is a file range `{ path, position, length }` that the
   * writer reads itself into reused buffers. 'stream': each region streams from the input file
   * (fs.createReadStream, 1 MiB pieces), the comparison. 'memory': the input is read into
   * memory before the clock starts, so the time is the writer's alone (as when it is handed
   * process memory); peakRss then includes the input.
   */
  source?: 'range' | 'stream' | 'memory';
}

export interface WriteResult {
  /** ImageWriter.create to finish(), input reading included, process start excluded. */
  seconds: number;
  /** The part of {@link seconds} in finish(): the chunks still encoding, the last writes, the index, the fsync and rename. */
  finishSeconds: number;
  /** CPU seconds (user + system, all threads) over the same span: less noisy than wall time on a shared VM. */
  cpuSeconds: number;
  /**
   * CPU seconds per thread, taken after the last region and before finish() (which ends the
   * encoder's workers), busiest first; includes the process start-up (well under 0.1 s).
   */
  threads: ThreadCpu[];
  summary: WriteSummary;
  /** Minor page faults of the child over the same span (fresh memory touched: 12-25 us each on a VM). */
  minorFaults: number;
  /** Peak resident set of the child process (VmHWM), bytes. */
  peakRss: number;
}

/** The fixed key of encrypted bench images: a benchmark, not a secret. */
export const BENCH_KEY = new Uint8Array(32).map((_, i) => i + 1);

const CHILD = fileURLToPath(new URL('./child-write.js', import.meta.url));

/**
 * Runs `node [execArgv] SCRIPT JOB_JSON` and parses the JSON it prints.
 * @throws Error with the child's message when it exits non-zero.
 */
export async function runNodeChild<T>(script: string, job: unknown, execArgv: readonly string[] = []): Promise<T> {
  const { code, out, err } = await collect(process.execPath, [...execArgv, script, JSON.stringify(job)]);
  const name = script.replace(/^.*\//, '').replace(/\.js$/, '');
  if (code !== 0) throw new Error(`${name} exited with ${code}: ${err.trim() || out.trim()}`);
  return JSON.parse(out) as T;
}

/**
 * Runs one write in `node [execArgv] build/bench/child-write.js JOB` (execArgv: e.g.
 * `--cpu-prof` for a profile of the writer).
 * @throws Error with the child's message when the write fails.
 */
export function runWriteJob(job: WriteJob, execArgv: readonly string[] = []): Promise<WriteResult> {
  return runNodeChild<WriteResult>(CHILD, job, execArgv);
}
