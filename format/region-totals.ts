/**
 * Section 8.1's region totals against the chunk table (spec/FORMAT.md sections 5.3, 8.1 and
 * 12): each region's `stored bytes` is the sum of its chunks' stored lengths and its `zero
 * chunks` the number of its `ZERO` chunks. Checked when the chunk table is read (stage `read`),
 * in one pass over the records: a table that disagrees with the regions is not used. Pure.
 */
import { CHUNK_RECORD_SIZE, CHUNK_ZERO, REGION_RECORD_SIZE } from './constants.js';
import { view } from './bytes.js';
import { CrimgError } from './errors.js';
import { CHUNK_RECORD, REGION_RECORD, offsetOf } from './fields.js';

const TWO32 = 4294967296;
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
const R_FIRST = offsetOf(REGION_RECORD, 'firstChunk');
const R_COUNT = offsetOf(REGION_RECORD, 'chunkCount');
const R_STORED = offsetOf(REGION_RECORD, 'storedBytes');
const R_ZEROS = offsetOf(REGION_RECORD, 'zeroChunks');
const C_LENGTH = offsetOf(CHUNK_RECORD, 'storedLength');
const C_FLAGS = offsetOf(CHUNK_RECORD, 'flags');

/**
 * A fast engine for the totals (the native addon's, passed in by image/): how many of the first
 * `count` region records agree with their chunk records (chunks with flag `zeroFlag` counted
 * as zero chunks). It decides no outcome: the region it stops at is checked here.
 */
export interface TotalsChecker {
  checkRegionTotals(chunks: Uint8Array, regions: Uint8Array, count: number, zeroFlag: number): number;
}

/** Where the region section lies, for messages. */
export interface RegionTotalsContext {
  /** Regions in `regions` (the footer's region count). */
  regionCount: number;
  /** File offset of the region section. */
  base: number;
  /** The number of the first record in `regions` (a piece of the section's records); default 0. */
  first?: number;
}

/**
 * Checks every region's stored bytes and zero chunks against the chunk records. The region
 * records were checked at open (first chunk and chunk count consistent with the table), so
 * every region's records lie inside `chunks`.
 * @param chunks the chunk table's plain bytes (24-byte records).
 * @param regions the region section's plain bytes (its 64-byte records first).
 * @throws CrimgError CORRUPT_INDEX naming the first region that disagrees.
 * @example
 * checkRegionTotals(chunkTablePlain, regionSectionPlain, { regionCount: 3, base: 8192 });
 */
export function checkRegionTotals(chunks: Uint8Array, regions: Uint8Array, c: RegionTotalsContext, fast: TotalsChecker | null = null): void {
  if (fast !== null) {
    // The fast engine says how many regions agree; the one it stops at is checked here (named, or passed).
    for (let k = 0; k < c.regionCount; k++) {
      k += fast.checkRegionTotals(chunks, regions.subarray(k * REGION_RECORD_SIZE), c.regionCount - k, CHUNK_ZERO);
      if (k < c.regionCount) regionsByView(chunks, regions.subarray(k * REGION_RECORD_SIZE, (k + 1) * REGION_RECORD_SIZE), { ...c, regionCount: 1, first: (c.first ?? 0) + k });
    }
    return;
  }
  const words = chunkWords(chunks);
  const rw = words ? chunkWords(regions) : null;
  if (words === null || rw === null) {
    regionsByView(chunks, regions, c);
    return;
  }
  // The common case in words, with no DataView call per field (2^20 regions: 45-77 ms in
  // regionsByView, ISSUE 14's 100 ms for a first read); a region that disagrees is checked
  // again by regionsByView, which names it.
  const W = CHUNK_RECORD_SIZE / 4;
  const RW = REGION_RECORD_SIZE / 4;
  for (let k = 0, o = 0; k < c.regionCount; k++, o += RW) {
    const first = rw[o + R_FIRST / 4 + 1]! * TWO32 + rw[o + R_FIRST / 4]!;
    const end = first + rw[o + R_COUNT / 4 + 1]! * TWO32 + rw[o + R_COUNT / 4]!;
    let stored = 0;
    let zeros = 0;
    for (let n = first * W + C_FLAGS / 4, e = end * W; n < e; n += W) {
      if (words[n]! & CHUNK_ZERO) zeros++;
      else stored += words[n - C_FLAGS / 4 + C_LENGTH / 4]!;
    }
    if (stored <= Number.MAX_SAFE_INTEGER && rw[o + R_STORED / 4]! === stored % TWO32
      && rw[o + R_STORED / 4 + 1]! === Math.floor(stored / TWO32)
      && rw[o + R_ZEROS / 4]! === zeros && rw[o + R_ZEROS / 4 + 1]! === 0) continue;
    const at = k * REGION_RECORD_SIZE;
    regionsByView(chunks, regions.subarray(at, at + REGION_RECORD_SIZE), { ...c, regionCount: 1, first: (c.first ?? 0) + k });
  }
}

