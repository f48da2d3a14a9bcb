/**
 * Capture of a live process into an image (issue 7): stop it with SIGSTOP, read
 * /proc/PID/maps and /proc/PID/mem, write one region (or gap) per mapping with the streaming
 * writer, resume it with SIGCONT. See proc-maps.ts for what each mapping becomes.
 *
 * Memory is bounded: the writer reads each mapping from /proc/PID/mem in blocks of 2 MiB
 * (`pieceSize`), two reads ahead and at most four writes in flight (raw images: into a few
 * reused buffers; encoded ones: fresh buffers held until their chunks are encoded, bounded by
 * the encoder's queue); a mapping of any size never sits in memory whole.
 *
 * Reading /proc/PID/mem needs ptrace read-and-attach permission over the process (same user id
 * and Yama's ptrace_scope, or CAP_SYS_PTRACE), not PTRACE_ATTACH itself: the process is stopped
 * with a signal, so it is not traced and a debugger may still attach afterwards.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { ImageWriter, type WriteSummary } from '../image/writer.js';
import type { RegionRecord } from '../format/index-table.js';
import { describeHost } from '../image/host.js';
import { CrimgError, isCrimgError } from '../format/errors.js';
import { hex } from '../format/bytes.js';
import { parseMaps, parseSmapsWritten, planMapping, type MappingPlan, type MapsEntry } from './proc-maps.js';
import { checkProcess, isAlive, noSuchProcess, permissionDenied, processExited, signal, waitStopped } from './proc.js';
import { producerVersion } from './version.js';
import { imageWriterOptions, type ImageOutputOptions } from './_image-options.js';

/** Bytes per read of /proc/PID/mem (CaptureOptions.pieceSize). */
const DEFAULT_PIECE_SIZE = 2 * 1024 * 1024;

export interface CaptureOptions extends ImageOutputOptions {
  /** Leave the process stopped afterwards (default false: SIGCONT, even on failure). */
  leaveStopped?: boolean;
  /** Restore labels the restoring host must match (spec/FORMAT.md section 4). */
  labels?: Record<string, string>;
  /**
   * Bytes per read of /proc/PID/mem: a multiple of the page size, at most 64 MiB, rounded up
   * to whole chunks. Default 2 MiB: a first capture of 256 MiB took a median 129 ms with 2 MiB
   * reads, 143 ms with 1 MiB or 4 MiB (fewer fresh buffers to fault in than 4 MiB, fewer
   * reads and writes than 1 MiB).
   */
  pieceSize?: number;
  /** How long to wait for every thread to stop after SIGSTOP (default 5000 ms). */
  stopTimeoutMs?: number;
  /** Called after each piece with bytes read so far and the readable bytes of all mappings. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /**
   * 'copy' (default): every readable mapping's bytes go into the image, which is then
   * self-contained. 'gap': read-only mappings of files the process has not written (libraries'
   * code and constants) become gaps named `PATH @0xOFFSET PROT` (fileGapName), as gcore and
   * CRIU leave them out; smaller, but the restorer must map those files itself.
   */
  fileMappings?: 'copy' | 'gap';
}

/** What {@link captureProcess} did. */
export interface CaptureResult {
  pid: number;
  /** The command name (/proc/PID/comm) at the time of capture. Not stored in the image. */
  comm: string;
  summary: WriteSummary;
  /** Mappings in /proc/PID/maps. */
  mappings: number;
  /** Data regions and gaps written. */
  dataRegions: number;
  gaps: number;
  /** Bytes read from /proc/PID/mem. */
  bytesRead: number;
  /** Decisions worth telling the user: pseudo mappings recorded as gaps, unreadable pages. */
  notes: string[];
  /** How long the process was stopped, in milliseconds (until SIGCONT, or until the end). */
  stoppedMs: number;
  /** Wall time of the whole capture in milliseconds. */
  totalMs: number;
  /** True when the process was already stopped before the capture (it is then left stopped). */
  wasStopped: boolean;
  /** True when the capture sent SIGCONT at the end. */
  resumed: boolean;
}


/**
 * Captures process `pid` into the image `outPath` (written as `outPath.tmp`, then renamed).
 *
 * The validation block records this host's architecture, page size and `cpu.features` (the
 * captured process ran here), the producer `crimg-capture`, the labels given, and the metric
 * `capture.pid`. The command name is not recorded: validation labels are restore constraints,
 * and the format has no informational text record yet.
 *
 * @throws TypeError/RangeError on a bad pid or options (the capturing process itself included).
 * @throws CrimgError no such process, permission denied (naming Yama's ptrace_scope and
 *   CAP_SYS_PTRACE), process exited during capture, did not stop in time; IO_ERROR when the
 *   image cannot be written. The process is resumed first (unless `leaveStopped`).
 * @example
 * const r = await captureProcess(1234, 'app.img', { compress: 'deflate:1' });
 * console.log(`${r.summary.regions} regions, stopped for ${r.stoppedMs} ms`);
 */
