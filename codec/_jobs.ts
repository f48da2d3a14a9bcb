/**
 * Chunk jobs as they cross a thread boundary (internal to `pool.ts` and `worker.ts`): the job
 * and reply messages, running a job, errors flattened to plain objects and rebuilt with the
 * same class and code, and choosing what to transfer instead of copy.
 */
import { Buffer } from 'node:buffer';
import { CrimgError, ERROR_CODES, type CrimgErrorCode, type CrimgErrorDetail } from '../format/errors.js';
import { decodeChunk, encodeChunk, type DecodeParams, type EncodeParams, type EncodedChunk } from './chunk.js';

/** Encode one chunk: {@link encodeChunk}. */
export interface EncodeJob {
  op: 'encode';
  plain: Uint8Array;
  params: EncodeParams;
}

/** Decode one chunk: {@link decodeChunk}. */
export interface DecodeJob {
  op: 'decode';
  stored: Uint8Array;
  params: DecodeParams;
}

/**
 * Decode several chunks stored back to back in one message (one read of the file): the
 * result is their plain bytes concatenated. Per-job messaging costs about as much as inflating
 * one 16 KiB chunk, so bulk reads send a batch per worker, not a job per chunk.
 */
export interface DecodeManyJob {
  op: 'decodeMany';
  stored: Uint8Array;
  /** Each chunk: where its stored bytes lie in `stored`, and how to decode them. */
  parts: { start: number; length: number; params: DecodeParams }[];
  /**
   * Where to put the plain bytes: shared memory the caller reuses across jobs, so neither
   * side pays for fresh pages per job (first touch costs more than the copy). Default: a new
   * buffer, transferred back.
   */
  into?: SharedArrayBuffer;
}

/** A unit of work for the pool. */
export type ChunkJob = EncodeJob | DecodeJob | DecodeManyJob;

/** The result type of a job type. */
export type JobResult<J extends ChunkJob> = J extends EncodeJob ? EncodedChunk : J extends DecodeJob | DecodeManyJob ? Uint8Array : EncodedChunk | Uint8Array;

/** Main thread -> worker. */
export interface JobRequest {
  id: number;
  job: ChunkJob;
}

/** An error as plain data. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  offset?: number;
  region?: number;
  chunk?: number;
  address?: bigint;
  hint?: string;
  stack?: string;
}

/** Worker -> main thread. */
export type JobReply =
  | { id: number; ok: true; result: EncodedChunk | Uint8Array }
  | { id: number; ok: false; error: SerializedError };

/** Runs a job on the calling thread. */
export function runJob(job: ChunkJob): EncodedChunk | Uint8Array {
  if (job.op === 'encode') return encodeChunk(job.plain, job.params);
  if (job.op === 'decode') return decodeChunk(job.stored, job.params);
  if (job.op === 'decodeMany') return decodeMany(job);
  throw new TypeError(`expected job.op to be 'encode' or 'decode', got ${JSON.stringify((job as { op?: unknown }).op)}`);
}

function decodeMany(job: DecodeManyJob): Uint8Array {
  let total = 0;
  for (const p of job.parts) total += p.params.plainLength;
  if (job.into && job.into.byteLength < total) throw new RangeError(`expected shared output of at least ${total} bytes, got ${job.into.byteLength}`);
  const out = job.into ? new Uint8Array(job.into, 0, total) : new Uint8Array(total);
  let at = 0;
  for (const p of job.parts) {
    if (p.start < 0 || p.length < 0 || p.start + p.length > job.stored.byteLength) {
      throw new RangeError(`expected a part inside the ${job.stored.byteLength} stored bytes, got [${p.start}, +${p.length})`);
    }
    out.set(decodeChunk(job.stored.subarray(p.start, p.start + p.length), p.params), at);
    at += p.params.plainLength;
  }
  return out;
}

/** The byte payload of a job. */
export function jobPayload(job: ChunkJob): Uint8Array {
  return job.op === 'encode' ? job.plain : job.stored;
}

/** Flattens an error for postMessage; keeps class name, code and location. */
export function serializeError(e: unknown): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: SerializedError = { name: e.name, message: e.message };
  if (e.stack !== undefined) out.stack = e.stack;
  if (e instanceof CrimgError) {
    out.code = e.code;
    if (e.offset !== undefined) out.offset = e.offset;
    if (e.region !== undefined) out.region = e.region;
    if (e.chunk !== undefined) out.chunk = e.chunk;
    if (e.address !== undefined) out.address = e.address;
    if (e.hint !== undefined) out.hint = e.hint;
  }
  return out;
}

/** Rebuilds an error of the same class and code; the message is the original, unchanged. */
export function deserializeError(s: SerializedError): Error {
  let e: Error;
  if (s.name === 'CrimgError' && (ERROR_CODES as readonly string[]).includes(s.code ?? '')) {
    const detail: CrimgErrorDetail = {};
    if (s.region !== undefined) detail.region = s.region;
    if (s.chunk !== undefined) detail.chunk = s.chunk;
    if (s.address !== undefined) detail.address = s.address;
    if (s.hint !== undefined) detail.hint = s.hint;
    e = new CrimgError(s.code as CrimgErrorCode, s.message, detail);
    if (s.offset !== undefined) (e as { offset?: number }).offset = s.offset;
  } else if (s.name === 'TypeError') e = new TypeError(s.message);
  else if (s.name === 'RangeError') e = new RangeError(s.message);
  else {
    e = new Error(s.message);
    e.name = s.name;
  }
  e.message = s.message; // the worker's message already carries offset and hint
  if (s.stack !== undefined) e.stack = `${e.stack}\n    --- in chunk worker ---\n${s.stack}`;
  return e;
}

/**
 * A view whose buffer may be put in a transfer list, and that buffer: the view itself when it
 * owns (at least half of) a buffer outside Node's shared Buffer pool, else a copy of just the
 * view (structured clone would copy the whole underlying buffer). `owned` says the caller gives
 * up the buffer.
 */
export function transferable(v: Uint8Array, owned: boolean): { view: Uint8Array; transfer: ArrayBuffer[] } {
  const buf = v.buffer;
  if (typeof SharedArrayBuffer !== 'undefined' && buf instanceof SharedArrayBuffer) return { view: v, transfer: [] };
  if (owned && buf.byteLength > Buffer.poolSize && v.byteLength * 2 >= buf.byteLength) {
    return { view: v, transfer: [buf as ArrayBuffer] };
  }
  // Uint8Array.prototype.slice copies; Buffer#slice would return a view of the same memory
  // and the transfer would detach the caller's buffer.
  const copy = new Uint8Array(v);
  return { view: copy, transfer: [copy.buffer] };
}
