/**
 * Typed loader for the native restore shim's low layer, the `crimg_mmap.node`
 * addon built from native-mmap/src by native-mmap/install.mjs.
 *
 * It exposes mmap(2), mprotect(2), madvise(2) and munmap(2) to script without
 * letting script crash the process: mapped memory comes back as external
 * ArrayBuffers that unmap when collected, MAP_FIXED is only honoured inside a
 * reservation made by {@link reserve}, and protect/advise only act on ranges
 * the addon made. Linux only.
 *
 * The addon is optional. When it is not built, lacks a function of
 * {@link NativeMmap} or has another {@link NativeMmap.abiVersion} (a stale
 * build), fails to load, cannot hand out external
 * ArrayBuffers, or `CRIMG_NO_NATIVE=1` is set, {@link nativeAddon} returns
 * `null`, {@link nativeStatus} says why, and the typed functions throw
 * `ERR_CRIMG_NATIVE_UNAVAILABLE`; callers take the portable (read) path.
 *
 * Importing this module does nothing but read `CRIMG_NO_NATIVE`: the addon is
 * loaded and probed on first use (any function below), once.
 *
 * Errors, all thrown synchronously:
 * - wrong argument type: `TypeError`, code `ERR_INVALID_ARG_TYPE`;
 * - bad value (zero/negative/non-integer length, unaligned offset or address,
 *   bad prot string, unknown advice, MAP_FIXED outside a reservation, a
 *   range past end-of-file, a foreign or already-unmapped buffer): `RangeError`,
 *   code `ERR_INVALID_ARG_VALUE`, message "expected X, got Y";
 * - failing syscall: {@link SyscallError}, e.g.
 *   "EEXIST: mmap failed at 0x7f3a1c000000: File exists".
 *
 * Hazards no check can remove, as with any mmap user: writing to a buffer
 * mapped without 'w' is a SIGSEGV; a file truncated by someone else under a
 * live mapping faults with SIGBUS; an asynchronous operation still using a
 * view of a buffer must finish before {@link unmap}.
 */
import { constants as bufferConstants } from 'node:buffer';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { types } from 'node:util';
import type { DecodeBatchFailure, DecodeBatchJob, DecodeBatchResult } from './_batch.js';

export type { DecodeBatchFailure, DecodeBatchJob, DecodeBatchResult } from './_batch.js';
import type { LazyBindings } from './_lazy.js';
import type { CheckBindings } from './_checks.js';
import type { TrackBindings } from './_track.js';
import type { EncodeBindings } from './_encode.js';
export type { LazySession, LazySpec, LazyStats } from './_lazy.js';
import type { NativeChunkParams } from './_chunk.js';
export type { NativeChunkParams } from './_chunk.js';

/** Permissions as in /proc/self/maps: 'r' or '-', 'w' or '-', 'x' or '-'. */
export type Prot = `${'r' | '-'}${'w' | '-'}${'x' | '-'}`;

/**
 * A {@link Prot} that includes read. Mappings are handed to script as
 * ArrayBuffers, and reading unreadable pages would be a SIGSEGV.
 */
export type ReadableProt = `r${'w' | '-'}${'x' | '-'}`;

/** madvise(2) advice: MADV_WILLNEED, MADV_SEQUENTIAL, and so on. */
export type Advice = 'willneed' | 'sequential' | 'random' | 'hugepage' | 'nohugepage' | 'dontneed';

/** Where to place a mapping. Without `address` the kernel chooses. */
export interface MapOptions {
  /** Page-aligned start address; a hint unless `fixed` or `fixedNoReplace`. */
  address?: bigint;
  /**
   * MAP_FIXED: replace the pages at `address`. Only allowed inside a live
   * {@link Reservation} and not over a live mapping; anywhere else it could
   * silently destroy memory the process is using, so it is refused.
   */
  fixed?: boolean;
  /**
   * MAP_FIXED_NOREPLACE (Linux 4.17+): map exactly at `address` or fail with
   * `EEXIST` if anything is there. On older kernels the flag is ignored by the
   * kernel; a different address is then unmapped and reported as `EEXIST`.
   */
  fixedNoReplace?: boolean;
  /** MAP_POPULATE: fault the pages in now rather than on first access. */
  populate?: boolean;
}

