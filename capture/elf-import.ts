/**
 * import-core: an ELF64 little-endian core file (gcore, the kernel's core dumps, export-core)
 * as an image, streamed segment by segment.
 *
 * What each PT_LOAD becomes (also in capture/README.md):
 * - p_filesz = p_memsz: a region holding the segment's bytes;
 * - 0 < p_filesz < p_memsz: a region of the file bytes, and for the rest: zeros (the ELF rule
 *   for a segment's tail) when the memory is anonymous, but a gap when NT_FILE says the
 *   segment maps a file, because then the tail is file content the dumper left out (the
 *   kernel dumps only the first page of an ELF file mapping), not zeros;
 * - p_filesz = 0: a gap. With no flags it is memory without access (a guard, a reservation);
 *   with flags it is memory the dumper did not write (unmodified file mappings, a
 *   coredump_filter choice): a gap tells the truth, NOT_MAPPED on read, where zeros would lie.
 * Kinds and names: the CRIMG notes of an exported core give them back exactly; otherwise a
 * segment NT_FILE names is code (executable) or file, named by the path; a segment holding a
 * thread's stack pointer (NT_PRSTATUS) is a stack; the rest is anonymous. Other notes (registers,
 * auxv, signal info) are not kept: an image holds memory only.
 *
 * The validation block: the CRIMG validation note of an exported core as it was, records of
 * types this version does not know included (toValidationInput keeps them); otherwise
 * the architecture of e_machine, the page size (NT_FILE's, else this host's), the producer
 * `crimg-import-core` and the metric `core.pid`. No cpu.features: the core does not say.
 *
 * Hostile cores: every offset and count is checked against the file length before anything
 * is read or allocated, the notes are capped at 64 MiB, and zero-filled tails at
 * `maxZeroFill` bytes in all; anything else inconsistent is a CrimgError.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ImageWriter, type WriteSummary } from '../image/writer.js';
import type { ValidationInput } from '../format/validation.js';
import { decodeValidation, toValidationInput } from '../format/validation.js';
import { LIMITS, REGION_KINDS, KIND_GAP, isPowerOfTwo, protToString } from '../format/constants.js';
import { CrimgError } from '../format/errors.js';
import { hostPageSize } from '../image/host.js';
import { hex } from '../format/bytes.js';
import { xxh64 } from '../codec/checksum.js';
import { CORRUPT_CORE } from './_codes.js';
import {
  CRIMG_NOTE_NAME, ELF_HEADER_SIZE, NT_CRIMG_REGIONS, NT_CRIMG_VALIDATION, NT_FILE, NT_PRSTATUS, PF_R, PF_X, PHDR_SIZE,
  PN_XNUM, PT_LOAD, PT_NOTE, archByMachine, checkSegment, decodeCrimgRegions, decodeElfHeader, decodeFileNote,
  decodeNotes, decodePrStatus, decodeProgramHeaders, decodeSectionZeroCount, flagsToProt, machineName,
  programHeaderRange, sectionZeroRange, type CrimgRegionInfo, type ElfNote, type FileMapping, type ProgramHeader,
} from './elf-core.js';
import { producerVersion } from './version.js';
import { imageWriterOptions, type ImageOutputOptions } from './_image-options.js';

export interface ImportCoreOptions extends ImageOutputOptions {
  /** Page size of the image; default the core's (NT_FILE, CRIMG note), else this host's. */
  pageSize?: number;
  /** Cap on the zeros written for segment tails (p_filesz < p_memsz), in all. Default 16 GiB. */
  maxZeroFill?: number;
  /** Called after each piece with bytes done and the bytes to write in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ImportCoreResult {
  summary: WriteSummary;
  /** The core's e_machine as a `uname -m` name, when known. */
  architecture?: string;
  pageSize: number;
  /** PT_LOAD segments with memory (p_memsz > 0). */
  segments: number;
  dataRegions: number;
  gaps: number;
  /** True when the core carried crimg's own notes (an export-core file). */
  fromCrimg: boolean;
  notes: string[];
}

/** Notes are read whole: a cap keeps a hostile core from asking for gigabytes. */
const MAX_NOTES = 64 * 1024 * 1024;
const PIECE = 8 * 1024 * 1024;
const ZERO_PIECE = new Uint8Array(1024 * 1024);

/**
 * One region or gap to write. `fileOffset` is where its bytes lie in the core; `mapOffset` the
 * offset in the mapped file NT_FILE gives (region flag FILE_OFFSET), `shared` the CRIMG note's.
 */
type Item = ({ gap: false; address: bigint; fileOffset: number; fileBytes: number; zeroTail: bigint; prot: string; kind: number; name: string }
  | { gap: true; address: bigint; length: bigint; name: string }) & { mapOffset?: bigint; shared?: boolean };

