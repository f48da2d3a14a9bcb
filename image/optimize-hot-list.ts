/**
 * The hot list (spec/FORMAT.md section 4.1): validation record type 9 with optional feature
 * bit 2 (`HOT_LIST`), the chunks a restore touches first, in the order it touches them, as runs
 * of `u64 first chunk, u32 count`. Written by {@link encodeHotList} (image/optimize.ts from an
 * access profile) and checked at open by {@link checkHotList}: a reader that knows the record
 * refuses a broken one with CORRUPT_VALIDATION, as it does any other broken record. The bytes
 * restored never depend on the list; it only orders fetching.
 */
import { CrimgError } from '../format/errors.js';
import type { Validation } from '../format/validation.js';

/** Validation record type of the hot list. */
export const HOT_LIST_RECORD = 9;
/** Optional feature bit 2: the validation block holds a hot list. */
export const OPTIONAL_HOT_LIST = 1n << 2n;
/** Bytes of one run: u64 first chunk, u32 count. */
export const HOT_RUN_SIZE = 12;

/**
 * The payload of a hot list naming `chunks` in this order: consecutive ascending numbers make
 * one run. `chunks` must be distinct non-negative integers (optimizeImage checks them).
 */
export function encodeHotList(chunks: readonly number[]): Uint8Array {
  const runs: [number, number][] = [];
  for (const c of chunks) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === c && last[1] < 0xffffffff) last[1]++;
    else runs.push([c, 1]);
  }
  const out = new Uint8Array(runs.length * HOT_RUN_SIZE);
  const dv = new DataView(out.buffer);
  runs.forEach(([first, count], k) => {
    dv.setBigUint64(k * HOT_RUN_SIZE, BigInt(first), true);
    dv.setUint32(k * HOT_RUN_SIZE + 8, count, true);
  });
  return out;
}

/**
 * Section 4.1 at open: optional feature bit 2 is set if and only if the block holds a type 9
 * record, there is at most one, its payload is a non-empty multiple of 12 bytes, every count is
 * at least 1, every named chunk is below `chunkCount`, and no chunk is named twice. Runs are
 * checked sorted by their first chunk (at most 1 MiB / 12 of them: the block's limit), so the
 * check allocates by the payload, never by the chunk count.
 * @param blockOffset file offset of the validation block, for messages.
 * @throws CrimgError CORRUPT_VALIDATION naming the rule and the fix.
 */
export function checkHotList(optionalFeatures: bigint, validation: Validation, chunkCount: bigint, blockOffset: number): void {
  const records = validation.skipped.filter((r) => r.type === HOT_LIST_RECORD);
  const bit = (optionalFeatures & OPTIONAL_HOT_LIST) !== 0n;
  const at = `validation block at offset ${blockOffset}`;
  const bad = (what: string): never => {
    throw new CrimgError('CORRUPT_VALIDATION', `${at}: ${what}`, { offset: blockOffset, hint: 'the hot list only orders fetching: rewrite the image (crimg convert) to drop it, or crimg optimize to record a good one' });
  };
  if (records.length > 1) bad(`${records.length} hot-list records (type 9), at most one is allowed (section 4.1)`);
  if (bit !== (records.length === 1)) {
    bad(bit ? 'the header has optional feature HOT_LIST (bit 2) but the block has no hot-list record (type 9)' : 'the block has a hot-list record (type 9) but the header lacks optional feature HOT_LIST (bit 2)');
  }
  if (records.length === 0) return;
  const p = records[0]!.payload;
  if (p.length === 0 || p.length % HOT_RUN_SIZE !== 0) bad(`the hot-list record's payload is ${p.length} bytes, not a non-zero multiple of ${HOT_RUN_SIZE} (u64 first chunk, u32 count per run)`);
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const runs: [bigint, bigint][] = [];
  for (let o = 0; o < p.length; o += HOT_RUN_SIZE) {
    const first = dv.getBigUint64(o, true);
    const count = BigInt(dv.getUint32(o + 8, true));
    const k = o / HOT_RUN_SIZE;
    if (count === 0n) bad(`hot-list run ${k} has count 0 (every count is at least 1)`);
    if (first + count > chunkCount) bad(`hot-list run ${k} names chunks ${first} to ${first + count - 1n}, beyond the image's ${chunkCount} chunks`);
    runs.push([first, count]);
  }
  runs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let k = 1; k < runs.length; k++) {
    const [pf, pc] = runs[k - 1]!;
    if (runs[k]![0] < pf + pc) bad(`the hot list names chunk ${runs[k]![0]} twice (each chunk at most once)`);
  }
}

/**
 * The chunk numbers of the image's hot list, in order (empty without one). The list was
 * checked at open ({@link checkHotList}); a list that does not decode here (a Validation built
 * by hand) is treated as absent, since it only orders fetching.
 */
export function hotListChunks(validation: Validation, chunkCount: number): number[] {
  const rec = validation.skipped.find((r) => r.type === HOT_LIST_RECORD);
  if (!rec || rec.payload.length % HOT_RUN_SIZE !== 0) return [];
  const dv = new DataView(rec.payload.buffer, rec.payload.byteOffset, rec.payload.byteLength);
  const out: number[] = [];
  for (let o = 0; o < rec.payload.length; o += HOT_RUN_SIZE) {
    const first = dv.getBigUint64(o, true);
    const n = dv.getUint32(o + 8, true);
    if (n === 0 || first + BigInt(n) > BigInt(chunkCount)) return [];
    for (let k = 0; k < n; k++) out.push(Number(first) + k);
  }
  return out;
}