/** {@link checkRegionTotals} by DataView: any alignment and byte order; throws naming the region. */
function regionsByView(chunks: Uint8Array, regions: Uint8Array, c: RegionTotalsContext): void {
  const rv = view(regions);
  const words = chunkWords(chunks);
  const cv = words ? null : view(chunks);
  const W = CHUNK_RECORD_SIZE / 4;
  const from = c.first ?? 0;
  for (let k = 0; k < c.regionCount; k++) {
    const i = from + k; // the region's number, for messages
    const o = k * REGION_RECORD_SIZE;
    const at = i * REGION_RECORD_SIZE; // its offset in the section
    const first = rv.getUint32(o + R_FIRST + 4, true) * TWO32 + rv.getUint32(o + R_FIRST, true);
    const count = rv.getUint32(o + R_COUNT + 4, true) * TWO32 + rv.getUint32(o + R_COUNT, true);
    let stored = 0;
    let zeros = 0;
    if (words) {
      for (let n = first, k = first * W; n < first + count; n++, k += W) {
        if (words[k + C_FLAGS / 4]! & CHUNK_ZERO) zeros++;
        else stored += words[k + C_LENGTH / 4]!;
      }
    } else {
      for (let n = first; n < first + count; n++) {
        const r = n * CHUNK_RECORD_SIZE;
        if (cv!.getUint16(r + C_FLAGS, true) & CHUNK_ZERO) zeros++;
        else stored += cv!.getUint32(r + C_LENGTH, true);
      }
    }
    // Exact below 2^53: a region's stored bytes lie in the file, so a larger sum never matches.
    const storedOk = stored <= Number.MAX_SAFE_INTEGER
      && rv.getUint32(o + R_STORED, true) === stored % TWO32
      && rv.getUint32(o + R_STORED + 4, true) === Math.floor(stored / TWO32);
    const zerosOk = rv.getUint32(o + R_ZEROS, true) === zeros && rv.getUint32(o + R_ZEROS + 4, true) === 0;
    if (!storedOk) {
      throw new CrimgError('CORRUPT_INDEX', `region ${i} records ${rv.getBigUint64(o + R_STORED, true)} stored bytes, its chunks hold ${stored}`, {
        offset: c.base + at + R_STORED, region: i, hint: 'the index is damaged; restore the image from a good copy',
      });
    }
    if (!zerosOk) {
      throw new CrimgError('CORRUPT_INDEX', `region ${i} records ${rv.getBigUint64(o + R_ZEROS, true)} zero chunks, its chunks have ${zeros}`, {
        offset: c.base + at + R_ZEROS, region: i, hint: 'the index is damaged; restore the image from a good copy',
      });
    }
  }
}

/** The records as little-endian 32-bit words when they can be viewed so (aligned, little-endian host). */
function chunkWords(records: Uint8Array): Uint32Array | null {
  if (!LITTLE_ENDIAN || records.byteOffset % 4 !== 0) return null;
  return new Uint32Array(records.buffer, records.byteOffset, Math.floor(records.byteLength / 4));
}
