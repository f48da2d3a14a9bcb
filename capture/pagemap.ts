/**
 * Which pages of a mapping hold memory, from /proc/PID/pagemap (Documentation/admin-guide/mm/
 * pagemap.rst): one little-endian 64-bit entry per virtual page, bit 63 "present in RAM",
 * bit 62 "swapped". A private anonymous page that is neither was never written: it reads as
 * zeros, and reading it through /proc/PID/mem would make the kernel fault it in (page tables,
 * and on some kernels a real page) in the target. The capture reads only the runs this module
 * returns and records the rest as zero chunks.
 *
 * Reads are bounded: at most {@link PAGEMAP_READ_BYTES} of entries (8192 pages) at a time, so
 * a mapping of any size costs 64 KiB of memory here. Without CAP_SYS_ADMIN the kernel zeroes
 * the frame numbers but keeps the present and swapped bits, which are all this needs.
 */
import type { FileHandle } from 'node:fs/promises';

/** Bytes of pagemap entries per read. */
export const PAGEMAP_READ_BYTES = 64 * 1024;
const PRESENT = 1n << 63n;
const SWAPPED = 1n << 62n;

/** [start, end) byte addresses of pages that hold memory. */
export interface PageRun {
  start: bigint;
  end: bigint;
}

/**
 * Appends to `out` the runs of entries in `entries` (little-endian u64s for consecutive pages
 * from `firstAddress`) that are present or swapped, merging with the last run when adjacent.
 * Pure.
 */
export function collectRuns(entries: Uint8Array, firstAddress: bigint, pageSize: number, out: PageRun[]): void {
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const page = BigInt(pageSize);
  const n = entries.byteLength >>> 3;
  let i = 0;
  while (i < n) {
    // The high word holds both bits: test it without building bigints per page.
    if ((view.getUint32(i * 8 + 4, true) & 0xc0000000) === 0) { i++; continue; }
    let j = i + 1;
    while (j < n && (view.getUint32(j * 8 + 4, true) & 0xc0000000) !== 0) j++;
    const start = firstAddress + BigInt(i) * page;
    const end = firstAddress + BigInt(j) * page;
    const last = out[out.length - 1];
    if (last !== undefined && last.end === start) last.end = end;
    else out.push({ start, end });
    i = j;
  }
}

/** True when an entry says present or swapped (for tests and single pages). */
export function entryHoldsMemory(entry: bigint): boolean {
  return (entry & (PRESENT | SWAPPED)) !== 0n;
}

/**
 * The present-or-swapped runs of [start, end) (page-aligned) read from an open
 * /proc/PID/pagemap. Call while the process is stopped: the answer is then the truth until it
 * resumes.
 * @throws the read's error (EACCES, EIO...) for the caller to fall back on; a short read (the
 *   process exited) gives the runs found so far.
 */
export async function presentRuns(pagemap: FileHandle, start: bigint, end: bigint, pageSize: number): Promise<PageRun[]> {
  const out: PageRun[] = [];
  const page = BigInt(pageSize);
  const buf = Buffer.allocUnsafe(PAGEMAP_READ_BYTES);
  const perRead = BigInt(PAGEMAP_READ_BYTES / 8);
  for (let at = start; at < end;) {
    const pages = (end - at) / page < perRead ? (end - at) / page : perRead;
    const want = Number(pages) * 8;
    const { bytesRead } = await pagemap.read(buf, 0, want, Number((at / page) * 8n));
    const whole = bytesRead - (bytesRead % 8);
    collectRuns(buf.subarray(0, whole), at, pageSize, out);
    if (whole < want) break;
    at += pages * page;
  }
  return out;
}

/**
 * The runs of a mapping that hold memory, or null for "read it whole": for private anonymous
 * memory (`zeroWhenAbsent`) and mappings without read permission (`noRead`), the present or
 * swapped runs from `pagemap`; null for file and shared memory (whose absent pages are not
 * zeros) and when there is no page map. A page map that fails to read gives null too, with a
 * note in `notes` (once): the capture then reads such mappings whole, those without read
 * permission too (capture/process.ts).
 */
export async function runsToRead(
  pagemap: FileHandle | null, plan: { start: bigint; end: bigint; zeroWhenAbsent: boolean; noRead?: boolean }, pageSize: number, notes: string[],
): Promise<PageRun[] | null> {
  if (pagemap === null || (!plan.zeroWhenAbsent && !plan.noRead)) return null;
  try {
    return await presentRuns(pagemap, plan.start, plan.end, pageSize);
  } catch (e) {
    const note = `/proc/PID/pagemap could not be read (${(e as NodeJS.ErrnoException).code ?? String(e)}): private anonymous mappings were read whole, untouched pages included, mappings without read permission too`;
    if (!notes.includes(note)) notes.push(note);
    return null;
  }
}

/** Bit 55 of a page map entry: the page was written since the last `4 > /proc/PID/clear_refs`. */
const SOFT_DIRTY_HIGH = 1 << 23;

/** Which pages of a range hold memory, and which of those are soft-dirty (written since the last clear). */
export interface PageStates {
  /** Present or swapped. */
  present: PageRun[];
  /** Present or swapped, and soft-dirty (bit 55). */
  dirty: PageRun[];
}

/**
 * The present-or-swapped runs of [start, end) and, among them, the soft-dirty ones (bit 55),
 * from one read of an open /proc/PID/pagemap (a pre-copy's stop, capture/_precopy.ts). Call
 * while the process is stopped.
 * @throws the read's error; a short read gives the runs found so far.
 */
export async function pageStates(pagemap: FileHandle, start: bigint, end: bigint, pageSize: number): Promise<PageStates> {
  const out: PageStates = { present: [], dirty: [] };
  const page = BigInt(pageSize);
  const buf = Buffer.allocUnsafe(PAGEMAP_READ_BYTES);
  const perRead = BigInt(PAGEMAP_READ_BYTES / 8);
  for (let at = start; at < end;) {
    const pages = (end - at) / page < perRead ? (end - at) / page : perRead;
    const want = Number(pages) * 8;
    const { bytesRead } = await pagemap.read(buf, 0, want, Number((at / page) * 8n));
    const whole = bytesRead - (bytesRead % 8);
    const entries = buf.subarray(0, whole);
    collectRuns(entries, at, pageSize, out.present);
    collectWhere(entries, at, pageSize, out.dirty, (high) => (high & 0xc0000000) !== 0 && (high & SOFT_DIRTY_HIGH) !== 0);
    if (whole < want) break;
    at += pages * page;
  }
  return out;
}

/** As {@link collectRuns}, for the entries whose high word passes `test`. Pure. */
export function collectWhere(entries: Uint8Array, firstAddress: bigint, pageSize: number, out: PageRun[], test: (high: number) => boolean): void {
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const page = BigInt(pageSize);
  const n = entries.byteLength >>> 3;
  let i = 0;
  while (i < n) {
    if (!test(view.getUint32(i * 8 + 4, true))) { i++; continue; }
    let j = i + 1;
    while (j < n && test(view.getUint32(j * 8 + 4, true))) j++;
    const start = firstAddress + BigInt(i) * page;
    const end = firstAddress + BigInt(j) * page;
    const last = out[out.length - 1];
    if (last !== undefined && last.end === start) last.end = end;
    else out.push({ start, end });
    i = j;
  }
}
