/**
 * Lazy mode (issue 17): every region is placed as fresh anonymous memory and registered with
 * userfaultfd; the addon's handler thread (native-mmap/src/uffd.h) resolves each first touch by
 * reading, checking and decoding the whole chunk that holds it and installing it with one
 * UFFDIO_COPY, while prefetch threads install the other chunks (the image's hot list first,
 * then image order). `restore()` returns before any chunk is decoded; `done` settles once every
 * chunk is in. No JavaScript runs per fault, nor per chunk read from a file.
 *
 * A chunk that fails its check is never installed: `done` rejects with the CrimgError (code,
 * chunk, region, address), and its pages are poisoned (UFFDIO_POISON, kernel 6.6+): any access
 * to them is a SIGBUS, as a read error under a file mapping is; where the kernel lacks it, a
 * thread touching them waits until `release()`.
 */
import { CrimgError, isCrimgError } from '../format/errors.js';
import type { ChunkTable } from '../format/index-table.js';
import { hex } from '../format/bytes.js';
import type { ImageReader } from '../image/reader.js';
import { jsErrorOf } from '../image/_native-batch.js';
import type { LazyChain } from './_lazy-chain.js';
import { hotListChunks } from '../image/optimize-hot-list.js';
import {
  nativeAddon, pageSize, protect, reserve, unmap, type LazySession, type LazyStats, type Prot,
} from '../native-mmap/index.js';
import { adviseAll, findByChunk, placeAll, syscallFailure, viewOf, type Slot } from './_place.js';
import { fitsBuffer, label, readable, type Progress, type Restoration } from './_result.js';
import type { RestoreAdvice } from './_types.js';

/** The codecs the native decoder knows (native-mmap/src/chunk_decode.h): none, deflate, zstd. */
const NATIVE_CODECS = new Set([0, 1, 2]);

/** How userfaultfd can be had in this process, found once (permissions do not change). */
export interface LazyAccess {
  ok: boolean;
  /** 'syscall', '/dev/userfaultfd' or 'syscall (user mode only)'. */
  via: string;
  userModeOnly: boolean;
  poison: boolean;
  /** Why not, when !ok: what each attempt met. */
  why: string;
}

let access: LazyAccess | undefined;

/**
 * Whether this process can make a userfaultfd: a session with no chunks is started and stopped
 * once (about 0.1 ms) and the answer kept.
 */
export function lazyAccess(): LazyAccess {
  if (access) return access;
  const native = nativeAddon();
  if (native === null) return (access = { ok: false, via: '', userModeOnly: false, poison: false, why: 'the native addon is unavailable' });
  const res = reserve(pageSize());
  try {
    const r = native.lazyStart({
      ranges: [], table: new Uint8Array(0), regions: new BigUint64Array(0), chunkSize: pageSize(), dataStart: 0, dataEnd: 0,
      hot: new Float64Array(0), prefetch: false, threads: 1, sources: [], contexts: [],
    }, () => {});
    if (r.session === null) {
      access = { ok: false, via: '', userModeOnly: false, poison: false, why: r.why };
    } else {
      native.lazyStop(r.session);
      native.lazyClose(r.session);
      access = { ok: true, via: r.via, userModeOnly: r.userModeOnly, poison: r.poison, why: '' };
    }
  } finally {
    unmap(res);
  }
  return access;
}

/**
 * Why lazy mode cannot restore `image` here (the caller copies instead and says so), or null.
 * @throws CrimgError KEY_REQUIRED: an encrypted image opened without its key.
 */
export function lazyRefusal(image: ImageReader, chain?: LazyChain): string | null {
  if (nativeAddon() === null) return 'the native addon is unavailable';
  const h = image.header;
  if (h.cipher !== 0 && image.chunkKeys() === null) {
    throw new CrimgError('KEY_REQUIRED', 'the image is encrypted and no key was given', { hint: 'open the image with its key' });
  }
  if (!NATIVE_CODECS.has(h.codec)) return `codec ${h.codec} is unknown to the native decoder`;
  if (image.isChild && chain === undefined) return 'the image has a parent (its IN_PARENT chunks live in another file)';
  if (chain?.refusal) return chain.refusal;
  const page = pageSize();
  if (h.chunkSize % page !== 0) return `the image's chunk size ${h.chunkSize} is not a multiple of the host's page size ${page}`;
  const a = lazyAccess();
  if (!a.ok) return `userfaultfd is not available (${a.why})`;
  return null;
}

