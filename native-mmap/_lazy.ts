/**
 * The lazy-restore types of native-mmap's lazyStart (src/uffd_js.cc, restore/_lazy.ts),
 * re-exported by native-mmap/index.ts: a private module so that the loader stays under the
 * line limit.
 */
import type { Reservation } from './index.js';

/** A lazy-restore session handle from {@link NativeMmap.lazyStart} (opaque, type-tagged). */
export interface LazySession {
  readonly __lazySession: never;
}

/**
 * What {@link NativeMmap.lazyStart} installs: the chunks of `regions` (5 words each: placed
 * address, recorded address, length, first chunk, region number) read from `table` (the chunk
 * table's bytes, section 5.3: read in place by the session's threads, which keep a reference to
 * it, until they end; nothing is built per chunk); `hot` chunk numbers are prefetched first,
 * then the rest in image order. The source is a file descriptor or a JS read callback; the context the image's codec,
 * cipher and data key.
 */
export interface LazySpec {
  ranges: { reservation: Reservation; offset: number; length: number }[];
  table: Uint8Array;
  regions: BigUint64Array;
  chunkSize: number;
  dataStart: number;
  dataEnd: number;
  hot: Float64Array;
  prefetch: boolean;
  threads: number;
  /** Whole 2 MiB spans (see LazyStats.spansMoved); default true. */
  huge?: boolean;
  sources: ({ fd: number; dataStart?: number; dataEnd?: number } | { read(offset: number, length: number): Promise<Uint8Array> })[];
  contexts: { codec: number; cipher: number; chunkSize: number; key?: Uint8Array; imageId?: Uint8Array; headerHash?: Uint8Array }[];
  /** A child's IN_PARENT chunks resolved down its chain, 8 words each (spec 8.3; native-mmap/src/uffd_js.cc). */
  resolved?: BigUint64Array;
}

/** Counters of a lazy session. */
export interface LazyStats {
  /** Fault messages the handler read. */
  faults: number;
  /** Chunks the handler installed for a fault. */
  faultInstalls: number;
  /** Chunks the prefetch threads installed. */
  prefetched: number;
  /** Faults on a chunk a prefetch thread had in hand, which the handler decoded too (rather than wait on that nicer thread). */
  assists: number;
  zeroInstalls: number;
  /** Pages found already present while installing (races, harmless). */
  eexist: number;
  settled: number;
  total: number;
  /** Failed chunks are poisoned (UFFDIO_POISON): an access is a SIGBUS. */
  poison: boolean;
  /** Microseconds the handler spent reading, checking and decoding its fault installs' chunks. */
  faultDecodeUs: number;
  /** Microseconds of its UFFDIO_COPY / UFFDIO_ZEROPAGE for them (the rest of a fault is the kernel's round trip and the toucher's). */
  faultInstallUs: number;
  /**
   * Fault installs whose other pages the warm thread read first, while the faulting thread
   * went on (a fresh page's first read costs ~5 us on a VM with shadow page tables); the warm
   * thread settles them. CRIMG_LAZY_WARM=0 turns it off.
   */
  warmed: number;
  /**
   * Times the handler moved to the CPU its faulting thread last ran on, so that a fault wakes
   * no other CPU (needs UFFD_FEATURE_THREAD_ID and more than one allowed CPU; CRIMG_LAZY_FOLLOW=0
   * turns it off).
   */
  handlerMoves: number;
  /**
   * Aligned 2 MiB spans of whole chunks installed whole: decoded into a huge page and moved in
   * with one UFFDIO_MOVE (Linux 6.8+), so that a reader takes one 2 MiB page, not 512 fresh
   * 4 KiB ones (native-mmap/src/uffd.h kWholeSpans). Prefetch does so in image order, and the
   * handler for a thread walking the memory; 0 where the kernel lacks UFFDIO_MOVE or transparent
   * huge pages, with advise 'nohugepage', or CRIMG_LAZY_HUGE=0.
   */
  spansMoved: number;
  /** Spans that could be installed whole (those of the regions, see spansMoved). */
  spans: number;
  /** Microseconds whole spans took to read, check and decode (in all threads; the first write takes the huge page). */
  spanDecodeUs: number;
  /** Microseconds their UFFDIO_MOVE took. */
  spanMoveUs: number;
}

/** The lazy-restore bindings of {@link NativeMmap} (native-mmap/src/uffd_js.cc). */
export interface LazyBindings {
  /**
   * Lazy restore (native-mmap/src/uffd.h, restore/_lazy.ts): registers `spec.ranges` (inside
   * live reservations) with a new userfaultfd and starts the fault handler and prefetch
   * threads; `done(stopped)` runs on this thread once every chunk is installed or failed, or
   * once lazyStop came first. `session: null` with `why` when no userfaultfd could be made.
   */
  lazyStart(spec: LazySpec, done: (stopped: boolean) => void): { session: LazySession; via: string; userModeOnly: boolean; poison: boolean } | { session: null; why: string };
  /** Stops and joins the session's threads (each ends the chunk in hand); the memory is untouched. */
  lazyStop(session: LazySession): void;
  /** Closes the session's descriptors: call after the memory is unmapped. */
  lazyClose(session: LazySession): void;
  lazyStats(session: LazySession): LazyStats;
  /** Chunk numbers in the order their first fault reached the handler. */
  lazyProfile(session: LazySession): Float64Array;
  /** The first chunk that was not installed, or null. */
  lazyFailure(session: LazySession): { code: string; chunk: number; detail: string } | null;
}
