/**
 * The native batch decoder (native-mmap decodeBatch) for a source without a file descriptor,
 * such as a remote image: the batch's chunks are cut into windows of contiguous stored bytes
 * (four of a RemoteSource's `pieceSize`, 16 MiB by default; the first one piece, the next
 * two), each window is fetched by one `readInto()` (which a RemoteSource serves as parallel
 * range requests), one window after the other, and decoded from memory (`stored`) on native
 * threads while the next windows are being fetched. The JavaScript thread only receives bytes; no
 * chunk is decoded on it. Memory: {@link AHEAD} + 1 windows of stored bytes, mapped once per
 * call in huge pages and reused window after window, the bodies received straight into them
 * (RemoteSource.readInto): a fresh 16 MiB buffer per window cost 4096 first-touch faults
 * (12-25 us each on this VM) and a copy of every received byte.
 *
 * Failures keep decodeBatch's meaning: item numbers of the whole batch, the first in image order
 * unless `all` (windows are decoded in order and, without `all`, none after a failing one). A
 * window that cannot be fetched throws the source's error (TRUNCATED, SOURCE_CHANGED,
 * IO_ERROR).
 */
import { advise, decodeBatch, mapAnonymous, unmap, type DecodeBatchFailure, type DecodeBatchJob } from '../../native-mmap/index.js';
import type { RandomAccessSource } from '../source.js';

/** Stored bytes per window: four of the source's pieces (4 MiB by default), fetched in parallel. */
export const WINDOW = 16 * 1024 * 1024;
/** Pieces per window. */
const PIECES = 4;
/** Windows fetched ahead of the one being decoded. */
export const AHEAD = 2;
/** Words per item (batch_decode_js.cc). */
const WORDS = 8;

interface Window {
  first: number;
  count: number;
  start: number;
  end: number;
}

/**
 * Cuts items (8 words each, in image order) into windows of stored bytes that follow each other,
 * of at most `window` bytes; the first at most `first`, each next one up to twice the one before
 * (the decode starts on a small first window instead of waiting for a whole one).
 */
export function windowsOf(items: BigUint64Array, window = WINDOW, first = window): Window[] {
  const out: Window[] = [];
  const n = items.length / WORDS;
  let cur: Window | null = null;
  let limit = Math.min(first, window);
  for (let i = 0; i < n; i++) {
    const start = Number(items[i * WORDS]!);
    const end = start + Number(items[i * WORDS + 4]! & 0xffffffffn);
    // Zero chunks (nothing stored) stay with the window they fall in.
    if (cur && start >= cur.start && Math.max(cur.end, end) - cur.start <= limit && start <= cur.end + 4096) {
      cur.count++;
      cur.end = Math.max(cur.end, end);
      continue;
    }
    if (cur) limit = Math.min(window, limit * 2);
    cur = { first: i, count: 1, start, end };
    out.push(cur);
  }
  return out;
}

/** Slots are whole huge pages, so that each starts on one in a mapping the kernel aligned. */
const HUGE = 2 * 1024 * 1024;

/**
 * `bytes` of anonymous memory advised for huge pages, or null when it cannot be mapped (the
 * windows are then read into buffers of their own). Without huge pages it serves as it is.
 */
function windowMemory(bytes: number): ArrayBuffer | null {
  let memory: ArrayBuffer;
  try {
    memory = mapAnonymous(bytes, 'rw-');
  } catch {
    return null;
  }
  try {
    advise(memory, bytes, 'hugepage');
  } catch {
    // No transparent huge pages: 4 KiB pages, still touched only in the first windows.
  }
  return memory;
}

/**
 * decodeBatch of `job` (without fd) with its stored bytes read from `source`, window by window.
 * @returns the failures, as decodeBatch gives them for the whole batch
 */
export async function decodeFetched(source: RandomAccessSource & { pieceSize?: number }, job: Omit<DecodeBatchJob, 'fd' | 'stored' | 'storedBase'>): Promise<DecodeBatchFailure[]> {
  const window = source.pieceSize !== undefined ? PIECES * source.pieceSize : WINDOW;
  const wins = windowsOf(job.items, window, window / PIECES);
  const slots = Math.min(AHEAD + 1, wins.length);
  const slotBytes = Math.ceil(wins.reduce((n, w) => Math.max(n, w.end - w.start), 1) / HUGE) * HUGE;
  const memory = source.readInto && slots > 0 ? windowMemory(slots * slotBytes) : null;
  const fetches: Promise<Uint8Array>[] = [];
  const receive = (k: number): Promise<Uint8Array> => {
    const w = wins[k]!;
    if (!memory) return source.read(w.start, w.end - w.start);
    // Window k's slot held window k - slots, decoded before window k is asked for.
    const target = new Uint8Array(memory, (k % slots) * slotBytes, w.end - w.start);
    return source.readInto!(target, w.start).then(() => target);
  };
  // One window at a time (its pieces in parallel), each asked for once the one before is in:
  // windows fetched together shared the bandwidth, so the first, which the decode waits for,
  // came in only with the next two (150-900 ms for 1 GiB's first 48 MiB on a loaded machine).
  let previous: Promise<unknown> = Promise.resolve();
  const fetch = (k: number): void => {
    if (k < wins.length && fetches[k] === undefined) {
      // After a failure, later windows are not fetched: the loop below stops at the failed one.
      const p = previous.then(() => receive(k));
      p.catch(() => {}); // awaited in order below; a later window's failure may never be
      fetches[k] = p;
      previous = p;
    }
  };
  const failures: DecodeBatchFailure[] = [];
  let k = 0;
  for (; k < wins.length; k++) {
    for (let a = k; a <= k + AHEAD; a++) fetch(a);
    const w = wins[k]!;
    const stored = await fetches[k]!;
    delete fetches[k]; // let the window's bytes go once decoded
    const result = await decodeBatch({
      ...job,
      items: job.items.subarray(w.first * WORDS, (w.first + w.count) * WORDS),
      stored, storedBase: w.start,
    });
    for (const f of result.failures) failures.push({ ...f, item: f.item + w.first });
    if (!job.all && failures.length > 0) break;
  }
  // Every window fetched and decoded: nothing writes into the memory any more. After a failure,
  // requests still in flight hold views of it; the collector unmaps it once they are done.
  if (memory && k === wins.length) unmap(memory);
  return failures;
}
