/**
 * What captureProcess (capture/process.ts) takes and reports.
 */
import type { WriteSummary } from '../image/writer.js';
import type { ParentInput } from '../image/_parent.js';
import type { ImageOutputOptions } from './_image-options.js';
import type { PreCopyUsed, TrackingChoice } from './_precopy.js';
import type { WriteTracking } from './_since.js';

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
  /**
   * How long to wait for another capture of the same process to finish (default 0: fail at
   * once with PROCESS_BUSY). See lock.ts.
   */
  lockWaitMs?: number;
  /**
   * With a codec or cipher: true encodes while the process is stopped, straight into the
   * image (the stop then lasts as long as the encoding); false (default) reads the pages into a
   * raw stage file beside the output while stopped, resumes the process, then encodes the
   * stage into the image (the stop is as short as a raw capture's; the disk briefly holds both).
   * With a cipher the stage is sealed with aes-256-gcm under a one-time key held in memory
   * (capture/_stage.ts): no plaintext on disk. The pages go to a memory log
   * (capture/_mem-log.ts), sealed piece by piece while the next pieces are read.
   */
  encodeWhileStopped?: boolean;
  /**
   * Pre-copy (capture/_precopy.ts): track writes, read the memory while the process runs, then
   * stop it and read only the pages written since (and mappings that appeared or changed): the
   * image a full stop makes at the moment of the stop. Without a page map, or for a process
   * already stopped, a full stop; {@link CaptureResult.preCopy} says which. Not with
   * `encodeWhileStopped`.
   */
  preCopy?: boolean;
  /**
   * How a pre-copy finds written pages. 'auto' (default): soft-dirty bits (CONFIG_MEM_SOFT_DIRTY),
   * else write protection through a userfaultfd the process is made to open ('uffd-wp': Linux
   * 6.7+, x86-64, one thread stopped for under a millisecond; with catch-up passes), else
   * 'checksums' (the stop reads every page again, seals and writes only the changed ones). A
   * named method falls back to 'checksums' only.
   */
  preCopyTracking?: TrackingChoice;
  /**
   * Pre-copy only: awaited after the running pass, just before SIGSTOP (tests and demos change
   * the process there: whatever it does then is in the image).
   */
  beforeStop?: () => void | Promise<void>;
  /**
   * Write a child image of this earlier image (ImageWriter's `parent`, spec/FORMAT.md section
   * 8.3): only chunks that differ from the parent's are stored.
   */
  parent?: ParentInput;
  /**
   * Pre-copy with write protection ('uffd-wp') only: keep tracking the process's writes past
   * the stop (the stop protects the pages it lists again), and return the tracking as
   * {@link CaptureResult.tracking}, for the next capture's `since`. Costs the process a minor
   * fault per first write to a page until it is closed. Without `parent` and `chunkSize` the
   * image takes page-sized chunks: the first of a chain, whose children take its chunk size, so
   * that a written page makes one chunk of a child differ (with 16 KiB chunks, 2 % of the pages
   * written at random make 7.8 % of the chunks differ).
   */
  keepTracking?: boolean;
  /**
   * The `tracking` of an earlier capture of this process, with `parent` that capture's image:
   * a child image for which only the chunks that hold a page written or dropped since are read;
   * the others are recorded IN_PARENT without reading the process or the parent (capture/_since.ts).
   * Mappings that appeared or changed since are read whole and compared with the parent. The
   * tracking is taken over (closed in the object given). Needs `preCopy`.
   */
  since?: WriteTracking;
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
  /** True when the pages went to a memory log first and were encoded after the stop. */
  staged: boolean;
  /** Bytes read from /proc/PID/mem while the process was stopped (all of bytesRead without pre-copy). */
  stoppedBytesRead: number;
  /**
   * With `preCopy`: used (how written pages were found, the bytes read while the process ran,
   * the bytes the stop took from the process instead of the running pass (changed pages and
   * new mappings), and why soft-dirty bits were not used), or why it fell back to a full stop.
   */
  preCopy?: PreCopyUsed | { used: false; fallback: string };
  /** With `keepTracking` and 'uffd-wp' tracking: the tracking, for the next capture's `since` (close() it when done). */
  tracking?: WriteTracking;
}