export async function captureProcess(pid: number, outPath: string, options: CaptureOptions = {}): Promise<CaptureResult> {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`expected a process id as a positive integer, got ${pid}`);
  if (pid === process.pid) throw new RangeError(`expected another process than the capturing one (${pid}): a process cannot stop itself and go on reading`);
  const host = describeHost();
  const pieceSize = options.pieceSize ?? DEFAULT_PIECE_SIZE;
  if ((!Number.isSafeInteger(pieceSize) || pieceSize <= 0 || pieceSize > 64 * 1024 * 1024 || pieceSize % host.pageSize !== 0)) {
    throw new RangeError(`expected a piece size that is a positive multiple of the page size ${host.pageSize}, at most 64 MiB, got ${pieceSize}`);
  }
  if (options.fileMappings !== undefined && options.fileMappings !== 'copy' && options.fileMappings !== 'gap') {
    throw new RangeError(`expected fileMappings 'copy' or 'gap', got ${JSON.stringify(options.fileMappings)}`);
  }
  const t0 = performance.now();
  const stat = await checkProcess(pid);
  // Open the memory before stopping anything: a refusal then leaves the process untouched.
  let mem: FileHandle;
  try {
    mem = await open(`/proc/${pid}/mem`, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'ENOENT' || code === 'ESRCH') throw noSuchProcess(pid);
    if (code === 'EACCES' || code === 'EPERM') throw permissionDenied(pid, `read /proc/${pid}/mem, the memory`, code, e);
    throw new CrimgError('IO_ERROR', `cannot open /proc/${pid}/mem: ${code}`, { cause: e });
  }
  // The writer next, also before stopping: bad options, an unwritable path or a passphrase's
  // scrypt cost the process nothing.
  let writer: ImageWriter;
  try {
    writer = await ImageWriter.create(outPath, {
      pageSize: host.pageSize,
      ...imageWriterOptions(options),
      validation: {
        producerName: 'crimg-capture',
        producerVersion: producerVersion(),
        architecture: host.architecture,
        pageSize: host.pageSize,
        labels: { ...options.labels },
        bitmaps: { 'cpu.features': host.bitmaps['cpu.features']! },
        metrics: { 'capture.pid': pid },
      },
    });
  } catch (e) {
    await mem.close().catch(() => {});
    throw e;
  }
  const wasStopped = stat.state === 'T' || stat.state === 't';
  let stoppedAt = 0;
  let resumedAt = 0;
  let weStopped = false;
  try {
    if (!wasStopped) {
      if (!signal(pid, 'SIGSTOP')) throw noSuchProcess(pid);
      weStopped = true;
      stoppedAt = performance.now();
      await waitStopped(pid, options.stopTimeoutMs ?? 5000);
    } else {
      stoppedAt = performance.now();
    }
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => stat.comm)).trimEnd();
    const maps = await readMapsOf(pid, comm);
    const fileMappings = options.fileMappings ?? 'copy';
    const writtenKb = fileMappings === 'gap' ? await readSmapsOf(pid) : undefined;
    const plans = maps.map((e) => planMapping(e, { fileMappings, ...(writtenKb && { writtenKb }) }));
    const total = plans.reduce((s, p) => s + (p.action === 'region' ? Number(p.end - p.start) : 0), 0);
    const reader = new MemReader(mem, pid, host.pageSize, pieceSize, total, options.onProgress);
    const notes: string[] = [];
    let dataRegions = 0;
    let gaps = 0;
    for (const plan of plans) {
      if (plan.note) notes.push(plan.note);
      if (plan.action === 'gap') {
        await writer.addGap({ address: plan.start, length: plan.end - plan.start, name: plan.name });
        gaps++;
        continue;
      }
      const n = await captureMapping(writer, reader, plan, notes);
      dataRegions += n.regions;
      gaps += n.gaps;
    }
    // Everything is read: the process may go on while the index is written.
    if (weStopped && !options.leaveStopped) {
      resumedAt = performance.now();
      signal(pid, 'SIGCONT');
      weStopped = false;
    }
    const summary = await writer.finish();
    const end = performance.now();
    return {
      pid, comm, summary, mappings: maps.length, dataRegions, gaps, bytesRead: reader.bytesRead, notes,
      stoppedMs: Math.round((resumedAt || end) - stoppedAt), totalMs: Math.round(end - t0),
      wasStopped, resumed: resumedAt !== 0,
    };
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    if (weStopped && !options.leaveStopped) signal(pid, 'SIGCONT');
    await mem.close().catch(() => {});
  }
}

