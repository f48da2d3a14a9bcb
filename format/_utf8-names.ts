/**
 * The string table's UTF-8 judgement for format/region-table.ts (spec/FORMAT.md section 9): a
 * table that is not UTF-8 as a whole gets a copy with every byte outside a well-formed character
 * made "?", and counts of such bytes per block, so that any name (a slice) is judged in O(1).
 * Pure.
 */

/** log2 of the block size over which bytes outside characters are counted. */
export const BAD_BLOCK = 4;

export const isContinuation = (b: number): boolean => (b & 0xc0) === 0x80;

/**
 * A copy of a string table that is not UTF-8 as a whole, with every byte that is not part of a
 * well-formed character (Unicode table 3-7, what a fatal TextDecoder accepts) made "?", and the
 * count of such bytes before each 16-byte block (a quarter of the table's size). One pass: O(table).
 */
export function sanitize(s: Uint8Array): { clean: Uint8Array; badBlocks: Uint32Array } {
  const clean = s.slice();
  for (let p = 0; p < s.length;) {
    const len = sequenceLength(s, p);
    if (len === 0) clean[p++] = 0x3f;
    else p += len;
  }
  const size = 1 << BAD_BLOCK;
  const badBlocks = new Uint32Array((s.length >> BAD_BLOCK) + 2);
  let bad = 0;
  for (let b = 0; b <= s.length + size; b += size) { // one block past the end, for the look-ahead above
    badBlocks[b >> BAD_BLOCK] = bad;
    const end = Math.min(s.length, b + size);
    for (let k = b; k < end; k++) if (s[k] !== clean[k]) bad++;
  }
  return { clean, badBlocks };
}

/** The length of the well-formed UTF-8 character at `s[p]`, or 0 (Unicode table 3-7). */
function sequenceLength(s: Uint8Array, p: number): number {
  const b0 = s[p]!;
  if (b0 < 0x80) return 1;
  let len: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) len = 2;
  else if (b0 >= 0xe0 && b0 <= 0xef) { len = 3; if (b0 === 0xe0) lo = 0xa0; else if (b0 === 0xed) hi = 0x9f; }
  else if (b0 >= 0xf0 && b0 <= 0xf4) { len = 4; if (b0 === 0xf0) lo = 0x90; else if (b0 === 0xf4) hi = 0x8f; }
  else return 0;
  if (p + len > s.length) return 0;
  const b1 = s[p + 1]!;
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k < len; k++) {
    const x = s[p + k]!;
    if (x < 0x80 || x > 0xbf) return 0;
  }
  return len;
}

