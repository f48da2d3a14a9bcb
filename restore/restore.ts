/**
 * Restore: an image's regions back into memory (issue 4), above the reader and the native shim.
 *
 * Address space first: every region's range is reserved whole (PROT_NONE, MAP_NORESERVE). At
 * recorded addresses, one reservation per region with MAP_FIXED_NOREPLACE; anywhere, one
 * reservation for all regions, each followed by a no-access guard page. Runs are then placed
 * inside with MAP_FIXED, which the addon allows only there.
 *
 * - **map** mode (raw MAPPABLE images, spec/FORMAT.md sections 3.1 and 5.2): each run of stored
 *   chunks is mapped straight from the image file (MAP_PRIVATE: writes stay in this process) and
 *   each run of zero chunks is fresh anonymous memory, one mmap per run, with the region's
 *   recorded protection; one native call per protection places them all. Zero-copy. Checked by
 *   default: before returning, every file-mapped chunk is hashed in place through the mapping
 *   and compared with the chunk table (restore/_checkmap.ts), so every stored page is read once;
 *   a mismatch releases everything and throws CORRUPT_CHUNK. `check: false` is the explicit
 *   unchecked mapping (lazy: no page is read until touched, nothing is checked); `verify: true`
 *   runs {@link Image.verify} on the whole file first. The cost is one mmap per
 *   run (about 2 us each): memory-like images have thousands of runs per GiB. A SPARSE image
 *   (section 5.2) is mapped with one mmap per region, each region's span whole, holes and all:
 *   its geometry is checked from the chunk table once per opened image (about 0.5 ms per GiB).
 * - **copy** mode (any image): each region is fresh anonymous memory filled through
 *   {@link Image.readInto} in 16 MiB pieces, four in flight, which checks every chunk's checksum
 *   (and tag) and decodes compressed and encrypted chunks; zero chunks are skipped (the memory
 *   is already zero). Then the recorded protection.
 * - **lazy** mode (any image the native decoder knows, local file or any source; the default
 *   where userfaultfd can be had, restore/_lazy.ts): every region is placed as fresh anonymous
 *   memory (`rw-` until `done`) and registered with userfaultfd, and restore returns before any
 *   chunk is read. The addon's handler thread resolves each first touch by reading, checking
 *   (checksum, tag) and decoding the whole chunk holding it and installing it with one
 *   UFFDIO_COPY (UFFDIO_ZEROPAGE for a zero chunk); prefetch threads install the rest, the
 *   image's hot list first (section 4.1), then image order. `done` resolves once every chunk is
 *   in and the recorded protections are applied; it rejects naming the first chunk that
 *   failed, whose pages are poisoned (a touch is SIGBUS), never filled. `release()` stops the
 *   threads, unmaps, then closes the descriptor. A source without a file descriptor is read
 *   through its `read()` on the JavaScript thread (one call per chunk): that thread must not
 *   touch a page before `done`, so such sources default to copy. Where userfaultfd is refused
 *   the syscall, /dev/userfaultfd and user-mode-only are tried, then copy (`reason` says why).
 * - The hot list also orders an unchecked map (`check: false`: MADV_WILLNEED on the hot
 *   chunks first, restore/_lazy-hot.ts); a checked map and copy mode return only once every
 *   page was read, so they read in file order.
 * - Without the native addon (not built, or `CRIMG_NO_NATIVE=1`) the regions are copied into
 *   plain ArrayBuffers: `degraded: true`, with the reason. The library prints nothing.
 *
 * What a region becomes:
 * - readable (`r..`): placed with its protection, and `memory` is one ArrayBuffer over the
 *   whole region (byteLength = its length, not rounded to pages). Without `w` it is read-only
 *   memory, as recorded: a write through it is a SIGSEGV that kills the process, as with any
 *   PROT_READ mapping (Node 20 has no read-only ArrayBuffer to say so);
 * - unreadable (`---`, `-w-`, `--x`, `-wx`): placed with its protection, content in place, but no
 *   `memory`: reading an ArrayBuffer over no-access pages would kill the process. (Without the
 *   addon it is not read at all.)
 * - a gap: a reserved no-access range (MAP_NORESERVE: no memory charged), no `memory`;
 * - longer than an ArrayBuffer can be (`buffer.constants.MAX_LENGTH`, 4 GiB on Node 20): placed,
 *   no `memory`, and a warning.
 *
 * The memory lives as long as the result (or a region's `memory`) is reachable; `release()`
 * frees it at once.
 */
