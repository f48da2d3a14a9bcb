/**
 * Pre-copy (issue 19): most of the memory is read while the process runs, and the stop reads
 * only what changed since. Order:
 *
 * 1. `4 > /proc/PID/clear_refs` clears every page's soft-dirty bit (and the mappings'
 *    VM_SOFTDIRTY); from then on the kernel sets bit 55 of a page's /proc/PID/pagemap entry
 *    when the page is written (or faulted in, or its mapping is new).
 * 2. The running pass ({@link runningPass}): each mapping's pages, read as the stop would read
 *    them (present runs of private anonymous memory, file mappings whole), go to the memory log.
 * 3. The stop: for each mapping the running pass read whole and that is unchanged (same
 *    addresses, permissions' sharing, file, offset), only the soft-dirty pages are read
 *    ({@link stopPass}); pages now absent are zero (private anonymous) or read again (file
 *    memory: an unwritten page may have been dropped and now reads from the file). Everything
 *    else (new, moved, resized or shared mappings, those the running pass could not read
 *    whole, no read permission) is read as a full stop reads it. Shared mappings are always
 *    read in the stop: another process writes them without setting this one's bits.
 *
 * The image is then the one a full stop at the same moment makes: a page not soft-dirty has
 * not been written since the running pass read it. Soft-dirty needs CONFIG_MEM_SOFT_DIRTY
 * (most distributions' x86-64 kernels; not arm64, and not every VM's kernel: the Firecracker
 * guests this project is developed on lack it); {@link softDirtyUnavailable} checks it on this
 * process with the native addon.
 *
 * Without it, tracking is 'checksums': the running pass keeps each page's XXH64, and the stop
 * reads every page it would have read but seals and writes only those whose checksum changed.
 * The stop then costs the read and the checksums, not the sealing and writing of everything
 * (an XXH64 collision between a page's old and new contents would keep the old one: 2^-64 per
 * changed page, and only a page's own process can aim for one).
 */
import { readFile, writeFile, open, type FileHandle } from 'node:fs/promises';
import { nativeAddon } from '../native-mmap/index.js';
import { parseMaps, planMapping, type MapsEntry } from './proc-maps.js';
import { presentRuns, pageStates } from './pagemap.js';
import { isAlive, processExited } from './proc.js';
import { clipRuns, complement, logMapping, overlay, slicesFrom, unionRuns, type RegionPlan, type ReplayItem, type Slice } from './_replay.js';
import type { AddressRun, MemLog } from './_mem-log.js';

/** How the stop finds the pages written since the running pass. */
export type Tracking = 'soft-dirty' | 'checksums';

/** What the running pass read whole, by {@link mappingKey}. */
export type RunningPass = Map<string, Slice[]>;

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
 * Reads the running process's mappings into `log` (after {@link clearSoftDirty}). Mappings
 * that cannot be read whole (a refused page, a mapping gone meanwhile), shared ones and ones
 * without read permission are left to the stop.
 * @throws CrimgError when the process exited.
 */
export async function runningPass(
  pid: number, mem: FileHandle, pagemap: FileHandle, log: MemLog, pageSize: number, gapFiles: boolean, tracking: Tracking,
  onRead?: (n: number) => void,
): Promise<RunningPass> {
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
    // Read-only file mappings that the stop may leave to their files (fileMappings 'gap').
    if (gapFiles && e.path.startsWith('/') && e.perms[1] === '-') continue;
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
    if (ended === null) out.set(mappingKey(e), slicesFrom(log, first));
  }
  return out;
}

/**
 * The stop's part of one mapping the running pass read whole: the soft-dirty pages (and, for
 * file memory, pages now absent) are read into `log` and laid over the running pass's slices.
 * @returns the mapping's one region, or null when it must be read as a full stop reads it (the
 *   page map failed, or a page the running pass read is refused now).
 */
export async function stopPass(
  log: MemLog, mem: FileHandle, pagemap: FileHandle, pid: number, pageSize: number, plan: RegionPlan, entry: MapsEntry, base: Slice[],
  tracking: Tracking, onRead?: (n: number) => void,
): Promise<ReplayItem | null> {
  let present: AddressRun[];
  let dirty: AddressRun[];
  try {
    if (tracking === 'soft-dirty') ({ present, dirty } = await pageStates(pagemap, plan.start, plan.end, pageSize));
    else {
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
  // Soft-dirty: the running pass's bytes give way to everything absent or read now. Checksums:
  // to the pages logged now (changed) and, in private anonymous memory, the absent ones (zero).
  const out = tracking === 'soft-dirty' ? unionRuns(absent, dirty)
    : unionRuns(plan.zeroWhenAbsent ? absent : [], logged.map((x) => ({ start: x.start, end: x.end })));
  const slices = overlay(base, out, logged);
  return { type: 'region', start: plan.start, end: plan.end, plan, entry, slices };
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
