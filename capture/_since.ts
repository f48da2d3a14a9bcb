/**
 * Child captures that read only what changed since their parent's capture (issue 19): a
 * pre-copy with write protection ('uffd-wp', capture/_precopy.ts) can keep tracking past its
 * stop (`keepTracking`): the stop lists the written pages and protects them again in one walk,
 * so from then on a page not listed as written holds what the image holds. The next capture of
 * the same process (`since` that tracking, `parent` that image) then reads, for each mapping
 * tracked all along, only the chunks that hold a page written or dropped since, and gives the
 * writer every other chunk as `{ sameAsParent }` (image/_chunk-stream.ts ParentRun): recorded
 * IN_PARENT from the parent's index, no byte of the parent read or decoded, no unchanged byte
 * of the process read. This is what CRIU's `pre-dump --track-mem` and `dump --prev-images-dir`
 * do with soft-dirty bits.
 *
 * The invariant, per tracked mapping: the parent's region for it starts and ends where the
 * mapping does (its chunks are the mapping's, from its start), and every page of it that is
 * not protected now, or was present at the parent's stop and is absent now, may differ from the
 * parent's bytes; every other page equals them. Mappings that appeared, moved or changed since
 * are not tracked ones: read whole and compared with the parent by the writer.
 */
import type { FileHandle } from 'node:fs/promises';
import { nativeAddon } from '../native-mmap/index.js';
import { presentRuns } from './pagemap.js';
import { complement, overlay, slicesFrom, unionRuns, type Slice } from './_replay.js';
import type { AddressRun, MemLog } from './_mem-log.js';

/** What a tracked mapping looked like at the stop of the capture that made the tracking. */
export interface TrackedMapping {
  start: bigint;
  end: bigint;
  /** Pages present (or swapped) at that stop. */
  present: AddressRun[];
}

/**
 * Write tracking of a process kept past a capture's stop (CaptureOptions.keepTracking): give it
 * to the next capture of that process as `since`, with that capture's image as `parent`. Holds
 * a userfaultfd of the process's memory until {@link close} (or until a capture given it as
 * `since` takes it over: it is then closed here, and that capture's result carries the
 * tracking on if asked to keep it). While it is open the process's writes to tracked pages
 * cost a minor fault each (about 20 us on the VMs this was measured on).
 */
export class WriteTracking {
  private fd: number | null;
  /** One dropped without close() is closed when collected (the process's pages unprotected then). */
  private static readonly leaked = new FinalizationRegistry<number>((fd) => nativeAddon()?.closeFd(fd));

  /** @internal made by captureProcess */
  constructor(
    readonly pid: number,
    /** The process's start time (/proc/PID/stat): a reused pid is not this process. */
    readonly startTime: string,
    /** The image id of the capture whose stop the tracking is relative to. */
    readonly imageId: Uint8Array,
    readonly chunkSize: number,
    /** Tracked mappings, by capture/_precopy.ts mappingKey. */
    readonly mappings: ReadonlyMap<string, TrackedMapping>,
    uffd: number,
  ) {
    this.fd = uffd;
    WriteTracking.leaked.register(this, uffd, this);
  }

  /** Whether it still tracks (not closed, not taken over). */
  get open(): boolean {
    return this.fd !== null;
  }

  /** @internal the userfaultfd, for a capture that takes the tracking over (it is closed here then). */
  take(): number {
    if (this.fd === null) throw new RangeError('expected open write tracking for `since`, got one already closed or used by another capture');
    const fd = this.fd;
    this.fd = null;
    WriteTracking.leaked.unregister(this);
    return fd;
  }

