/**
 * A pool of worker threads that run the chunk pipeline (`chunk.ts`, spec/FORMAT.md sections 5,
 * 6 and 7.3) off the main thread, so compression and encryption use every core while the main
 * thread does I/O. Also an inline mode (size 0) that runs jobs on the calling thread.
 *
 * {@link ChunkPool.run} runs one job and resolves with its result; `encode`, `decode` and
 * `decodeMany` are its typed forms. Callers that need results in order (the writer: chunks are
 * written in chunk-table order, spec section 5.2) keep their own order of promises.
 *
 * Workers load built JavaScript (`build/codec/worker.js`); run `npm run build` first when using
 * the pool from TypeScript sources (jest).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expectInt } from './_check.js';
import {
  deserializeError,
  jobPayload,
  runJob,
  transferable,
  type ChunkJob,
  type DecodeManyJob,
  type JobReply,
  type JobRequest,
  type JobResult,
} from './_jobs.js';
import type { DecodeParams, EncodeParams, EncodedChunk } from './chunk.js';

export type { ChunkJob, DecodeJob, DecodeManyJob, EncodeJob, JobResult } from './_jobs.js';

/** Jobs posted to one worker before it replies: two hide the message round trip. */
const PER_WORKER_DEPTH = 2;

/** Options of {@link ChunkPool}. */
export interface ChunkPoolOptions {
  /** Worker threads; 0 runs every job inline. Default `os.availableParallelism()`, at least 1. */
  size?: number;
  /** Jobs whose payload is smaller than this many bytes run inline. Default 0 (never). */
  inlineBelow?: number;
  /** Worker script; default the built `codec/worker.js` (see {@link resolveWorkerScript}). */
  workerScript?: URL;
}

/** Options of one job. */
export interface RunOptions {
  /**
   * The caller gives up the payload's buffer: it is transferred to the worker (and detached
   * here) instead of copied. Default false: the payload view is copied.
   */
  transfer?: boolean;
}

/**
 * The worker script: `./worker.js` beside this module when it exists (running from `build/`),
 * else `<package root>/build/codec/worker.js` (running from sources, e.g. under jest, whose
 * transform does not reach inside workers).
 * @throws Error telling to run `npm run build` when neither exists.
 * @example
 * new Worker(resolveWorkerScript());
 */
export function resolveWorkerScript(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (here.protocol === 'file:' && existsSync(fileURLToPath(here))) return here;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  const built = join(dir, 'build', 'codec', 'worker.js');
  if (!existsSync(built)) {
    throw new Error(`chunk worker script ${built} does not exist; run \`npm run build\` first (worker threads load built JavaScript)`);
  }
  return pathToFileURL(built);
}

interface Pending {
  id: number;
  request: JobRequest;
  transfer: ArrayBuffer[];
  resolve(result: EncodedChunk | Uint8Array): void;
  reject(e: unknown): void;
}

interface Slot {
  worker: Worker;
  outstanding: Map<number, Pending>;
  exited: boolean;
}

function copyParamBytes<P extends object>(params: P): P {
  // Keys, nonces and AAD are tiny; copying them means a caller's view into a large buffer
  // never drags that whole buffer through structured clone.
  const out: Record<string, unknown> = { ...(params as Record<string, unknown>) };
  for (const [k, v] of Object.entries(out)) if (v instanceof Uint8Array) out[k] = new Uint8Array(v); // a copy, also for Buffers
  return out as P;
}

/**
 * Worker threads running {@link encodeChunk} / {@link decodeChunk} jobs (spec sections 5.1, 6,
 * 7.3). Workers start on first use and do not keep the process alive while idle.
 * @example
 * const pool = new ChunkPool({ size: 2 });
 * const r = await pool.encode(plain, { codec: 1, level: 1, cipher: 0 });
 * await pool.close();
 */
export class ChunkPool {
  /** Number of worker threads (0: inline). */
  readonly size: number;
  readonly #inlineBelow: number;
  readonly #script: URL | undefined;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  readonly #all = new Set<Promise<unknown>>();
  #nextId = 1;
  #closed = false;
  #closing: Promise<void> | undefined;

