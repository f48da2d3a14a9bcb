/**
 * The region section read in place (spec/FORMAT.md sections 8.1 and 9): the decoded bytes stay
 * as they are, every record is checked at construction in one loop over 32-bit words (no
 * object, no BigInt per record), and `Region` objects and names are made only when asked for.
 *
 * Why: a table's claims must not set the cost of opening. 2^20 records whose names all point
 * at one 4096-byte string are 64 MiB of file but 4 GiB of names decoded one by one; here
 * opening costs one pass over the records plus one UTF-8 check of the string table, and names
 * are slices of one decoded string table (section 9's 64 MiB at most), whatever the records say.
 *
 * The records need not be in memory: given a {@link SectionRecords} (a file's reader, from
 * image/_open.ts), they are checked as the caller streams them once, and read again in 64 KiB
 * lines through a small cache when a region is asked for. A 64 MiB section then costs its
 * string table, 4 MiB of cache and what the caller keeps, not 64 MiB.
 */
import { isUtf8 } from 'node:buffer';
import {
  KIND_GAP, LIMITS, REGION_FILE_OFFSET, REGION_RECORD_SIZE, REGION_SHARED, kindName, protToString,
} from './constants.js';
import { hex, view } from './bytes.js';
import { CrimgError } from './errors.js';
import { REGION_RECORD, decodeFields, offsetOf, type FieldName } from './fields.js';
import type { Region, RegionSectionContext } from './index-table.js';
import { checkRegionTotals, type TotalsChecker } from './region-totals.js';
import { BAD_BLOCK, isContinuation, sanitize } from './_utf8-names.js';

type RegionField = FieldName<(typeof REGION_RECORD.fields)[number]>;

const TWO32 = 4294967296;
const dec = new TextDecoder('utf-8', { fatal: true });

// Record field offsets, from the field table once (section 8.1).
const F_ADDRESS = offsetOf(REGION_RECORD, 'address');
const F_LENGTH = offsetOf(REGION_RECORD, 'length');
const F_FIRST = offsetOf(REGION_RECORD, 'firstChunk');
const F_COUNT = offsetOf(REGION_RECORD, 'chunkCount');
const F_STORED = offsetOf(REGION_RECORD, 'storedBytes');
const F_ZEROS = offsetOf(REGION_RECORD, 'zeroChunks');
const F_NAME_OFFSET = offsetOf(REGION_RECORD, 'nameOffset');
const F_NAME_LENGTH = offsetOf(REGION_RECORD, 'nameLength');
const F_PROT = offsetOf(REGION_RECORD, 'protection');
const F_KIND = offsetOf(REGION_RECORD, 'kind');
const F_FLAGS = offsetOf(REGION_RECORD, 'flags');
const F_FILE_PAGE = offsetOf(REGION_RECORD, 'filePage');

// One string per protection and kind, shared by every region (2^20 regions, 2^20 fewer strings).
const PROT_TEXT = Array.from({ length: 8 }, (_, p) => protToString(p));
const KIND_TEXT = Array.from({ length: 256 }, (_, k) => kindName(k));

// The record as 32-bit words (section 8.1, little-endian), from the field table's offsets.
const WORDS = REGION_RECORD_SIZE / 4;
const W_ADDRESS = F_ADDRESS / 4;
const W_LENGTH = F_LENGTH / 4;
const W_FIRST = F_FIRST / 4;
const W_COUNT = F_COUNT / 4;
const W_STORED = F_STORED / 4;
const W_ZEROS = F_ZEROS / 4;
const W_NAME_OFFSET = F_NAME_OFFSET / 4;
const W_NAME_LENGTH = F_NAME_LENGTH / 4;
const W_PROT_KIND = Math.floor(F_PROT / 4);
const PROT_SHIFT = (F_PROT % 4) * 8;
const KIND_SHIFT = (F_KIND - W_PROT_KIND * 4) * 8;
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * The first `count` records of `bytes` as little-endian 32-bit words: a view when the bytes are
 * 4-aligned on a little-endian host, else a copy (read with a DataView, so right on any host).
 */
