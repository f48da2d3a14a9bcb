/**
 * A capture through the memory log (capture/_mem-log.ts): while the process is stopped, each
 * mapping's pages go to the log and the capture notes what the image will hold ({@link
 * ReplayItem}: regions made of slices of logged pieces, and gaps); after SIGCONT,
 * {@link replay} writes exactly those regions and gaps with the image writer, reading the
 * pieces back. The regions, gaps, notes and bytes are those the direct capture
 * (capture/process.ts, MemReader) writes: a region runs up to the first page the kernel
 * refuses, each refused stretch is a gap, pages outside the present runs are zero.
 */
import type { FileHandle } from 'node:fs/promises';
import type { GapOptions, ImageWriter, RegionPiece } from '../image/writer.js';
import { hex } from '../format/bytes.js';
import { isCrimgError } from '../format/errors.js';
import type { MappingPlan, MapsEntry } from './proc-maps.js';
import { isAlive, processExited } from './proc.js';
import type { AddressRun, LogPiece, MemLog } from './_mem-log.js';

export type RegionPlan = Extract<MappingPlan, { action: 'region' }>;

/** Bytes of memory from one logged piece: [start, end) lies inside the piece. */
export interface Slice {
  start: bigint;
  end: bigint;
  piece: LogPiece;
}

/**
 * One record of the image to be: a region of logged slices (the rest of it zero), or a gap. A
 * region of a child capture that tracked writes since its parent's (capture/_since.ts) has
 * `parentRuns`: whole chunks equal to the parent's, written as such (no slice lies in them).
 * `present`: the pages present at the stop, for tracking kept past it.
 */
export type ReplayItem =
  | { type: 'gap'; gap: GapOptions }
  | { type: 'region'; start: bigint; end: bigint; plan: RegionPlan; entry: MapsEntry; slices: Slice[]; parentRuns?: AddressRun[]; present?: AddressRun[] };

/** The region flags of a mapping's region starting at `at`: SHARED, and FILE_OFFSET for a file. */
export function regionFlags(plan: RegionPlan, entry: MapsEntry, at: bigint): { shared?: true; fileOffset?: bigint } {
  const file = entry.path.startsWith('/') && plan.kind !== 'anonymous';
  return {
    ...(entry.perms[3] === 's' && { shared: true as const }),
    ...(file && { fileOffset: entry.offset + (at - entry.start) }),
  };
}

/** The logged pieces from index `first` on, as slices. */
export function slicesFrom(log: MemLog, first: number): Slice[] {
  return log.pieces.slice(first).map((p) => ({ start: p.address, end: p.address + BigInt(p.length), piece: p }));
}

/** The parts of `runs` (ascending) inside [from, to). */
export function clipRuns(runs: readonly AddressRun[], from: bigint, to: bigint): AddressRun[] {
  const out: AddressRun[] = [];
  for (const r of runs) {
    const s = r.start > from ? r.start : from;
    const e = r.end < to ? r.end : to;
    if (s < e) out.push({ start: s, end: e });
  }
  return out;
}

/**
 * Logs one mapping the way the direct capture writes it: `present` (private anonymous memory)
 * are the runs to read, the rest zero; null reads it whole.
 * @returns the regions and gaps it becomes; notes of refused stretches go to `notes`.
 * @throws CrimgError when the process exited; IO_ERROR on another read error.
 */
export async function logMapping(
  log: MemLog, mem: FileHandle, pid: number, pageSize: number, plan: RegionPlan, entry: MapsEntry,
  present: readonly AddressRun[] | null, notes: string[], onRead?: (n: number) => void,
): Promise<ReplayItem[]> {
  const items: ReplayItem[] = [];
  const runs = present ?? [{ start: plan.start, end: plan.end }];
  let at = plan.start;
  while (at < plan.end) {
    const first = log.pieces.length;
    let ended: bigint | null;
    try {
      ended = await log.logRuns(mem, `/proc/${pid}/mem`, clipRuns(runs, at, plan.end), onRead);
    } catch (e) {
      if (!(await isAlive(pid))) throw processExited(pid, `reading its memory at ${hex(at)}`);
      throw e;
    }
    if (ended === null) {
      items.push({ type: 'region', start: at, end: plan.end, plan, entry, slices: slicesFrom(log, first) });
      break;
    }
    // The kernel returns nothing once the process's memory is gone; a live process's
    // unreadable page gives EIO instead, but check rather than guess.
    if (!(await isAlive(pid))) throw processExited(pid, `reading its memory at ${hex(ended)}`);
    if (ended > at) items.push({ type: 'region', start: at, end: ended, plan, entry, slices: slicesFrom(log, first) });
    const stop = await unreadableUntil(mem, pid, ended, plan.end, pageSize);
    notes.push(`${plan.name || 'anonymous mapping'} ${hex(ended)}-${hex(stop)} (${plan.prot}) recorded as a gap: the kernel refused to read it (EIO)`);
    items.push({ type: 'gap', gap: { address: ended, length: stop - ended, name: plan.name } });
    at = stop;
  }
  return items;
}

/** The end of the unreadable stretch of /proc/PID/mem starting at `at` (probed a page at a time). */
export async function unreadableUntil(mem: FileHandle, pid: number, at: bigint, end: bigint, pageSize: number): Promise<bigint> {
  const page = BigInt(pageSize);
  const probe = Buffer.allocUnsafe(1);
  let cur = at + page;
  while (cur < end) {
    try {
      if ((await mem.read(probe, 0, 1, Number(cur))).bytesRead === 1) return cur;
    } catch (e) {
      if (isCrimgError(e)) throw e;
    }
    if (!(await isAlive(pid))) throw processExited(pid, `reading its memory at ${hex(cur)}`);
    cur += page;
  }
  return end;
}

