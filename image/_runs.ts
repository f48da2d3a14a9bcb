/**
 * Run coalescing: stored chunks that lie back to back in the file (spec/FORMAT.md section 5.3,
 * each record's offset and stored length) are read with one read instead of one per chunk.
 * Used by the reader's reads and by verify. And runs of zero records counted on the chunk
 * table's bytes ({@link zeroRecords}), for the walks that carry zero runs as lengths.
 */
import { CHUNK_ZERO, CHUNK_RECORD_SIZE } from '../format/constants.js';
import { CHUNK_RECORD, offsetOf } from '../format/fields.js';
import type { ChunkRecord, ChunkTable } from '../format/index-table.js';

/** The largest run read at once: big enough to amortise a read, small enough to bound memory. */
export const MAX_RUN_BYTES = 16 * 1024 * 1024;

/** Items whose stored bytes are one contiguous file range `[offset, offset + length)`. */
export interface Run<T> {
  items: T[];
  offset: number;
  length: number;
}

/**
 * Groups `items` (in file order, zero chunks left out) into runs: an item joins the run before
 * it when its bytes start where the run ends and the run stays within `max` bytes.
 * @param max the most bytes of one run; a single chunk longer than this is a run of its own.
 * @example coalesceRuns(stored).map((r) => source.read(r.offset, r.length))
 */
export function coalesceRuns<T extends { readonly rec: ChunkRecord }>(items: readonly T[], max = MAX_RUN_BYTES): Run<T>[] {
  const runs: Run<T>[] = [];
  let i = 0;
  while (i < items.length) {
    const first = items[i]!.rec;
    let k = i + 1;
    let end = first.offset + first.storedLength;
    while (k < items.length) {
      const next = items[k]!.rec;
      if (next.offset !== end || end + next.storedLength - first.offset > max) break;
      end += next.storedLength;
      k++;
    }
    runs.push({ items: items.slice(i, k), offset: first.offset, length: end - first.offset });
    i = k;
  }
  return runs;
}

const ZR_OFFSET = offsetOf(CHUNK_RECORD, 'offset');
const ZR_STORED_LENGTH = offsetOf(CHUNK_RECORD, 'storedLength');
const ZR_FLAGS = offsetOf(CHUNK_RECORD, 'flags');
const ZR_CHECKSUM = offsetOf(CHUNK_RECORD, 'checksum');

/**
 * How many records of `table` from record `first` on, at most `max`, are well-formed zero
 * records (section 5.3: flags ZERO alone, offset, stored length and checksum 0): exactly the
 * records `table.get()` would return as ZERO without error. Read from the table's bytes, no
 * record decoded and nothing allocated (tens of ns per record): a region of 2^16 zero chunks
 * (1 TiB at 16 MiB) is one step of its walk, 2 ms, not 2^16 records made and checked (80 ms
 * of a `crimg diff` on a loaded machine). The first record that is anything else ends the
 * count; the caller reads it with `get()`, which checks it and words any violation.
 * @example
 * const z = zeroRecords(table, r.firstChunk + j, r.chunkCount - 1 - j); // never the last chunk
 */
export function zeroRecords(table: ChunkTable, first: number, max: number): number {
  const b = table.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const end = Math.min(first + Math.max(0, max), table.count);
  let i = first;
  for (let o = i * CHUNK_RECORD_SIZE; i < end; i++, o += CHUNK_RECORD_SIZE) {
    if (dv.getUint16(o + ZR_FLAGS, true) !== CHUNK_ZERO) break;
    if ((dv.getUint32(o + ZR_OFFSET, true) | dv.getUint32(o + ZR_OFFSET + 4, true) | dv.getUint32(o + ZR_STORED_LENGTH, true)
      | dv.getUint32(o + ZR_CHECKSUM, true) | dv.getUint32(o + ZR_CHECKSUM + 4, true)) !== 0) break;
  }
  return Math.max(0, i - first);
}