/**
 * Reads the core `corePath` and writes the image `outPath`.
 * @throws CrimgError BAD_MAGIC (not ELF), UNSUPPORTED_FEATURE (ELF32, big-endian, not a core),
 *   TRUNCATED, LIMIT_EXCEEDED, CORRUPT_CORE (overlapping or unaligned segments, bad notes),
 *   IO_ERROR.
 * @example
 * await importCore('core.1234', 'app.img', { compress: 'deflate:1' });
 */
export async function importCore(corePath: string, outPath: string, options: ImportCoreOptions = {}): Promise<ImportCoreResult> {
  let fh: FileHandle;
  try {
    fh = await open(corePath, 'r');
  } catch (e) {
    throw new CrimgError('IO_ERROR', `cannot open ${corePath}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    const core = await readStructure(fh, size);
    const plan = planImport(core, options);
    const writer = await ImageWriter.create(outPath, {
      pageSize: plan.pageSize,
      ...imageWriterOptions(options),
      validation: plan.validation,
    });
    const total = plan.items.reduce((s, it) => s + (it.gap ? 0 : it.fileBytes + Number(it.zeroTail)), 0);
    let done = 0;
    try {
      for (const it of plan.items) {
        if (it.gap) {
          await writer.addGap({ address: it.address, length: it.length, name: it.name, shared: it.shared, fileOffset: it.mapOffset });
          continue;
        }
        const pieces = async function* (): AsyncGenerator<Uint8Array> {
          for await (const p of fileSegment(fh, it.fileOffset, it.fileBytes)) {
            done += p.length;
            options.onProgress?.(done, total);
            yield p;
          }
          for (let left = it.zeroTail; left > 0n;) {
            const n = left < BigInt(ZERO_PIECE.length) ? Number(left) : ZERO_PIECE.length;
            // The same zero buffer each time: the writer never changes the pieces it is given.
            yield n === ZERO_PIECE.length ? ZERO_PIECE : ZERO_PIECE.subarray(0, n);
            left -= BigInt(n);
            done += n;
            options.onProgress?.(done, total);
          }
        };
        await writer.addRegion({ address: it.address, data: pieces(), prot: it.prot, kind: it.kind, name: it.name, shared: it.shared, fileOffset: it.mapOffset });
      }
      const summary = await writer.finish();
      const result: ImportCoreResult = {
        summary, pageSize: plan.pageSize, segments: plan.segments, fromCrimg: plan.fromCrimg, notes: plan.notes,
        dataRegions: plan.items.filter((i) => !i.gap).length, gaps: plan.items.filter((i) => i.gap).length,
      };
      if (plan.architecture !== undefined) result.architecture = plan.architecture;
      return result;
    } catch (e) {
      await writer.abort();
      throw e;
    }
  } finally {
    await fh.close().catch(() => {});
  }
}

/** What the headers and notes of a core say. */
export interface CoreStructure {
  machine: number;
  loads: ProgramHeader[];
  notes: ElfNote[];
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(b, done, length - done, offset + done);
    if (bytesRead === 0) throw new CrimgError('TRUNCATED', `the core ends at ${offset + done}, inside a structure that should end at ${offset + length}`, { offset: offset + done });
    done += bytesRead;
  }
  return b;
}

/** ELF header, program headers and notes, each bounded by the file length first. */
async function readStructure(fh: FileHandle, size: number): Promise<CoreStructure> {
  const h = decodeElfHeader(await readAt(fh, 0, Math.min(size, ELF_HEADER_SIZE)));
  let count = h.phnum;
  if (count === PN_XNUM) {
    const r = sectionZeroRange(h, size);
    count = decodeSectionZeroCount(await readAt(fh, r.offset, r.length));
  }
  // Each region needs at least one program header: more than the region limit cannot be imported.
  const range = programHeaderRange(h, count, size, LIMITS.maxRegions);
  const phdrs = decodeProgramHeaders(await readAt(fh, range.offset, range.length), count, range.offset);
  const loads: ProgramHeader[] = [];
  const notes: ElfNote[] = [];
  let noteBytes = 0;
  for (const p of phdrs) {
    if (p.type !== PT_LOAD && p.type !== PT_NOTE) continue;
    checkSegment(p, size, range.offset);
    if (p.type === PT_LOAD) {
      if (p.memsz > 0n) loads.push(p);
      continue;
    }
    noteBytes += Number(p.filesz);
    if (noteBytes > MAX_NOTES) {
      throw new CrimgError('LIMIT_EXCEEDED', `the core's notes exceed ${MAX_NOTES} bytes`, { offset: range.offset + p.index * PHDR_SIZE + 32 });
    }
    for (const n of decodeNotes(await readAt(fh, Number(p.offset), Number(p.filesz)), Number(p.offset))) notes.push(n); // no spread: a hostile core can hold millions of notes
  }
  return { machine: h.machine, loads, notes };
}

