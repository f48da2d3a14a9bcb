/**
 * Capture of a live process into an image (issues 7 and 13): take the per-process lock
 * (lock.ts), stop it with SIGSTOP, read /proc/PID/maps, the threads' stack pointers
 * (threads.ts), /proc/PID/pagemap (pagemap.ts) and /proc/PID/mem, write one region (or gap)
 * per mapping with the streaming writer, resume it with SIGCONT. See proc-maps.ts for what each
 * mapping becomes. With a codec or cipher the stop covers reading only: the pages go to a
 * memory log (_mem-log.ts, _stage.ts), and the image is written from it after SIGCONT
 * (_replay.ts). A pre-copy (_precopy.ts) reads most pages while the process runs.
 *
 * Memory is bounded: the writer reads each file or shared mapping from /proc/PID/mem in blocks
 * of 2 MiB (`pieceSize`), two reads ahead and at most four writes in flight; private anonymous
 * memory is read run by run of present pages, in pieces of at most `pieceSize`, the rest given
 * to the writer as zero runs; a mapping of any size never sits in memory whole.
 *
 * Reading /proc/PID/mem needs ptrace read-and-attach permission over the process (same user id
 * and Yama's ptrace_scope, or CAP_SYS_PTRACE), not PTRACE_ATTACH itself: the process is stopped
 * with a signal, so it is not traced and a debugger may still attach afterwards.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageWriter, type GapOptions } from '../image/writer.js';
import { onInterrupt } from '../image/_interrupt.js';
import type { RegionRecord } from '../format/index-table.js';
import { describeHost } from '../image/host.js';
import { CrimgError, isCrimgError } from '../format/errors.js';
import { hex } from '../format/bytes.js';
import { markThreadStacks, parseFileGapName, parseMaps, parseSmapsWritten, planMapping, type MappingPlan, type MapsEntry } from './proc-maps.js';
import { checkProcess, isAlive, noSuchProcess, permissionDenied, processExited, signal, waitStopped } from './proc.js';
import { runsToRead, type PageRun } from './pagemap.js';
import { threadStackPointers } from './threads.js';
import { lockProcess } from './lock.js';
import { removeFiles, stageKey, stagePaths } from './_stage.js';
import { MemLog } from './_mem-log.js';
import { logMapping, regionFlags, replay, unreadableUntil, type RegionPlan, type ReplayItem } from './_replay.js';
import { checkSince, WriteTracking, type TrackedMapping } from './_since.js';
import { mappingKey, preCopyPass, stopPass, stopTracking, type PreCopyUsed, type RunningPass, type Tracker } from './_precopy.js';
import { producerVersion } from './version.js';
import { imageWriterOptions } from './_image-options.js';

/** Bytes per read of /proc/PID/mem (CaptureOptions.pieceSize). */
const DEFAULT_PIECE_SIZE = 2 * 1024 * 1024;

import type { CaptureOptions, CaptureResult } from './options.js';
export type { CaptureOptions, CaptureResult } from './options.js';


/**
 * Captures process `pid` into the image `outPath` (written as a temporary file, then renamed).
 *
 * The validation block records this host's architecture, page size and `cpu.features` (the
 * captured process ran here), the producer `crimg-capture`, the labels given, and the metric
 * `capture.pid`. The command name is not recorded: validation labels are restore constraints,
 * and the format has no informational text record yet.
 *
 * The process is resumed on every path (unless `leaveStopped`): success, an error anywhere,
 * and SIGINT, SIGTERM or SIGHUP to this process while it is stopped (the cleanup then also
 * removes the temporary files and the signal ends this process as it would have).
 *
 * @throws TypeError/RangeError on a bad pid or options (the capturing process itself included).
 * @throws CrimgError no such process, a kernel thread (INVALID_ARGUMENT), permission denied
 *   (naming Yama's ptrace_scope and CAP_SYS_PTRACE), another capture of it under way
 *   (PROCESS_BUSY), process exited during capture, did not stop in time; IO_ERROR when the
 *   image cannot be written. The process is resumed first (unless `leaveStopped`).
 * @example
 * const r = await captureProcess(1234, 'app.img', { compress: 'deflate:1' });
 * console.log(`${r.summary.regions} regions, stopped for ${r.stoppedMs} ms`);
 */
