/**
 * Chunks for a native encoder (the addon's deflateBatch, zstdBatch) sent to libuv's pool in
 * batches: chunks submitted in one synchronous stretch go as jobs of up to
 * {@link NATIVE_BATCH} chunks instead of one pool wake-up per chunk (which cost the main thread
 * about 17 us a chunk here), at most one job per core at a time ({@link NativeJobs}). Shared by
 * codec/deflate.ts's NativeDeflater, whose job writes each chunk at its plain offset in one
 * buffer ({@link NativeBatches}), and codec/zstd.ts's NativeZstd, whose job returns a buffer
 * per frame.
 */
import { availableParallelism } from 'node:os';

/** Chunks per native job: enough to amortise a pool wake-up, few enough to spread over the pool. */
export const NATIVE_BATCH = 16;

/** A chunk of a native job: {@link NativeJobs} rejects it when its job fails. */
export interface NativeJob {
  plain: Uint8Array;
  reject: (e: unknown) => void;
}

/**
 * Runs one native job over `jobs` and calls `done` once, on the main thread: with the error
 * every job is rejected with, or with null and `deliver`, which settles each job from the job's
 * results (a throw from it rejects the jobs it did not settle).
 */
export type RunJobs<J extends NativeJob> = (jobs: J[], done: (err: Error | null, deliver?: () => void) => void) => void;

/** One chunk to encode: resolves to its encoded bytes, or null when they would not be smaller. */
export interface BatchJob extends NativeJob {
  resolve: (r: Uint8Array | null) => void;
}

/**
 * Runs one native job over `jobs`: writes chunk i's encoded bytes at its plain offset in `out`
 * and its size (or -1: not smaller) in `sizes[i]`, then calls `done` once, on the main thread.
 */
export type RunBatch<J extends BatchJob> = (jobs: J[], out: Uint8Array, sizes: Int32Array, done: (err: Error | null) => void) => void;

/** The batching and job limit around one native encoder. */
export class NativeJobs<J extends NativeJob> {
  private pending: J[] = [];
  private scheduled = false;
  /** Batches waiting for a job slot. */
  private readonly queued: J[][] = [];
  private running = 0;
  /**
   * One job per core: more would not encode faster, and would take the cores from the main
   * thread that feeds them (measured on 2 cores: with four jobs at once, each submission waited
   * ~250 us for a core).
   */
  private readonly maxJobs = Math.max(1, availableParallelism());

  constructor(private readonly run: RunJobs<J>) {}

  /** Queues `job`; it settles when its batch's native job completes. */
  add(job: J): void {
    this.pending.push(job);
    if (this.pending.length >= NATIVE_BATCH) {
      this.flush();
    } else if (!this.scheduled) {
      // After this turn of the event loop: a pool job completing resolves a batch of chunks,
      // and the writer submits as many new ones from promise callbacks within the same turn;
      // a microtask would send each of those alone, one pool wake-up per chunk.
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Cuts the pending chunks into batches and starts what the job limit allows. */
  private flush(): void {
    const all = this.pending;
    this.pending = [];
    for (let i = 0; i < all.length; i += NATIVE_BATCH) this.queued.push(all.slice(i, i + NATIVE_BATCH));
    this.startJobs();
  }

  private startJobs(): void {
    while (this.running < this.maxJobs && this.queued.length > 0) {
      this.running++;
      this.submit(this.queued.shift()!);
    }
  }

  private submit(jobs: J[]): void {
    // Every job settles exactly once and the slot is released exactly once, whatever throws
    // (a failed allocation here, a failed call, an error in the callback's own work).
    let released = false;
    const release = (): void => {
      if (!released) {
        released = true;
        this.running--;
        this.startJobs();
      }
    };
    try {
      this.run(jobs, (err, deliver) => {
        try {
          if (err) throw err;
          deliver?.();
        } catch (e) {
          for (const j of jobs) j.reject(e); // a settled promise ignores it
        } finally {
          release();
        }
      });
    } catch (e) {
      for (const j of jobs) j.reject(e);
      release();
    }
  }
}

/**
 * {@link NativeJobs} over an encoder whose job writes each chunk's bytes at its plain offset in
 * one output buffer of the batch's plain length (the addon's deflateBatch).
 */
export class NativeBatches<J extends BatchJob> extends NativeJobs<J> {
  constructor(run: RunBatch<J>) {
    super((jobs, done) => {
      const out = new Uint8Array(jobs.reduce((s, j) => s + j.plain.byteLength, 0));
      const sizes = new Int32Array(jobs.length);
      run(jobs, out, sizes, (err) => done(err, () => {
        let at = 0;
        jobs.forEach((j, i) => {
          const size = sizes[i]!;
          j.resolve(size < 0 ? null : out.subarray(at, at + size));
          at += j.plain.byteLength;
        });
      }));
    });
  }
}