function recordWords(bytes: Uint8Array, count: number): Uint32Array {
  const n = count * WORDS;
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  const dv = view(bytes);
  const out = new Uint32Array(n);
  for (let k = 0; k < n; k++) out[k] = dv.getUint32(k * 4, true);
  return out;
}


/** Indexes of the state {@link RegionTable} carries from piece to piece of records. */
const NEXT_CHUNK = 0;
const PREV_HI = 1;
const PREV_LO = 2;

/** Bytes of the region section read at once when records are read on demand: 64 records. */
export const RECORD_BLOCK = 4096;
/**
 * The cache of records read on demand: lines of 64 KiB (16 blocks, 1024 records) read at once,
 * at most 64 of them (4 MiB), each line in a slot by a multiplicative hash of its number: with
 * slots by number modulo a power of two, the first probes of every binary search (lines 512,
 * 256, 768...) shared one slot, and a diff of 2^20 regions took 35-55 s instead of 3.
 */
const LINE = 64 * 1024;
const LINE_RECORDS = LINE / REGION_RECORD_SIZE;
const CACHE_LINES = 64;

/**
 * The records of a region section that is not held in memory (a large file's): how they are
 * streamed once for the checks at construction, and read again later. No I/O here (format/):
 * the caller (image/_open.ts) brings it.
 */
export interface SectionRecords {
  /** The string table, which is kept (names are sliced from it). */
  readonly strings: Uint8Array;
  /**
   * Hands every record to `visit`, in order, as pieces of whole records (`first` the number of
   * the piece's first record). A piece is only valid during the call. The caller decides what
   * an exception from `visit` means against its own checks (a section checksum beats a record's
   * error): it may finish its pass and throw its own error instead, or rethrow.
   */
  scan(visit: (piece: Uint8Array, first: number) => void): void;
  /**
   * Fills `into` with the section's bytes at `offset`, a multiple of {@link RECORD_BLOCK}
   * inside the records; `into` ends at a block boundary or at the records' end. Synchronous.
   * @throws CrimgError when they cannot be read or are not the bytes checked at construction.
   */
  read(offset: number, into: Uint8Array): void;
  /**
   * Hands every record to `visit` again, in order, as pieces of whole records read now and
   * checked to be the bytes checked at construction (a piece is only valid during the call).
   * @throws CrimgError when they cannot be read or are not those bytes.
   */
  each(visit: (piece: Uint8Array, first: number) => void): void;
}

/**
 * A fast engine for the record checks (the native addon's, passed in by image/: format/ does
 * no I/O and loads nothing): it says how many records from the start pass every check of
 * section 8.1, with `state` advanced past them; the table checks the record it stopped at
 * itself, so the outcome and message are always the portable code's. Why: 2^20 records took
 * 75-130 ms in the JS loop on a first open, mostly compiling it while it ran; natively 2-3 ms.
 */
export interface RecordChecker extends TotalsChecker {
  checkRegionRecords(records: Uint8Array, first: number, state: Float64Array, ctx: Float64Array, strings: Uint8Array,
    clean: Uint8Array | null, badBlocks: Uint32Array | null, lineStarts: Uint32Array | null): number;
}

/**
 * The region section of an open image, checked, read in place.
 * Construction: O(regions + string table) time, no allocation per record.
 */
export class RegionTable {
  /** Number of regions (the footer's region count). */
  readonly count: number;
  /** The whole section when it is in memory; null when its records are read on demand. */
  readonly bytes: Uint8Array | null;
  /** Where records are read on demand from; null when the section is in memory. */
  private readonly file: SectionRecords | null;
  /** The section in memory, or the cache of blocks read on demand; {@link dv} views it. */
  private readonly store: Uint8Array;
  private readonly dv: DataView;
  /** Per cache slot, the line it holds, or -1. */
  private tags: Int32Array | null = null;
  /**
   * Records read on demand: the address of each line's first record, (hi, lo) words, taken
   * as the records stream by at construction, so a lookup reads one line, not one per level
   * of a binary search (8 bytes per 1024 regions).
   */
  private lineStarts: Uint32Array | null = null;
  private readonly strings: Uint8Array;
  /** True when the whole string table is UTF-8 (as every writer makes it). */
  private readonly utf8Table: boolean;
  /**
   * The string table names are decoded from: itself, or for a table that is not UTF-8 as a
   * whole a copy with every byte outside a well-formed character made "?" (which is UTF-8 as a
   * whole, and equal to the table on every slice that is UTF-8).
   */
  private readonly clean: Uint8Array;
  /** With such a copy: bytes made "?" before each 16-byte block, to count them in O(1) per name. */
  private readonly badBlocks: Uint32Array | null = null;
  private list: Region[] | null = null;
  private text: string | null = null;
  /** UTF-16 units before each 64-byte block of a non-ASCII string table. */
  private blockUnits: Uint32Array | null = null;

