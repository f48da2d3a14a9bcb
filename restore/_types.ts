/**
 * The restore floor's public types: options, result and restored region. Their own file so the
 * restore steps (_place, _copy, _result) and restore.ts share them without importing each
 * other in a cycle; restore.ts re-exports them.
 */
import type { Advice, LazyStats } from '../native-mmap/index.js';

/** madvise(2) advice applied to every restored data region (`dontneed` would drop it). */
export type RestoreAdvice = Exclude<Advice, 'dontneed'>;

export interface RestoreOptions {
  /**
   * 'lazy' (the default where userfaultfd can be had and the image is a local file): returns
   * before any chunk is decoded; each chunk is checked and decoded on first touch or by the
   * prefetch threads, and `done` settles when all are in (restore/_lazy.ts). 'copy' (the
   * default otherwise): every chunk checked and decoded before restore() returns. 'map': raw
   * MAPPABLE images only, mapped from the file (checked unless `check: false`, the explicit
   * unchecked zero-copy mapping). Explicit 'lazy' where userfaultfd cannot be had copies
   * instead, with `mode: 'copy'` and the `reason`.
   */
  mode?: 'map' | 'copy' | 'lazy';
  /**
   * Lazy mode: run prefetch threads that install every chunk not yet touched, the image's hot
   * list first (default true). false installs only what is touched (`done` then waits for every
   * chunk to be touched): the way to record a complete access profile.
   */
  prefetch?: boolean;
  /** Lazy mode: prefetch threads (default 2). */
  prefetchThreads?: number;
  /**
   * Place every region at the address it was captured at (MAP_FIXED_NOREPLACE), or fail with
   * ADDRESS_IN_USE naming the first address that is taken. Default false: anywhere.
   */
  atRecordedAddress?: boolean;
  /** Region numbers (positions in the region table) to restore. Default: all, gaps included. */
  regions?: readonly number[];
  /** Called as regions are placed (map) or pieces are filled (copy). */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /**
   * Advice for every data region, given before any page is touched: 'hugepage' makes the first
   * touch of anonymous memory (zero runs, copy mode) fault 2 MiB at a time everywhere (copy mode
   * already takes 2 MiB pages where the stored chunks fill half an aligned 2 MiB or more);
   * 'nohugepage' keeps every page 4 KiB (no zero chunk resident); 'willneed' starts reading the
   * image file's pages in; 'sequential', 'random'. Best effort: a kernel that refuses it (no
   * transparent huge pages) adds a warning, not an error.
   */
  advise?: RestoreAdvice;
  /**
   * Map mode: run {@link Image.verify} over the whole file first and throw its first error
   * (padding, the tables, every chunk, selected regions or not). Copy mode checks every chunk it
   * reads anyway and ignores this. Default false.
   */
  verify?: boolean;
  /**
   * Map mode: hash every chunk mapped from the file in place, through the mapping, and compare
   * it with the chunk table before returning; on a mismatch everything is released and
   * CORRUPT_CHUNK thrown, so a damaged image never restores silently wrong memory. Default true.
   * It reads every stored page once (the mapping is no longer lazy): `check: false` is the
   * explicit unchecked mapping, zero-copy and lazy, whose bytes are whatever the file holds,
   * damaged or not. Copy mode always checks every chunk and ignores this.
   */
  check?: boolean;
}

/** One restored region (or gap). */
export interface RestoredRegion {
  /** Region number: position in the region table. */
  index: number;
  /** Where it is now; 0n when it was copied into a plain ArrayBuffer (no native addon). */
  address: bigint;
  /** Where it was captured (the region table's address). */
  recordedAddress: bigint;
  length: bigint;
  /** Recorded protection, "rwx" style; applied unless `degraded`. */
  prot: string;
  /** anonymous, heap, stack, code, metadata, file, gap or unknown(N). */
  kind: string;
  name: string;
  /**
   * The region's bytes: one ArrayBuffer of `length` bytes over the restored memory. Absent for
   * gaps, regions without read permission, and regions longer than `buffer.constants.MAX_LENGTH`.
   * Read-only when `prot` has no `w` (unless `degraded`): never write through it then, a write
   * is a SIGSEGV. Detached by `release()`.
   */
  memory?: ArrayBuffer;
}

export interface RestoreResult {
  mode: 'map' | 'copy' | 'lazy';
  /** True when the memory is plain ArrayBuffers: no real placement, no protections, no advice. */
  degraded: boolean;
  /** Why it is degraded (or why map mode fell back to copy). */
  reason?: string;
  /** In region-table order. */
  regions: RestoredRegion[];
  /** Things that did not stop the restore: advice the kernel refused, oversized regions. */
  warnings: string[];
  /**
   * Resolves once every page is in place and the recorded protections are applied (at once in
   * map and copy mode). Lazy mode: rejects with the CrimgError of the first chunk that failed
   * its check (code, chunk, region, address; that chunk was not installed), or when released
   * first. Unobserved, a rejection is not an unhandled one.
   */
  done: Promise<void>;
  /**
   * Lazy mode: chunk numbers in the order their first fault reached the handler (chunks the
   * prefetch threads installed before any touch are not in it). Empty in other modes. Feed it
   * to `optimizeImage` (or `crimg optimize --profile`).
   */
  accessProfile(): number[];
  /** Lazy mode: the handler's counters (faults, chunks installed by faults and by prefetch); else null. */
  lazyStats(): LazyStats | null;
  /**
   * Unmaps everything and detaches every `memory`. Idempotent. Lazy mode: first stops the
   * handler and prefetch threads (each finishes the chunk in hand), then unmaps, then closes the
   * userfaultfd, so a thread still waiting on a fault never gets a zero page: it gets what an
   * access to unmapped memory gets (SIGSEGV, or EFAULT in a system call).
   */
  release(): void;
}