export async function captureProcess(pid: number, outPath: string, options: CaptureOptions = {}): Promise<CaptureResult> {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`expected a process id as a positive integer, got ${pid}`);
  if (pid === process.pid) throw new RangeError(`expected another process than the capturing one (${pid}): a process cannot stop itself and go on reading`);
  if (typeof outPath !== 'string' || outPath.length === 0) throw new TypeError(`expected an output path, got ${typeof outPath}`);
  const host = describeHost();
  const pieceSize = options.pieceSize ?? DEFAULT_PIECE_SIZE;
  if ((!Number.isSafeInteger(pieceSize) || pieceSize <= 0 || pieceSize > 64 * 1024 * 1024 || pieceSize % host.pageSize !== 0)) {
    throw new RangeError(`expected a piece size that is a positive multiple of the page size ${host.pageSize}, at most 64 MiB, got ${pieceSize}`);
  }
  if (options.fileMappings !== undefined && options.fileMappings !== 'copy' && options.fileMappings !== 'gap') {
    throw new RangeError(`expected fileMappings 'copy' or 'gap', got ${JSON.stringify(options.fileMappings)}`);
  }
  if (options.preCopy && options.encodeWhileStopped) throw new RangeError('expected preCopy or encodeWhileStopped, not both: a pre-copy encodes after the stop');
  if (options.keepTracking && !options.preCopy) throw new RangeError('expected keepTracking with preCopy: the tracking is what a pre-copy sets up');
  if (options.since !== undefined && (!options.preCopy || options.parent === undefined)) throw new RangeError('expected since with preCopy and parent (the image of the capture that kept the tracking)');
  const lockWaitMs = checkMs(options.lockWaitMs ?? 0, 'lockWaitMs');
  const stopTimeoutMs = checkMs(options.stopTimeoutMs ?? 5000, 'stopTimeoutMs');
  const t0 = performance.now();
  const first = await checkProcess(pid);
  // The lock first: another capture may be stopping and resuming it right now.
  const lock = await lockProcess(pid, first.startTime, lockWaitMs);
  const guard = new StopGuard(pid, options.leaveStopped === true);
  const unregister = onInterrupt(() => guard.interrupted());
  try {
    return await captureLocked(pid, first.startTime, outPath, options, host, pieceSize, stopTimeoutMs, t0, guard);
  } finally {
    // An exception anywhere: the process goes on (unless asked otherwise), temporaries go.
    guard.resume();
    guard.removeTemporaries();
    unregister();
    await lock.release();
  }
}