/** Options of a lazy restore. */
export interface LazyRun {
  prefetch: boolean;
  threads: number;
  /** Chunk numbers to prefetch first (the image's hot list). */
  hot: readonly number[];
}

/** The lazy parts of a result: the session and what `done` does. */
export interface LazyState {
  session: LazySession | null;
  done: Promise<void>;
  stats(): LazyStats | null;
  profile(): number[];
}

/**
 * Places and registers `slots`, starts the handler and prefetch threads, and returns at once.
 * The result's `release()` stops the threads (each ends the chunk in hand), unmaps, then closes
 * the descriptor, so a thread still waiting on a fault never gets a zero page.
 */
export function lazyRestore(image: ImageReader, table: ChunkTable, slots: readonly Slot[], advice: RestoreAdvice | undefined, result: Restoration, progress: Progress, run: LazyRun, chain?: LazyChain): LazyState {
  const native = nativeAddon()!;
  const h = image.header;
  placeAll(slots, -1, (s) => (s.region.isGap ? null : Float64Array.of(0, s.length, -1)), () => 'rw-', 'allocate memory for');
  adviseAll(result, slots, advice);
  const data = slots.filter((s) => !s.region.isGap);
  const wholes = new Map<Slot, ArrayBuffer>();
  for (const s of data) {
    if (readable(s.region) && fitsBuffer(result, s.region, s.length)) {
      const whole = viewOf(s, 0, s.length, 'rw-');
      result.own(whole, true);
      wholes.set(s, whole);
      s.entry.memory = whole;
    }
  }
  const regions = new BigUint64Array(data.length * 5);
  data.forEach((s, k) => {
    regions[k * 5] = s.entry.address;
    regions[k * 5 + 1] = s.region.address;
    regions[k * 5 + 2] = BigInt(s.length);
    regions[k * 5 + 3] = BigInt(s.region.firstChunk);
    regions[k * 5 + 4] = BigInt(s.region.index);
  });
  const keys = h.cipher !== 0 ? image.chunkKeys() : null;
  const fd = image.source.fd;
  const source = fd !== undefined ? { fd } : { read: (offset: number, length: number) => image.source.read(offset, length) };
  let settle!: { resolve: () => void; reject: (e: unknown) => void };
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Nobody need await it: an unobserved failure must not end the process as an unhandled rejection.
  done.catch(() => {});
  const state: LazyState = {
    session: null,
    done,
    stats: () => (state.session ? native.lazyStats(state.session) : null),
    profile: () => (state.session ? Array.from(native.lazyProfile(state.session)) : []),
  };
  let released = false;
  const onDone = (stopped: boolean): void => {
    const session = state.session;
    if (session === null) return;
    // released: a done(false) queued just before release() runs after it, on unmapped memory
    if (stopped || released) {
      settle.reject(new CrimgError('INVALID_ARGUMENT', 'the restore was released before every chunk was in place', { hint: 'await restored.done before release() to wait for every page' }));
      return;
    }
    const failure = native.lazyFailure(session);
    if (failure && chain) {
      // A chunk of a child's chain: its number may be a parent's (restore/_lazy-chain.ts).
      settle.reject(new CrimgError(failure.code as never, `chunk ${failure.chunk} of the child (its bytes from the child or a parent): ${failure.detail}; lazy restore installed nothing there`, { chunk: failure.chunk }));
    } else if (failure) {
      failed(image, table, failure).then(settle.reject, settle.reject);
      return;
    }
    try {
      for (const s of data) finish(s, wholes.get(s));
      progress.done = progress.total;
      progress.report?.(progress.done, progress.total);
      settle.resolve();
    } catch (e) {
      settle.reject(e);
    }
  };
  let started;
  try {
    started = native.lazyStart({
      ranges: data.map((s) => ({ reservation: s.res, offset: s.offset, length: s.span })),
      table: table.bytes, regions, chunkSize: h.chunkSize, dataStart: image.dataStart, dataEnd: Number(image.footer.chunkTableOffset),
      hot: Float64Array.from(run.hot), prefetch: run.prefetch, threads: run.threads, huge: advice !== 'nohugepage',
      sources: [source, ...(chain?.sources ?? [])],
      contexts: [{ codec: h.codec, cipher: h.cipher, chunkSize: h.chunkSize, ...(keys && { key: keys.dataKey, imageId: h.imageId, headerHash: keys.headerHash }) }, ...(chain?.contexts ?? [])],
      ...(chain && { resolved: chain.resolve(slots, table, h.chunkSize) }),
    }, onDone);
  } catch (e) {
    const errno = (e as { code?: string }).code === 'ERR_CRIMG_UFFD';
    throw errno ? new CrimgError('IO_ERROR', `cannot register the restored memory with userfaultfd: ${(e as Error).message}`, { cause: e, hint: 'restore with mode copy' }) : e;
  }
  if (started.session === null) {
    throw new CrimgError('IO_ERROR', `userfaultfd is not available: ${started.why}`, { hint: 'restore with mode copy' });
  }
  const session = started.session;
  state.session = session;
  result.beforeRelease(() => {
    released = true;
    native.lazyStop(session);
  });
  result.afterRelease(() => native.lazyClose(session));
  return state;
}