import type { ImageReader } from '../image/reader.js';
import type { Region } from '../format/index-table.js';
import { CrimgError } from '../format/errors.js';
import { nativeStatus, pageSize } from '../native-mmap/index.js';
import { RecordScanner, mapPlan, planGeometry, regionLength, sparsePlan, sparseSpansOnce } from './_plan.js';
import { mappingHeadroom } from './_maps.js';
import { layout, mapRegions } from './_place.js';
import { copyToAnonymous, copyToArrayBuffers } from './_copy.js';
import { MapCheck } from './_checkmap.js';
import { hotListOf, lazyAccess, lazyRefusal, lazyRestore } from './_lazy.js';
import { lazyChain } from './_lazy-chain.js';
import { adviseHot } from './_lazy-hot.js';
import { Restoration } from './_result.js';
import type { RestoreAdvice, RestoreOptions, RestoreResult } from './_types.js';

export type { RestoreAdvice, RestoreOptions, RestoredRegion, RestoreResult } from './_types.js';

/** Placements above which the kernel's mapping limit (vm.max_map_count) is checked first. */
const MAPPINGS_CHECKED_ABOVE = 16384;
/** Mappings left to the rest of the process when checking that limit. */
const MAPPINGS_SPARE = 4096;

const ADVICE: readonly RestoreAdvice[] = ['willneed', 'sequential', 'random', 'hugepage', 'nohugepage'];

/**
 * Restores `image`'s regions into memory; see the module comment for the modes and what each
 * region becomes. Usually called as `image.restore(options)`.
 *
 * Restore does not check the image's restore constraints: call `image.assertCompatible(host)`
 * first when the memory is to be run.
 *
 * @param image an open image (with its key, when encrypted).
 * @param options see {@link RestoreOptions}.
 * @returns the restored regions and `release()`.
 * @throws TypeError/RangeError on bad options.
 * @throws CrimgError UNSUPPORTED_FEATURE: map mode on an image that is not raw and MAPPABLE, or
 *   not opened from a file; `atRecordedAddress` without the native addon.
 * @throws CrimgError ADDRESS_IN_USE: `atRecordedAddress` and a region's range is taken (or
 *   refused by the kernel); the message names the first taken address.
 * @throws CrimgError INCOMPATIBLE: map mode or recorded addresses with an image page size the
 *   host cannot place (not a multiple of the host's).
 * @throws CrimgError CORRUPT_INDEX, CORRUPT_CHUNK, AUTH_FAILED, KEY_REQUIRED from the image;
 *   IO_ERROR when a placement syscall fails (the cause is the addon's errno error).
 * On any failure everything restored so far is released first.
 * @example
 * const image = await openImage('app.img');
 * const { regions, release } = await image.restore({ atRecordedAddress: true });
 * new Uint8Array(regions[0].memory!)[0];
 * release();
 */