/** The capture once the lock is held (see {@link captureProcess}). */
async function captureLocked(
  pid: number, startTime: string, outPath: string, options: CaptureOptions, host: ReturnType<typeof describeHost>, pieceSize: number,
  stopTimeoutMs: number, t0: number, guard: StopGuard,
): Promise<CaptureResult> {
  // Checked again under the lock: a capture that held it may have left it stopped, or it
  // exited (and the pid may name another process now: the lock was that one's).
  const stat = await checkProcess(pid);
  if (stat.startTime !== startTime) throw noSuchProcess(pid, 'it exited while this capture waited for the lock (the pid now names another process)');
  // Open the memory before stopping anything: a refusal then leaves the process untouched.
  const mem = await openProc(pid, 'mem', 'the memory');
  const notes: string[] = [];
  const pagemap = await openProc(pid, 'pagemap', 'which pages are present').catch((e: unknown) => {
    notes.push(`/proc/${pid}/pagemap could not be opened (${isCrimgError(e) ? e.message : String(e)}): every page of every mapping was read, untouched ones included, mappings without read permission too`);
    return null;
  });
  // With a codec or cipher, or a pre-copy, the pages go to a memory log, and the image is
  // written from it after SIGCONT (capture/_mem-log.ts, capture/_replay.ts).
  const staged = options.preCopy === true || (!options.encodeWhileStopped && isEncoded(options));
  // The log lies beside OUT (same file system); an OUT that is a URL (s3://) has no
  // directory: the system's temporary directory then.
  const stage = staged ? stagePaths(/^[a-z][a-z0-9+.-]*:\/\//i.test(outPath) ? join(tmpdir(), 'crimg-capture') : outPath) : null;
  // An encrypted capture's log is sealed with a one-time key: no plaintext page on disk.
  const sealKey = stage && options.encrypt !== undefined && options.encrypt !== 'none' ? stageKey() : null;
  if (stage) guard.temporaries.push(stage.path);
  // The writer next, also before stopping: bad options, an unwritable path, a passphrase's
  // scrypt or a parent that cannot be opened cost the process nothing.
  let writer: ImageWriter;
  let log: MemLog | null = null;
  // Known before writing: a tracking kept past the stop names the image it is relative to.
  const imageId = randomBytes(16);
  const validation = {
    producerName: 'crimg-capture',
    producerVersion: producerVersion(),
    architecture: host.architecture,
    pageSize: host.pageSize,
    labels: { ...options.labels },
    bitmaps: { 'cpu.features': host.bitmaps['cpu.features']! },
    metrics: { 'capture.pid': pid },
  };
  try {
    writer = await ImageWriter.create(outPath, {
      // The first image of a tracked chain: a page per chunk, so that a written page makes one
      // chunk of the next child differ, not four (its children take its chunk size).
      ...(options.keepTracking && options.parent === undefined && { chunkSize: host.pageSize }),
      pageSize: host.pageSize, ...imageWriterOptions(options), validation, imageId,
      ...(options.parent !== undefined && { parent: options.parent }),
    });
    if (options.since !== undefined) {
      try {
        checkSince(options.since, pid, startTime, writer.parentImageId);
      } catch (e) {
        await writer.abort();
        throw e;
      }
    }
    if (stage) {
      try {
        log = await MemLog.create(stage.path, sealKey, pieceSize, host.pageSize);
      } catch (e) {
        await writer.abort();
        throw e;
      }
    }
  } catch (e) {
    await mem.close().catch(() => {});
    await pagemap?.close().catch(() => {});
    sealKey?.fill(0);
    stage?.release();
    throw e;
  }
  const wasStopped = stat.state === 'T' || stat.state === 't';
  let stoppedAt = 0;
  let resumedAt = 0;
  let tracker: Tracker | null = null;
  // Tracking kept past the stop (options.keepTracking): the mappings tracked, and the result's.
  const tracked = new Map<string, TrackedMapping>();
  let kept: WriteTracking | undefined;
  try {
    let reader: MemReader | null = null;
    const progress = new Progress(options.onProgress);
    // Pre-copy: tracking, the running pass and catch-up passes (capture/_precopy.ts).
    let preCopy: CaptureResult['preCopy'];
    let before: RunningPass | null = null;
    if (options.preCopy) {
      const why = wasStopped ? 'the process was already stopped' : pagemap === null ? `/proc/${pid}/pagemap could not be opened` : null;
      if (why !== null) {
        preCopy = { used: false, fallback: why };
      } else {
        let result: PreCopyUsed;
        ({ tracker, before, result } = await preCopyPass(pid, mem, pagemap!, log!, host.pageSize, options.fileMappings === 'gap',
          options.preCopyTracking ?? 'auto', options.since ?? null, (n) => progress.read(n)));
        preCopy = result;
        await options.beforeStop?.();
      }
    }
    const runningBytes = log?.readBytes ?? 0;
    const runningLogged = log?.bytes ?? 0;
    if (!wasStopped) {
      guard.stopping();
      if (!signal(pid, 'SIGSTOP')) throw noSuchProcess(pid);
      stoppedAt = performance.now();
      await waitStopped(pid, stopTimeoutMs);
    } else {
      stoppedAt = performance.now();
    }
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => stat.comm)).trimEnd();
    const maps = await readMapsOf(pid, comm);
    const fileMappings = options.fileMappings ?? 'copy';
    const writtenKb = fileMappings === 'gap' ? await readSmapsOf(pid) : undefined;
    const sps = await threadStackPointers(pid);
    const plans = markThreadStacks(maps.map((e) => planMapping(e, { fileMappings, ...(writtenKb && { writtenKb }) })), sps);
    progress.total = plans.reduce((s, p) => s + (p.action === 'region' && !p.noRead ? Number(p.end - p.start) : 0), 0);
    progress.start();
    if (!log) reader = new MemReader(mem, pid, host.pageSize, pieceSize, progress);
    const items: ReplayItem[] = [];
    // A gap goes to the log's items, or straight to the writer.
    const addGap = async (gap: GapOptions): Promise<void> => {
      if (log) items.push({ type: 'gap', gap });
      else await writer.addGap(gap).then(() => { reader!.counts.gaps++; });
    };
    for (const [i, plan] of plans.entries()) {
      if (plan.note) notes.push(plan.note);
      if (plan.action === 'gap') {
        // A file mapping left to its file keeps where in the file it starts, and whether shared.
        const e = maps[i]!;
        const fileGap = parseFileGapName(plan.name) !== null ? { fileOffset: e.offset, ...(e.perms[3] === 's' && { shared: true }) } : {};
        await addGap({ address: plan.start, length: plan.end - plan.start, name: plan.name, ...fileGap });
        continue;
      }
      const base = before?.get(mappingKey(maps[i]!));
      if (base && !plan.noRead && maps[i]!.perms[3] === 'p') {
        // Read whole while it ran: only what changed since.
        const item = await stopPass(log!, mem, pagemap!, pid, host.pageSize, plan, maps[i]!, base.slices, tracker!.tracking, (n) => progress.read(n),
          options.keepTracking === true, base.since);
        if (item) {
          if (item.type === 'region' && item.present) tracked.set(mappingKey(maps[i]!), { start: plan.start, end: plan.end, present: item.present });
          items.push(item);
          progress.covered(plan.end - plan.start);
          continue;
        }
      }
      const present = await runsToRead(pagemap, plan, host.pageSize, notes);
      // Absent pages of file and shared memory are not zeros: those are read whole.
      const runs = plan.zeroWhenAbsent ? present : null;
      if (plan.noRead && present !== null && present.length === 0) {
        // Nothing was ever written there (guard pages, reservations).
        await addGap({ address: plan.start, length: plan.end - plan.start, name: plan.name });
        continue;
      }
      // Without a page map (it could not be opened or read) what such a mapping holds is
      // unknown: it is read whole (FOLL_FORCE reads it; untouched pages come back as zeros)
      // rather than lost as a gap. A large reservation then costs a read of its whole length.
      if (plan.noRead) {
        notes.push(present === null
          ? `${plan.name || 'anonymous mapping'} ${hex(plan.start)}-${hex(plan.end)} (${plan.prot}) has no read permission and the page map could not be read: it was read whole through /proc/PID/mem, untouched pages as zeros, and recorded with protection ${plan.prot}`
          : `${plan.name || 'anonymous mapping'} ${hex(plan.start)}-${hex(plan.end)} (${plan.prot}) has no read permission but holds memory: its present pages were read through /proc/PID/mem and recorded with protection ${plan.prot}`);
      }
      if (log) {
        items.push(...await logMapping(log, mem, pid, host.pageSize, plan, maps[i]!, runs, notes, (n) => progress.read(n)));
        progress.covered(plan.end - plan.start);
      } else {
        await captureMapping(writer, reader!, plan, maps[i]!, runs, notes);
      }
    }
    // Everything is read: the process may go on while the image is written (and encoded).
    await log?.flush();
    if (guard.resume()) resumedAt = performance.now();
    if (options.keepTracking && tracker?.tracking === 'uffd-wp' && tracker.uffd !== undefined) {
      kept = new WriteTracking(pid, startTime, imageId, writer.chunkSize, tracked, tracker.uffd);
      delete tracker.uffd;
    } else if (options.keepTracking && preCopy?.used) {
      notes.push(`keepTracking: no tracking was kept: it needs write protection ('uffd-wp'), and this pre-copy used '${preCopy.tracking}'`);
    }
    // The process runs again: its pages may lose their write protection (the kernel's work).
    if (tracker) stopTracking(tracker);
    const stoppedBytesRead = log ? log.readBytes - runningBytes : reader!.bytesRead;
    if (preCopy?.used) preCopy.changedBytes = log!.bytes - runningLogged;
    if (log) await replay(writer, log, items);
    const summary = await writer.finish();
    const counts = log ? countItems(items) : reader!.counts;
    if (log) {
      await log.close();
      removeFiles([log.path]);
    }
    const end = performance.now();
    return {
      pid, comm, summary, mappings: maps.length, dataRegions: counts.regions, gaps: counts.gaps, bytesRead: log ? log.readBytes : reader!.bytesRead, notes,
      stoppedMs: Math.round((resumedAt || end) - stoppedAt), totalMs: Math.round(end - t0),
      wasStopped, resumed: resumedAt !== 0, staged, stoppedBytesRead, ...(preCopy && { preCopy }), ...(kept && { tracking: kept }),
    };
  } catch (e) {
    kept?.close();
    await writer.abort();
    throw e;
  } finally {
    if (tracker) stopTracking(tracker);
    await mem.close().catch(() => {});
    await pagemap?.close().catch(() => {});
    await log?.close();
    sealKey?.fill(0);
    stage?.release();
  }
}

