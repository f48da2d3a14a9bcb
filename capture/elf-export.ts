/**
 * export-core: an image as an ELF64 core file that gdb, readelf and other core readers accept.
 *
 * - One PT_LOAD per region, in the image's order, each at a page-aligned file offset
 *   (p_align = the image's page size), p_flags from the region's protection. A gap becomes a
 *   PT_LOAD with p_filesz 0 and no flags, the kernel's form for memory it did not dump.
 * - Notes: one NT_PRSTATUS (the pid of the image's `capture.pid` metric, every register zero:
 *   crimg keeps memory, not threads; gdb needs one thread to open a core), an NT_FILE listing
 *   the file mappings at the file offsets the image records (see {@link fileMappings}), and
 *   two notes of owner "CRIMG" holding the validation block and each region's kind, name and
 *   shared flag, so that import-core gives the image back.
 * - Zero chunks are not written: they are holes of a sparse file, read back as zeros.
 *
 * Streaming: a region is read in 8 MiB pieces, one piece ahead, runs of zero chunks skipped
 * by their length; memory and work stay bounded by the image's size, not by what it maps.
 * Written under a temporary name beside CORE (image/_output-file.ts: never following a
 * symlink, mode 0600 unless `mode`), renamed to CORE when complete.
 */
import type { FileHandle } from 'node:fs/promises';
import type { ImageReader } from '../image/reader.js';
import { OutputFile } from '../image/_output-file.js';
import type { Region } from '../format/index-table.js';
import { CrimgError } from '../format/errors.js';
import { LIMITS } from '../format/constants.js';
import { isZero } from '../codec/chunk.js';
import { isZeroRun, readSegments } from '../image/segments.js';
import { parseFileGapName } from './proc-maps.js';
import {
  CRIMG_NOTE_NAME, ELF_ARCHES, NT_CRIMG_REGIONS, NT_CRIMG_VALIDATION, NT_FILE, NT_PRSTATUS, PN_XNUM,
  archByName, encodeCrimgRegions, encodeFileNote, encodeNote, encodePrStatus, encodeSectionZero, layoutCore,
  type FileMapping,
} from './elf-core.js';

export interface ExportCoreOptions {
  /** Architecture of the core; default the image's (validation block). x86_64 or aarch64. */
  architecture?: string;
  /** Thread id of the NT_PRSTATUS note; default the image's `capture.pid` metric, else 1. */
  pid?: number;
  /** fsync before renaming into place (default true). */
  fsync?: boolean;
  /** Permission bits of the core, 0 to 0o777 (default 0o600, owner only: a core holds the process's memory). */
  mode?: number;
  /** Called after each piece with bytes done and the image's data bytes in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ExportCoreResult {
  path: string;
  fileSize: number;
  architecture: string;
  /** PT_LOAD segments: one per region. */
  segments: number;
  /** Of those, gaps (p_filesz 0). */
  gapSegments: number;
  /** Bytes written to the file (zero chunks are holes). */
  bytesWritten: number;
  /** Files listed in NT_FILE. */
  files: number;
}

const PIECE = 8 * 1024 * 1024;
/** Holes are made per block this size: zero blocks are skipped, other bytes written in runs. */
const HOLE_BLOCK = 64 * 1024;

/**
 * Writes `image` as the core file `corePath`.
 * @throws CrimgError UNSUPPORTED_FEATURE when the architecture is not one export-core knows;
 *   KEY_REQUIRED for an encrypted image opened without its key; CORRUPT_CHUNK, AUTH_FAILED from
 *   the image; IO_ERROR when the core cannot be written.
 * @example
 * const image = await openImage('app.img');
 * await exportCore(image, 'app.core'); // then: gdb -c app.core
 */
