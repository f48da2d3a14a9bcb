/**
 * Pre-copy (issue 19): most of the memory is read while the process runs, and the stop reads
 * only what changed since. Order:
 *
 * 1. Tracking starts ({@link startTracking}), by the first of these this kernel and process
 *    allow:
 *    - 'soft-dirty': `4 > /proc/PID/clear_refs` clears every page's soft-dirty bit (and the
 *      mappings' VM_SOFTDIRTY); from then on the kernel sets bit 55 of a page's
 *      /proc/PID/pagemap entry when the page is written (or faulted in, or its mapping is new).
 *      Needs CONFIG_MEM_SOFT_DIRTY (most distributions' x86-64 kernels; not arm64, and not
 *      every VM's kernel: the Firecracker guests this project is developed on lack it).
 *    - 'uffd-wp': userfaultfd's asynchronous write protection (Linux 6.7+, x86-64; the addon's
 *      native-mmap/src/track_writes.cc). The process is made to open a userfaultfd, which is
 *      taken over; each mapping's present pages are write-protected just before the running
 *      pass reads them, a write unprotects its page (the kernel does it: no handler runs), and
 *      PAGEMAP_SCAN lists the written pages. It can list and protect again in one walk, so
 *      catch-up passes ({@link catchUp}) read what was written during the running pass while
 *      the process still runs, and the stop reads only what was written during the last one.
 *    - 'checksums': the running pass keeps each page's XXH64, and the stop reads every page it
 *      would have read but seals and writes only those whose checksum changed. The stop then
 *      costs the read and the checksums, not the sealing and writing of everything (an XXH64
 *      collision between a page's old and new contents would keep the old one: 2^-64 per
 *      changed page, and only a page's own process can aim for one).
 * 2. The running pass ({@link runningPass}): each mapping's pages, read as the stop would read
 *    them (present runs of private anonymous memory, file mappings whole), go to the memory log.
 * 3. The stop: for each mapping the running pass read whole and that is unchanged (same
 *    addresses, permissions' sharing, file, offset), only the written pages are read
 *    ({@link stopPass}); pages now absent are zero (private anonymous) or read again (file
 *    memory: an unwritten page may have been dropped and now reads from the file). Everything
 *    else (new, moved, resized or shared mappings, those the running pass could not read
 *    whole or track, no read permission) is read as a full stop reads it. Shared mappings are
 *    always read in the stop: another process writes them without setting this one's bits.
 *
 * The image is then the one a full stop at the same moment makes: a page not written since the
 * running pass (or the last catch-up pass) read it holds what was read. Writes the kernel does
 * into memory pinned before tracking started (a device's DMA into a buffer registered with
 * it) mark no page, with either kind of bits (the same holds for CRIU's pre-dump).
 */
import { readFile, writeFile, open, type FileHandle } from 'node:fs/promises';
import { nativeAddon } from '../native-mmap/index.js';
import { parseMaps, planMapping, type MapsEntry } from './proc-maps.js';
import { presentRuns, pageStates } from './pagemap.js';
import { isAlive, processExited } from './proc.js';
import { clipRuns, complement, logMapping, overlay, slicesFrom, unionRuns, type RegionPlan, type ReplayItem, type Slice } from './_replay.js';
import type { AddressRun, MemLog } from './_mem-log.js';
import { sincePass, writtenRuns, type SinceState, type WriteTracking } from './_since.js';

/** How the stop finds the pages written since the running pass. */
export type Tracking = 'soft-dirty' | 'uffd-wp' | 'checksums';

/** How a pre-copy tracks writes: 'auto' takes the first of 'soft-dirty', 'uffd-wp', 'checksums' that works. */
export type TrackingChoice = 'auto' | Tracking;

/** The tracking a pre-copy uses, and its state. */
export interface Tracker {
  tracking: Tracking;
  /** Why a method tried before it could not be used. */
  why?: string;
  /** 'uffd-wp': the userfaultfd of the process's memory (closed by {@link stopTracking}). */
  uffd?: number;
  /** 'uffd-wp': how long a thread of the process was stopped to open it, in milliseconds. */
  attachMs?: number;
}

/** What the running pass read whole, by {@link mappingKey}: the mapping's range and where each byte is logged. */
export type RunningPass = Map<string, { start: bigint; end: bigint; slices: Slice[]; since?: SinceState }>;

/** {@link CaptureResult}'s `preCopy` when a pre-copy ran. */
export interface PreCopyUsed {
  used: true;
  tracking: Tracking;
  /** Bytes read while the process ran (running pass and catch-up passes). */
  runningBytes: number;
  /** Bytes the stop took from the process instead of the running passes. */
  changedBytes: number;
  /** 'uffd-wp': catch-up passes run, and the bytes they read again. */
  catchUp?: { rounds: number; bytes: number };
  /** 'uffd-wp': how long one thread of the process was stopped to set the tracking up (ms). */
  attachMs?: number;
  /** Why a method tried before this one could not be used. */
  why?: string;
}