  /**
   * Checks every record (section 8.1: sorted, not overlapping, page-aligned, chunk numbering
   * consistent with the chunk count, names inside the string table and UTF-8), with the
   * codes and messages of {@link decodeRegionSection}.
   * @throws CrimgError CORRUPT_INDEX, LIMIT_EXCEEDED
   */
  constructor(section: Uint8Array | SectionRecords, private readonly c: RegionSectionContext, private readonly fast: RecordChecker | null = null) {
    const strBase = c.regionCount * REGION_RECORD_SIZE;
    const length = section instanceof Uint8Array ? section.length : strBase + section.strings.length;
    if (length !== strBase + c.stringTableLength) {
      throw new CrimgError('CORRUPT_INDEX', `region section is ${length} bytes, expected ${strBase + c.stringTableLength}`, { offset: c.base });
    }
    this.count = c.regionCount;
    if (section instanceof Uint8Array) {
      this.bytes = section;
      this.file = null;
      this.store = section;
      this.strings = section.subarray(strBase);
    } else {
      this.bytes = null;
      this.file = section;
      let lines = 1;
      while (lines < CACHE_LINES && lines * LINE < strBase) lines *= 2;
      this.store = new Uint8Array(lines * LINE);
      this.tags = new Int32Array(lines).fill(-1);
      this.lineStarts = new Uint32Array(2 * Math.ceil(strBase / LINE));
      this.strings = section.strings;
    }
    this.dv = view(this.store);
    this.utf8Table = isUtf8(this.strings);
    if (this.utf8Table) {
      this.clean = this.strings;
    } else {
      ({ clean: this.clean, badBlocks: this.badBlocks } = sanitize(this.strings));
    }
    this.check();
  }

  /**
   * The loop over 32-bit words (a Uint32Array over the records: several times faster than a
   * DataView with 2^20 records); a record it doubts is checked again exactly, which throws.
   */
  private check(): void {
    const c = this.c;
    // The numbering and the previous region's end, carried from piece to piece (numbers in a
    // Float64Array: an object's fields changed representation, Smi to double, mid-way).
    const state = Float64Array.of(0, -1, 0);
    if (this.file === null) {
      this.checkPiece(this.bytes!.subarray(0, c.regionCount * REGION_RECORD_SIZE), 0, state);
    } else {
      this.file.scan((piece, first) => this.checkPiece(piece, first, state));
    }
    if (state[NEXT_CHUNK] !== c.chunkCount) {
      throw new CrimgError('CORRUPT_INDEX', `regions account for ${state[NEXT_CHUNK]} chunks, the chunk table has ${c.chunkCount}`, { offset: c.base });
    }
  }

  /**
   * The whole records of `piece`, the first numbered `first`: by the fast engine when there is
   * one, each record it stops at by {@link checkRecords} (which throws, or passes it on).
   */
  private checkPiece(piece: Uint8Array, first: number, state: Float64Array): void {
    const n = piece.length / REGION_RECORD_SIZE;
    const fast = this.fast;
    if (fast === null) {
      this.checkRecords(recordWords(piece, n), first, n, state);
      return;
    }
    const c = this.c;
    const ctx = Float64Array.of(c.pageSize, c.chunkSize, c.chunkCount, LIMITS.maxChunksPerRegion, LIMITS.maxNameLength, LINE_RECORDS, KIND_GAP);
    const clean = this.utf8Table ? null : this.clean;
    for (let k = 0; k < n; k++) {
      k += fast.checkRegionRecords(piece.subarray(k * REGION_RECORD_SIZE), first + k, state, ctx, this.strings, clean, this.badBlocks, this.lineStarts);
      if (k < n) this.checkRecords(recordWords(piece.subarray(k * REGION_RECORD_SIZE, (k + 1) * REGION_RECORD_SIZE), 1), first + k, 1, state);
    }
  }