/** Regions and gaps among `items`. */
function countItems(items: readonly ReplayItem[]): { regions: number; gaps: number } {
  const regions = items.filter((x) => x.type === 'region').length;
  return { regions, gaps: items.length - regions };
}

/** Progress of a capture: bytes of the mappings covered so far (read or known zero) of the readable total. */
class Progress {
  total = 0;
  private done = 0;
  private base = 0;
  constructor(private readonly report: ((done: number, total: number) => void) | undefined) {}
  /** The stop begins: count from zero again (the running pass counted against nothing). */
  start(): void {
    this.done = 0;
    this.base = 0;
  }
  read(n: number): void {
    this.done += n;
    if (this.total > 0) this.report?.(Math.min(this.base + this.done, this.total), this.total);
  }
  /** A mapping of `length` bytes is done. */
  covered(length: bigint): void {
    this.base += Number(length);
    this.done = 0;
    if (this.total > 0) this.report?.(Math.min(this.base, this.total), this.total);
  }
}

/**
 * What must happen to the process and the temporary files whatever ends the capture: a
 * return, an exception, or a signal (see image/_interrupt.ts). Synchronous, so that it also
 * runs from a signal handler just before this process dies.
 */
class StopGuard {
  /** Files to remove if the capture does not complete (the stage image). */
  readonly temporaries: string[] = [];
  private weStopped = false;
  private done = false;

