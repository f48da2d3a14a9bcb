/**
 * Run coalescing: stored chunks that lie back to back in the file (spec/FORMAT.md section 5.3,
 * each record's offset and stored length) are read with one read instead of one per chunk.
 * Used by the reader's reads and by verify.
 */
import type { ChunkRecord } from '../format/index-table.js';

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