  /**
   * @throws RangeError / TypeError on bad options; Error when the worker script is missing.
   */
  constructor(options: ChunkPoolOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`expected options to be an object, got ${describe(options)}`);
    const size = options.size ?? Math.max(1, availableParallelism());
    expectInt('size', size, 0, 1024);
    const inlineBelow = options.inlineBelow ?? 0;
    expectInt('inlineBelow', inlineBelow, 0, Number.MAX_SAFE_INTEGER);
    this.size = size;
    this.#inlineBelow = inlineBelow;
    this.#script = size > 0 ? (options.workerScript ?? resolveWorkerScript()) : undefined;
  }

  /** Worker threads currently running (started lazily, ended by {@link close}). */
  get threads(): number {
    return this.#slots.length;
  }

  /**
   * Runs one job and resolves with its result; jobs may finish in any order. On a worker the
   * result is a fresh buffer; inline it may alias the job's bytes (as {@link encodeChunk} and
   * {@link decodeChunk} do).
   * @throws (rejects) the job's error with the same class and CrimgError code; Error after close.
   * @example
   * const plain = await pool.run({ op: 'decode', stored, params });
   */
  run<J extends ChunkJob>(job: J, options: RunOptions = {}): Promise<JobResult<J>> {
    if (this.#closed) return Promise.reject(new Error('the chunk pool is closed'));
    if (typeof job !== 'object' || job === null) return Promise.reject(new TypeError(`expected a job object, got ${describe(job)}`));
    const payload = jobPayload(job);
    if (this.size === 0 || (payload instanceof Uint8Array && payload.byteLength < this.#inlineBelow)) {
      try {
        return Promise.resolve(runJob(job) as JobResult<J>);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (!(payload instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`expected the job's bytes to be a Uint8Array, got ${describe(payload)}`));
    }
    const { view, transfer } = transferable(payload, options.transfer === true);
    const id = this.#nextId++;
    const sent: ChunkJob = job.op === 'encode'
      ? { op: 'encode', plain: view, params: copyParamBytes(job.params) }
      : job.op === 'decode'
        ? { op: 'decode', stored: view, params: copyParamBytes(job.params) }
        : { op: 'decodeMany', stored: view, parts: job.parts.map((p) => ({ ...p, params: copyParamBytes(p.params) })), ...(job.into ? { into: job.into } : {}) };
    const promise = new Promise<JobResult<J>>((resolve, reject) => {
      this.#queue.push({ id, request: { id, job: sent }, transfer, resolve: resolve as Pending['resolve'], reject });
    });
    const tracked = promise.then(() => undefined, () => undefined);
    this.#all.add(tracked);
    void tracked.then(() => this.#all.delete(tracked));
    this.#dispatch();
    return promise;
  }

  /**
   * {@link encodeChunk} on a worker.
   * @example
   * const { stored, flags, checksum } = await pool.encode(plain, { codec: 1, level: 1, cipher: 0 });
   */
  encode(plain: Uint8Array, params: EncodeParams, options?: RunOptions): Promise<EncodedChunk> {
    return this.run({ op: 'encode', plain, params }, options);
  }

  /**
   * {@link decodeChunk} on a worker.
   * @example
   * const plain = await pool.decode(stored, { flags, plainLength, checksum, codec: 1, cipher: 0 });
   */
  decode(stored: Uint8Array, params: DecodeParams, options?: RunOptions): Promise<Uint8Array> {
    return this.run({ op: 'decode', stored, params }, options);
  }

  /**
   * Several chunks stored back to back, decoded by one worker; resolves with their plain bytes
   * concatenated (in `parts` order).
   * @example
   * const plain = await pool.decodeMany(run, [{ start: 0, length: n0, params: p0 }, { start: n0, length: n1, params: p1 }]);
   */
  decodeMany(stored: Uint8Array, parts: DecodeManyJob['parts'], options?: RunOptions & { into?: SharedArrayBuffer }): Promise<Uint8Array> {
    const job: DecodeManyJob = { op: 'decodeMany', stored, parts };
    if (options?.into) job.into = options.into;
    return this.run(job, options);
  }

  /**
   * Waits for every submitted job to finish, then ends the worker threads. Later jobs reject.
   * Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      while (this.#all.size > 0) await Promise.all([...this.#all]);
      const slots = this.#slots.splice(0);
      await Promise.all(slots.map((s) => (s.exited ? undefined : s.worker.terminate())));
    })();
    return this.#closing;
  }

  #spawn(): Slot {
    const worker = new Worker(this.#script!);
    const slot: Slot = { worker, outstanding: new Map(), exited: false };
    worker.on('message', (reply: JobReply) => {
      const p = slot.outstanding.get(reply.id);
      if (!p) return;
      slot.outstanding.delete(reply.id);
      if (slot.outstanding.size === 0) worker.unref();
      if (reply.ok) p.resolve(reply.result);
      else p.reject(deserializeError(reply.error));
      this.#dispatch();
    });
    const fail = (e: Error) => {
      slot.exited = true;
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      for (const p of slot.outstanding.values()) p.reject(e);
      slot.outstanding.clear();
      this.#dispatch();
    };
    worker.on('error', (e) => fail(new Error(`chunk worker failed: ${e.message}`, { cause: e })));
    worker.on('exit', (code) => {
      if (!slot.exited) fail(new Error(`chunk worker exited unexpectedly with code ${code}`));
    });
    this.#slots.push(slot);
    return slot;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let best: Slot | undefined;
      for (const s of this.#slots) if (!best || s.outstanding.size < best.outstanding.size) best = s;
      if ((!best || best.outstanding.size > 0) && this.#slots.length < this.size) {
        try {
          best = this.#spawn();
        } catch (e) {
          for (const p of this.#queue.splice(0)) p.reject(e);
          return;
        }
      }
      if (!best || best.outstanding.size >= PER_WORKER_DEPTH) return;
      const p = this.#queue.shift()!;
      if (best.outstanding.size === 0) best.worker.ref();
      best.outstanding.set(p.id, p);
      try {
        best.worker.postMessage(p.request, p.transfer);
      } catch (e) {
        best.outstanding.delete(p.id);
        p.reject(e);
      }
    }
  }
}