  /**
   * Records `first` to `first + n - 1`, as words `w` (record `first` at word 0), after the
   * records before them (`state`: the chunk numbering and the previous region's end).
   */
  private checkRecords(w: Uint32Array, first: number, n: number, state: Float64Array): void {
    const c = this.c;
    const strings = this.strings;
    const starts = this.lineStarts;
    const strLen = strings.length;
    const utf8Table = this.utf8Table;
    const pageMask = c.pageSize - 1;
    const perHigh = TWO32 / c.chunkSize; // chunks per 2^32 bytes (chunk sizes are powers of two <= 2^24)
    const maxChunks = LIMITS.maxChunksPerRegion;
    const maxName = LIMITS.maxNameLength;
    let nextChunk = state[NEXT_CHUNK]!;
    let prevHi = state[PREV_HI]!; // previous region's end as (hi, lo); hi may be 2^32 (end of the address space)
    let prevLo = state[PREV_LO]!;
    for (let k = 0; k < n; k++) {
      const i = first + k;
      const b = k * WORDS;
      const aLo = w[b + W_ADDRESS]!;
      const aHi = w[b + W_ADDRESS + 1]!;
      if (starts !== null && (i & (LINE_RECORDS - 1)) === 0) {
        starts[2 * (i / LINE_RECORDS)] = aHi;
        starts[2 * (i / LINE_RECORDS) + 1] = aLo;
      }
      const lLo = w[b + W_LENGTH]!;
      const lHi = w[b + W_LENGTH + 1]!;
      let eLo = aLo + lLo;
      let eHi = aHi + lHi;
      if (eLo >= TWO32) { eLo -= TWO32; eHi += 1; }
      const word = w[b + W_PROT_KIND]!;
      const prot = (word >>> PROT_SHIFT) & 0xff;
      const isGap = ((word >>> KIND_SHIFT) & 0xff) === KIND_GAP;
      const expect = isGap ? 0 : lHi * perHigh + Math.ceil(lLo / c.chunkSize);
      const count = w[b + W_COUNT + 1]! * TWO32 + w[b + W_COUNT]!; // exact below 2^53; above, never equal to expect
      const nameOffset = w[b + W_NAME_OFFSET]!;
      const nameEnd = nameOffset + w[b + W_NAME_LENGTH]!;
      const ok = (aLo & pageMask) === 0
        && (lLo !== 0 || lHi !== 0)
        && (eHi < TWO32 || (eHi === TWO32 && eLo === 0))
        && (aHi > prevHi || (aHi === prevHi && aLo >= prevLo))
        && count === expect
        && expect <= maxChunks
        && w[b + W_FIRST + 1]! * TWO32 + w[b + W_FIRST]! === nextChunk
        && w[b + W_ZEROS + 1]! * TWO32 + w[b + W_ZEROS]! <= count
        && (!isGap || (prot === 0 && w[b + W_STORED]! === 0 && w[b + W_STORED + 1]! === 0))
        && (prot & ~7) === 0
        && nextChunk + count <= c.chunkCount
        && nameEnd - nameOffset <= maxName
        && nameEnd <= strLen
        && (nameEnd === nameOffset || (utf8Table
          ? (strings[nameOffset]! & 0xc0) !== 0x80 && (nameEnd === strLen || (strings[nameEnd]! & 0xc0) !== 0x80)
          : this.nameIsUtf8(nameOffset, nameEnd)));
      if (!ok) this.checkExactly(i, nextChunk);
      nextChunk += count;
      prevHi = eHi;
      prevLo = eLo;
      // Stored in the loop, not after it: code after the loop has no type feedback yet when
      // the loop is optimized mid-way, and the optimized code bailed out there on every piece.
      state[NEXT_CHUNK] = nextChunk;
      state[PREV_HI] = prevHi;
      state[PREV_LO] = prevLo;
    }
  }