/** The recorded protection, once every page is in: on the view for a readable region, else on the range. */
function finish(s: Slot, whole: ArrayBuffer | undefined): void {
  const prot = s.region.prot as Prot;
  if (prot === 'rw-') return;
  try {
    if (whole && readable(s.region)) protect(whole, s.length, prot);
    else protect(s.res.address + BigInt(s.offset), s.span, prot);
  } catch (e) {
    throw syscallFailure(e, `protect ${label(s.region)}`, 'copy', s.region);
  }
}

/** The CrimgError of a chunk the handler did not install: the JavaScript reader's own, when it fails alike. */
async function failed(image: ImageReader, table: ChunkTable, f: { code: string; chunk: number; detail: string }): Promise<unknown> {
  const region = findByChunk(image.regions, f.chunk, (r) => r);
  if (region) {
    const j = f.chunk - region.firstChunk;
    const address = region.address + BigInt(j) * BigInt(image.header.chunkSize);
    const plainLength = image.plainLength(region, j);
    try {
      const rec = table.get(f.chunk, plainLength);
      const e = await jsErrorOf(image, { region, j, number: f.chunk, rec, plainLength }, { index: 0, code: f.code, message: f.detail } as never);
      // Only the same failure: the image may be closed by now (a "closed image" error is not this chunk's).
      if (isCrimgError(e) && e.code === f.code) return withNote(e);
    } catch (e) {
      if (isCrimgError(e) && e.code === f.code) return withNote(e);
    }
    return new CrimgError(f.code as never, `chunk ${f.chunk} (region ${region.index}, address ${hex(address)}): ${f.detail}; lazy restore installed nothing there`, {
      chunk: f.chunk, region: region.index, address,
    });
  }
  return new CrimgError(f.code as never, `chunk ${f.chunk}: ${f.detail}; lazy restore installed nothing there`, { chunk: f.chunk });
}

function withNote(e: CrimgError): CrimgError {
  e.message = `${e.message}; lazy restore installed nothing there`;
  return e;
}

/**
 * The image's hot list (validation record type 9, section 4.1): chunk numbers to prefetch
 * first, in order. Checked at open (image/optimize-hot-list.ts); it only orders fetching: the
 * bytes restored never depend on it.
 */
export function hotListOf(image: ImageReader): number[] {
  return hotListChunks(image.validation, image.chunkCount);
}
