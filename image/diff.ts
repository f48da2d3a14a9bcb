/**
 * Image diff: regions added, removed or changed (length, protection, kind, name), and the page
 * ranges whose bytes differ in the regions both images have at the same address. Memory is
 * compared in bounded pieces (two per image at a time), never a whole region at once.
 */
import type { Region } from '../format/index-table.js';
import { DEFAULT_PIECE_SIZE, type ImageReader } from './reader.js';

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
export type DiffableImage = Pick<ImageReader, 'regions' | 'pageSize' | 'readStream'>;

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
  const out: ImageDiff = { identical: true, pageSize, added: [], removed: [], changed: [], memory: [] };
  const inA = new Map(a.regions.map((r) => [r.address, r]));
  const inB = new Map(b.regions.map((r) => [r.address, r]));
  for (const r of b.regions) if (!inA.has(r.address)) out.added.push(r);
  for (const ra of a.regions) {
    const rb = inB.get(ra.address);
    if (!rb) { out.removed.push(ra); continue; }
    const fields = changedFields(ra, rb);
    if (fields.length) out.changed.push({ address: ra.address, a: ra, b: rb, fields });
    if (ra.isGap || rb.isGap) continue;
    const common = ra.length < rb.length ? ra.length : rb.length;
    const ranges = await differingPages(a, b, ra.address, common, pageSize, pieceSize);
    if (ranges.length) out.memory.push({ a: ra, b: rb, ranges });
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

/** Differing pages of `[address, address + length)`, as merged ranges. */
async function differingPages(a: DiffableImage, b: DiffableImage, address: bigint, length: bigint, pageSize: number, pieceSize: number): Promise<AddressRange[]> {
  const ranges: AddressRange[] = [];
  const add = (start: bigint, end: bigint): void => {
    const last = ranges[ranges.length - 1];
    if (last && last.end === start) last.end = end;
    else ranges.push({ start, end });
  };
  const pa = a.readStream(address, length, { pieceSize });
  const pb = b.readStream(address, length, { pieceSize });
  try {
    let at = address;
    for (;;) {
      const [x, y] = await Promise.all([pa.next(), pb.next()]);
      if (x.done || y.done) break;
      // Pieces are multiples of the page size, so pages line up with `at`.
      for (let o = 0; o < x.value.length; o += pageSize) {
        const end = Math.min(o + pageSize, x.value.length);
        if (!x.value.subarray(o, end).equals(y.value.subarray(o, end))) add(at + BigInt(o), at + BigInt(end));
      }
      at += BigInt(x.value.length);
    }
  } finally {
    // One stream may have failed while the other still reads ahead: let both finish.
    await Promise.allSettled([pa.return(undefined), pb.return(undefined)]);
  }
  return ranges;
}