export async function exportCore(image: ImageReader, corePath: string, options: ExportCoreOptions = {}): Promise<ExportCoreResult> {
  // The CRIMG regions note holds each region's name: regions sharing one long name (section 8.1)
  // would make gigabytes of note. Refused before the file is created, at the string table's limit.
  let nameBytes = 0;
  for (let i = 0; i < image.regionCount; i++) {
    const r = image.region(i);
    nameBytes += Buffer.byteLength(r.name);
    if (nameBytes > LIMITS.maxStringTable) {
      throw new CrimgError('LIMIT_EXCEEDED', `the region names come to more than ${LIMITS.maxStringTable} bytes written once per region (by region ${r.index}), more than a core's CRIMG note may hold`, {
        region: r.index, hint: 'the image\'s regions share long names, which a core holds once per region: this image cannot be exported whole',
      });
    }
  }
  const regions = image.regions;
  const archName = options.architecture ?? image.validation.architecture;
  const arch = archName === undefined ? undefined : archByName(archName);
  if (!arch) {
    const known = ELF_ARCHES.map((a) => a.name).join(', ');
    throw new CrimgError('UNSUPPORTED_FEATURE', archName === undefined
      ? 'the image records no architecture, so the core\'s e_machine is unknown'
      : `export-core writes cores for ${known}, not ${archName}`, { hint: `give the architecture (${known}) explicitly` });
  }
  const pageSize = image.pageSize;
  const metricPid = image.validation.metrics['capture.pid'];
  const pid = options.pid ?? (metricPid !== undefined && Number.isInteger(metricPid) && metricPid > 0 && metricPid < 2 ** 31 ? metricPid : 1);
  const files = fileMappings(regions, pageSize);
  const noteParts = [encodeNote('CORE', NT_PRSTATUS, encodePrStatus(arch, pid))];
  if (files.length) noteParts.push(encodeNote('CORE', NT_FILE, encodeFileNote(pageSize, files)));
  noteParts.push(encodeNote(CRIMG_NOTE_NAME, NT_CRIMG_VALIDATION, image.validationBytes));
  noteParts.push(encodeNote(CRIMG_NOTE_NAME, NT_CRIMG_REGIONS, encodeCrimgRegions(regions)));
  const notes = Buffer.concat(noteParts);
  const layout = layoutCore(arch.machine, regions.map((r) => ({ address: r.address, length: r.length, protBits: r.protBits, hasData: !r.isGap })), notes, pageSize);
  const total = regions.reduce((s, r) => s + (r.isGap ? 0 : Number(r.length)), 0);

  // A temporary file beside the core (unpredictable name, O_EXCL | O_NOFOLLOW, mode 0600 unless
  // `mode`: a core of an encrypted image holds its plaintext), renamed over it when complete.
  const out = await OutputFile.create(corePath, options.mode !== undefined ? { mode: options.mode } : {});
  const fh = out.fh;
  const tmp = out.tmpPath;
  let written = 0;
  let done = 0;
  try {
    await writeAll(fh, tmp, layout.head, 0);
    await writeAll(fh, tmp, notes, layout.notesOffset);
    if (regions.length + 1 >= PN_XNUM) await writeAll(fh, tmp, encodeSectionZero(regions.length + 1), layout.notesOffset + ((notes.length + 3) & ~3));
    for (const [i, r] of regions.entries()) {
      if (r.isGap) continue;
      let fileAt = layout.offsets[i]!;
      // Runs of zero chunks are skipped (holes) without a byte made or looked at: a terabyte
      // of zero chunks costs its chunk records, not a terabyte of zeros.
      for await (const piece of readSegments(image, r.address, r.length, { pieceSize: PIECE })) {
        const n = isZeroRun(piece) ? piece.zeros : piece.length;
        if (!isZeroRun(piece)) written += await writeNonZero(fh, tmp, piece, fileAt);
        fileAt += n;
        done += n;
        options.onProgress?.(done, total);
      }
    }
    await fh.truncate(layout.fileSize);
    await out.commit({ fsync: options.fsync ?? true });
  } catch (e) {
    await out.abort(); // the temporary file only: a file already at corePath stays as it was
    if (e instanceof CrimgError) throw e;
    throw new CrimgError('IO_ERROR', `cannot write ${tmp}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
  return {
    path: corePath, fileSize: layout.fileSize, architecture: arch.name, segments: regions.length,
    gapSegments: regions.filter((r) => r.isGap).length, bytesWritten: written + layout.notesOffset + notes.length, files: files.length,
  };
}

/**
 * The NT_FILE list (offsets in pages of `pageSize`): gdb finds a library's symbols by the
 * offset of each of its mappings. A region named by an absolute path with a recorded file
 * offset (region flag FILE_OFFSET, section 8.1) is listed at that offset, gaps included (a
 * library's `---p` mapping); a gap a capture named `PATH @0xOFFSET PROT` (fileMappings 'gap')
 * at the offset of its name; a file or code region without a recorded offset (images of
 * earlier writers) at offset 0, which is all such an image says.
 */
export function fileMappings(regions: readonly Region[], pageSize: number): FileMapping[] {
  const page = BigInt(pageSize);
  const files: FileMapping[] = [];
  for (const r of regions) {
    const at = { start: r.address, end: r.address + r.length };
    const left = r.isGap ? parseFileGapName(r.name) : null;
    if (left && left.offset % page === 0n) {
      files.push({ ...at, pageOffset: (r.fileOffset ?? left.offset) / page, name: left.path });
    } else if (r.fileOffset !== undefined && r.name.startsWith('/')) {
      files.push({ ...at, pageOffset: r.fileOffset / page, name: r.name });
    } else if (!r.isGap && (r.kind === 'file' || r.kind === 'code') && r.name.startsWith('/')) {
      files.push({ ...at, pageOffset: 0n, name: r.name });
    }
  }
  return files;
}

/** Writes the non-zero blocks of `piece` at `at` in runs, leaving holes; returns bytes written. */
async function writeNonZero(fh: FileHandle, path: string, piece: Buffer, at: number): Promise<number> {
  let written = 0;
  let runStart = -1;
  const flush = async (to: number): Promise<void> => {
    await writeAll(fh, path, piece.subarray(runStart, to), at + runStart);
    written += to - runStart;
    runStart = -1;
  };
  for (let o = 0; o < piece.length; o += HOLE_BLOCK) {
    if (!isZero(piece.subarray(o, Math.min(piece.length, o + HOLE_BLOCK)))) {
      if (runStart < 0) runStart = o;
    } else if (runStart >= 0) {
      await flush(o);
    }
  }
  if (runStart >= 0) await flush(piece.length);
  return written;
}

async function writeAll(fh: FileHandle, path: string, bytes: Uint8Array, at: number): Promise<void> {
  let done = 0;
  try {
    while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done, at + done)).bytesWritten;
  } catch (e) {
    throw new CrimgError('IO_ERROR', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e, offset: at + done });
  }
}