export interface ImportPlan {
  pageSize: number;
  validation: ValidationInput;
  architecture?: string;
  items: Item[];
  segments: number;
  fromCrimg: boolean;
  notes: string[];
}

/** Decides every region, gap, name and kind before anything is written. Pure. */
export function planImport(core: CoreStructure, options: Pick<ImportCoreOptions, 'pageSize' | 'maxZeroFill'> = {}): ImportPlan {
  const notes: string[] = [];
  const arch = archByMachine(core.machine);
  const architecture = machineName(core.machine);
  let files: { pageSize: bigint; files: FileMapping[] } | null = null;
  let crimgValidation: ValidationInput | null = null;
  let crimgRegions: CrimgRegionInfo[] | null = null;
  const threads: { pid: number; sp: bigint | null }[] = [];
  for (const n of core.notes) {
    if (n.name === 'CORE' && n.type === NT_PRSTATUS) threads.push(decodePrStatus(n.desc, arch));
    else if (n.name === 'CORE' && n.type === NT_FILE && files === null) files = decodeFileNote(n.desc, n.descOffset);
    else if (n.name === CRIMG_NOTE_NAME && n.type === NT_CRIMG_VALIDATION) crimgValidation = toValidationInput(decodeValidation(n.desc, n.descOffset, xxh64));
    else if (n.name === CRIMG_NOTE_NAME && n.type === NT_CRIMG_REGIONS) crimgRegions = decodeCrimgRegions(n.desc, n.descOffset);
  }
  const notePage = files && files.pageSize <= BigInt(LIMITS.maxPageSize) && isPowerOfTwo(Number(files.pageSize)) && files.pageSize >= BigInt(LIMITS.minPageSize) ? Number(files.pageSize) : undefined;
  const pageSize = options.pageSize ?? crimgValidation?.pageSize ?? notePage ?? hostPageSize();
  const page = BigInt(pageSize);
  const alignUp = (x: bigint): bigint => ((x + page - 1n) / page) * page;
  const validation: ValidationInput = crimgValidation ?? {
    producerName: 'crimg-import-core',
    producerVersion: producerVersion(),
    ...(architecture !== undefined ? { architecture } : {}),
    pageSize,
    metrics: threads.length ? { 'core.pid': threads[0]!.pid } : {},
  };
  if (architecture === undefined && crimgValidation === null) notes.push(`e_machine ${core.machine} is not an architecture crimg knows: the image records none`);

  const loads = [...core.loads].sort((a, b) => (a.vaddr < b.vaddr ? -1 : a.vaddr > b.vaddr ? 1 : a.index - b.index));
  const fileList = files ? [...files.files].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0)) : [];
  const fileAt = (a: bigint): FileMapping | undefined => {
    let lo = 0;
    let hi = fileList.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const f = fileList[mid]!;
      if (a < f.start) hi = mid - 1;
      else if (a >= f.end) lo = mid + 1;
      else return f;
    }
    return undefined;
  };
  // The offset in its file of address `a`: NT_FILE's page offset times the note's page size
  // (the kernel's page size; gdb's gcore writes 1 and offsets in bytes), kept when it is a
  // multiple of the image's page size (the writer leaves out one past 2^32 pages).
  const mapOffset = (a: bigint): { mapOffset?: bigint } => {
    const f = fileAt(a);
    if (!f || !files || files.pageSize === 0n) return {};
    const off = f.pageOffset * files.pageSize + (a - f.start);
    return off % page === 0n ? { mapOffset: off } : {};
  };
  const byAddress = new Map<bigint, CrimgRegionInfo>();
  for (const r of crimgRegions ?? []) byAddress.set(r.address, r);
  const stacks = threads.filter((t) => t.sp !== null && t.sp !== 0n);

  const items: Item[] = [];
  let prevEnd = 0n;
  let prev: ProgramHeader | null = null;
  let zeroFill = 0n;
  const maxZeroFill = BigInt(options.maxZeroFill ?? 16 * 1024 ** 3);
  let skipped = 0;
  let skippedBytes = 0n;
  for (const p of loads) {
    if (p.vaddr % page !== 0n) {
      throw new CrimgError(CORRUPT_CORE, `core file: segment ${p.index} at ${hex(p.vaddr)} is not aligned to the page size ${pageSize}`, { hint: 'give the core\'s page size explicitly if it is not this host\'s' });
    }
    const end = p.vaddr + alignUp(p.memsz);
    if (end > 1n << 64n) throw new CrimgError(CORRUPT_CORE, `core file: segment ${p.index} at ${hex(p.vaddr)} runs past the 64-bit address space`);
    if (p.vaddr < prevEnd) {
      throw new CrimgError(CORRUPT_CORE, `core file: segment ${p.index} at ${hex(p.vaddr)} overlaps segment ${prev!.index} (${hex(prev!.vaddr)}-${hex(prevEnd)})`, { hint: 'the core is damaged' });
    }
    prevEnd = end;
    prev = p;
    const exported = byAddress.get(p.vaddr);
    const info = exported && exported.length === p.memsz ? exported : undefined;
    const file = fileAt(p.vaddr);
    let name = info?.name ?? file?.name ?? '';
    let kind: number;
    if (info && info.kindId !== KIND_GAP) kind = info.kindId;
    else if (file) kind = p.flags & PF_X ? REGION_KINDS.indexOf('code') : REGION_KINDS.indexOf('file');
    else {
      const t = stacks.findIndex((s) => s.sp! >= p.vaddr && s.sp! < p.vaddr + p.memsz);
      kind = REGION_KINDS.indexOf(t >= 0 ? 'stack' : 'anonymous');
      if (t >= 0 && name === '') name = t === 0 ? '[stack]' : `[stack:${stacks[t]!.pid}]`;
    }
    if (Buffer.byteLength(name) > LIMITS.maxNameLength) {
      notes.push(`the name of segment ${p.index} at ${hex(p.vaddr)} is longer than ${LIMITS.maxNameLength} bytes: cut`);
      name = Buffer.from(name).subarray(0, LIMITS.maxNameLength).toString('utf8').replace(/\uFFFD+$/, '');
    }
    const prot = info ? protToString(info.protBits) : flagsToProt(p.flags);
    const flags = { ...mapOffset(p.vaddr), ...(info?.shared ? { shared: true } : {}) };
    if (p.filesz === 0n) {
      items.push({ gap: true, address: p.vaddr, length: alignUp(p.memsz), name, ...flags });
      if (p.flags & PF_R && !(info && info.kindId === KIND_GAP)) {
        skipped++;
        skippedBytes += p.memsz;
      }
      continue;
    }
    let zeroTail = 0n;
    const tail = p.memsz - p.filesz;
    if (tail > 0n) {
      if (file) {
        const from = p.vaddr + alignUp(p.filesz);
        const head: Item = { gap: false, address: p.vaddr, fileOffset: Number(p.offset), fileBytes: Number(p.filesz), zeroTail: 0n, prot, kind, name, ...flags };
        if (from < end) items.push(head, { gap: true, address: from, length: end - from, name, ...mapOffset(from), ...(info?.shared ? { shared: true } : {}) });
        else items.push(head);
        notes.push(`segment ${p.index} (${name}) at ${hex(p.vaddr)}: ${tail} bytes of file content are not in the core; recorded as a gap`);
        continue;
      }
      zeroTail = tail;
      zeroFill += tail;
      if (zeroFill > maxZeroFill) {
        throw new CrimgError('LIMIT_EXCEEDED', `core file: segment tails to fill with zeros exceed ${maxZeroFill} bytes (segment ${p.index} at ${hex(p.vaddr)})`, { hint: 'raise maxZeroFill if the core is genuine' });
      }
    }
    items.push({ gap: false, address: p.vaddr, fileOffset: Number(p.offset), fileBytes: Number(p.filesz), zeroTail, prot, kind, name, ...flags });
  }
  if (items.length === 0) throw new CrimgError(CORRUPT_CORE, 'core file: no PT_LOAD segment holds memory: there is nothing to import');
  if (items.length > LIMITS.maxRegions) throw new CrimgError('LIMIT_EXCEEDED', `the core makes ${items.length} regions (limit ${LIMITS.maxRegions})`);
  if (skipped) {
    notes.push(`${skipped} readable segment${skipped === 1 ? '' : 's'} (${skippedBytes} bytes) have no bytes in the core (p_filesz 0: the dumper left them out) and are recorded as gaps`);
  }
  const plan: ImportPlan = { pageSize, validation, items, segments: loads.length, fromCrimg: crimgValidation !== null || crimgRegions !== null, notes };
  if (architecture !== undefined) plan.architecture = architecture;
  return plan;
}


/** A segment's file bytes in pieces of at most 8 MiB, one read ahead. */
async function* fileSegment(fh: FileHandle, offset: number, length: number): AsyncGenerator<Uint8Array> {
  let at = offset;
  const end = offset + length;
  const next = (a: number): Promise<Buffer> => readAt(fh, a, Math.min(PIECE, end - a));
  let ahead: Promise<Buffer> | null = at < end ? next(at) : null;
  while (ahead) {
    const b: Buffer = await ahead;
    at += b.length;
    ahead = at < end ? next(at) : null;
    ahead?.catch(() => {}); // awaited on the next turn
    yield b;
  }
}
