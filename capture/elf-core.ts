/**
 * ELF64 little-endian core files: pure encode/decode of the structures import-core reads and
 * export-core writes (no I/O), in the manner of format/. Every decoder takes the bytes of one
 * structure plus its file offset (for messages), checks each field against the bytes it has and
 * the file length it is given, and throws a CrimgError, never a RangeError of a DataView.
 *
 * Sources: System V gABI ch. 4-5 (ELF header, program header, note section), Linux
 * include/uapi/linux/elf.h (note types, PN_XNUM), fs/binfmt_elf.c (NT_FILE layout, extended
 * program header numbering, core layout), include/linux/elfcore.h (struct elf_prstatus).
 */
import { CrimgError } from '../format/errors.js';
import { REGION_SHARED } from '../format/constants.js';
import { hex } from '../format/bytes.js';
import { CORRUPT_CORE } from './_codes.js';

export const ELF_MAGIC = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46);
export const ELF_HEADER_SIZE = 64;
export const PHDR_SIZE = 56;
export const SHDR_SIZE = 64;
/** e_type of a core file. */
export const ET_CORE = 4;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
/** e_phnum value meaning "the count is in section header 0's sh_info" (more than 65534 segments). */
export const PN_XNUM = 0xffff;
export const NT_PRSTATUS = 1;
export const NT_FILE = 0x46494c45;
/**
 * Owner of crimg's own notes in exported cores. BFD (gdb, objdump) reads notes of unknown owners
 * by their type number as if they were "CORE" notes, so crimg's types stay clear of every NT_*
 * value ("CR" in the high half).
 */
export const CRIMG_NOTE_NAME = 'CRIMG';
/** desc: the image's validation block, byte for byte (spec/FORMAT.md section 4). */
export const NT_CRIMG_VALIDATION = 0x43520001;
/** desc: each segment's region kind, protection and name (see {@link encodeCrimgRegions}). */
export const NT_CRIMG_REGIONS = 0x43520002;

/** What an architecture's cores look like. */
export interface ElfArch {
  /** `uname -m` name, as the validation block's architecture. */
  name: string;
  /** e_machine. */
  machine: number;
  /** sizeof(struct elf_prstatus): 112 bytes of header, the registers, pr_fpvalid, padding. */
  prstatusSize: number;
  /** Index of the stack pointer in pr_reg (8-byte registers from offset 112). */
  spIndex: number;
}

/** Architectures whose cores export-core can write (import-core reads any e_machine). */
export const ELF_ARCHES: readonly ElfArch[] = [
  // user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ...
  { name: 'x86_64', machine: 62, prstatusSize: 336, spIndex: 19 },
  // user_pt_regs: x0..x30, sp, pc, pstate
  { name: 'aarch64', machine: 183, prstatusSize: 392, spIndex: 31 },
];

/** Architecture names of other e_machine values import-core may meet. */
const MACHINE_NAMES: Record<number, string> = { 21: 'ppc64le', 243: 'riscv64', 258: 'loongarch64' };

export function archByName(name: string): ElfArch | undefined {
  return ELF_ARCHES.find((a) => a.name === name);
}

export function archByMachine(machine: number): ElfArch | undefined {
  return ELF_ARCHES.find((a) => a.machine === machine);
}

/** The `uname -m` name of an e_machine, or undefined. */
export function machineName(machine: number): string | undefined {
  return archByMachine(machine)?.name ?? MACHINE_NAMES[machine];
}

