/**
 * format/region-totals.ts: the first read's check of every region's totals against the chunk
 * table (spec/FORMAT.md section 8.1, stage read). Its word path (aligned pieces, the common case)
 * and its DataView path (any alignment) must accept the same tables and refuse the same ones with
 * the same code, message and offset; and so must the native addon's fast engine (checkRegionTotals
 * in native-mmap/src/region_check_js.cc), which only says how far the regions agree.
 */
import { checkRegionTotals } from '../format/region-totals.js';
import { CHUNK_RECORD_SIZE, CHUNK_ZERO, CHUNK_RAW, REGION_RECORD_SIZE } from '../format/constants.js';
import { nativeAddon } from '../native-mmap/index.js';
import { prng } from './helpers.js';

const native = nativeAddon()!;

/** Region records (64 bytes each) over a chunk table (24 bytes each) with consistent totals. */
function tables(seed: number): { chunks: Uint8Array; regions: Uint8Array; regionCount: number } {
  const rnd = prng(seed);
  const regionCount = 40;
  const counts = Array.from({ length: regionCount }, () => Math.floor(rnd() * 6)); // gaps (0) too
  const chunkCount = counts.reduce((a, b) => a + b, 0);
  const chunks = new Uint8Array(chunkCount * CHUNK_RECORD_SIZE);
  const cv = new DataView(chunks.buffer);
  const regions = new Uint8Array(regionCount * REGION_RECORD_SIZE);
  const rv = new DataView(regions.buffer);
  let n = 0;
  counts.forEach((count, i) => {
    let stored = 0;
    let zeros = 0;
    for (let j = 0; j < count; j++, n++) {
      const zero = rnd() < 0.3;
      const length = zero ? 0 : 1 + Math.floor(rnd() * 70000);
      cv.setUint32(n * CHUNK_RECORD_SIZE + 8, length, true);
      cv.setUint16(n * CHUNK_RECORD_SIZE + 12, zero ? CHUNK_ZERO : CHUNK_RAW, true);
      if (zero) zeros++;
      else stored += length;
    }
    const o = i * REGION_RECORD_SIZE;
    rv.setBigUint64(o + 16, BigInt(n - count), true);
    rv.setBigUint64(o + 24, BigInt(count), true);
    rv.setBigUint64(o + 32, BigInt(stored), true);
    rv.setBigUint64(o + 40, BigInt(zeros), true);
  });
  return { chunks, regions, regionCount };
}

/** The same bytes at an odd offset: no 32-bit view is possible, so the DataView path runs. */
function unaligned(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 1).subarray(1);
  out.set(bytes);
  return out;
}

/** What checkRegionTotals throws for these tables (null when it accepts them). */
function outcome(chunks: Uint8Array, regions: Uint8Array, regionCount: number, fast: typeof native | null = null): unknown {
  try {
    checkRegionTotals(chunks, regions, { regionCount, base: 4096, first: 7 }, fast);
    return null;
  } catch (e) {
    const err = e as { code?: string; message: string; offset?: number; region?: number };
    return { code: err.code, message: err.message, offset: err.offset, region: err.region };
  }
}

test('consistent tables pass on both paths', () => {
  for (let seed = 1; seed <= 5; seed++) {
    const { chunks, regions, regionCount } = tables(seed);
    expect(outcome(chunks, regions, regionCount)).toBeNull();
    expect(outcome(unaligned(chunks), unaligned(regions), regionCount)).toBeNull();
    expect(outcome(chunks, regions, regionCount, native)).toBeNull();
    expect(native.checkRegionTotals(chunks, regions, regionCount, CHUNK_ZERO)).toBe(regionCount);
  }
});

test.each([
  ['stored bytes one more', 32, 1n],
  ['stored bytes high word', 36, 1n],
  ['zero chunks one more', 40, 1n],
  ['zero chunks high word', 44, 1n],
])('%s: both paths refuse with the same code, message, offset and region', (_what, field, delta) => {
  const { chunks, regions, regionCount } = tables(11);
  for (const victim of [0, 17, regionCount - 1]) {
    const bad = regions.slice();
    const v = new DataView(bad.buffer);
    const at = victim * REGION_RECORD_SIZE + field;
    if (field % 8 === 0) v.setBigUint64(at, v.getBigUint64(at, true) + delta, true);
    else v.setUint32(at, v.getUint32(at, true) + Number(delta), true);
    const fast = outcome(chunks, bad, regionCount);
    const slow = outcome(unaligned(chunks), unaligned(bad), regionCount);
    expect(fast).toMatchObject({ code: 'CORRUPT_INDEX', region: 7 + victim, offset: 4096 + (7 + victim) * REGION_RECORD_SIZE + (field < 40 ? 32 : 40) });
    expect(slow).toEqual(fast);
    expect(outcome(chunks, bad, regionCount, native)).toEqual(fast);
    expect(native.checkRegionTotals(chunks, bad, regionCount, CHUNK_ZERO)).toBe(victim); // it stops where the fault is
  }
});

