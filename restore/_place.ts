/**
 * Placement in the address space for both restore modes: where each region goes (one
 * reservation for all of them, or one per region at its recorded address), the runs placed with
 * as few native calls as possible, advice, views, and the errors of all of it.
 */
import type { Region } from '../format/index-table.js';
import { CrimgError, type CrimgErrorCode } from '../format/errors.js';
import { hex } from '../format/bytes.js';
import {
  advise, isSyscallError, pageSize, placeRuns, reserve, view, type Prot, type ReadableProt, type Reservation,
} from '../native-mmap/index.js';
import { firstOverlap, readMaps } from './_maps.js';
import { regionLength } from './_plan.js';
import { advance, entry, fitsBuffer, label, readable, type Progress, type Restoration } from './_result.js';
import type { RestoreAdvice, RestoredRegion } from './_types.js';

/** Until format/errors.ts lists it: a region cannot be placed at its recorded address. */
export const ADDRESS_IN_USE = 'ADDRESS_IN_USE' as CrimgErrorCode;

/** Where one region lives: `res.address + offset`, `span` bytes (its length in whole pages). */
export interface Slot {
  region: Region;
  res: Reservation;
  offset: number;
  length: number;
  span: number;
  /** The restore's mode, for the hints of errors. */
  mode: 'map' | 'copy' | 'lazy';
  /** Its entry in the result (memory is set once it is ready). */
  entry: RestoredRegion;
}

/**
 * Reserves the address space of `regions` and adds their entries to the result, in order.
 * At recorded addresses: one reservation per region (MAP_FIXED_NOREPLACE). Anywhere: one
 * reservation for all, each region followed by a no-access guard page, so a restore costs one
 * reserve and one release whatever the region count.
 * @throws CrimgError ADDRESS_IN_USE, IO_ERROR.
 */
export function layout(regions: readonly Region[], atRecorded: boolean, result: Restoration): Slot[] {
  const page = pageSize();
  const spans = regions.map((r) => Math.ceil(regionLength(r) / page) * page);
  const slots: Slot[] = [];
  const add = (r: Region, i: number, res: Reservation, offset: number): void => {
    const e = entry(r, res.address + BigInt(offset));
    result.regions.push(e);
    slots.push({ region: r, res, offset, length: regionLength(r), span: spans[i]!, mode: result.mode, entry: e });
  };
  if (atRecorded) {
    regions.forEach((r, i) => {
      const res = reserveAt(r, spans[i]!);
      result.hold(res);
      add(r, i, res, 0);
    });
    return slots;
  }
  // Regions of 2 MiB or more start on a 2 MiB boundary, so that the parts of them the copy
  // mode populates can be huge pages (one host fault per 2 MiB on a VM instead of 512); the
  // padding is reserved address space only.
  const aligned = (i: number): boolean => spans[i]! >= HUGE;
  const total = spans.reduce((n, s, i) => n + s + page + (aligned(i) ? HUGE - page : 0), 0);
  let res: Reservation;
  try {
    res = reserve(total);
  } catch (e) {
    throw syscallFailure(e, `reserve ${total} bytes of address space for ${regions.length} regions`, result.mode);
  }
  result.hold(res);
  let offset = 0;
  const base = Number(res.address % BigInt(HUGE));
  regions.forEach((r, i) => {
    if (aligned(i)) offset += (HUGE - ((base + offset) % HUGE)) % HUGE;
    add(r, i, res, offset);
    offset += spans[i]! + page;
  });
  return slots;
}

/** A transparent huge page (x86-64, arm64 with 4 KiB pages). */
const HUGE = 2 * 1024 * 1024;

/** Reserves a region's range at its recorded address. @throws CrimgError ADDRESS_IN_USE */
function reserveAt(r: Region, span: number): Reservation {
  try {
    return reserve(span, { address: r.address, fixedNoReplace: true });
  } catch (e) {
    if (isSyscallError(e) && e.code === 'EEXIST') {
      const taken = firstOverlap(readMaps(), r.address, r.address + BigInt(span));
      const at = taken && taken.start > r.address ? taken.start : r.address;
      const what = taken ? ` (mapping ${hex(taken.start)}-${hex(taken.end)} ${taken.perms}${taken.path ? ` ${taken.path}` : ''})` : '';
      throw new CrimgError(ADDRESS_IN_USE, `${label(r)} cannot be placed at its recorded address ${hex(r.address)}: ${hex(at)} is in use${what}`, {
        address: at, region: r.index, cause: e, hint: 'restore into a fresh process, or without atRecordedAddress',
      });
    }
    // 0 or below vm.mmap_min_addr, past the user address space, and the like.
    const why = e instanceof Error ? e.message : String(e);
    throw new CrimgError(ADDRESS_IN_USE, `${label(r)} cannot be placed at its recorded address ${hex(r.address)}: ${why}`, {
      address: r.address, region: r.index, cause: e, hint: 'the kernel refuses this range here; restore without atRecordedAddress',
    });
  }
}

/**
 * The hint for a failed placement syscall (errno name `code`) in `mode`: mode copy is offered
 * only to a map-mode restore, since a copy-mode one already is one.
 */
export function syscallHint(code: string, mode: 'map' | 'copy' | 'lazy'): string | undefined {
  if (code === 'EPERM' || code === 'EACCES') {
    return mode === 'map'
      ? "the image's file system may be mounted noexec (for an executable region), or a security policy refuses it; try mode copy"
      : 'a security policy (such as one refusing writable-then-executable memory) refuses this protection; restore only the regions you need (option regions)';
  }
  if (code === 'ENOMEM') {
    return mode === 'map'
      ? 'out of address space or mappings (vm.max_map_count); try mode copy, or restore fewer regions at a time'
      : 'out of memory, address space or mappings (vm.max_map_count); restore fewer regions at a time (option regions), or free memory';
  }
  return undefined;
}

