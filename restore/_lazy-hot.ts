/**
 * The hot list (spec/FORMAT.md section 4.1) in map mode: an unchecked mapping (`check: false`)
 * reads nothing before the first touch, so the hot chunks' file pages are asked for first with
 * MADV_WILLNEED (the kernel starts reading them into the page cache at once, in the list's
 * order, while restore returns). A checked mapping reads every stored page to hash it before
 * returning, and copy mode returns only once every chunk is in place: neither has a "first"
 * for the list to order, so both read in image order (file order: one positioned read per run).
 */
import { advise, pageSize } from '../native-mmap/index.js';
import { findByChunk, type Slot } from './_place.js';

/**
 * MADV_WILLNEED on the placed slots' hot chunks, in list order, consecutive chunks of one
 * region in one call. Advice only: a refusal is ignored (the pages then come in on touch).
 * @returns the number of advice calls made.
 */
export function adviseHot(slots: readonly Slot[], hot: readonly number[], chunkSize: number): number {
  if (hot.length === 0) return 0;
  const placed = slots.filter((s) => !s.region.isGap).sort((a, b) => a.region.firstChunk - b.region.firstChunk);
  const page = pageSize();
  let calls = 0;
  for (let k = 0; k < hot.length;) {
    const c = hot[k]!;
    const s = findByChunk(placed, c, (p) => p.region);
    let n = 1;
    while (k + n < hot.length && hot[k + n] === c + n && s && c + n < s.region.firstChunk + s.region.chunkCount) n++;
    k += n;
    if (!s) continue; // a region not restored
    const offset = (c - s.region.firstChunk) * chunkSize;
    const length = Math.min(n * chunkSize, s.length - offset);
    try {
      advise(s.res.address + BigInt(s.offset + offset), Math.ceil(length / page) * page, 'willneed');
      calls++;
    } catch {
      // Advice only.
    }
  }
  return calls;
}