test('3000 damaged tables (chunk lengths, flags, region totals and chunk ranges): the native engine stops exactly where the portable code first refuses', () => {
  const rnd = prng(2024);
  let refused = 0;
  for (let k = 0; k < 3000; k++) {
    const { chunks, regions, regionCount } = tables(100 + (k % 50));
    const cv = new DataView(chunks.buffer);
    const rv = new DataView(regions.buffer);
    const damage = 1 + Math.floor(rnd() * 2);
    for (let m = 0; m < damage; m++) {
      const what = rnd();
      if (what < 0.3 && chunks.length > 0) {
        const n = Math.floor(rnd() * (chunks.length / CHUNK_RECORD_SIZE));
        cv.setUint32(n * CHUNK_RECORD_SIZE + 8, [0, 1, 0xffffffff, cv.getUint32(n * CHUNK_RECORD_SIZE + 8, true) + 1][Math.floor(rnd() * 4)]!, true);
      } else if (what < 0.5 && chunks.length > 0) {
        const n = Math.floor(rnd() * (chunks.length / CHUNK_RECORD_SIZE));
        cv.setUint16(n * CHUNK_RECORD_SIZE + 12, Math.floor(rnd() * 65536), true);
      } else {
        const i = Math.floor(rnd() * regionCount);
        const field = [32, 36, 40, 44][Math.floor(rnd() * 4)]!;
        const cur = rv.getUint32(i * REGION_RECORD_SIZE + field, true);
        rv.setUint32(i * REGION_RECORD_SIZE + field, [cur + 1, cur - 1 >>> 0, 0, 0xffffffff][Math.floor(rnd() * 4)]! >>> 0, true);
      }
    }
    const portable = outcome(chunks, regions, regionCount);
    expect({ k, native: outcome(chunks, regions, regionCount, native) }).toEqual({ k, native: portable });
    const stop = native.checkRegionTotals(chunks, regions, regionCount, CHUNK_ZERO);
    expect({ k, stop }).toEqual({ k, stop: portable === null ? regionCount : (portable as { region: number }).region - 7 });
    if (portable !== null) refused++;
  }
  expect(refused).toBeGreaterThan(1500);
});

test('regions whose chunk ranges leave the table: the native engine stops there and decides nothing', () => {
  const { chunks, regions, regionCount } = tables(3);
  const bad = regions.slice();
  const v = new DataView(bad.buffer);
  v.setBigUint64(5 * REGION_RECORD_SIZE + 16, 1n << 60n, true); // first chunk far past the table
  expect(native.checkRegionTotals(chunks, bad, regionCount, CHUNK_ZERO)).toBe(5);
  v.setBigUint64(5 * REGION_RECORD_SIZE + 16, 0n, true);
  v.setBigUint64(5 * REGION_RECORD_SIZE + 24, (1n << 64n) - 1n, true); // a count that wraps
  expect(native.checkRegionTotals(chunks, bad, regionCount, CHUNK_ZERO)).toBe(5);
  // Bad arguments are errors (the addon's RangeError is another realm's under jest: matched by message).
  expect(() => native.checkRegionTotals(chunks, bad, regionCount + 1, CHUNK_ZERO)).toThrow(/expected count to be at most 40, got 41/);
  expect(() => native.checkRegionTotals(chunks, bad, 1, 0)).toThrow(/zeroFlag/);
});

test('stored bytes past 2^53 - 1, even when the record holds their exact sum: refused by both (the native engine stops there)', () => {
  // One region of 2^21 + 2 chunks of 0xffffffff bytes each: 9,007,207,842,578,430 bytes, past 2^53 - 1.
  const n = (1 << 21) + 2;
  const chunks = new Uint8Array(n * CHUNK_RECORD_SIZE);
  const cv = new DataView(chunks.buffer);
  for (let i = 0; i < n; i++) {
    cv.setUint32(i * CHUNK_RECORD_SIZE + 8, 0xffffffff, true);
    cv.setUint16(i * CHUNK_RECORD_SIZE + 12, CHUNK_RAW, true);
  }
  const regions = new Uint8Array(REGION_RECORD_SIZE);
  const rv = new DataView(regions.buffer);
  rv.setBigUint64(24, BigInt(n), true);
  rv.setBigUint64(32, BigInt(n) * 0xffffffffn, true); // the exact sum
  const portable = outcome(chunks, regions, 1);
  expect(portable).toMatchObject({ code: 'CORRUPT_INDEX', region: 7 });
  expect(outcome(chunks, regions, 1, native)).toEqual(portable);
  expect(native.checkRegionTotals(chunks, regions, 1, CHUNK_ZERO)).toBe(0);
});