/**
 * `base` (ascending, disjoint slices) without the addresses in `out` (ascending runs), plus
 * `extra` (slices inside `out`), in address order: a pre-copy's bytes, the running pass's
 * where nothing changed and the stop's where something did.
 */
export function overlay(base: readonly Slice[], out: readonly AddressRun[], extra: readonly Slice[]): Slice[] {
  const kept: Slice[] = [];
  let j = 0;
  for (const s of base) {
    let at = s.start;
    while (j < out.length && out[j]!.end <= at) j++;
    let k = j;
    while (at < s.end) {
      const o = out[k];
      if (o === undefined || o.start >= s.end) {
        kept.push({ start: at, end: s.end, piece: s.piece });
        break;
      }
      if (o.start > at) kept.push({ start: at, end: o.start, piece: s.piece });
      at = o.end > at ? o.end : at;
      k++;
    }
  }
  return [...kept, ...extra].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/** The complement of `runs` (ascending) within [start, end). */
export function complement(runs: readonly AddressRun[], start: bigint, end: bigint): AddressRun[] {
  const out: AddressRun[] = [];
  let at = start;
  for (const r of runs) {
    if (r.start > at) out.push({ start: at, end: r.start });
    if (r.end > at) at = r.end;
  }
  if (at < end) out.push({ start: at, end });
  return out;
}

/** Two ascending run lists merged into one (adjacent and overlapping runs joined). */
export function unionRuns(a: readonly AddressRun[], b: readonly AddressRun[]): AddressRun[] {
  const all = [...a, ...b].sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
  const out: AddressRun[] = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) { if (r.end > last.end) last.end = r.end; } else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/**
 * Writes `items` with `writer`, the regions' bytes read back from `log` (zero outside their
 * slices).
 */
export async function replay(writer: ImageWriter, log: MemLog, items: readonly ReplayItem[]): Promise<void> {
  for (const item of items) {
    if (item.type === 'gap') {
      await writer.addGap(item.gap);
      continue;
    }
    const { plan, entry, start, end, slices, parentRuns } = item;
    await writer.addRegion({
      address: start, data: regionBytes(log, start, end, slices, parentRuns ?? []),
      prot: plan.prot, kind: plan.kind, name: plan.name, ...regionFlags(plan, entry, start),
      // Tracked since the parent: the chunks given as bytes changed (no need to compare them).
      ...(parentRuns && { compareWithParent: false }),
    });
  }
}

/** Pieces read back ahead of the one being written (each is up to the piece size, 2 MiB). */
const READ_AHEAD = 2;

/**
 * [start, end) of memory: the slices' bytes, zero runs between them; the next pieces are read
 * while one is written. A piece is read once and kept until its last slice: the stop's and
 * catch-up passes' small pieces interleave with the running pass's (a page of a 2 MiB piece
 * written since), which were read again at every interleaving before (3,500 changed pages made
 * a 1 GiB replay 6x slower).
 */
async function* regionBytes(log: MemLog, start: bigint, end: bigint, slices: readonly Slice[], parentRuns: readonly AddressRun[]): AsyncGenerator<RegionPiece> {
  // Pieces in the order of their first slice, and the index of each one's last slice.
  const pieces: LogPiece[] = [];
  const last = new Map<LogPiece, number>();
  slices.forEach((s, i) => {
    if (!last.has(s.piece)) pieces.push(s.piece);
    last.set(s.piece, i);
  });
  const reads: (Promise<Uint8Array> | undefined)[] = [];
  let next = 0;
  const readUpTo = (k: number): void => {
    for (; next <= k && next < pieces.length; next++) {
      const r = log.read(pieces[next]!);
      r.catch(() => {}); // awaited below; a read left behind by an earlier failure must not crash the process
      reads[next] = r;
    }
  };
  const held = new Map<LogPiece, Uint8Array>();
  let first = 0; // pieces[first] is the next one to be taken from `reads`
  let at = start;
  let p = 0; // the next of parentRuns
  // Up to `to`: the parent's runs there, zeros between them.
  const upTo = function* (to: bigint): Generator<RegionPiece> {
    for (; p < parentRuns.length && parentRuns[p]!.start < to; p++) {
      const r = parentRuns[p]!;
      if (r.start < at || r.end > to) throw new Error(`internal error: a run equal to the parent at 0x${r.start.toString(16)}-0x${r.end.toString(16)} overlaps logged bytes in region 0x${start.toString(16)}-0x${end.toString(16)}; nothing was written`);
      if (r.start > at) yield { zeros: Number(r.start - at) };
      yield { sameAsParent: Number(r.end - r.start) };
      at = r.end;
    }
  };
  for (const [i, s] of slices.entries()) {
    yield* upTo(s.start);
    // Slices lie in order inside the region: anything else would write other bytes than were read.
    if (s.start < at || s.end > end || s.start >= s.end) {
      throw new Error(`internal error: a slice of the memory log at 0x${s.start.toString(16)}-0x${s.end.toString(16)} is out of order in region 0x${start.toString(16)}-0x${end.toString(16)} (at 0x${at.toString(16)}); nothing was written`);
    }
    if (s.start > at) yield { zeros: Number(s.start - at) };
    let bytes = held.get(s.piece);
    if (bytes === undefined) {
      // The next piece in first-use order: this one.
      readUpTo(first + READ_AHEAD);
      bytes = await reads[first]!;
      reads[first++] = undefined;
      held.set(s.piece, bytes);
    }
    yield bytes.subarray(Number(s.start - s.piece.address), Number(s.end - s.piece.address));
    if (last.get(s.piece) === i) held.delete(s.piece);
    at = s.end;
  }
  yield* upTo(end);
  if (at < end) yield { zeros: Number(end - at) };
}