export async function restoreImage(image: ImageReader, options: RestoreOptions = {}): Promise<RestoreResult> {
  const o = checkOptions(options);
  const status = nativeStatus();
  const fd = image.source.fd;
  const header = image.header;
  const raw = image.mappable && header.codec === 0 && header.cipher === 0;
  // Trust by default: lazy (every chunk checked before its bytes are usable) where it can be
  // had, else copy; the unchecked mapping of a raw image is only ever asked for.
  let lazyWhyNot: string | null = null;
  // A child's chain is opened and checked first (spec section 8.3), its IN_PARENT chunks resolved.
  const chain = image.isChild && (o.mode === 'lazy' || (o.mode === undefined && status.available)) ? await lazyChain(image) : undefined;
  if (o.mode === 'lazy' || (o.mode === undefined && status.available)) {
    lazyWhyNot = lazyRefusal(image, chain);
    if (lazyWhyNot === null && o.mode === undefined && fd === undefined) lazyWhyNot = `the source ${image.source.name} is not a local file (mode lazy reads it through JavaScript, so the JavaScript thread must not touch a page before done)`;
  }
  let mode: 'map' | 'copy' | 'lazy' = o.mode === 'map' ? 'map' : o.mode === 'copy' ? 'copy' : status.available && lazyWhyNot === null ? 'lazy' : 'copy';
  if (mode === 'map' && !raw) {
    const what = [
      image.compression !== 'none' && `compressed (${image.compression})`,
      image.encryption !== 'none' && `encrypted (${image.encryption})`,
      !image.mappable && (image.isChild ? 'a child image, whose parent holds some of its chunks (flatten it to map it)' : 'without the MAPPABLE feature'),
    ].filter(Boolean).join(', ');
    throw new CrimgError('UNSUPPORTED_FEATURE', 'map mode needs a raw MAPPABLE image; use mode copy', { hint: `this image is ${what}` });
  }
  if (mode === 'map' && fd === undefined) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `map mode needs an image opened from a file, got a source (${image.source.name}) with no file descriptor; use mode copy`);
  }
  if (o.atRecordedAddress && !status.available) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `restore at recorded addresses needs the native addon, which is unavailable: ${status.reason}`, {
      hint: 'build it with `node native-mmap/install.mjs`, or restore without atRecordedAddress',
    });
  }
  const hostPage = status.available ? pageSize() : 0;
  if (status.available && (mode === 'map' || o.atRecordedAddress) && header.pageSize % hostPage !== 0) {
    throw new CrimgError('INCOMPATIBLE', `the image's page size ${header.pageSize} is not a multiple of the host's ${hostPage}, so its ${mode === 'map' ? 'chunks cannot be mapped' : 'regions cannot be placed at their recorded addresses'}`, {
      hint: 'restore with mode copy and without atRecordedAddress',
    });
  }

  const all = image.regions;
  const selected = o.regions === undefined ? [...all] : [...o.regions].sort((a, b) => a - b).map((i) => {
    if (i >= all.length) throw new RangeError(`expected region numbers below ${all.length}, got ${i}`);
    return all[i]!;
  });
  const table = await image.chunkTable();
  if (!status.available) mode = 'copy';
  if (mode === 'map' && o.verify) await verifyFirst(image);
  const result = new Restoration(mode);
  if (mode === 'copy' && lazyWhyNot !== null && status.available) result.reason = `lazy restore is not possible: ${lazyWhyNot}; copied instead`;
  if (mode === 'lazy' && lazyAccess().userModeOnly) {
    result.reason = 'userfaultfd in user mode only (vm.unprivileged_userfaultfd is 0 and the process lacks CAP_SYS_PTRACE): a system call given a page not yet in place (write(2) from it, say) fails with EFAULT instead of waiting for it; await done first';
  }
  let plans: Map<Region, Float64Array> | null = null;
  let check: MapCheck | null = null;
  if (mode === 'map') {
    const scan = new RecordScanner(table, planGeometry(image));
    if (o.check) check = new MapCheck(scan);
    // A SPARSE image maps each region with one mmap (section 5.2); else one per run.
    const spans = image.sparse ? sparseSpansOnce(table, scan.g, all) : null;
    plans = new Map(selected.filter((r) => !r.isGap).map((r) => [r, spans ? sparsePlan(spans, r) : mapPlan(scan, r)]));
    let placements = selected.length;
    for (const p of plans.values()) placements += p.length / 3;
    if (placements > MAPPINGS_CHECKED_ABOVE) {
      const headroom = mappingHeadroom();
      if (placements > headroom - MAPPINGS_SPARE) {
        result.mode = 'copy';
        result.reason = `map mode would create ${placements} mappings, more than vm.max_map_count leaves this process (${headroom}); copied instead`;
        plans = null;
      }
    }
  }
  if (!status.available) {
    result.degraded = true;
    result.reason = o.mode === 'map'
      ? `map mode needs the native addon, which is unavailable (${status.reason}): copied into ArrayBuffers instead, protections not applied`
      : `the native addon is unavailable (${status.reason}): copied into ArrayBuffers, protections not applied`;
  }

  const total = selected.reduce((n, r) => n + (r.isGap ? 0 : regionLength(r)), 0);
  const progress = { done: 0, total, report: o.onProgress };
  try {
    if (!status.available) {
      await copyToArrayBuffers(image, table, selected, result, progress);
    } else {
      const slots = layout(selected, o.atRecordedAddress, result);
      if (plans) {
        mapRegions(slots, plans, fd!, o.advise, result, progress, check);
        if (!check) adviseHot(slots, hotListOf(image), header.chunkSize); // unchecked: nothing read yet, hot pages first
      } else if (mode === 'lazy') {
        const state = lazyRestore(image, table, slots, o.advise, result, progress, { prefetch: o.prefetch, threads: o.prefetchThreads, hot: hotListOf(image) }, chain);
        result.done = state.done;
        result.lazy = state;
      } else {
        await copyToAnonymous(image, table, slots, o.advise, result, progress);
      }
    }
  } catch (e) {
    try {
      result.release();
    } catch {
      // The restore's own error says more than a failed cleanup.
    }
    throw e;
  }
  return result;
}