/** Where to place a reservation. MAP_FIXED is deliberately not offered. */
export interface ReserveOptions {
  /** Page-aligned start address; a hint unless `fixedNoReplace`. */
  address?: bigint;
  /** MAP_FIXED_NOREPLACE: reserve exactly at `address` or fail with `EEXIST`. */
  fixedNoReplace?: boolean;
}

/**
 * A PROT_NONE, MAP_NORESERVE address range held by the addon, into which
 * {@link mapFile} and {@link mapAnonymous} may place runs with `fixed: true`.
 *
 * It is a frozen `{ address, length }` object, not an ArrayBuffer: its pages
 * are no-access, so a buffer over them would crash on first touch. The addon
 * type-tags it, so a look-alike object is refused. It is released by
 * {@link unmap} or when collected, so keep it reachable while placing into it.
 */
export interface Reservation {
  /** First byte, page-aligned. */
  readonly address: bigint;
  /** Length in bytes, rounded up to whole pages. */
  readonly length: number;
}

/**
 * A failed syscall, shaped like Node's own system errors.
 * `errno` is positive, equal to `os.constants.errno[code]`.
 */
export interface SyscallError extends Error {
  /** errno name, e.g. 'EEXIST', 'ENOMEM', 'EINVAL', 'EBADF'; 'UNKNOWN' if unnamed. */
  code: string;
  /** errno value, positive. */
  errno: number;
  /** The syscall that failed. `fstat` validates a file before mapping it. */
  syscall: 'fstat' | 'mmap' | 'mprotect' | 'madvise' | 'munmap';
  /** The address involved, when there was one. */
  address?: bigint;
}

/** The addon's API, exactly as native-mmap/src/addon.cc exports it (the lazy-restore bindings in _lazy.ts). */
export interface NativeMmap extends LazyBindings, CheckBindings, TrackBindings, EncodeBindings {
  pageSize(): number;
  mapFile(fd: number, offset: number, length: number, prot: ReadableProt, opts?: MapOptions): ArrayBuffer;
  mapAnonymous(length: number, prot: ReadableProt, opts?: MapOptions): ArrayBuffer;
  reserve(length: number, opts?: ReserveOptions): Reservation;
  unmap(target: ArrayBuffer | Reservation): void;
  protect(target: bigint | ArrayBuffer, length: number, prot: Prot): void;
  advise(target: bigint | ArrayBuffer, length: number, advice: Advice): void;
  addressOf(buffer: ArrayBuffer): bigint;
  placeRuns(reservation: Reservation, fd: number, runs: Float64Array, prot: Prot): void;
  view(reservation: Reservation, offset: number, length: number, prot: ReadableProt): ArrayBuffer;
  /*
   * The functions below that write into a caller's buffer (scanChunks, hashChunks, aeadSeal,
   * deflateBatch) throw a RangeError (ERR_INVALID_ARG_VALUE) when the bytes they would write lie,
   * even partly, in a range this addon mapped without PROT_WRITE (a read-only mapping or view):
   * the write would be a SIGSEGV. deflateBatch checks again when its results are copied and
   * passes `done` an ERR_CRIMG_DEFLATE error if the pages were protected meanwhile.
   */
  /**
   * The image writer's chunk scan: for chunk k of `bytes` (cut into `chunkSize` pieces, the
   * last may be shorter) sets zero[k] = 1 and sums[k] = 0 when it is all zero, else zero[k] = 0
   * and sums[k] = XXH64 (seed 0). Returns the number of zero chunks.
   */
  scanChunks(bytes: Uint8Array, chunkSize: number, sums: BigUint64Array, zero: Uint8Array): number;
  /** XXH64 (seed 0) of `bytes`. */
  xxh64(bytes: Uint8Array): bigint;
  /** sums[k] = XXH64 (seed 0) of chunk k of `bytes` cut into `chunkSize` pieces (the last may be shorter). */
  hashChunks(bytes: Uint8Array, chunkSize: number, sums: BigUint64Array): void;
  /**
   * One stored chunk into `out` (p.plainLength bytes), on this thread, by the native readers' C++
   * decoder (src/chunk_decode.h, spec 5.3's order): null, or the failure's code and message (out zeroed).
   */
  decodeChunk(p: NativeChunkParams, stored: Uint8Array, out: Uint8Array): { code: string; message: string } | null;
  /**
   * Reads and decodes many chunks of one image in one libuv pool job, on `job.threads` native
   * threads (0: every core), each chunk through the decoder of {@link decodeChunk}: straight
   * into reservation memory placed 'rw-' (copy restore) or into scratch that is dropped
   * (verify). See {@link decodeBatch}.
   */
  decodeBatch(job: DecodeBatchJob, done: (err: Error | null, result: DecodeBatchResult) => void): void;
  /**
   * Starts writing `length` (>= 1) bytes of file `fd` from `offset` to disk without waiting
   * (sync_file_range SYNC_FILE_RANGE_WRITE, on the libuv pool), so that a later fsync has
   * little left to do. A hint: `done` runs afterwards with no error, whatever happened (fsync
   * reports write errors). Keep `fd` open until then.
   */
  writeBack(fd: number, offset: number, length: number, done: () => void): void;
  /** True when view() buffers escape V8's external-memory accounting (see {@link view}). */
  readonly unaccountedViews: boolean;
  /**
   * The bindings' meaning as a number (kAbiVersion in native-mmap/src/addon.cc), bumped
   * whenever a binding's meaning changes while its name stays; the loader refuses any other.
   */
  readonly abiVersion: number;
}

