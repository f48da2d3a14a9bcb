/**
 * Copy mode: regions filled with every chunk checked and decoded. Into fresh anonymous memory
 * placed by the addon: by the native batch decoder (image/_native-batch.ts: one call, every
 * core, destinations provisioned in bulk, zero chunks never touched) when it can take the image,
 * else through Image.readInto. Without the addon, into plain ArrayBuffers through readInto (the
 * portable engine).
 */
import type { ImageReader } from '../image/reader.js';
import type { ChunkTable, Region } from '../format/index-table.js';
import { CrimgError } from '../format/errors.js';
import { CHUNK_ZERO } from '../format/constants.js';
import { constants as bufferConstants } from 'node:buffer';
import { protect, unmap, type Prot } from '../native-mmap/index.js';
import { RecordScanner, dataRuns, planGeometry, regionLength, windows, type DataRun } from './_plan.js';
import { adviseAll, placeAll, syscallFailure, viewOf, type Slot } from './_place.js';
import { BatchItems, jsErrorOf, nativeBatchRefusal } from '../image/_native-batch.js';
import { advance, entry, fitsBuffer, label, readable, type Progress, type Restoration } from './_result.js';
import type { RestoreAdvice } from './_types.js';

/** Bytes per readInto call: a multiple of every chunk size (at most 16 MiB). */
const PIECE = 16 * 1024 * 1024;
/** readInto calls in flight: file reads overlap decoding, which uses every core within a call. */
const IN_FLIGHT = 4;

/** Where a region's bytes go: windows over it, opened per piece. */
interface CopyTarget {
  region: Region;
  runs: DataRun[];
  /** A writable view of `[offset, offset + length)` of the region, and its closing. */
  window(offset: number, length: number): { bytes: Uint8Array; close(): void };
  /** Called once every piece is in. */
  finish(): void;
}

/**
 * Fills the targets through readInto, IN_FLIGHT pieces at a time across regions, in order.
 * Stops at the first error and waits for the pieces in flight before throwing it.
 */
async function fill(image: ImageReader, targets: Iterable<CopyTarget>, progress: Progress): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | null = null;
  const fail = (error: unknown): void => {
    failure ??= { error };
  };
  try {
    for (const t of targets) {
      let pending = 0;
      let issued = false;
      const done = (): void => {
        if (issued && pending === 0) t.finish();
      };
      for (const p of windows(t.runs, PIECE)) {
        while (running.size >= IN_FLIGHT) await Promise.race(running);
        if (failure) break;
        const w = t.window(p.offset, p.length);
        pending++;
        const job: Promise<void> = image.readInto(t.region.address + BigInt(p.offset), w.bytes, { zeroFilled: true }).then(() => {
          w.close();
          pending--;
          advance(progress, dataIn(t.runs, p));
          if (!failure) done();
        }).catch(fail).finally(() => {
          running.delete(job);
        });
        running.add(job);
      }
      if (failure) break;
      issued = true;
      done();
    }
  } catch (e) {
    fail(e);
  }
  // Nothing is released while a readInto may still write into it.
  await Promise.all(running);
  if (failure) throw (failure as { error: unknown }).error;
}

/** Zero chunks count as done at once: the fresh memory already holds them. */
/** Bytes of data runs inside a window (progress counts data; zero runs count up front). */
function dataIn(runs: readonly DataRun[], w: DataRun): number {
  let n = 0;
  for (const r of runs) n += Math.max(0, Math.min(r.offset + r.length, w.offset + w.length) - Math.max(r.offset, w.offset));
  return n;
}

function zeroBytes(r: Region, runs: readonly DataRun[]): number {
  return regionLength(r) - runs.reduce((n, x) => n + x.length, 0);
}

function protectOrFail(fn: () => void, s: Slot): void {
  try {
    fn();
  } catch (e) {
    throw syscallFailure(e, `protect ${label(s.region)}`, 'copy', s.region);
  }
}

/**
 * Copy mode with the addon: fresh anonymous memory per region (one native call for all), filled
 * through `rw-` views, then the recorded protection: on the view for a readable region (which
 * becomes its memory), on the bare range for an unreadable one once its view is gone.
 */
export async function copyToAnonymous(image: ImageReader, table: ChunkTable, slots: readonly Slot[], advice: RestoreAdvice | undefined, result: Restoration, progress: Progress): Promise<void> {
  if (nativeBatchRefusal(image) === null) return copyNative(image, table, slots, advice, result, progress);
  const scan = new RecordScanner(table, planGeometry(image));
  const runs = slots.map((s) => (s.region.isGap ? [] : dataRuns(scan, s.region)));
  placeAll(slots, -1, (s) => (s.region.isGap ? null : Float64Array.of(0, s.length, -1)), () => 'rw-', 'allocate memory for');
  adviseAll(result, slots, advice);
  function* targets(): Generator<CopyTarget> {
    for (const [i, s] of slots.entries()) {
      const r = s.region;
      if (r.isGap) continue;
      const whole = fitsBuffer(result, r, s.length) ? viewOf(s, 0, s.length, 'rw-') : null;
      if (whole) result.own(whole, true);
      advance(progress, zeroBytes(r, runs[i]!));
      yield {
        region: r,
        runs: runs[i]!,
        window: (offset, length) => {
          if (whole) return { bytes: new Uint8Array(whole, offset, length), close: () => {} };
          const w = viewOf(s, offset, length, 'rw-');
          return { bytes: new Uint8Array(w), close: () => unmap(w) };
        },
        finish: () => settle(s, whole),
      };
    }
  }
  await fill(image, targets(), progress);
}