  /**
   * The offset in {@link store} of record `i`'s 64 bytes: `i * 64` in memory, else in the
   * cache, its 64 KiB line read on a miss.
   */
  private at(i: number): number {
    if (this.file === null) return i * REGION_RECORD_SIZE;
    const o = i * REGION_RECORD_SIZE;
    const line = Math.floor(o / LINE);
    const tags = this.tags!;
    const slot = (Math.imul(line, 0x9e3779b1) >>> 16) & (tags.length - 1);
    if (tags[slot] !== line) {
      const from = line * LINE;
      const to = Math.min(this.count * REGION_RECORD_SIZE, from + LINE);
      tags[slot] = -1; // not valid while being read (a read may throw)
      this.file.read(from, this.store.subarray(slot * LINE, slot * LINE + (to - from)));
      tags[slot] = line;
    }
    return slot * LINE + (o - line * LINE);
  }

  /**
   * Hands the records, in order, to `f` as pieces of whole records (`first` the number of a
   * piece's first record): the whole section's records at once when in memory, else pieces
   * read for the call ({@link SectionRecords.each}). A piece is only valid during the call, and
   * `f` must not look regions up (a read of the file may reuse the piece's memory).
   */
  private eachRecords(f: (piece: Uint8Array, first: number) => void): void {
    const end = this.count * REGION_RECORD_SIZE;
    if (this.file === null) {
      f(this.bytes!.subarray(0, end), 0);
      return;
    }
    this.file.each(f);
  }

  /**
   * Section 8.1's totals of every region against `chunks`, the chunk table's plain bytes
   * (format/region-totals.ts), by the fast engine when there is one.
   * @throws CrimgError CORRUPT_INDEX naming the first region that disagrees.
   */
  checkTotals(chunks: Uint8Array): void {
    const base = this.c.base;
    this.eachRecords((piece, first) => checkRegionTotals(chunks, piece, { regionCount: piece.length / REGION_RECORD_SIZE, base, first }, this.fast));
  }

  /**
   * Whether the string table's bytes `[start, end)` are UTF-8, in O(1) whatever the table: the
   * slice starts on a character (not a continuation byte), does not end inside one (the byte at
   * `end` is not a continuation of a well-formed character), and holds no byte outside a
   * well-formed character (none in a table that is UTF-8 as a whole; else counted per block).
   */
  private nameIsUtf8(start: number, end: number): boolean {
    if (start === end) return true;
    if (isContinuation(this.strings[start]!)) return false;
    if (end < this.clean.length && isContinuation(this.clean[end]!)) return false;
    const blocks = this.badBlocks;
    if (blocks === null || blocks[(end >> BAD_BLOCK) + 1]! === blocks[start >> BAD_BLOCK]!) return true; // none near
    return this.badBefore(end) === this.badBefore(start);
  }

  /** Bytes of the string table made "?" in the clean copy before byte `p`. */
  private badBefore(p: number): number {
    const b = p >> BAD_BLOCK;
    let n = this.badBlocks![b]!;
    for (let k = b << BAD_BLOCK; k < p; k++) if (this.strings[k] !== this.clean[k]) n++;
    return n;
  }

