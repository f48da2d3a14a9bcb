/**
 * The kernel's account of this process's address space, /proc/self/maps: which mapping holds an
 * address, and how many mappings there are against vm.max_map_count. Read only when needed (a
 * placement failed, or a restore would create very many mappings): it costs a syscall per 4 KiB
 * of text and grows with the process.
 */
import { readFileSync } from 'node:fs';

/** One line of /proc/self/maps. */
export interface MapsEntry {
  start: bigint;
  end: bigint;
  /** "rw-p", "r-xp", "---p"... */
  perms: string;
  /** File offset of `start` for a file mapping. */
  offset: bigint;
  /** The file, a pseudo name like "[heap]", or "" for anonymous memory. */
  path: string;
}

/** Parses /proc/self/maps text (exported for tests). */
export function parseMaps(text: string): MapsEntry[] {
  const out: MapsEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    // "7f3a1c000000-7f3a1c002000 r--p 00001000 fe:00 2146523    /tmp/x/app.img"
    const [range, perms, offset, , , ...rest] = line.split(/\s+/);
    const dash = range!.indexOf('-');
    out.push({
      start: BigInt(`0x${range!.slice(0, dash)}`),
      end: BigInt(`0x${range!.slice(dash + 1)}`),
      perms: perms!,
      offset: BigInt(`0x${offset}`),
      path: rest.join(' '),
    });
  }
  return out;
}

/** The mappings of this process, or [] where /proc is unavailable. */
export function readMaps(): MapsEntry[] {
  try {
    return parseMaps(readFileSync('/proc/self/maps', 'utf8'));
  } catch {
    return [];
  }
}

/** The first mapping overlapping [start, end), if any. */
export function firstOverlap(entries: readonly MapsEntry[], start: bigint, end: bigint): MapsEntry | undefined {
  return entries.find((e) => e.start < end && start < e.end);
}

/**
 * How many more mappings the kernel allows this process (vm.max_map_count minus the current
 * count), or Infinity when it cannot be read.
 */
export function mappingHeadroom(): number {
  try {
    const max = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8').trim());
    const used = readFileSync('/proc/self/maps', 'utf8').split('\n').length - 1;
    return Number.isFinite(max) ? max - used : Infinity;
  } catch {
    return Infinity;
  }
}