/**
 * The part of a pre-copy before the stop: tracking started, the running pass, with 'uffd-wp'
 * the catch-up passes. The caller calls {@link stopTracking} once the stop has read.
 */
export async function preCopyPass(
  pid: number, mem: FileHandle, pagemap: FileHandle, log: MemLog, pageSize: number, gapFiles: boolean, choice: TrackingChoice,
  since: WriteTracking | null, onRead?: (n: number) => void,
): Promise<{ tracker: Tracker; before: RunningPass; result: PreCopyUsed }> {
  // Tracking kept by an earlier capture: taken over (its protections stand).
  const tracker: Tracker = since ? { tracking: 'uffd-wp', uffd: since.take(), attachMs: 0 } : await startTracking(pid, choice);
  try {
    const before = await runningPass(pid, mem, pagemap, log, pageSize, gapFiles, tracker, onRead, since);
    const rounds = tracker.uffd !== undefined ? await catchUp(pid, mem, pagemap, log, before, onRead) : null;
    const result: PreCopyUsed = {
      used: true, tracking: tracker.tracking, runningBytes: log.readBytes, changedBytes: 0,
      ...(rounds && { catchUp: rounds }), ...(tracker.attachMs !== undefined && { attachMs: Math.round(tracker.attachMs * 100) / 100 }),
      ...(tracker.why !== undefined && { why: tracker.why }),
    };
    return { tracker, before, result };
  } catch (e) {
    stopTracking(tracker);
    throw e;
  }
}

/** Catch-up rounds stop once a round reads at most this much (the stop reads about as much). */
const CATCH_UP_ENOUGH = 4 * 1024 * 1024;
const CATCH_UP_MAX_ROUNDS = 4;

/**
 * 'uffd-wp' only, while the process runs: reads the pages written since the running pass (then
 * since the previous round) into `log`, listing and protecting them again in one walk, so the
 * stop is left with what is written during the last round. Rounds go on while each reads more
 * than {@link CATCH_UP_ENOUGH} and less than the one before, at most {@link CATCH_UP_MAX_ROUNDS}.
 * A mapping whose scan fails (replaced since) or whose read ends early leaves `before` (the
 * stop reads it whole).
 */
export async function catchUp(
  pid: number, mem: FileHandle, pagemap: FileHandle, log: MemLog, before: RunningPass, onRead?: (n: number) => void,
): Promise<{ rounds: number; bytes: number }> {
  let rounds = 0;
  let total = 0;
  for (let last = Infinity; rounds < CATCH_UP_MAX_ROUNDS;) {
    let bytes = 0;
    for (const [key, m] of before) {
      if (m.since) {
        const was = log.readBytes;
        const r = await sincePass(log, mem, `/proc/${pid}/mem`, pagemap, log.pageSize, m.start, m.end, m.since, m.slices, true, false, onRead);
        if (r) m.slices = r.slices; else before.delete(key);
        bytes += log.readBytes - was;
        continue;
      }
      let runs: AddressRun[];
      try {
        runs = writtenRuns(pagemap, m.start, m.end, true);
      } catch {
        before.delete(key);
        continue;
      }
      if (runs.length === 0) continue;
      const first = log.pieces.length;
      let ended: bigint | null;
      try {
        ended = await log.logRuns(mem, `/proc/${pid}/mem`, runs, onRead);
      } catch (err) {
        if (!(await isAlive(pid))) throw processExited(pid, 'reading its memory while it ran');
        throw err;
      }
      if (ended !== null) {
        before.delete(key);
        continue;
      }
      m.slices = overlay(m.slices, runs, slicesFrom(log, first));
      for (const r of runs) bytes += Number(r.end - r.start);
    }
    rounds++;
    total += bytes;
    if (bytes <= CATCH_UP_ENOUGH || bytes >= last) break;
    last = bytes;
  }
  return { rounds, bytes: total };
}

/** A mapping's identity across the two passes. */
export function mappingKey(e: MapsEntry): string {
  return `${e.start}-${e.end} ${e.perms[3]} ${e.offset} ${e.dev} ${e.inode} ${e.path}`;
}

let softDirty: Promise<string | null> | undefined;

/**
 * Why soft-dirty tracking cannot be used here, or null when it works: checked once per process
 * on a page of its own (clear its bits, write the page, expect bit 55 in /proc/self/pagemap).
 */
export function softDirtyUnavailable(): Promise<string | null> {
  softDirty ??= checkSoftDirty();
  return softDirty;
}