  /** Record `i` checked field by field as BigInts, with the exact message; the loop's second opinion. */
  private checkExactly(i: number, nextChunk: number): void {
    const c = this.c;
    const o = i * REGION_RECORD_SIZE;
    const corrupt = (why: string, field: RegionField): never => {
      throw new CrimgError('CORRUPT_INDEX', `region ${i} ${why}`, { offset: c.base + o + offsetOf(REGION_RECORD, field), region: i });
    };
    const r = decodeFields(REGION_RECORD, this.store, this.at(i));
    let prevEnd = -1n;
    if (i > 0) {
      const p = decodeFields(REGION_RECORD, this.store, this.at(i - 1));
      prevEnd = p.address + p.length;
    }
    // at(i - 1) may have put another block where record i was: decoded before it, so no matter.
    const chunkSize = BigInt(c.chunkSize);
    if (r.address % BigInt(c.pageSize) !== 0n) corrupt(`address ${hex(r.address)} is not page-aligned`, 'address');
    if (r.length === 0n) corrupt('has length 0', 'length');
    if (r.address + r.length > 1n << 64n) corrupt(`${hex(r.address)} + ${r.length} runs past the 64-bit address space`, 'length');
    if (r.address < prevEnd) corrupt(`at ${hex(r.address)} overlaps or is not after the previous region (ends ${hex(prevEnd)})`, 'address');
    const isGap = r.kind === KIND_GAP;
    const expectChunks = isGap ? 0n : (r.length + chunkSize - 1n) / chunkSize;
    if (r.chunkCount !== expectChunks) corrupt(`has ${r.chunkCount} chunks, expected ${expectChunks} for ${r.length} bytes`, 'chunkCount');
    if (expectChunks > BigInt(LIMITS.maxChunksPerRegion)) {
      throw new CrimgError('LIMIT_EXCEEDED', `region ${i} has ${expectChunks} chunks (limit ${LIMITS.maxChunksPerRegion})`, { offset: c.base + o + offsetOf(REGION_RECORD, 'chunkCount'), region: i });
    }
    if (r.firstChunk !== BigInt(nextChunk)) corrupt(`first chunk ${r.firstChunk} should be ${nextChunk}`, 'firstChunk');
    if (r.zeroChunks > r.chunkCount) corrupt(`zero chunk count ${r.zeroChunks} exceeds its chunk count`, 'zeroChunks');
    if (isGap && (r.protection !== 0 || r.storedBytes !== 0n)) corrupt('is a gap with protection or stored bytes', 'protection');
    if (r.protection & ~7) corrupt(`protection ${r.protection} has reserved bits`, 'protection');
    if (nextChunk + Number(r.chunkCount) > c.chunkCount) corrupt(`chunks run past the chunk table's ${c.chunkCount} records`, 'firstChunk');
    if (r.nameLength > LIMITS.maxNameLength) corrupt(`name length ${r.nameLength} exceeds ${LIMITS.maxNameLength}`, 'nameLength');
    if (r.nameOffset + r.nameLength > c.stringTableLength) corrupt(`name [${r.nameOffset}, +${r.nameLength}) lies outside the string table`, 'nameOffset');
    if (!this.nameIsUtf8(r.nameOffset, r.nameOffset + r.nameLength)) corrupt('name is not UTF-8', 'nameOffset');
  }