/**
 * A filled region's last step: the recorded protection, on its whole view for a readable region
 * (which becomes its memory), on the bare range for an unreadable one once its view is gone.
 */
function settle(s: Slot, whole: ArrayBuffer | null): void {
  const prot = s.region.prot as Prot;
  if (whole && readable(s.region)) {
    if (prot !== 'rw-') protectOrFail(() => protect(whole, s.length, prot), s);
    s.entry.memory = whole;
  } else {
    if (whole) unmap(whole);
    if (prot !== 'rw-') protectOrFail(() => protect(s.res.address + BigInt(s.offset), s.span, prot), s);
  }
}

/**
 * Copy mode through the native batch decoder: every region's memory placed 'rw-' (one native
 * call), every stored chunk of every region read and decoded in one more, on every core,
 * straight into place, each destination provisioned in bulk first (a fault per page costs
 * 12 us on a VM whose host reclaims freed memory; MADV_POPULATE_WRITE of the same GiB is
 * 25 times cheaper). Zero chunks are neither read nor written (inside an aligned 2 MiB that
 * stored chunks fill half of, they come resident with its 2 MiB page). The first failing
 * chunk in image order is thrown as the CrimgError the JavaScript path gives; the caller
 * releases the memory.
 */
async function copyNative(image: ImageReader, table: ChunkTable, slots: readonly Slot[], advice: RestoreAdvice | undefined, result: Restoration, progress: Progress): Promise<void> {
  const cs = image.header.chunkSize;
  const items = new BatchItems(cs);
  // Every record checked as readInto checks it (ChunkTable.get, CORRUPT_INDEX), before any memory.
  const stored = slots.map((s) => {
    let bytes = 0;
    const r = s.region;
    if (r.isGap) return 0;
    for (let j = 0; j < r.chunkCount; j++) {
      const number = r.firstChunk + j;
      const plainLength = image.plainLength(r, j);
      const rec = table.get(number, plainLength);
      if (rec.flags & CHUNK_ZERO) continue;
      items.add({ region: r, j, number, rec, plainLength }, s.res, s.offset + j * cs);
      bytes += plainLength;
    }
    return bytes;
  });
  // The reserved pages themselves made writable: fresh zero memory like a placement, but left
  // uncommitted (the reservation is MAP_NORESERVE), so that 1 TiB of zero chunks costs neither
  // memory nor the overcommit check a placement of 1 TiB fails.
  for (const s of slots) if (!s.region.isGap) protectOrFail(() => protect(s.res.address + BigInt(s.offset), s.span, 'rw-'), s);
  adviseAll(result, slots, advice);
  slots.forEach((s, i) => {
    if (!s.region.isGap) advance(progress, s.length - stored[i]!);
  });
  // CRIMG_NATIVE_POPULATE=0: page by page instead (the bench's comparison). 2 MiB pages where
  // the stored chunks fill half of one or more (native-mmap/src/provision.cc), unless the
  // caller's advice is 'nohugepage'.
  const failures = await items.run(image, { all: false, populate: process.env.CRIMG_NATIVE_POPULATE !== '0', huge: advice !== 'nohugepage' });
  if (failures.length > 0) {
    const f = failures[0]!;
    throw await jsErrorOf(image, items.chunk(image, f.item), f);
  }
  slots.forEach((s, i) => {
    if (s.region.isGap) return;
    const whole = fitsBuffer(result, s.region, s.length) ? viewOf(s, 0, s.length, 'rw-') : null;
    if (whole) result.own(whole, true);
    settle(s, whole);
    advance(progress, stored[i]!);
  });
}

/** Copy mode without the addon: plain ArrayBuffers, no placement, no protection. */
export async function copyToArrayBuffers(image: ImageReader, table: ChunkTable, regions: readonly Region[], result: Restoration, progress: Progress): Promise<void> {
  const scan = new RecordScanner(table, planGeometry(image));
  function* targets(): Generator<CopyTarget> {
    for (const r of regions) {
      if (r.isGap) {
        result.regions.push(entry(r, 0n));
        continue;
      }
      const length = regionLength(r);
      if (!readable(r)) {
        // Nothing could read it, and there is no address space to put it in.
        result.regions.push(entry(r, 0n));
        advance(progress, length);
        continue;
      }
      if (length > bufferConstants.MAX_LENGTH) {
        throw new CrimgError('LIMIT_EXCEEDED', `${label(r)} is ${length} bytes, more than an ArrayBuffer can hold (${bufferConstants.MAX_LENGTH})`, {
          region: r.index, hint: 'build the native addon (node native-mmap/install.mjs) to restore it in place',
        });
      }
      const runs = dataRuns(scan, r);
      const buffer = new ArrayBuffer(length);
      result.own(buffer, false);
      result.regions.push(entry(r, 0n, buffer));
      advance(progress, zeroBytes(r, runs));
      yield {
        region: r,
        runs,
        window: (offset, len) => ({ bytes: new Uint8Array(buffer, offset, len), close: () => {} }),
        finish: () => {},
      };
    }
  }
  await fill(image, targets(), progress);
}
