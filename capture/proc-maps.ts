/**
 * /proc/PID/maps (proc(5)) and what each mapping becomes in an image. Pure: text in, plans out.
 *
 * The rules (also in capture/README.md):
 * - `[heap]` is a heap region, `[stack]` (and the old `[stack:TID]`) a stack region;
 * - a file mapping with execute permission is code, any other file mapping is file; the region's
 *   name is the path as the kernel prints it (" (deleted)" included);
 * - `[vdso]` is captured as code: it is a few readable pages, and gdb wants them in a core to
 *   unwind through signal frames (export-core keeps them);
 * - `[vvar]`, `[vvar_vclock]` and `[vsyscall]` are gaps: the kernel does not serve them through
 *   /proc/PID/mem (EIO), and they are recreated by the kernel for every process anyway;
 * - a mapping without read permission (`---p`, `-w-p`, `--xp`) is planned as a region with its
 *   real protection and `noRead`: /proc/PID/mem reads it (FOLL_FORCE reads what mprotect may make
 *   readable again), and the capture keeps the pages /proc/PID/pagemap says are present or
 *   swapped (memory written, then made unreadable); one with no such page (guard pages, never
 *   touched reservations of gigabytes) becomes a gap;
 * - memory that exists only in memory is anonymous whatever its name: `/dev/zero` (private, or
 *   shared as `/dev/zero (deleted)`), `/memfd:NAME (deleted)`, `/anon_hugepage (deleted)` and
 *   `/SYSV...` (hugetlb and System V shared memory); a file on a hugetlbfs mount is a file;
 * - a mapping that reaches past 2^53 cannot be read (a file position is a JavaScript Number,
 *   and Node refuses bigint positions on /proc/PID/mem): it is a gap, with a note;
 * - anything else is anonymous, named by its pseudo name (`[anon:NAME]`) if it has one.
 */
import { hex } from '../format/bytes.js';
import type { RegionKind } from '../format/constants.js';

/** One line of /proc/PID/maps. */
export interface MapsEntry {
  start: bigint;
  end: bigint;
  /** "rw-p", "r-xp", "---p", "rw-s"... */
  perms: string;
  /** File offset of `start` for a file mapping. */
  offset: bigint;
  /** Device "major:minor" of the file, "00:00" for anonymous memory. */
  dev: string;
  inode: number;
  /** The file, a pseudo name like "[heap]", or "" for anonymous memory. */
  path: string;
}

const LINE = /^([0-9a-f]+)-([0-9a-f]+)\s+([r-][w-][x-][ps])\s+([0-9a-f]+)\s+([0-9a-f]+:[0-9a-f]+)\s+(\d+)(?:\s+(.*))?$/;

/**
 * Parses /proc/PID/maps text. Lines must be in ascending address order without overlap, as
 * the kernel writes them.
 * @throws RangeError naming the first line that is not a maps line, or is out of order.
 */
export function parseMaps(text: string): MapsEntry[] {
  const out: MapsEntry[] = [];
  const lines = text.split('\n');
  let prevEnd = 0n;
  lines.forEach((line, i) => {
    if (line.length === 0) return;
    const m = LINE.exec(line);
    if (!m) throw new RangeError(`expected a /proc/PID/maps line at line ${i + 1}, got ${JSON.stringify(line.slice(0, 120))}`);
    const start = BigInt(`0x${m[1]}`);
    const end = BigInt(`0x${m[2]}`);
    if (end <= start || start < prevEnd) {
      throw new RangeError(`expected maps in ascending order without overlap at line ${i + 1}, got ${hex(start)}-${hex(end)} after ${hex(prevEnd)}`);
    }
    prevEnd = end;
    out.push({ start, end, perms: m[3]!, offset: BigInt(`0x${m[4]}`), dev: m[5]!, inode: Number(m[6]), path: m[7] ?? '' });
  });
  return out;
}

/** What one mapping becomes. */
export type MappingPlan =
  | {
    action: 'region'; start: bigint; end: bigint; prot: string; kind: Exclude<RegionKind, 'gap'>; name: string; note?: string;
    /**
     * Private anonymous memory: a page /proc/PID/pagemap shows neither present nor swapped is
     * zero (never written), so it is recorded as zero without a read. Not so for file and
     * shared memory, whose pages may be in the page cache or another process's page tables.
     */
    zeroWhenAbsent: boolean;
    /** No read permission: only worth a region when some page is present or swapped. */
    noRead?: boolean;
  }
  | { action: 'gap'; start: bigint; end: bigint; name: string; note?: string };

/** Pseudo mappings the kernel does not serve through /proc/PID/mem. */
const KERNEL_GAPS = new Set(['[vvar]', '[vvar_vclock]', '[vsyscall]']);

/** The largest address a Number file position reaches exactly. */
export const MAX_READABLE_ADDRESS = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * For every mapping in /proc/PID/smaps, by start address: the kB of its pages that the file
 * does not hold, that is pages the process wrote (copy-on-write): "Anonymous:" (resident),
 * "Swap:" (swapped out: a clean file page is dropped, never swapped) and "Private_Hugetlb:",
 * summed. A mapping whose sum is 0 reads exactly as its file does. ("Private_Dirty:" is not a
 * sign: it also counts page-cache pages of a file written recently, by anyone.)
 */
export function parseSmapsWritten(text: string): Map<bigint, number> {
  const out = new Map<bigint, number>();
  let current: bigint | null = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+\s/.exec(line);
    if (head) {
      current = BigInt(`0x${head[1]}`);
      out.set(current, 0);
      continue;
    }
    const field = /^(Anonymous|Swap|Private_Hugetlb):\s+(\d+) kB$/.exec(line);
    if (field && current !== null) out.set(current, out.get(current)! + Number(field[2]));
  }
  return out;
}