  constructor(private readonly pid: number, private readonly leaveStopped: boolean) {}

  /** Called just before SIGSTOP: from now on the process must be resumed. */
  stopping(): void {
    this.weStopped = true;
  }

  /** SIGCONT if this capture stopped the process (and may resume it); true when sent. */
  resume(): boolean {
    if (!this.weStopped || this.leaveStopped) return false;
    this.weStopped = false;
    try {
      process.kill(this.pid, 'SIGCONT');
    } catch {
      // gone
    }
    return true;
  }

  removeTemporaries(): void {
    if (this.done) return;
    this.done = true;
    removeFiles(this.temporaries);
  }

  /** The signal cleanup: resume, and remove every temporary file (the final name is untouched). */
  interrupted(): void {
    this.resume();
    this.done = false;
    this.removeTemporaries();
  }
}

function checkMs(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`expected ${name} as a non-negative integer of milliseconds, got ${v}`);
  return v;
}

function isEncoded(o: CaptureOptions): boolean {
  return (o.compress !== undefined && o.compress !== 'none') || (o.encrypt !== undefined && o.encrypt !== 'none');
}

/** Opens /proc/PID/NAME for reading. @throws CrimgError no such process, permission denied, IO_ERROR */
async function openProc(pid: number, name: string, what: string): Promise<FileHandle> {
  try {
    return await open(`/proc/${pid}/${name}`, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'ENOENT' || code === 'ESRCH') throw noSuchProcess(pid);
    if (code === 'EACCES' || code === 'EPERM') throw permissionDenied(`read /proc/${pid}/${name}, ${what} of process ${pid}`, code, e);
    throw new CrimgError('IO_ERROR', `cannot open /proc/${pid}/${name}: ${code}`, { cause: e });
  }
}