/** Whether the addon is usable, and if not, why. */
export interface NativeStatus {
  available: boolean;
  /** Why it is unavailable; absent when available. */
  reason?: string;
}

/** Directory holding package.json and native-mmap/, found by walking up. */
function packageRoot(from: string): string | null {
  for (let dir = from; ; dir = path.dirname(dir)) {
    // The source tree (<root>/native-mmap/index.ts under jest) and the tsc
    // output (<root>/build/native-mmap/index.js) sit at different depths.
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'native-mmap', 'binding.gyp'))) {
      return dir;
    }
    if (path.dirname(dir) === dir) return null;
  }
}

/** Every function of {@link NativeMmap}, checked present when the addon loads. */
const FUNCTIONS = [
  'pageSize', 'mapFile', 'mapAnonymous', 'reserve', 'unmap', 'protect', 'advise', 'addressOf',
  'placeRuns', 'view', 'scanChunks', 'xxh64', 'hashChunks', 'xxh64Init', 'xxh64Update', 'xxh64Digest', 'checkRegionRecords', 'checkRegionTotals', 'aeadSeal', 'deflateBatch', 'writeBack',
  'decodeChunk', 'zstdCompress', 'zstdBatch', 'zstdPiece', 'zstdFilePiece', 'deflatePiece', 'deflateFilePiece', 'rawPiece', 'rawFilePiece',
  'lazyStart', 'lazyStop', 'lazyClose', 'lazyStats', 'lazyProfile', 'lazyFailure',
  'decodeBatch', 'trackWritesOpen', 'trackWritesProtect', 'trackWritesScan', 'closeFd',
] as const satisfies readonly (keyof NativeMmap)[];
type FunctionName = { [K in keyof NativeMmap]: NativeMmap[K] extends (...args: never[]) => unknown ? K : never }[keyof NativeMmap];
// Fails to compile, naming the function, when NativeMmap gains one that FUNCTIONS lacks.
({}) satisfies Record<Exclude<FunctionName, (typeof FUNCTIONS)[number]>, never>;

/**
 * The {@link NativeMmap.abiVersion} these typings describe. Bump it with kAbiVersion in
 * native-mmap/src/addon.cc whenever a binding's meaning changes (arguments, numbering, result)
 * while its name stays: a build from older sources has every name, so the function check
 * passes it, and only this number tells it apart. 2: aeadSeal takes the format's cipher ids
 * 1/2 (1 had 0 = AES-256-GCM, 1 = ChaCha20-Poly1305).
 */
const ABI_VERSION = 2;

/**
 * Read when this module is evaluated, not at first use: a caller (or test) that
 * sets it around its import gets the portable path for that module instance.
 */
const disabled = process.env.CRIMG_NO_NATIVE === '1';