/** How {@link planMapping} treats mappings of files the process has not written. */
export interface PlanOptions {
  /**
   * 'copy' (default): every readable mapping is a region, so the image is self-contained.
   * 'gap': a read-only mapping of a file that still exists, with no page written by the process
   * (0 in `writtenKb`), becomes a gap, as gcore and CRIU leave clean file pages out: the
   * restorer maps the file there itself. Its name says what to map: see {@link fileGapName}.
   */
  fileMappings?: 'copy' | 'gap';
  /** Written kB by mapping start, from {@link parseSmapsWritten} (needed for 'gap'). */
  writtenKb?: ReadonlyMap<bigint, number>;
}

/**
 * The name of a gap left for a file mapping (fileMappings 'gap'): `PATH @0xOFFSET PROT`, e.g.
 * `/usr/lib/libc.so.6 @0x28000 r-x`: what a restorer maps there (a gap's own protection is
 * none). Parse it from the right: the path may hold spaces.
 */
export function fileGapName(path: string, offset: bigint, prot: string): string {
  return `${path} @${hex(offset)} ${prot}`;
}

/**
 * The file mapping a {@link fileGapName} names, or null for any other name (an image's names
 * are untrusted text: an offset beyond 64 bits is not a file offset, so it is no match).
 */
export function parseFileGapName(name: string): { path: string; offset: bigint; prot: string } | null {
  const m = /^(\/.*) @0x([0-9a-f]{1,16}) ([r-][w-][x-])$/.exec(name);
  return m ? { path: m[1]!, offset: BigInt(`0x${m[2]}`), prot: m[3]! } : null;
}

/** What the capture makes of one mapping (see the module comment for the rules). */
export function planMapping(e: MapsEntry, options: PlanOptions = {}): MappingPlan {
  const { start, end, path } = e;
  const span = `${hex(start)}-${hex(end)}`;
  const label = path === '' ? 'anonymous mapping' : path;
  if (options.fileMappings === 'gap' && path.startsWith('/') && !path.endsWith(' (deleted)') && e.perms[1] === '-'
    && e.perms[0] === 'r' && options.writtenKb?.get(start) === 0) {
    return {
      action: 'gap', start, end, name: fileGapName(path, e.offset, e.perms.slice(0, 3)),
      note: `${path} at ${span} (${e.perms.slice(0, 3)}, file offset ${hex(e.offset)}) recorded as a gap: an unwritten read-only mapping of a file, left for the restorer to map from the file`,
    };
  }
  if (KERNEL_GAPS.has(path)) {
    return { action: 'gap', start, end, name: path, note: `${path} at ${span} recorded as a gap: the kernel does not serve it through /proc/PID/mem and recreates it in every process` };
  }
  if (end > MAX_READABLE_ADDRESS) {
    return { action: 'gap', start, end, name: path, note: `${label} at ${span} recorded as a gap: it lies above 2^53, beyond the file positions Node can read /proc/PID/mem at` };
  }
  const prot = e.perms.slice(0, 3);
  const base = { action: 'region' as const, start, end, prot, name: path, ...(e.perms[0] !== 'r' && { noRead: true }) };
  const privateAnon = e.perms[3] === 'p' && e.inode === 0;
  if (path === '[heap]') return { ...base, kind: 'heap', zeroWhenAbsent: privateAnon };
  if (path === '[stack]' || path.startsWith('[stack:')) return { ...base, kind: 'stack', zeroWhenAbsent: privateAnon };
  if (path === '[vdso]') {
    return { ...base, kind: 'code', zeroWhenAbsent: false, note: `[vdso] at ${span} captured as code (the kernel maps its own vdso into a restored process; gdb uses this copy to unwind)` };
  }
  if (isMemoryOnly(path)) return { ...base, kind: 'anonymous', zeroWhenAbsent: e.perms[3] === 'p' && path === '/dev/zero' };
  if (path.startsWith('/')) return { ...base, kind: prot[2] === 'x' ? 'code' : 'file', zeroWhenAbsent: false };
  return { ...base, kind: 'anonymous', zeroWhenAbsent: privateAnon };
}

/**
 * Paths the kernel prints for memory that no file on disk holds: a private mapping of
 * /dev/zero (anonymous memory), shared anonymous memory (`/dev/zero (deleted)`), memfd files,
 * hugetlb anonymous memory and System V shared memory segments.
 */
function isMemoryOnly(path: string): boolean {
  return path === '/dev/zero' || path === '/dev/zero (deleted)' || path.startsWith('/memfd:') || path.startsWith('/anon_hugepage')
    || /^\/SYSV[0-9a-f]{8}( \(deleted\))?$/.test(path);
}

/**
 * Marks the mappings holding a thread's stack pointer as stacks named `[stack:TID]` (kernels
 * since 4.5 name only the main thread's `[stack]`). `sps` maps thread id to stack pointer; a
 * mapping already a stack, not private anonymous memory (a file mapping used as a stack stays
 * a file), or without read permission (a guard page), is left as it is. Pure: returns new plans.
 */
export function markThreadStacks(plans: readonly MappingPlan[], sps: ReadonlyMap<number, bigint>): MappingPlan[] {
  const out = [...plans];
  const sorted = [...sps].sort((a, b) => a[0] - b[0]);
  for (const [tid, sp] of sorted) {
    // sp points at the last word pushed: inside the mapping of a thread that has a frame.
    const i = out.findIndex((p) => p.start <= sp && sp < p.end);
    const p = i < 0 ? undefined : out[i]!;
    if (p === undefined || p.action !== 'region' || p.kind !== 'anonymous' || !p.zeroWhenAbsent || p.noRead) continue;
    out[i] = { ...p, kind: 'stack', name: `[stack:${tid}]` };
  }
  return out;
}