/** A failed syscall as IO_ERROR naming what was being done, with a hint; other errors unchanged. */
export function syscallFailure(e: unknown, doing: string, mode: 'map' | 'copy' | 'lazy', r?: Region): unknown {
  if (!isSyscallError(e)) return e;
  const hint = syscallHint(e.code, mode);
  return new CrimgError('IO_ERROR', `cannot ${doing}: ${e.message}`, {
    cause: e, ...(r && { region: r.index }), ...(hint !== undefined && { hint }),
  });
}

/**
 * Places runs for many slots with one placeRuns call per reservation and protection.
 * `runsOf` gives a slot's `[offset, length, file offset]` triples relative to the slot (null to
 * place nothing), `protOf` its protection.
 */
export function placeAll(slots: readonly Slot[], fd: number, runsOf: (s: Slot) => Float64Array | null, protOf: (s: Slot) => Prot, doing: string): void {
  const groups = new Map<Reservation, Map<Prot, { slots: Slot[]; count: number }>>();
  for (const s of slots) {
    const runs = runsOf(s);
    if (runs === null || runs.length === 0) continue;
    const byProt = groups.get(s.res) ?? new Map<Prot, { slots: Slot[]; count: number }>();
    groups.set(s.res, byProt);
    const g = byProt.get(protOf(s)) ?? { slots: [], count: 0 };
    byProt.set(protOf(s), g);
    g.slots.push(s);
    g.count += runs.length;
  }
  for (const [res, byProt] of groups) {
    for (const [prot, g] of byProt) {
      const all = new Float64Array(g.count);
      let n = 0;
      for (const s of g.slots) {
        const runs = runsOf(s)!;
        for (let k = 0; k < runs.length; k += 3) {
          all[n++] = runs[k]! + s.offset;
          all[n++] = runs[k + 1]!;
          all[n++] = runs[k + 2]!;
        }
      }
      try {
        placeRuns(res, fd, all, prot);
      } catch (e) {
        const at = isSyscallError(e) ? e.address : undefined;
        const s = at === undefined ? g.slots[0]! : g.slots.find((x) => at >= res.address + BigInt(x.offset) && at < res.address + BigInt(x.offset + x.span)) ?? g.slots[0]!;
        throw syscallFailure(e, `${doing} ${label(s.region)} at ${hex(s.entry.address)}`, s.mode, s.region);
      }
    }
  }
}

/** Best-effort madvise over every reservation (gaps and guard pages are no-access: harmless). */
export function adviseAll(result: Restoration, slots: readonly Slot[], advice: RestoreAdvice | undefined): void {
  if (advice === undefined) return;
  for (const res of new Set(slots.map((s) => s.res))) {
    try {
      advise(res.address, res.length, advice);
    } catch (e) {
      result.warnings.push(`advice ${advice} refused at ${hex(res.address)}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
  }
}

/** A view of part of a slot. @throws CrimgError IO_ERROR when mprotect fails. */
export function viewOf(s: Slot, offset: number, length: number, prot: ReadableProt): ArrayBuffer {
  try {
    return view(s.res, s.offset + offset, length, prot);
  } catch (e) {
    throw syscallFailure(e, `protect ${label(s.region)} at ${hex(s.entry.address)}`, s.mode, s.region);
  }
}

/** What map mode checks the mapped bytes with (restore/_checkmap.ts), or null for none. */
export interface MappedCheck {
  slot(s: Slot, plan: Float64Array, memory: ArrayBuffer | undefined): void;
}

/**
 * Map mode: every run of every region placed straight from the image file (file runs) or as
 * fresh anonymous memory (zero runs) with the region's protection, then one view per readable
 * region, and, with `check`, every file-mapped chunk hashed in place and compared with the chunk
 * table before anything is returned.
 */
export function mapRegions(slots: readonly Slot[], plans: ReadonlyMap<Region, Float64Array>, fd: number, advice: RestoreAdvice | undefined, result: Restoration, progress: Progress, check: MappedCheck | null): void {
  placeAll(slots, fd, (s) => plans.get(s.region) ?? null, (s) => s.region.prot as Prot, 'map');
  adviseAll(result, slots, advice);
  for (const s of slots) {
    if (s.region.isGap) continue;
    if (readable(s.region) && fitsBuffer(result, s.region, s.length)) {
      // The pages already have this prot; view() makes sure of it and pins them readable.
      s.entry.memory = viewOf(s, 0, s.length, s.region.prot as ReadableProt);
      result.own(s.entry.memory, true);
    }
    const plan = plans.get(s.region);
    if (check && plan) check.slot(s, plan, s.entry.memory);
    advance(progress, s.length);
  }
}

/**
 * The item of `items` (in chunk order: regions by address, gaps holding none) whose region
 * holds chunk number `chunk`, by binary search; undefined when none does.
 */
export function findByChunk<T>(items: readonly T[], chunk: number, regionOf: (item: T) => Region): T | undefined {
  let lo = 0;
  let hi = items.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = regionOf(items[mid]!);
    if (chunk < r.firstChunk) hi = mid - 1;
    else if (chunk >= r.firstChunk + r.chunkCount) lo = mid + 1;
    else return items[mid];
  }
  return undefined;
}
