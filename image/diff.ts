/**
 * Image diff: regions added, removed or changed (length, protection, kind, name), and the page
 * ranges whose bytes differ in the regions both images have at the same address. Memory is
 * compared in bounded pieces (two per image at a time), never a whole region at once, and runs
 * of zero chunks by their lengths (image/segments.ts).
 */
import type { Region } from '../format/index-table.js';
import { isZero } from '../codec/chunk.js';
import { DEFAULT_PIECE_SIZE, type ImageReader } from './reader.js';
import { isZeroRun, readSegments, type Segment, type SegmentedImage } from './segments.js';
import { isParentOf, ownRanges } from './_parent-diff.js';

/** A region field that {@link diffImages} compares. */
export type RegionField = 'length' | 'prot' | 'kind' | 'name';

/** A region both images have at one address, with fields that differ. */
export interface RegionChange {
  address: bigint;
  a: Region;
  b: Region;
  /** In the order length, prot, kind, name. */
  fields: RegionField[];
}

/** A half-open address range `[start, end)`. */
export interface AddressRange {
  start: bigint;
  end: bigint;
}

/** The differing memory of a region both images hold data for at one address. */
export interface MemoryDifference {
  a: Region;
  b: Region;
  /** Differing pages merged into ranges, ascending; the last may end inside a page (a region's end). */
  ranges: AddressRange[];
}

/** The result of {@link diffImages}. */
export interface ImageDiff {
  /** True when no region was added, removed or changed and no memory differs. */
  identical: boolean;
  /** The page size memory was compared in. */
  pageSize: number;
  /** Regions of `b` at an address where `a` has none, in `b`'s table order. */
  added: Region[];
  /** Regions of `a` at an address where `b` has none, in `a`'s table order. */
  removed: Region[];
  /** Regions at the same address whose fields differ, in `a`'s table order. */
  changed: RegionChange[];
  /** Per common data region (in `a`'s order), the ranges of its first min(lengths) bytes that differ. */
  memory: MemoryDifference[];
}

export interface DiffOptions {
  /** Compare memory in pages of this many bytes; default the larger of the two page sizes. */
  pageSize?: number;
  /** Bytes read at once from each image; a multiple of the page size, default 8 MiB (or one page if larger). */
  pieceSize?: number;
}

/** What diffImages needs of an open image; `ImageReader` and the package's `Image` provide it. */
export type DiffableImage = SegmentedImage & Pick<ImageReader, 'regionCount' | 'region' | 'pageSize'>;

/**
 * Compares two images: their region tables by start address, then the bytes of each region
 * both hold data for, page by page.
 * @throws RangeError for a page or piece size that is not a positive integer, or a piece size
 *   that is not a multiple of the page size; CrimgError KEY_REQUIRED, CORRUPT_CHUNK,
 *   AUTH_FAILED... as reading either image does.
 * @example
 * const d = await diffImages(before, after);
 * for (const m of d.memory) for (const r of m.ranges) console.log(r.start, r.end);
 */
export async function diffImages(a: DiffableImage, b: DiffableImage, options: DiffOptions = {}): Promise<ImageDiff> {
  const { pageSize, pieceSize } = checkSizes(a, b, options);
  // A child against its own parent (section 8.3): IN_PARENT chunks are equal by construction,
  // so only the child's stored chunks are read (`diff CHILD PARENT` costs the change, not the image).
  const child = (await isParentOf(b, a)) ? a : (await isParentOf(a, b)) ? b : null;
  const byChunks = child !== null && child.chunkSize % pageSize === 0;
  const out: ImageDiff = { identical: true, pageSize, added: [], removed: [], changed: [], memory: [] };
  // Both tables are sorted by address (section 8.1): one merge walk over them, a region of
  // each made at a time from the sections in place (not two Maps of every region: 2^20
  // regions each were about 600 MiB).
  const na = a.regionCount;
  const nb = b.regionCount;
  let i = 0;
  let j = 0;
  let ra = i < na ? a.region(i) : undefined;
  let rb = j < nb ? b.region(j) : undefined;
  while (ra || rb) {
    if (!ra || (rb && rb.address < ra.address)) {
      out.added.push(rb!);
      rb = ++j < nb ? b.region(j) : undefined;
      continue;
    }
    if (!rb || ra.address < rb.address) {
      out.removed.push(ra);
      ra = ++i < na ? a.region(i) : undefined;
      continue;
    }
    const fields = changedFields(ra, rb);
    if (fields.length) out.changed.push({ address: ra.address, a: ra, b: rb, fields });
    if (!ra.isGap && !rb.isGap) {
      const common = ra.length < rb.length ? ra.length : rb.length;
      const ranges = byChunks
        ? await differingOwnPages(a, b, child as ImageReader, child === a ? ra : rb, common, pageSize, pieceSize)
        : await differingPages(a, b, ra.address, common, pageSize, pieceSize);
      if (ranges.length) out.memory.push({ a: ra, b: rb, ranges });
    }
    ra = ++i < na ? a.region(i) : undefined;
    rb = ++j < nb ? b.region(j) : undefined;
  }
  out.identical = !out.added.length && !out.removed.length && !out.changed.length && !out.memory.length;
  return out;
}