/** The fields of the ELF header (gABI "ELF Header") a core reader needs. */
export interface ElfHeader {
  type: number;
  machine: number;
  phoff: bigint;
  shoff: bigint;
  phentsize: number;
  /** e_phnum as stored: PN_XNUM means the count is in section header 0. */
  phnum: number;
  shentsize: number;
  shnum: number;
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function corrupt(message: string, offset: number): never {
  throw new CrimgError(CORRUPT_CORE, `core file: ${message}`, { offset, hint: 'the core file is damaged or was not written by a core dumper' });
}

/**
 * Decodes the 64-byte ELF header of a core.
 * @param b the first bytes of the file (at least 64, or all of a shorter file).
 * @throws CrimgError BAD_MAGIC (not ELF), TRUNCATED, UNSUPPORTED_FEATURE (ELF32, big-endian,
 *   not a core), CORRUPT_CORE.
 */
export function decodeElfHeader(b: Uint8Array): ElfHeader {
  if (b.length < 4 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) {
    throw new CrimgError('BAD_MAGIC', 'not an ELF file: the first bytes are not 7f 45 4c 46 ("\\x7fELF")', { offset: 0, hint: 'import-core reads ELF core dumps (gcore, the kernel\'s core files)' });
  }
  if (b.length < ELF_HEADER_SIZE) throw new CrimgError('TRUNCATED', `the file is ${b.length} bytes, shorter than an ELF header (64)`, { offset: b.length });
  if (b[4] !== 2) throw new CrimgError('UNSUPPORTED_FEATURE', `ELF class ${b[4]} is not ELF64 (2): 32-bit cores are not supported`, { offset: 4 });
  if (b[5] !== 1) throw new CrimgError('UNSUPPORTED_FEATURE', `ELF data encoding ${b[5]} is not little-endian (1): big-endian cores are not supported`, { offset: 5 });
  if (b[6] !== 1) throw new CrimgError('UNSUPPORTED_FEATURE', `ELF version ${b[6]} is not 1`, { offset: 6 });
  const d = dv(b);
  const h: ElfHeader = {
    type: d.getUint16(16, true), // e_type
    machine: d.getUint16(18, true), // e_machine
    phoff: d.getBigUint64(32, true), // e_phoff
    shoff: d.getBigUint64(40, true), // e_shoff
    phentsize: d.getUint16(54, true), // e_phentsize
    phnum: d.getUint16(56, true), // e_phnum
    shentsize: d.getUint16(58, true), // e_shentsize
    shnum: d.getUint16(60, true), // e_shnum
  };
  if (h.type !== ET_CORE) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `ELF type ${h.type} is not a core file (ET_CORE, 4)`, { offset: 16, hint: 'executables and shared objects are not memory images; make a core with gcore PID' });
  }
  if (h.phnum !== 0 && h.phentsize !== PHDR_SIZE) corrupt(`program header size ${h.phentsize} is not ${PHDR_SIZE}`, 54);
  return h;
}

/**
 * Where the section header 0 of an extended-numbering core lies (PN_XNUM), checked against
 * the file length.
 * @throws CrimgError TRUNCATED, CORRUPT_CORE
 */
export function sectionZeroRange(h: ElfHeader, fileSize: number): { offset: number; length: number } {
  if (h.shoff === 0n || h.shnum === 0) corrupt('e_phnum is PN_XNUM (0xffff) but there is no section header 0 to hold the count', 56);
  if (h.shentsize !== SHDR_SIZE) corrupt(`section header size ${h.shentsize} is not ${SHDR_SIZE}`, 58);
  if (h.shoff + BigInt(SHDR_SIZE) > BigInt(fileSize)) throw new CrimgError('TRUNCATED', `section header 0 at ${h.shoff} lies past the end of the ${fileSize}-byte file`, { offset: 40 });
  return { offset: Number(h.shoff), length: SHDR_SIZE };
}

/** sh_info of section header 0: the program header count of an extended-numbering core. */
export function decodeSectionZeroCount(b: Uint8Array): number {
  return dv(b).getUint32(44, true); // sh_info
}

/**
 * The file range of the program header table, checked against the file length and `maxCount`.
 * @throws CrimgError LIMIT_EXCEEDED, TRUNCATED
 */
export function programHeaderRange(h: ElfHeader, count: number, fileSize: number, maxCount: number): { offset: number; length: number } {
  if (count > maxCount) throw new CrimgError('LIMIT_EXCEEDED', `the core has ${count} program headers (limit ${maxCount})`, { offset: 56 });
  const end = h.phoff + BigInt(count) * BigInt(PHDR_SIZE);
  if (end > BigInt(fileSize)) {
    throw new CrimgError('TRUNCATED', `the program header table (${count} entries at ${h.phoff}) ends at ${end}, past the end of the ${fileSize}-byte file`, { offset: 32, hint: 'the core is incomplete; dump it again' });
  }
  return { offset: Number(h.phoff), length: count * PHDR_SIZE };
}