/** Written kB per mapping from /proc/PID/smaps (parseSmapsWritten). @throws CrimgError permission denied, exited */
async function readSmapsOf(pid: number): Promise<Map<bigint, number>> {
  try {
    return parseSmapsWritten(await readFile(`/proc/${pid}/smaps`, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'EACCES' || code === 'EPERM') throw permissionDenied(`read /proc/${pid}/smaps (which pages of file mappings process ${pid} wrote)`, code, e);
    if (!(await isAlive(pid))) throw processExited(pid, 'reading its memory map');
    throw new CrimgError('IO_ERROR', `cannot read /proc/${pid}/smaps: ${code}`, { cause: e });
  }
}

/** The parsed /proc/PID/maps. @throws CrimgError permission denied, exited, kernel thread */
async function readMapsOf(pid: number, comm: string): Promise<MapsEntry[]> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/maps`, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'EACCES' || code === 'EPERM') throw permissionDenied(`read /proc/${pid}/maps, the memory map of process ${pid}`, code, e);
    if (!(await isAlive(pid))) throw processExited(pid, 'reading its memory map');
    throw new CrimgError('IO_ERROR', `cannot read /proc/${pid}/maps: ${code}`, { cause: e });
  }
  const maps = parseMaps(text);
  if (maps.length === 0) {
    // A process that exited between the checks, or a kernel thread.
    if (!(await isAlive(pid))) throw processExited(pid, 'reading its memory map');
    throw new CrimgError('IO_ERROR', `process ${pid} (${comm}) has no memory mappings: it is a kernel thread`, { hint: 'capture a user-space process' });
  }
  return maps;
}

/**
 * Writes one mapping straight into the image (no memory log): usually one region. When the
 * kernel refuses some pages (EIO: device memory, a file truncated under its mapping), the
 * readable parts become regions and each refused stretch a gap named after the mapping, with
 * a note.
 *
 * Without `present` (file and shared memory, or no pagemap) the writer reads /proc/PID/mem
 * itself as a partial file range (FileRange.partial): the region ends at the first unreadable
 * page, and a stretch that starts with one adds nothing, so the one read decides both "region
 * or gap" and the bytes. For a raw image the reads go into a few reused buffers, where fresh
 * ones per read cost more in page faults than the copy (about 100 ms per 256 MiB).
 * With `present` (private anonymous memory) the writer reads only those runs
 * (FileRange.present); the rest are zero chunks recorded without a read, and the target's
 * untouched pages stay untouched. capture/_replay.ts's logMapping makes the same regions and gaps.
 */
async function captureMapping(
  writer: ImageWriter, reader: MemReader, plan: RegionPlan, entry: MapsEntry, present: readonly PageRun[] | null, notes: string[],
): Promise<void> {
  let at = plan.start;
  while (at < plan.end) {
    const rec = await reader.region(writer, at, plan, entry, present);
    if (rec.length === 0n) {
      // The first page is unreadable (the writer added nothing): a gap up to the next readable page.
      const stop = await unreadableUntil(reader.mem, reader.pid, at, plan.end, reader.pageSize);
      notes.push(`${plan.name || 'anonymous mapping'} ${hex(at)}-${hex(stop)} (${plan.prot}) recorded as a gap: the kernel refused to read it (EIO)`);
      await writer.addGap({ address: at, length: stop - at, name: plan.name });
      reader.counts.gaps++;
      at = stop;
      continue;
    }
    reader.counts.regions++;
    at += rec.length;
  }
}

/** Reads /proc/PID/mem into the image, telling unreadable pages from a process that went away. */
class MemReader {
  /** Bytes read from /proc/PID/mem (present pages only where a page map was given). */
  bytesRead = 0;
  readonly counts = { regions: 0, gaps: 0 };

  constructor(
    readonly mem: FileHandle,
    readonly pid: number,
    readonly pageSize: number,
    private readonly pieceSize: number,
    private readonly progress: Progress,
  ) {}

  /**
   * Writes the mapping from `at` as one region, up to its end or the first unreadable page;
   * with `present`, pages outside those runs are zero and never read (FileRange.present).
   * @returns the region's record; length 0 when the page at `at` is unreadable (nothing added).
   * @throws CrimgError when the process has exited; IO_ERROR on an unexpected errno.
   */
  async region(writer: ImageWriter, at: bigint, plan: RegionPlan, entry: MapsEntry, present: readonly PageRun[] | null): Promise<RegionRecord> {
    let rec: RegionRecord;
    let last = 0;
    try {
      rec = await writer.addRegion({
        address: at,
        data: {
          fd: this.mem.fd, name: `/proc/${this.pid}/mem`, position: at, length: Number(plan.end - at), partial: true,
          readSize: this.pieceSize,
          ...(present !== null && { present: relativeRuns(present, at, plan.end) }),
          // Progress counts the range covered, absent pages included.
          onRead: (n) => { this.progress.read(n - last); last = n; },
        },
        prot: plan.prot, kind: plan.kind, name: plan.name, ...regionFlags(plan, entry, at),
      });
    } catch (e) {
      // A read that failed because the process went away is that, not an I/O error.
      if (!(await isAlive(this.pid))) throw processExited(this.pid, `reading its memory at ${hex(at)}`);
      throw e;
    }
    // The kernel returns nothing once the process's memory is gone; a live process's
    // unreadable page gives EIO instead, but check rather than guess.
    if (rec.length === 0n && !(await isAlive(this.pid))) throw processExited(this.pid, `reading its memory at ${hex(at)}`);
    this.progress.covered(rec.length);
    this.bytesRead += present === null ? Number(rec.length) : relativeRuns(present, at, at + rec.length).reduce((n, r) => n + r.length, 0);
    return rec;
  }
}

/** The runs meeting [at, end) as offsets from `at` (FileRange.present). */
function relativeRuns(runs: readonly PageRun[], at: bigint, end: bigint): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (const r of runs) {
    const start = r.start > at ? r.start : at;
    const stop = r.end < end ? r.end : end;
    if (start < stop) out.push({ offset: Number(start - at), length: Number(stop - start) });
  }
  return out;
}