async function checkSoftDirty(): Promise<string | null> {
  const addon = nativeAddon();
  if (!addon) return 'checking soft-dirty tracking needs the native addon (npm run build:native)';
  const page = addon.pageSize();
  const buf = addon.mapAnonymous(page, 'rw-');
  let pagemap: FileHandle | null = null;
  try {
    await writeFile('/proc/self/clear_refs', '4');
    new Uint8Array(buf)[0] = 1;
    pagemap = await open('/proc/self/pagemap', 'r');
    const entry = Buffer.alloc(8);
    await pagemap.read(entry, 0, 8, Number(addon.addressOf(buf) / BigInt(page)) * 8);
    return (entry.readUInt32LE(4) & (1 << 23)) !== 0 ? null : 'this kernel does not track soft-dirty pages (no CONFIG_MEM_SOFT_DIRTY)';
  } catch (e) {
    return `soft-dirty tracking could not be checked: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  } finally {
    await pagemap?.close().catch(() => {});
    addon.unmap(buf);
  }
}

/**
 * Clears the soft-dirty bits of process `pid`.
 * @returns null, or why it could not (the capture then stops the process for the whole read).
 */
export async function clearSoftDirty(pid: number): Promise<string | null> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '4');
    return null;
  } catch (e) {
    return `/proc/${pid}/clear_refs could not be written (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
}

/**
 * Starts tracking the writes of process `pid` (section 1 of this module's comment). `choice`
 * 'auto' tries each method in turn; a named one falls back to 'checksums' only.
 */
export async function startTracking(pid: number, choice: TrackingChoice): Promise<Tracker> {
  const why: string[] = [];
  if (choice === 'auto' || choice === 'soft-dirty') {
    const no = (await softDirtyUnavailable()) ?? await clearSoftDirty(pid);
    if (no === null) return { tracking: 'soft-dirty' };
    why.push(no);
  }
  if (choice === 'auto' || choice === 'uffd-wp') {
    const addon = nativeAddon();
    if (!addon) why.push('write protection needs the native addon (npm run build:native)');
    else {
      const t0 = performance.now();
      try {
        const uffd = addon.trackWritesOpen(pid);
        return { tracking: 'uffd-wp', uffd, attachMs: performance.now() - t0, ...(why.length > 0 && { why: why.join('; ') }) };
      } catch (e) {
        const err = e as { code?: string; syscall?: string };
        why.push(`write protection (userfaultfd) could not be set up: ${err.syscall ?? 'failed'} (${err.code ?? String(e)})`);
      }
    }
  }
  return { tracking: 'checksums', ...(why.length > 0 && { why: why.join('; ') }) };
}

/** Ends the tracking: the kernel unprotects the process's pages. Idempotent. */
export function stopTracking(t: Tracker): void {
  if (t.uffd === undefined) return;
  nativeAddon()?.closeFd(t.uffd);
  delete t.uffd;
}

/**
 * Reads the running process's mappings into `log` (after {@link startTracking}); with
 * 'uffd-wp', each mapping is write-protected just before it is read. Mappings
 * that cannot be read whole (a refused page, a mapping gone meanwhile), shared ones and ones
 * without read permission are left to the stop.
 * @throws CrimgError when the process exited.
 */
export async function runningPass(
  pid: number, mem: FileHandle, pagemap: FileHandle, log: MemLog, pageSize: number, gapFiles: boolean, tracker: Tracker,
  onRead?: (n: number) => void, since: WriteTracking | null = null,
): Promise<RunningPass> {
  const { tracking } = tracker;
  const out: RunningPass = new Map();
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/maps`, 'utf8');
  } catch {
    if (!(await isAlive(pid))) throw processExited(pid, 'reading its memory map');
    return out;
  }
  for (const e of parseMaps(text)) {
    const plan = planMapping(e);
    if (plan.action !== 'region' || plan.noRead || e.perms[3] === 's') continue;
    // File memory, with written bits: the stop reads it whole. Its page-cache pages change with
    // the file (another process's write(2) sets no bit here), and a dropped page of it reads
    // from the file again (under write protection, a marker the page map shows as swapped).
    if (!plan.zeroWhenAbsent && tracking !== 'checksums') continue;
    // Read-only file mappings that the stop may leave to their files (fileMappings 'gap').
    if (gapFiles && e.path.startsWith('/') && e.perms[1] === '-') continue;
    // Tracked since the parent's capture: only the chunks that changed since (capture/_since.ts).
    const kept = since?.mappings.get(mappingKey(e));
    if (kept) {
      const state: SinceState = { chunkSize: since!.chunkSize, parentPresent: kept.present, changed: [] };
      const r = await sincePass(log, mem, `/proc/${pid}/mem`, pagemap, pageSize, plan.start, plan.end, state, [], true, false, onRead);
      if (r) out.set(mappingKey(e), { start: plan.start, end: plan.end, slices: r.slices, since: state });
      continue;
    }
    // Not trackable (the process tracks it itself: EBUSY): left to the stop.
    if (tracker.uffd !== undefined && nativeAddon()!.trackWritesProtect(tracker.uffd, pagemap.fd, plan.start, plan.end) !== 0) continue;
    let runs: AddressRun[];
    try {
      runs = plan.zeroWhenAbsent ? await presentRuns(pagemap, plan.start, plan.end, pageSize) : [{ start: plan.start, end: plan.end }];
    } catch {
      continue;
    }
    const first = log.pieces.length;
    let ended: bigint | null;
    try {
      ended = await log.logRuns(mem, `/proc/${pid}/mem`, runs, onRead, { hashes: tracking === 'checksums' });
    } catch (err) {
      if (!(await isAlive(pid))) throw processExited(pid, 'reading its memory while it ran');
      throw err;
    }
    if (ended === null) out.set(mappingKey(e), { start: plan.start, end: plan.end, slices: slicesFrom(log, first) });
  }
  return out;
}

/**
 * The stop's part of one mapping the running pass read whole: the written pages (and, for
 * file memory, pages now absent) are read into `log` and laid over the running pass's slices.
 * @returns the mapping's one region, or null when it must be read as a full stop reads it (the
 *   page map failed, or a page the running pass read is refused now).
 */
export async function stopPass(
  log: MemLog, mem: FileHandle, pagemap: FileHandle, pid: number, pageSize: number, plan: RegionPlan, entry: MapsEntry, base: Slice[],
  tracking: Tracking, onRead?: (n: number) => void, reprotect = false, since?: SinceState,
): Promise<ReplayItem | null> {
  if (since) {
    // Tracked since the parent's capture: the changed chunks' bytes, the rest the parent's.
    const r = await sincePass(log, mem, `/proc/${pid}/mem`, pagemap, pageSize, plan.start, plan.end, since, base, reprotect, true, onRead);
    if (r === null) return null;
    return { type: 'region', start: plan.start, end: plan.end, plan, entry, slices: r.slices, present: r.present, parentRuns: complement(since.changed, plan.start, plan.end) };
  }
  let present: AddressRun[];
  let dirty: AddressRun[];
  try {
    if (tracking === 'soft-dirty') ({ present, dirty } = await pageStates(pagemap, plan.start, plan.end, pageSize));
    else if (tracking === 'uffd-wp') {
      dirty = writtenRuns(pagemap, plan.start, plan.end, reprotect);
      present = await presentRuns(pagemap, plan.start, plan.end, pageSize);
    } else {
      present = await presentRuns(pagemap, plan.start, plan.end, pageSize);
      // Every page that may hold memory is read; only the changed ones are logged.
      dirty = plan.zeroWhenAbsent ? present : [{ start: plan.start, end: plan.end }];
    }
  } catch {
    return null;
  }
  const absent = complement(present, plan.start, plan.end);
  // Private anonymous memory: an absent page is zero. File memory: read it again.
  const reread = plan.zeroWhenAbsent ? dirty : unionRuns(dirty, absent);
  const first = log.pieces.length;
  const ended = await log.logRuns(mem, `/proc/${pid}/mem`, clipRuns(reread, plan.start, plan.end), onRead,
    tracking === 'checksums' ? { previous: previousHashes(base, pageSize) } : {});
  if (ended !== null) return null;
  const logged = slicesFrom(log, first);
  // Soft-dirty, write protection: the running pass's bytes give way to everything absent or read
  // now. Checksums: to the pages logged now (changed) and, in private anonymous memory, the
  // absent ones (zero).
  const out = tracking !== 'checksums' ? unionRuns(absent, dirty)
    : unionRuns(plan.zeroWhenAbsent ? absent : [], logged.map((x) => ({ start: x.start, end: x.end })));
  const slices = overlay(base, out, logged);
  return { type: 'region', start: plan.start, end: plan.end, plan, entry, slices, present };
}

/**
 * The running pass's checksum of the page at an address, for addresses asked in ascending
 * order (as the stop reads them); undefined for a page it did not read.
 */
function previousHashes(base: readonly Slice[], pageSize: number): (address: bigint) => bigint | undefined {
  let i = 0;
  const page = BigInt(pageSize);
  return (address) => {
    while (i < base.length && base[i]!.end <= address) i++;
    const s = base[i];
    if (!s || s.start > address || !s.piece.hashes) return undefined;
    return s.piece.hashes[Number((address - s.piece.address) / page)];
  };
}

export { logMapping };