/** One program header (gABI "Program Header"). */
export interface ProgramHeader {
  /** Position in the table. */
  index: number;
  type: number;
  /** PF_R 4, PF_W 2, PF_X 1. */
  flags: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

/** Decodes `count` program headers from `b` (the table's bytes; `base` its file offset). */
export function decodeProgramHeaders(b: Uint8Array, count: number, base: number): ProgramHeader[] {
  if (b.length < count * PHDR_SIZE) throw new CrimgError('TRUNCATED', `program header table holds ${b.length} bytes, not ${count * PHDR_SIZE}`, { offset: base + b.length });
  const d = dv(b);
  const out: ProgramHeader[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * PHDR_SIZE;
    out.push({
      index: i,
      type: d.getUint32(o, true), // p_type
      flags: d.getUint32(o + 4, true), // p_flags
      offset: d.getBigUint64(o + 8, true), // p_offset
      vaddr: d.getBigUint64(o + 16, true), // p_vaddr (p_paddr at 24 is unused in cores)
      filesz: d.getBigUint64(o + 32, true), // p_filesz
      memsz: d.getBigUint64(o + 40, true), // p_memsz
      align: d.getBigUint64(o + 48, true), // p_align
    });
  }
  return out;
}

/**
 * Checks that segment `p`'s file bytes lie inside the file and its memory inside 64 bits.
 * @throws CrimgError TRUNCATED, CORRUPT_CORE
 */
export function checkSegment(p: ProgramHeader, fileSize: number, phoff: number): void {
  const at = phoff + p.index * PHDR_SIZE;
  if (p.offset + p.filesz > BigInt(fileSize)) {
    throw new CrimgError('TRUNCATED', `segment ${p.index} (${hex(p.vaddr)}) holds bytes ${p.offset}..${p.offset + p.filesz}, past the end of the ${fileSize}-byte file`, {
      offset: at + 8, hint: 'the core is incomplete (the dump was cut short); dump it again',
    });
  }
  if (p.vaddr + p.memsz > 1n << 64n) corrupt(`segment ${p.index} at ${hex(p.vaddr)} of ${p.memsz} bytes runs past the 64-bit address space`, at + 40);
  if (p.type === PT_LOAD && p.filesz > p.memsz) corrupt(`segment ${p.index} at ${hex(p.vaddr)} has more file bytes (${p.filesz}) than memory bytes (${p.memsz})`, at + 32);
}

/** One note (gABI "Note Section"). */
export interface ElfNote {
  /** Owner, without the terminating NUL ("CORE", "LINUX", "GDB", "CRIMG"). */
  name: string;
  type: number;
  desc: Uint8Array;
  /** File offset of the note's header. */
  offset: number;
  /** File offset of the descriptor. */
  descOffset: number;
}

const align4 = (n: number): number => (n + 3) & ~3;
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');
const enc = new TextEncoder();

/**
 * Decodes the notes of one PT_NOTE segment: 12-byte headers {namesz, descsz, type}, then the
 * name and the descriptor, each padded to 4 bytes (Linux cores pad to 4 also in ELF64).
 * @throws CrimgError CORRUPT_CORE when a note runs past its segment.
 */
export function decodeNotes(b: Uint8Array, base: number): ElfNote[] {
  const d = dv(b);
  const out: ElfNote[] = [];
  let o = 0;
  while (o + 12 <= b.length) {
    const namesz = d.getUint32(o, true); // n_namesz, NUL included
    const descsz = d.getUint32(o + 4, true); // n_descsz
    const type = d.getUint32(o + 8, true); // n_type
    const nameAt = o + 12;
    const descAt = nameAt + align4(namesz);
    if (namesz > b.length || descsz > b.length || descAt + descsz > b.length) {
      corrupt(`note at ${base + o} (name ${namesz} bytes, descriptor ${descsz} bytes) runs past the end of its ${b.length}-byte segment`, base + o);
    }
    const rawName = b.subarray(nameAt, nameAt + namesz);
    const nul = rawName.indexOf(0);
    out.push({ name: latin1.decode(nul >= 0 ? rawName.subarray(0, nul) : rawName), type, desc: b.subarray(descAt, descAt + descsz), offset: base + o, descOffset: base + descAt });
    o = descAt + align4(descsz);
  }
  return out;
}

/** One mapping of an NT_FILE note. */
export interface FileMapping {
  start: bigint;
  end: bigint;
  /** File offset of `start`, in units of the note's page size. */
  pageOffset: bigint;
  name: string;
}

/**
 * Decodes an NT_FILE descriptor (fs/binfmt_elf.c fill_files_note): u64 count, u64 page size,
 * `count` triples {u64 start, u64 end, u64 file offset in pages}, then `count` NUL-terminated
 * file names.
 * @throws CrimgError CORRUPT_CORE when the count does not fit the descriptor or a name is unterminated.
 */
export function decodeFileNote(desc: Uint8Array, base: number): { pageSize: bigint; files: FileMapping[] } {
  if (desc.length < 16) corrupt(`NT_FILE note of ${desc.length} bytes is shorter than its 16-byte header`, base);
  const d = dv(desc);
  const count = d.getBigUint64(0, true); // count
  const pageSize = d.getBigUint64(8, true); // page size
  if (count > BigInt(Math.floor((desc.length - 16) / 24))) corrupt(`NT_FILE note claims ${count} files, more than its ${desc.length} bytes hold`, base);
  const n = Number(count);
  const files: FileMapping[] = [];
  let s = 16 + n * 24;
  for (let i = 0; i < n; i++) {
    const nul = desc.indexOf(0, s);
    if (nul < 0) corrupt(`NT_FILE note: name ${i} of ${n} has no terminating NUL`, base + s);
    const o = 16 + i * 24;
    files.push({
      start: d.getBigUint64(o, true),
      end: d.getBigUint64(o + 8, true),
      pageOffset: d.getBigUint64(o + 16, true),
      name: utf8.decode(desc.subarray(s, nul)),
    });
    s = nul + 1;
  }
  return { pageSize, files };
}

/** What crimg reads of an NT_PRSTATUS: the thread id and, for known architectures, its stack pointer. */
export function decodePrStatus(desc: Uint8Array, arch: ElfArch | undefined): { pid: number; sp: bigint | null } {
  const d = dv(desc);
  const pid = desc.length >= 36 ? d.getInt32(32, true) : 0; // pr_pid
  const spAt = arch ? 112 + arch.spIndex * 8 : -1; // pr_reg[spIndex]
  return { pid, sp: arch && spAt + 8 <= desc.length ? d.getBigUint64(spAt, true) : null };
}

/** A minimal NT_PRSTATUS descriptor: the thread id, every register zero (crimg keeps memory only). */
export function encodePrStatus(arch: ElfArch, pid: number): Uint8Array {
  const b = new Uint8Array(arch.prstatusSize);
  const d = dv(b);
  d.setInt32(32, pid, true); // pr_pid
  d.setInt32(36, 0, true); // pr_ppid
  return b;
}

/** An NT_FILE descriptor (see {@link decodeFileNote}). */
export function encodeFileNote(pageSize: number, files: readonly FileMapping[]): Uint8Array {
  const names = files.map((f) => enc.encode(f.name));
  const size = 16 + files.length * 24 + names.reduce((s, n) => s + n.length + 1, 0);
  const b = new Uint8Array(size);
  const d = dv(b);
  d.setBigUint64(0, BigInt(files.length), true);
  d.setBigUint64(8, BigInt(pageSize), true);
  let s = 16 + files.length * 24;
  files.forEach((f, i) => {
    d.setBigUint64(16 + i * 24, f.start, true);
    d.setBigUint64(16 + i * 24 + 8, f.end, true);
    d.setBigUint64(16 + i * 24 + 16, f.pageOffset, true);
    b.set(names[i]!, s);
    s += names[i]!.length + 1;
  });
  return b;
}

/** One note: header, name with its NUL, descriptor, each padded to 4 bytes. */
export function encodeNote(name: string, type: number, desc: Uint8Array): Uint8Array {
  const n = enc.encode(name);
  const b = new Uint8Array(12 + align4(n.length + 1) + align4(desc.length));
  const d = dv(b);
  d.setUint32(0, n.length + 1, true);
  d.setUint32(4, desc.length, true);
  d.setUint32(8, type, true);
  b.set(n, 12);
  b.set(desc, 12 + align4(n.length + 1));
  return b;
}

/** A region as the CRIMG regions note records it. */
export interface CrimgRegionInfo {
  address: bigint;
  length: bigint;
  kindId: number;
  protBits: number;
  name: string;
  /** Region flag SHARED (spec/FORMAT.md section 8.1); absent in notes of earlier versions (read as false). */
  shared?: boolean;
}

const CRIMG_REGION_SIZE = 32;

/**
 * The NT_CRIMG_REGIONS descriptor: u32 count, u32 zero, then `count` records of 32 bytes
 * {u64 address, u64 length, u8 kind, u8 protection, u16 flags (bit 0 SHARED, as the region
 * record's; written as zero before), u32 name offset, u32 name length, u32 zero} in the
 * image's region order, then the names (UTF-8), offsets relative to
 * the end of the records. With it, import-core gives back the kinds, names and gaps the image had.
 */
export function encodeCrimgRegions(regions: readonly CrimgRegionInfo[]): Uint8Array {
  const names = regions.map((r) => enc.encode(r.name));
  const table = 8 + regions.length * CRIMG_REGION_SIZE;
  const b = new Uint8Array(table + names.reduce((s, n) => s + n.length, 0));
  const d = dv(b);
  d.setUint32(0, regions.length, true);
  let s = 0;
  regions.forEach((r, i) => {
    const o = 8 + i * CRIMG_REGION_SIZE;
    d.setBigUint64(o, r.address, true);
    d.setBigUint64(o + 8, r.length, true);
    b[o + 16] = r.kindId;
    b[o + 17] = r.protBits;
    d.setUint16(o + 18, r.shared ? REGION_SHARED : 0, true);
    d.setUint32(o + 20, s, true);
    d.setUint32(o + 24, names[i]!.length, true);
    b.set(names[i]!, table + s);
    s += names[i]!.length;
  });
  return b;
}

/** Decodes an NT_CRIMG_REGIONS descriptor. @throws CrimgError CORRUPT_CORE */
export function decodeCrimgRegions(desc: Uint8Array, base: number): CrimgRegionInfo[] {
  if (desc.length < 8) corrupt(`CRIMG regions note of ${desc.length} bytes is shorter than its header`, base);
  const d = dv(desc);
  const count = d.getUint32(0, true);
  const table = 8 + count * CRIMG_REGION_SIZE;
  if (table > desc.length) corrupt(`CRIMG regions note claims ${count} regions, more than its ${desc.length} bytes hold`, base);
  const out: CrimgRegionInfo[] = [];
  for (let i = 0; i < count; i++) {
    const o = 8 + i * CRIMG_REGION_SIZE;
    const nameAt = d.getUint32(o + 20, true);
    const nameLen = d.getUint32(o + 24, true);
    if (table + nameAt + nameLen > desc.length) corrupt(`CRIMG regions note: name of region ${i} lies outside the note`, base + o + 20);
    out.push({
      address: d.getBigUint64(o, true),
      length: d.getBigUint64(o + 8, true),
      kindId: desc[o + 16]!,
      protBits: desc[o + 17]! & 7,
      name: utf8.decode(desc.subarray(table + nameAt, table + nameAt + nameLen)),
      ...(d.getUint16(o + 18, true) & REGION_SHARED ? { shared: true } : {}),
    });
  }
  return out;
}

/** p_flags of crimg protection bits (read 1, write 2, execute 4). */
export function protToFlags(protBits: number): number {
  return (protBits & 1 ? PF_R : 0) | (protBits & 2 ? PF_W : 0) | (protBits & 4 ? PF_X : 0);
}

/** "rwx" text of p_flags. */
export function flagsToProt(flags: number): string {
  return (flags & PF_R ? 'r' : '-') + (flags & PF_W ? 'w' : '-') + (flags & PF_X ? 'x' : '-');
}

/** A segment of a core being laid out: a region's memory, with or without file bytes. */
export interface SegmentInput {
  address: bigint;
  length: bigint;
  protBits: number;
  /** False for a gap: a PT_LOAD with p_filesz 0 (the kernel's form for memory it did not dump). */
  hasData: boolean;
}

/** Where everything of an exported core goes. */
export interface CoreLayout {
  /** ELF header, program headers (PT_NOTE first) and, with more than 65534 segments, section header 0. */
  head: Uint8Array;
  notesOffset: number;
  /** File offset of each segment's bytes (page-aligned), in input order. */
  offsets: number[];
  fileSize: number;
}

/**
 * Lays out a core (fs/binfmt_elf.c elf_core_dump order): ELF header, program headers (one
 * PT_NOTE, then one PT_LOAD per segment), the notes, then each segment's bytes at a
 * page-aligned offset, so that a segment can be mapped straight from the file.
 * More than 65534 segments use extended numbering: e_phnum PN_XNUM, the count in section header
 * 0's sh_info, that section header after the notes.
 */
export function layoutCore(machine: number, segments: readonly SegmentInput[], notes: Uint8Array, pageSize: number): CoreLayout {
  const phnum = segments.length + 1;
  const xnum = phnum >= PN_XNUM;
  const notesOffset = ELF_HEADER_SIZE + phnum * PHDR_SIZE;
  const shoff = xnum ? notesOffset + align4(notes.length) : 0;
  const headEnd = shoff ? shoff + SHDR_SIZE : notesOffset + notes.length;
  const alignUp = (x: number): number => Math.ceil(x / pageSize) * pageSize;
  let cur = alignUp(headEnd);
  const offsets: number[] = [];
  for (const s of segments) {
    offsets.push(cur);
    if (s.hasData) cur = alignUp(cur + Number(s.length));
  }
  const fileSize = cur;
  // The head: ELF header and program headers (the notes and section 0 are written apart).
  const head = new Uint8Array(notesOffset);
  const d = dv(head);
  head.set(ELF_MAGIC, 0);
  head[4] = 2; // EI_CLASS: ELFCLASS64
  head[5] = 1; // EI_DATA: ELFDATA2LSB
  head[6] = 1; // EI_VERSION
  head[7] = 0; // EI_OSABI: System V (what Linux writes)
  d.setUint16(16, ET_CORE, true); // e_type
  d.setUint16(18, machine, true); // e_machine
  d.setUint32(20, 1, true); // e_version
  d.setBigUint64(32, BigInt(ELF_HEADER_SIZE), true); // e_phoff
  d.setBigUint64(40, BigInt(shoff), true); // e_shoff
  d.setUint16(52, ELF_HEADER_SIZE, true); // e_ehsize
  d.setUint16(54, PHDR_SIZE, true); // e_phentsize
  d.setUint16(56, xnum ? PN_XNUM : phnum, true); // e_phnum
  d.setUint16(58, xnum ? SHDR_SIZE : 0, true); // e_shentsize
  d.setUint16(60, xnum ? 1 : 0, true); // e_shnum
  const ph = (i: number, type: number, flags: number, offset: number, vaddr: bigint, filesz: bigint, memsz: bigint, align: number): void => {
    const o = ELF_HEADER_SIZE + i * PHDR_SIZE;
    d.setUint32(o, type, true);
    d.setUint32(o + 4, flags, true);
    d.setBigUint64(o + 8, BigInt(offset), true);
    d.setBigUint64(o + 16, vaddr, true);
    d.setBigUint64(o + 32, filesz, true);
    d.setBigUint64(o + 40, memsz, true);
    d.setBigUint64(o + 48, BigInt(align), true);
  };
  ph(0, PT_NOTE, 0, notesOffset, 0n, BigInt(notes.length), 0n, 4);
  segments.forEach((s, i) => {
    ph(i + 1, PT_LOAD, protToFlags(s.protBits), offsets[i]!, s.address, s.hasData ? s.length : 0n, s.length, pageSize);
  });
  return { head, notesOffset, offsets, fileSize };
}

/** Section header 0 of an extended-numbering core (fs/binfmt_elf.c fill_extnum_info). */
export function encodeSectionZero(phnum: number): Uint8Array {
  const b = new Uint8Array(SHDR_SIZE);
  const d = dv(b);
  d.setBigUint64(32, 1n, true); // sh_size: e_shnum
  d.setUint32(44, phnum, true); // sh_info: the program header count
  return b;
}