function load(): { native: NativeMmap | null; status: NativeStatus } {
  const absent = (reason: string) => ({ native: null, status: { available: false, reason } });
  if (disabled) return absent('disabled by CRIMG_NO_NATIVE=1');
  if (process.platform !== 'linux') return absent(`platform ${process.platform} is not supported, Linux only`);
  const root = packageRoot(path.dirname(fileURLToPath(import.meta.url)));
  if (root === null) return absent('package root (package.json beside native-mmap/) not found');
  const file = path.join(root, 'native-mmap', 'build', 'Release', 'crimg_mmap.node');
  if (!existsSync(file)) return absent(`not built: ${file} is missing (run: node native-mmap/install.mjs)`);
  let addon: NativeMmap;
  try {
    addon = createRequire(import.meta.url)(file) as NativeMmap;
  } catch (err) {
    return absent(`failed to load ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Built from this package's own sources, so a function missing means a build older than them.
  const offered = addon as unknown as Record<string, unknown>;
  const missing: string[] = FUNCTIONS.filter((name) => typeof offered[name] !== 'function');
  if (typeof offered.unaccountedViews !== 'boolean') missing.push('unaccountedViews');
  if (missing.length > 0) {
    return absent(`stale build: ${file} lacks ${missing.join(', ')} (rebuild: node native-mmap/install.mjs)`);
  }
  if (offered.abiVersion !== ABI_VERSION) {
    // Absent in builds from before the number existed (their aeadSeal numbered ciphers 0/1).
    const abi = typeof offered.abiVersion === 'number' ? `ABI ${offered.abiVersion}` : 'no ABI version';
    return absent(`stale build: ${file} has ${abi}, expected ${ABI_VERSION}; rebuild with node native-mmap/install.mjs`);
  }
  try {
    // Runtimes with the V8 memory cage refuse external ArrayBuffers; find out
    // now, once, rather than on the first real restore.
    addon.unmap(addon.mapAnonymous(addon.pageSize(), 'r--'));
  } catch (err) {
    return absent(`probe mapping failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { native: addon, status: { available: true } };
}

let loaded: ReturnType<typeof load> | undefined;

/** The addon loaded and probed on first call, the same answer ever after. */
function loadOnce(): ReturnType<typeof load> {
  return (loaded ??= load());
}

/**
 * The raw addon, or `null` when it is unavailable (see {@link nativeStatus}).
 * Loads it on the first call. Prefer the typed functions below, which add a
 * clearer error when absent.
 *
 * @returns the addon with every function of {@link NativeMmap}, or `null`.
 * @example
 * const native = nativeAddon();
 * if (native) console.log(native.pageSize());
 */
export function nativeAddon(): NativeMmap | null {
  return loadOnce().native;
}

/**
 * Whether the addon loaded, decided on first use (this or any other function
 * here) and then fixed.
 *
 * @returns `{ available: true }`, or `{ available: false, reason }` with the
 *   reason: not built, a stale build (lacking functions, or of another ABI
 *   version), failed to load, no external buffers, unsupported platform, or
 *   `CRIMG_NO_NATIVE=1`.
 * @example
 * const s = nativeStatus();
 * if (!s.available) console.warn(`crimg: portable restore (${s.reason})`);
 */
export function nativeStatus(): NativeStatus {
  return { ...loadOnce().status };
}

/**
 * True if `err` is a {@link SyscallError} thrown by the addon. Works across
 * realms (the addon's errors belong to the realm that loaded it, which under
 * jest or node:vm is not the caller's, so `instanceof Error` would fail).
 *
 * @example
 * try { reserve(n, { address, fixedNoReplace: true }); }
 * catch (err) { if (isSyscallError(err) && err.code === 'EEXIST') retryElsewhere(); else throw err; }
 */
export function isSyscallError(err: unknown): err is SyscallError {
  return (
    types.isNativeError(err) &&
    typeof (err as Partial<SyscallError>).code === 'string' &&
    typeof (err as Partial<SyscallError>).errno === 'number' &&
    typeof (err as Partial<SyscallError>).syscall === 'string'
  );
}

function addon(): NativeMmap {
  const { native, status } = loadOnce();
  if (native !== null) return native;
  const err = new Error(`crimg native mmap addon unavailable: ${status.reason}; use the portable path`);
  (err as Error & { code: string }).code = 'ERR_CRIMG_NATIVE_UNAVAILABLE';
  throw err;
}

/** Refuses lengths Node cannot wrap in an ArrayBuffer, before mapping. */
function checkBufferLength(length: number): void {
  if (typeof length === 'number' && length > bufferConstants.MAX_LENGTH) {
    const err = new RangeError(
      `expected length <= buffer.constants.MAX_LENGTH (${bufferConstants.MAX_LENGTH}), got ${length}; ` +
        'map large regions as several runs',
    );
    (err as RangeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
    throw err;
  }
}

/**
 * The system page size (sysconf(_SC_PAGESIZE)); offsets, addresses and
 * reservation lengths are multiples of it.
 *
 * @throws Error `ERR_CRIMG_NATIVE_UNAVAILABLE` when the addon is absent.
 * @example
 * pageSize(); // 4096 on x86-64
 */
export function pageSize(): number {
  return addon().pageSize();
}

/**
 * Maps `length` bytes of the file open as `fd`, from `offset`, privately
 * (MAP_PRIVATE: writes stay in this process, copy-on-write). mmap(2).
 *
 * The ArrayBuffer's byteLength is `length`; the finalizer unmaps when it is
 * collected (or puts PROT_NONE back if it was placed in a reservation). The
 * fd may be closed afterwards: the mapping keeps its own file reference.
 *
 * @param fd - an open file descriptor of a regular file, readable.
 * @param offset - byte offset in the file, a multiple of {@link pageSize}.
 * @param length - bytes, > 0; `offset + length` must not exceed the file size
 *   (pages past end-of-file would fault with SIGBUS).
 * @param prot - permissions, read required: 'r--', 'rw-', 'r-x', 'rwx'.
 * @param opts - placement, see {@link MapOptions}.
 * @throws TypeError on a wrong argument type.
 * @throws RangeError on a bad value, MAP_FIXED outside a reservation or over
 *   a live mapping, or a range past end-of-file.
 * @throws SyscallError e.g. `EBADF` (syscall 'fstat') for a closed fd,
 *   `EACCES` for a write-only fd, `EEXIST` for a taken `fixedNoReplace` range.
 * @example
 * const fd = fs.openSync('image.crimg', 'r');
 * const run = mapFile(fd, 65536, 8192, 'r--');
 * new Uint8Array(run)[0];
 */
export function mapFile(fd: number, offset: number, length: number, prot: ReadableProt, opts?: MapOptions): ArrayBuffer {
  const mmap = addon();
  checkBufferLength(length);
  return mmap.mapFile(fd, offset, length, prot, opts);
}

/**
 * Maps `length` bytes of zero-filled private anonymous memory. mmap(2) with
 * MAP_ANONYMOUS. Unmapped by the ArrayBuffer's finalizer, as {@link mapFile}.
 *
 * @param length - bytes, > 0.
 * @param prot - permissions, read required.
 * @param opts - placement, see {@link MapOptions}; `{ address, fixed: true }`
 *   places a zero run inside a {@link Reservation}.
 * @throws TypeError on a wrong argument type.
 * @throws RangeError on a bad value or a refused placement.
 * @throws SyscallError e.g. `ENOMEM`, `EEXIST`.
 * @example
 * const zeros = mapAnonymous(2 * pageSize(), 'rw-', { address: r.address, fixed: true });
 */
export function mapAnonymous(length: number, prot: ReadableProt, opts?: MapOptions): ArrayBuffer {
  const mmap = addon();
  checkBufferLength(length);
  return mmap.mapAnonymous(length, prot, opts);
}

/**
 * Reserves address space: PROT_NONE, MAP_NORESERVE anonymous memory, which
 * costs no RAM or swap. A restore reserves a region's whole range, then
 * places its file runs and zero runs with `{ address, fixed: true }`.
 *
 * @param length - bytes, > 0, rounded up to whole pages.
 * @param opts - `{ address, fixedNoReplace: true }` reserves the exact range
 *   or throws `EEXIST`; `fixed` is refused.
 * @returns a frozen, type-tagged {@link Reservation}.
 * @throws TypeError on a wrong argument type.
 * @throws RangeError on a bad value or `fixed`/`populate` in opts.
 * @throws SyscallError `ENOMEM` when the address space is exhausted, `EEXIST`.
 * @example
 * const r = reserve(16 * pageSize());
 * mapFile(fd, 0, 4096, 'r--', { address: r.address, fixed: true });
 */
export function reserve(length: number, opts?: ReserveOptions): Reservation {
  return addon().reserve(length, opts);
}

/**
 * Unmaps now instead of at collection. munmap(2).
 *
 * For an ArrayBuffer the buffer is detached first (every view over it sees
 * length 0); its pages go back to PROT_NONE if it was placed in a live
 * reservation. For a {@link Reservation} its free parts are unmapped; runs
 * placed in it stay mapped, owned by their ArrayBuffers.
 *
 * @param target - an ArrayBuffer from {@link mapFile}/{@link mapAnonymous}, or
 *   a reservation from {@link reserve}; not a view (pass `view.buffer`).
 * @throws TypeError if `target` is neither.
 * @throws RangeError if it was already unmapped, or is a foreign ArrayBuffer.
 * @throws SyscallError `munmap` failures (vm.max_map_count reached).
 * @example
 * unmap(run);
 * run.byteLength; // 0
 */
export function unmap(target: ArrayBuffer | Reservation): void {
  addon().unmap(target);
}

/**
 * Changes page permissions. mprotect(2).
 *
 * @param target - a page-aligned address inside a reservation or mapping made
 *   by this addon, or a mapped ArrayBuffer (its start).
 * @param length - bytes, > 0, rounded up to whole pages; the range must lie
 *   within one reservation or one mapping.
 * @param prot - new permissions. Pages backing a live ArrayBuffer must stay
 *   readable; free parts of a reservation may take any prot.
 * @throws TypeError on a wrong argument type.
 * @throws RangeError for ranges this addon does not own, or an unreadable prot
 *   over a live buffer.
 * @throws SyscallError e.g. `EACCES` for 'x' on a noexec mount.
 * @example
 * protect(run, run.byteLength, 'r-x');
 */
export function protect(target: bigint | ArrayBuffer, length: number, prot: Prot): void {
  addon().protect(target, length, prot);
}

/**
 * Advises the kernel about access patterns. madvise(2).
 *
 * 'dontneed' drops the pages: anonymous memory reads back as zeros, private
 * file pages as the file's contents again. 'hugepage'/'nohugepage' fail with
 * `EINVAL` on kernels without transparent huge pages.
 *
 * @param target - as for {@link protect}.
 * @param length - bytes, > 0, within one reservation or mapping.
 * @param advice - one of {@link Advice}.
 * @throws TypeError on a wrong argument type.
 * @throws RangeError for ranges this addon does not own or unknown advice.
 * @throws SyscallError e.g. `EINVAL`.
 * @example
 * advise(run, run.byteLength, 'willneed');
 */
export function advise(target: bigint | ArrayBuffer, length: number, advice: Advice): void {
  addon().advise(target, length, advice);
}

/**
 * The address of a mapped ArrayBuffer, e.g. to find it in /proc/self/maps.
 *
 * @throws TypeError if `buffer` is not an ArrayBuffer.
 * @throws RangeError if the addon did not map it or it was unmapped.
 * @example
 * addressOf(run).toString(16); // '7f3a1c000000'
 */
export function addressOf(buffer: ArrayBuffer): bigint {
  return addon().addressOf(buffer);
}

/**
 * Reads and decodes many chunks of one image on native threads in one call: a destination is
 * checked (inside its target, writable) before anything starts, each is provisioned in bulk
 * with `populate`, and no JavaScript runs per chunk. Chunk failures are not rejections: they
 * come back in `failures` (the first in image order, or all with `all`).
 *
 * @throws TypeError / RangeError (rejected) on a bad job: a destination outside its target or
 *   not writable, a released target, a plain length of 0 or over 16 MiB.
 */
export function decodeBatch(job: DecodeBatchJob): Promise<DecodeBatchResult> {
  return new Promise((resolve, reject) => {
    addon().decodeBatch(job, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

/**
 * Places many runs into a reservation in one call: one MAP_FIXED mmap(2) per
 * run, file-backed (MAP_PRIVATE) or anonymous zero memory. This is how a
 * restore lays out a region: each run of stored chunks from the image file,
 * each elided zero run anonymous, thousands of them per GiB without a call
 * per run from script.
 *
 * The placed pages belong to the reservation: no ArrayBuffer points at them,
 * so `prot` may be anything, '---' included, and they are unmapped when the
 * reservation is released. Hand them to script with {@link view}.
 *
 * All or nothing: every run is checked before the first mmap (inside the
 * reservation, ascending, not overlapping each other or a live buffer, file
 * ranges inside the file), and if a mmap fails the runs already placed go
 * back to PROT_NONE before the error is thrown.
 *
 * @param reservation - a live reservation from {@link reserve}.
 * @param fd - a readable regular file for the file runs, or -1 when every run
 *   is anonymous.
 * @param runs - `[offset, length, fileOffset]` triples: `offset` into the
 *   reservation and `fileOffset` page-aligned, `length` > 0 (rounded up to
 *   whole pages; a file run's last page may be partly past end-of-file, never
 *   wholly), `fileOffset` -1 for anonymous memory. At most 2^22 runs.
 * @param prot - permissions of every placed page.
 * @throws TypeError on a wrong argument type (a look-alike reservation too).
 * @throws RangeError on a bad run, a released reservation, a run over a live
 *   buffer or past end-of-file.
 * @throws SyscallError e.g. `ENOMEM` when vm.max_map_count is reached,
 *   `EPERM` for 'x' from a noexec mount, `EBADF`.
 * @example
 * const r = reserve(4 * pageSize());
 * // pages 0-1 from the file at offset 8192, pages 2-3 zero
 * placeRuns(r, fd, Float64Array.of(0, 8192, 8192, 8192, 8192, -1), 'rw-');
 */
export function placeRuns(reservation: Reservation, fd: number, runs: Float64Array, prot: Prot): void {
  addon().placeRuns(reservation, fd, runs, prot);
}

/**
 * One ArrayBuffer over part of a reservation, whatever was placed there (file
 * runs, anonymous runs, or untouched reservation, which reads as zeros):
 * mprotect(2)s the range to `prot`, which must be readable, and registers it
 * as a window, so that while the buffer lives no placement, {@link protect}
 * to an unreadable prot, or release can pull its pages away.
 *
 * Dropping the buffer ({@link unmap} or collection) leaves the pages as they
 * are while the reservation is live: they are still the reservation's. If the
 * reservation is released first, the buffer keeps its pages mapped and
 * unmaps them when it goes.
 *
 * The buffer is untransferable (a transfer copies, as for every mapped
 * buffer) and, where the addon can make it so (`nativeAddon()?.unaccountedViews`),
 * not counted as V8 external memory: mapped pages are not heap allocations,
 * and counting a GiB of them costs a garbage collection per 64 MiB.
 *
 * @param reservation - a live reservation from {@link reserve}.
 * @param offset - byte offset into the reservation, page-aligned.
 * @param length - the buffer's byteLength, > 0; the range is rounded up to
 *   whole pages and must lie inside the reservation.
 * @param prot - readable permissions: 'r--', 'rw-', 'r-x', 'rwx'.
 * @returns an external ArrayBuffer of `length` bytes.
 * @throws TypeError on a wrong argument type.
 * @throws RangeError for a range outside the reservation or overlapping a
 *   live buffer, an unreadable prot, a released reservation, or a length
 *   above buffer.constants.MAX_LENGTH (4 GiB on Node 20).
 * @throws SyscallError `mprotect` failures, e.g. `EACCES` for 'x' over a file
 *   run from a noexec mount.
 * @example
 * placeRuns(r, fd, runs, 'rw-');
 * const memory = view(r, 0, regionLength, 'rw-');
 * new Uint8Array(memory)[0];
 */
export function view(reservation: Reservation, offset: number, length: number, prot: ReadableProt): ArrayBuffer {
  const mmap = addon();
  checkBufferLength(length);
  return mmap.view(reservation, offset, length, prot);
}