  /** Stops tracking: the kernel unprotects the process's pages. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    nativeAddon()?.closeFd(this.fd);
    this.fd = null;
    WriteTracking.leaked.unregister(this);
  }
}

/** A tracked mapping during a child capture: its parent's state and the chunks known changed. */
export interface SinceState {
  chunkSize: number;
  /** Pages present at the parent's stop. */
  parentPresent: AddressRun[];
  /** Chunk-aligned runs (from the mapping's start) whose bytes are in the log (the rest equal the parent's). */
  changed: AddressRun[];
}

/** `runs` widened to whole chunks of `chunkSize` counted from `start`, clipped to `end`, merged. */
export function chunkRuns(runs: readonly AddressRun[], start: bigint, end: bigint, chunkSize: number): AddressRun[] {
  const cs = BigInt(chunkSize);
  const out: AddressRun[] = [];
  for (const r of runs) {
    const s = start + ((r.start - start) / cs) * cs;
    let e = start + ((r.end - start + cs - 1n) / cs) * cs;
    if (e > end) e = end;
    const last = out[out.length - 1];
    if (last && s <= last.end) { if (e > last.end) last.end = e; } else out.push({ start: s, end: e });
  }
  return out;
}

/** The parts of ascending, disjoint `a` inside ascending, disjoint `b`. */
export function intersectRuns(a: readonly AddressRun[], b: readonly AddressRun[]): AddressRun[] {
  const out: AddressRun[] = [];
  let j = 0;
  for (const r of a) {
    while (j < b.length && b[j]!.end <= r.start) j++;
    for (let k = j; k < b.length && b[k]!.start < r.end; k++) {
      const s = r.start > b[k]!.start ? r.start : b[k]!.start;
      const e = r.end < b[k]!.end ? r.end : b[k]!.end;
      if (s < e) out.push({ start: s, end: e });
    }
  }
  return out;
}

/** The parts of `a` outside `b` (both ascending, disjoint), within [start, end). */
export function subtractRuns(a: readonly AddressRun[], b: readonly AddressRun[], start: bigint, end: bigint): AddressRun[] {
  return intersectRuns(a, complement(b, start, end));
}

/** The written pages of [start, end) holding memory, listed and (with `reprotect`) protected again. */
export function writtenRuns(pagemap: FileHandle, start: bigint, end: bigint, reprotect: boolean): AddressRun[] {
  const pairs = nativeAddon()!.trackWritesScan(pagemap.fd, start, end, reprotect);
  const out: AddressRun[] = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) out.push({ start: pairs[i]!, end: pairs[i + 1]! });
  return out;
}

/**
 * One pass over a tracked mapping [start, end) of a child capture: the running pass (`slices`
 * empty, nothing changed yet), a catch-up pass, or the stop (`stop`: absent pages of changed
 * chunks are zero). Lists the pages written since the last pass (protecting them again unless
 * `keep` is false at the stop), finds the chunks that become changed (a page written, or
 * present at the parent's stop and absent now), and logs what their bytes need: for newly
 * changed chunks every present page, for the others the written pages.
 * @returns the mapping's slices after the pass and its present pages, or null when the mapping
 *   cannot be used so (its scan failed, a read ended early): the caller then reads it whole.
 */
export async function sincePass(
  log: MemLog, mem: FileHandle, memName: string, pagemap: FileHandle, pageSize: number,
  start: bigint, end: bigint, state: SinceState, slices: Slice[], reprotect: boolean, stop: boolean, onRead?: (n: number) => void,
): Promise<{ slices: Slice[]; present: AddressRun[] } | null> {
  let written: AddressRun[];
  let present: AddressRun[];
  try {
    written = writtenRuns(pagemap, start, end, reprotect);
    present = await presentRuns(pagemap, start, end, pageSize);
  } catch {
    return null;
  }
  const dropped = subtractRuns(state.parentPresent, present, start, end);
  const touched = chunkRuns(unionRuns(written, dropped), start, end, state.chunkSize);
  const fresh = subtractRuns(touched, state.changed, start, end);
  // Newly changed chunks: every present page; chunks changed before: the written ones.
  const read = unionRuns(intersectRuns(present, fresh), intersectRuns(written, state.changed));
  const first = log.pieces.length;
  const ended = read.length === 0 ? null : await log.logRuns(mem, memName, read, onRead);
  if (ended !== null) return null;
  state.changed = unionRuns(state.changed, fresh);
  // At the stop, a page of a changed chunk that is absent now reads as zero.
  const out = stop ? unionRuns(read, intersectRuns(complement(present, start, end), state.changed)) : read;
  return { slices: overlay(slices, out, slicesFrom(log, first)), present };
}

/**
 * Checks that `since` may be used for a capture of process `pid` (started at `startTime`)
 * whose parent has image id `parentId` (null: no parent given).
 * @throws RangeError naming what differs
 */
export function checkSince(since: WriteTracking, pid: number, startTime: string, parentId: Uint8Array | null): void {
  if (!(since instanceof WriteTracking)) throw new TypeError('expected `since` to be the `tracking` of an earlier capture result');
  if (!since.open) throw new RangeError('expected open write tracking for `since`, got one already closed or used by another capture');
  if (since.pid !== pid || since.startTime !== startTime) throw new RangeError(`expected \`since\` to track process ${pid}, got tracking of process ${since.pid}${since.pid === pid ? ' that has exited since (the pid was reused)' : ''}`);
  if (parentId === null) throw new RangeError('expected `parent` with `since`: the image of the capture that kept the tracking');
  if (Buffer.compare(Buffer.from(parentId), Buffer.from(since.imageId)) !== 0) {
    throw new RangeError('expected `parent` to be the image of the capture that kept the tracking given as `since`, got another image (image ids differ)');
  }
}
