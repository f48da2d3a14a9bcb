/**
 * The present ranges of a file range ({@link FileRange.present} in image/_file-range.ts): which
 * bytes of each block hold data and must be read; the rest are zero chunks never read.
 */

/** Bytes of a file range that hold data (FileRange.present), relative to its position. */
export interface PresentRange {
  offset: number;
  length: number;
}

/** What FileRange.present takes: the ranges, or a function asked once per block. */
export type PresentInput = readonly PresentRange[] | ((offset: number, length: number) => readonly PresentRange[] | Promise<readonly PresentRange[]>);

/** A byte span [from, to) of a block. */
export type Span = [number, number];

/** The lookups a file range reads by. */
export interface PresentFinder {
  /** The present bytes of a block `[at, at + want)` as sorted [from, to) pairs relative to it. */
  presentIn: (at: number, want: number) => Span[] | Promise<Span[]>;
  /** With a present array: the offset of its first present byte at or after `at`, else the range's length. */
  nextPresent: ((at: number) => number) | null;
}

/**
 * The lookup of FileRange.present: the present bytes of a block `[at, at + want)` as
 * merged spans relative to it. An array is checked once here and searched per block; a
 * function's answers are checked per block.
 * @throws RangeError/TypeError on ranges out of order, unaligned or outside the range
 */
export function presentFinder(present: PresentInput, total: number, pageSize: number): PresentFinder {
  if (typeof present === 'function') {
    return { presentIn: async (at, want) => clip(checkRanges(await present(at, want), total, pageSize, false), at, want), nextPresent: null };
  }
  const ranges = checkRanges(present, total, pageSize, true);
  // The first range ending after `at` (binary search).
  const firstAfter = (at: number): number => {
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ranges[mid]![1] <= at) lo = mid + 1; else hi = mid;
    }
    return lo;
  };
  return {
    presentIn: (at, want) => {
      const meeting: Span[] = [];
      for (let i = firstAfter(at); i < ranges.length && ranges[i]![0] < at + want; i++) meeting.push(ranges[i]!);
      return clip(meeting, at, want);
    },
    nextPresent: (at) => {
      const i = firstAfter(at);
      return i < ranges.length ? Math.max(at, ranges[i]![0]) : total;
    },
  };
}

/**
 * Checks present ranges (ascending, not overlapping, page-aligned offsets and lengths, the
 * last may end at the range's end; with `bounded`, within the range) and returns them as
 * [from, to) pairs, empty ones dropped.
 */
function checkRanges(ranges: unknown, total: number, pageSize: number, bounded: boolean): Span[] {
  if (!Array.isArray(ranges)) throw new TypeError(`expected present ranges as an array of { offset, length }, got ${typeof ranges}`);
  const out: Span[] = [];
  let prevEnd = 0;
  for (const [i, r] of (ranges as unknown[]).entries()) {
    const { offset, length } = (r ?? {}) as Partial<PresentRange>;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset! < 0 || length! < 0) {
      throw new TypeError(`expected present range ${i} as { offset, length } of non-negative safe integers, got ${JSON.stringify(r)}`);
    }
    const from = offset!;
    const to = from + length!;
    if (length === 0) continue;
    if (from < prevEnd) throw new RangeError(`expected present ranges ascending without overlap: range ${i} at ${from} starts before ${prevEnd}`);
    if (from % pageSize !== 0 || (to % pageSize !== 0 && to < total)) {
      throw new RangeError(`expected present range ${i} (${from}, ${length} bytes) to start and end on pages of ${pageSize} bytes (or end at the range's end ${total})`);
    }
    if (bounded && to > total) throw new RangeError(`expected present range ${i} (${from}, ${length} bytes) within the range's ${total} bytes`);
    out.push([from, Math.min(to, total)]);
    prevEnd = to;
  }
  return out;
}

/** The parts of `ranges` within `[at, at + want)`, relative to `at`, adjacent ones merged. */
function clip(ranges: readonly Span[], at: number, want: number): Span[] {
  const out: Span[] = [];
  for (const [from, to] of ranges) {
    const a = Math.max(from, at) - at;
    const b = Math.min(to, at + want) - at;
    if (a >= b) continue;
    const last = out[out.length - 1];
    if (last && last[1] === a) last[1] = b; else out.push([a, b]);
  }
  return out;
}

/** The chunks of a block of `want` bytes that `present` meets, as merged chunk-aligned spans. */
export function chunkSpans(present: readonly Span[], want: number, cs: number): Span[] {
  const out: Span[] = [];
  for (const [a, b] of present) {
    const s = Math.floor(a / cs) * cs;
    const e = Math.min(Math.ceil(b / cs) * cs, want);
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e); else out.push([s, e]);
  }
  return out;
}

/** Zero-fills the bytes of `spans` that no `present` span covers (the absent pages of partly present chunks). */
export function zeroOutside(buf: Buffer, spans: readonly Span[], present: readonly Span[]): void {
  let i = 0;
  for (const [s, e] of spans) {
    let pos = s;
    while (i < present.length && present[i]![0] < e) {
      const [a, b] = present[i]!;
      if (a > pos) buf.fill(0, pos, a);
      pos = Math.max(pos, b);
      i++;
    }
    if (pos < e) buf.fill(0, pos, e);
  }
}
