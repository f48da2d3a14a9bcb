/**
 * The job and result types of native-mmap's decodeBatch (src/batch_decode_js.cc), re-exported
 * by native-mmap/index.ts: a private module so that the loader stays under the line limit.
 */
import type { Reservation } from './index.js';
import type { NativeImageParams } from './_chunk.js';

/** One job of {@link decodeBatch}. */
export interface DecodeBatchJob extends NativeImageParams {
  /** The image file (the job reads a dup of it: closing it meanwhile is safe); or `stored`, stored bytes already in memory, from file offset `storedBase` (left unchanged until done). */
  fd?: number;
  stored?: Uint8Array; storedBase?: number;
  /**
   * 8 words per chunk, in image order: file offset of the stored bytes; chunk number; address
   * of its first byte; checksum; stored length | plain length << 32; flags | last << 16 |
   * region number << 32; destination offset in its target (2^64 - 1: decode and drop); the
   * target's index in `targets`. Zero chunks are skipped (their memory already reads zero).
   */
  items: BigUint64Array;
  /** Reservations the destinations lie in, placed 'rw-'; left placed until the job is done. */
  targets?: Reservation[];
  /** Native threads: 0 (default) for every core, up to 256. */
  threads?: number;
  /** Provision each destination in bulk (MADV_POPULATE_WRITE) before writing it. */
  populate?: boolean;
  /**
   * With `populate`: 2 MiB pages for every aligned 2 MiB of a target that the destinations fill
   * at least half of, unless false (restore's 'nohugepage'). Default true.
   */
  huge?: boolean;
  /** Report every failing chunk (verify), not only the first in image order (restore). */
  all?: boolean;
}

/** A chunk {@link decodeBatch} could not decode: its position in the items, code, message. */
export interface DecodeBatchFailure {
  item: number;
  code: string;
  message: string;
}

/** The outcome of {@link decodeBatch}. */
export interface DecodeBatchResult {
  /** In item order; at most one unless `all`. */
  failures: DecodeBatchFailure[];
  /** Threads used, preads made, and whether destinations were provisioned in bulk. */
  threads: number;
  units: number;
  populated: boolean;
}