/** Written kB per mapping from /proc/PID/smaps (parseSmapsWritten). @throws CrimgError permission denied, exited */
async function readSmapsOf(pid: number): Promise<Map<bigint, number>> {
  try {
    return parseSmapsWritten(await readFile(`/proc/${pid}/smaps`, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'EACCES' || code === 'EPERM') throw permissionDenied(pid, `read /proc/${pid}/smaps, which pages of file mappings were written`, code, e);
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
    if (code === 'EACCES' || code === 'EPERM') throw permissionDenied(pid, `read /proc/${pid}/maps, the memory map`, code, e);
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
 * Writes one readable mapping: usually one region. When the kernel refuses some pages (EIO:
 * device memory, a file truncated under its mapping), the readable parts become regions and
 * each refused stretch a gap named after the mapping, with a note.
 *
 * The writer reads /proc/PID/mem itself as a partial file range (FileRange.partial): the region
 * ends at the first unreadable page, and a stretch that starts with one adds nothing, so the
 * one read decides both "region or gap" and the bytes. For a raw image the reads go into a few
 * reused buffers, where fresh ones per read cost more in page faults than the copy (about
 * 100 ms per 256 MiB).
 */
async function captureMapping(writer: ImageWriter, reader: MemReader, plan: Extract<MappingPlan, { action: 'region' }>, notes: string[]): Promise<{ regions: number; gaps: number }> {
  let regions = 0;
  let gaps = 0;
  let at = plan.start;
  while (at < plan.end) {
    const rec = await reader.region(writer, at, plan);
    if (rec.length === 0n) {
      // The first page is unreadable (the writer added nothing): a gap up to the next readable page.
      const stop = await reader.unreadableUntil(at, plan.end);
      notes.push(`${plan.name || 'anonymous mapping'} ${hex(at)}-${hex(stop)} (${plan.prot}) recorded as a gap: the kernel refused to read it (EIO)`);
      await writer.addGap({ address: at, length: stop - at, name: plan.name });
      gaps++;
      at = stop;
      continue;
    }
    regions++;
    at += rec.length;
  }
  return { regions, gaps };
}

/** Reads /proc/PID/mem, telling unreadable pages from a process that went away. */
class MemReader {
  bytesRead = 0;
  private readonly probe = Buffer.allocUnsafe(1);

  constructor(
    private readonly mem: FileHandle,
    private readonly pid: number,
    private readonly pageSize: number,
    private readonly pieceSize: number,
    private readonly total: number,
    private readonly onProgress: ((done: number, total: number) => void) | undefined,
  ) {}

  /**
   * Writes the mapping from `at` as one region, up to its end or the first unreadable page.
   * @returns the region's record; length 0 when the page at `at` is unreadable (nothing added).
   * @throws CrimgError when the process has exited; IO_ERROR on an unexpected errno.
   */
  async region(writer: ImageWriter, at: bigint, plan: Extract<MappingPlan, { action: 'region' }>): Promise<RegionRecord> {
    const before = this.bytesRead;
    let rec: RegionRecord;
    try {
      rec = await writer.addRegion({
        address: at,
        data: {
          fd: this.mem.fd, name: `/proc/${this.pid}/mem`, position: at, length: Number(plan.end - at), partial: true,
          readSize: this.pieceSize,
          onRead: (n) => {
            this.bytesRead = before + n;
            this.onProgress?.(this.bytesRead, this.total);
          },
        },
        prot: plan.prot, kind: plan.kind, name: plan.name,
      });
    } catch (e) {
      // A read that failed because the process went away is that, not an I/O error.
      if (!(await isAlive(this.pid))) throw processExited(this.pid, `reading its memory at ${hex(at)}`);
      throw e;
    }
    // The kernel returns nothing once the process's memory is gone; a live process's
    // unreadable page gives EIO instead, but check rather than guess.
    if (rec.length === 0n && !(await isAlive(this.pid))) throw processExited(this.pid, `reading its memory at ${hex(at)}`);
    return rec;
  }

  /** The end of the unreadable stretch starting at `at` (probed a page at a time). */
  async unreadableUntil(at: bigint, end: bigint): Promise<bigint> {
    const page = BigInt(this.pageSize);
    let cur = at + page;
    while (cur < end) {
      try {
        if ((await this.mem.read(this.probe, 0, 1, Number(cur))).bytesRead === 1) return cur;
      } catch (e) {
        if (isCrimgError(e)) throw e;
      }
      if (!(await isAlive(this.pid))) throw processExited(this.pid, `reading its memory at ${hex(cur)}`);
      cur += page;
    }
    return end;
  }
}