interface CheckedOptions {
  mode: 'map' | 'copy' | 'lazy' | undefined;
  prefetch: boolean;
  prefetchThreads: number;
  atRecordedAddress: boolean;
  regions: readonly number[] | undefined;
  onProgress: ((done: number, total: number) => void) | undefined;
  advise: RestoreAdvice | undefined;
  verify: boolean;
  check: boolean;
}

function checkOptions(options: RestoreOptions): CheckedOptions {
  if (options === null || typeof options !== 'object') throw new TypeError(`expected an options object, got ${options === null ? 'null' : typeof options}`);
  const { mode, atRecordedAddress, regions, onProgress, advise: advice, verify, check, prefetch, prefetchThreads } = options;
  if (mode !== undefined && mode !== 'map' && mode !== 'copy' && mode !== 'lazy') throw new RangeError(`expected mode 'map', 'copy' or 'lazy', got ${JSON.stringify(mode)}`);
  if (prefetchThreads !== undefined && (!Number.isSafeInteger(prefetchThreads) || prefetchThreads < 1 || prefetchThreads > 64)) throw new RangeError(`expected prefetchThreads to be an integer from 1 to 64, got ${String(prefetchThreads)}`);
  for (const [name, v] of [['atRecordedAddress', atRecordedAddress], ['verify', verify], ['check', check], ['prefetch', prefetch]] as const) {
    if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`expected ${name} to be a boolean, got ${typeof v}`);
  }
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError(`expected onProgress to be a function, got ${typeof onProgress}`);
  if (advice !== undefined && !ADVICE.includes(advice)) throw new RangeError(`expected advise to be one of ${ADVICE.join(', ')}, got ${JSON.stringify(advice)}`);
  if (regions !== undefined) {
    if (!Array.isArray(regions)) throw new TypeError(`expected regions to be an array of region numbers, got ${typeof regions}`);
    const seen = new Set<number>();
    for (const i of regions) {
      if (!Number.isSafeInteger(i) || i < 0) throw new RangeError(`expected region numbers to be non-negative integers, got ${String(i)}`);
      if (seen.has(i)) throw new RangeError(`expected each region number once, got ${i} twice`);
      seen.add(i);
    }
  }
  return { mode, prefetch: prefetch ?? true, prefetchThreads: prefetchThreads ?? 2, atRecordedAddress: atRecordedAddress ?? false, regions, onProgress, advise: advice, verify: verify ?? false, check: check ?? true };
}

/** Map mode's integrity check: verify() first, its first error thrown. */
async function verifyFirst(image: ImageReader): Promise<void> {
  const report = await image.verify({ maxErrors: 1 });
  if (report.ok) return;
  const first = report.errors[0]!;
  throw new CrimgError(first.code, `verify before mapping: ${first.message}`, {
    ...(first.offset !== undefined && { offset: first.offset }),
    ...(first.region !== undefined && { region: first.region }),
    ...(first.chunk !== undefined && { chunk: first.chunk }),
    ...(first.address !== undefined && { address: first.address }),
    hint: 'the image is damaged; restore it from a good copy',
  });
}