  /** Region `i` (0 <= i < count) as a new object; its name decoded now. @throws RangeError */
  get(i: number): Region {
    if (this.list) return this.list[i]!;
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`expected a region number 0..${this.count - 1}, got ${i}`);
    return this.make(i, false);
  }

  /** True once {@link all} has made the array (it no longer needs the section's bytes). */
  get materialized(): boolean {
    return this.list !== null;
  }

  /** Every region, made on the first call (O(regions) objects) and kept. */
  all(): Region[] {
    if (!this.list) {
      // push, not new Array(count): a large preallocated array is a dictionary in V8.
      const list: Region[] = [];
      for (let i = 0; i < this.count; i++) list.push(this.make(i, true));
      this.list = list;
    }
    return this.list;
  }

  /**
   * The number of the region holding `address`, or -1: binary search over the records in
   * place. Gaps count as regions.
   */
  indexAt(address: bigint): number {
    if (address < 0n || address >= 1n << 64n) return -1;
    const hi = Number(address >> 32n);
    const lo = Number(address & 0xffffffffn);
    const dv = this.dv;
    let a = 0;
    let b = this.count - 1;
    const starts = this.lineStarts;
    if (starts !== null) {
      // The last line starting at or below the address, from the line starts in memory; the
      // address can only lie in one of its regions (sorted, not overlapping).
      let l = 0;
      let h = starts.length / 2 - 1;
      while (l < h) {
        const m = (l + h + 1) >> 1;
        const sHi = starts[2 * m]!;
        if (hi > sHi || (hi === sHi && lo >= starts[2 * m + 1]!)) l = m; else h = m - 1;
      }
      a = l * LINE_RECORDS;
      b = Math.min(this.count, a + LINE_RECORDS) - 1;
    }
    while (a <= b) {
      const mid = (a + b) >> 1;
      const o = this.at(mid);
      const aLo = dv.getUint32(o + F_ADDRESS, true);
      const aHi = dv.getUint32(o + F_ADDRESS + 4, true);
      if (hi < aHi || (hi === aHi && lo < aLo)) { b = mid - 1; continue; }
      let eLo = aLo + dv.getUint32(o + F_LENGTH, true);
      let eHi = aHi + dv.getUint32(o + F_LENGTH + 4, true);
      if (eLo >= TWO32) { eLo -= TWO32; eHi += 1; }
      if (hi > eHi || (hi === eHi && lo >= eLo)) a = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** The name of region `i`: a slice of the decoded string table, or decoded alone. */
  name(i: number, whole = false): string {
    const o = this.at(i);
    const start = this.dv.getUint32(o + F_NAME_OFFSET, true);
    const length = this.dv.getUint32(o + F_NAME_LENGTH, true);
    if (length === 0) return '';
    if (!whole && this.text === null) return dec.decode(this.clean.subarray(start, start + length));
    const text = this.decodedTable();
    return text.slice(this.unitsBefore(start), this.unitsBefore(start + length));
  }

  /** The string table as one string (decoded once: at most 64 MiB of bytes, section 9). */
  private decodedTable(): string {
    if (this.text === null) {
      const s = this.clean;
      this.text = dec.decode(s);
      if (this.text.length !== s.length) {
        // Not ASCII: UTF-16 units before each 64-byte block, to map byte offsets to string indexes.
        const blocks = new Uint32Array((s.length >> 6) + 2);
        let units = 0;
        for (let b = 0; b <= s.length; b += 64) { // to the end: a name may end at the table's end
          blocks[b >> 6] = units;
          units += unitsIn(s, b, Math.min(s.length, b + 64));
        }
        this.blockUnits = blocks;
      }
    }
    return this.text;
  }

  /** UTF-16 units of the string table's bytes before byte `p` (a character boundary). */
  private unitsBefore(p: number): number {
    const blocks = this.blockUnits;
    if (!blocks) return p;
    const b = p >> 6;
    return blocks[b]! + unitsIn(this.clean, b << 6, p);
  }

  private make(i: number, whole: boolean): Region {
    const dv = this.dv;
    const o = this.at(i);
    const kindId = dv.getUint8(o + F_KIND);
    const protBits = dv.getUint8(o + F_PROT);
    const flags = dv.getUint16(o + F_FLAGS, true);
    // Counts were checked below 2^53 at construction: Numbers from two words, no BigInt.
    const region: { -readonly [K in keyof Region]: Region[K] } = {
      index: i, address: dv.getBigUint64(o + F_ADDRESS, true), length: dv.getBigUint64(o + F_LENGTH, true), protBits,
      prot: PROT_TEXT[protBits & 7]!, kindId, kind: KIND_TEXT[kindId]!, name: this.name(i, whole),
      firstChunk: word64(dv, o + F_FIRST), chunkCount: word64(dv, o + F_COUNT), storedBytes: dv.getBigUint64(o + F_STORED, true),
      zeroChunks: word64(dv, o + F_ZEROS), isGap: kindId === KIND_GAP, shared: (flags & REGION_SHARED) !== 0,
    };
    // Flags are optional data (section 8.1): unknown bits, and the file page without
    // FILE_OFFSET, are ignored, never refused.
    if (flags & REGION_FILE_OFFSET) region.fileOffset = BigInt(dv.getUint32(o + F_FILE_PAGE, true)) * BigInt(this.c.pageSize);
    return region;
  }
}

/** A u64 field known to be below 2^53, as a Number. */
function word64(dv: DataView, o: number): number {
  return dv.getUint32(o + 4, true) * TWO32 + dv.getUint32(o, true);
}

/** UTF-16 units of the UTF-8 characters starting in `s[from, to)`. */
function unitsIn(s: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let k = from; k < to; k++) {
    const x = s[k]!;
    if ((x & 0xc0) !== 0x80) n += x >= 0xf0 ? 2 : 1;
  }
  return n;
}