function checkSizes(a: DiffableImage, b: DiffableImage, options: DiffOptions): { pageSize: number; pieceSize: number } {
  const pageSize = options.pageSize ?? Math.max(a.pageSize, b.pageSize);
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw new RangeError(`expected pageSize as a positive integer, got ${pageSize}`);
  const pieceSize = options.pieceSize ?? Math.ceil(DEFAULT_PIECE_SIZE / pageSize) * pageSize;
  if (!Number.isSafeInteger(pieceSize) || pieceSize < 1 || pieceSize % pageSize !== 0) {
    throw new RangeError(`expected pieceSize as a positive multiple of the page size ${pageSize}, got ${pieceSize}`);
  }
  return { pageSize, pieceSize };
}

function changedFields(ra: Region, rb: Region): RegionField[] {
  const fields: RegionField[] = [];
  if (ra.length !== rb.length) fields.push('length');
  if (ra.prot !== rb.prot) fields.push('prot');
  if (ra.kind !== rb.kind) fields.push('kind');
  if (ra.name !== rb.name) fields.push('name');
  return fields;
}

/** {@link differingPages} over the ranges the child holds itself, the page ranges merged. */
async function differingOwnPages(a: DiffableImage, b: DiffableImage, child: ImageReader, r: Region, length: bigint, pageSize: number, pieceSize: number): Promise<AddressRange[]> {
  const out: AddressRange[] = [];
  for (const own of await ownRanges(child, r, length)) {
    for (const x of await differingPages(a, b, own.start, own.length, pageSize, pieceSize)) {
      const last = out[out.length - 1];
      if (last && last.end >= x.start) { if (x.end > last.end) last.end = x.end; } else out.push(x);
    }
  }
  return out;
}

/** A stream of segments with a cursor into its current one. */
class Cursor {
  private seg: Segment | null = null;
  /** Bytes of the current segment already compared. */
  private used = 0;

  constructor(private readonly it: AsyncGenerator<Segment>) {}

  /** The current segment and what is left of it, or null at the end. */
  async current(): Promise<{ seg: Segment; left: number } | null> {
    while (this.seg === null || this.used === segLength(this.seg)) {
      const n = await this.it.next();
      if (n.done) return null;
      this.seg = n.value;
      this.used = 0;
    }
    return { seg: this.seg, left: segLength(this.seg) - this.used };
  }

  /** The next `n` bytes of the current segment (not a zero run). */
  bytes(n: number): Buffer {
    return (this.seg as Buffer).subarray(this.used, this.used + n);
  }

  advance(n: number): void {
    this.used += n;
  }

  close(): Promise<unknown> {
    return this.it.return(undefined);
  }
}

function segLength(s: Segment): number {
  return isZeroRun(s) ? s.zeros : s.length;
}

/**
 * Differing pages of `[address, address + length)`, as merged ranges. The two images are read
 * as segments (image/segments.ts): where both have a run of zero chunks nothing is read or
 * compared, so two terabyte zero runs compare equal in one step; a zero run against bytes
 * checks the bytes for zeros.
 */
async function differingPages(a: DiffableImage, b: DiffableImage, address: bigint, length: bigint, pageSize: number, pieceSize: number): Promise<AddressRange[]> {
  const ranges: AddressRange[] = [];
  const regionEnd = address + length;
  const page = BigInt(pageSize);
  /** Marks the pages holding [start, end) (offsets from `address`) as differing. */
  const mark = (start: bigint, end: bigint): void => {
    const from = address + (start / page) * page;
    let to = address + ((end + page - 1n) / page) * page;
    if (to > regionEnd) to = regionEnd;
    const last = ranges[ranges.length - 1];
    if (last && last.end >= from) { if (to > last.end) last.end = to; } else ranges.push({ start: from, end: to });
  };
  const ca = new Cursor(readSegments(a, address, length, { pieceSize }));
  const cb = new Cursor(readSegments(b, address, length, { pieceSize }));
  try {
    let at = 0n; // offset from `address`
    for (;;) {
      const [x, y] = await Promise.all([ca.current(), cb.current()]);
      if (!x || !y) break;
      const n = Math.min(x.left, y.left);
      const zx = isZeroRun(x.seg);
      const zy = isZeroRun(y.seg);
      if (!(zx && zy)) {
        // Bytes against bytes, or bytes against a zero run: compared page by page where they differ.
        const bx = zx ? null : ca.bytes(n);
        const by = zy ? null : cb.bytes(n);
        comparePages(bx, by, at, n, pageSize, mark);
      }
      ca.advance(n);
      cb.advance(n);
      at += BigInt(n);
    }
  } finally {
    // One stream may have failed while the other still reads ahead: let both finish.
    await Promise.allSettled([ca.close(), cb.close()]);
  }
  return ranges;
}

/**
 * Compares `n` bytes at offset `at` of two pieces (null: zeros), marking differing pages; a
 * whole stretch that agrees costs one comparison. Pages are counted from the region's start.
 */
function comparePages(x: Buffer | null, y: Buffer | null, at: bigint, n: number, pageSize: number, mark: (start: bigint, end: bigint) => void): void {
  const same = (from: number, to: number): boolean => {
    if (x && y) return x.subarray(from, to).equals(y.subarray(from, to));
    return isZero((x ?? y)!.subarray(from, to));
  };
  if (same(0, n)) return;
  // Stretches ending at page boundaries of the region: the first may start inside a page.
  const into = Number(at % BigInt(pageSize));
  for (let o = 0; o < n;) {
    const end = Math.min(n, o + pageSize - ((into + o) % pageSize));
    if (!same(o, end)) mark(at + BigInt(o), at + BigInt(end));
    o = end;
  }
}
