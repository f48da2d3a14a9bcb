/**
 * The trailing index: region table, string table and chunk table, spec/FORMAT.md sections
 * 5.3 and 8.1. Pure: bytes in, fields out. The chunk table is read in place (a DataView over
 * its bytes), never expanded into one object per chunk.
 */
import { Buffer } from 'node:buffer';
import { CHUNK_IN_PARENT, CHUNK_RECORD_SIZE, CHUNK_ZERO, LIMITS, MAX_FILE_PAGE, REGION_FILE_OFFSET, REGION_RECORD_SIZE, REGION_SHARED } from './constants.js';
import { FORM, chunkFormViolation, type FormViolation } from './chunk-form.js';
import { view } from './bytes.js';
import { CrimgError } from './errors.js';
import { RegionTable } from './region-table.js';
import { CHUNK_RECORD, REGION_RECORD, encodeFields, offsetOf, sizeOf } from './fields.js';

/** One region of the region table (section 8.1), as the library returns it. */
export interface Region {
  /** Region number: position in the region table. */
  readonly index: number;
  readonly address: bigint;
  readonly length: bigint;
  /** Protection bits: 1 read, 2 write, 4 execute. */
  readonly protBits: number;
  /** Protection as "rw-" text. */
  readonly prot: string;
  /** Kind byte (section 8.1). */
  readonly kindId: number;
  /** Kind name: anonymous, heap, stack, code, metadata, file, gap or unknown(N). */
  readonly kind: string;
  readonly name: string;
  readonly firstChunk: number;
  readonly chunkCount: number;
  readonly storedBytes: bigint;
  readonly zeroChunks: number;
  /** True for a gap: a reserved range with no access and no data. */
  readonly isGap: boolean;
  /** True when the mapping was shared (MAP_SHARED, `s` in /proc/PID/maps): region flag SHARED. */
  readonly shared: boolean;
  /**
   * Offset in bytes, in the file the region was mapped from, of its first byte, when recorded
   * (region flag FILE_OFFSET); undefined when not (images before format 1.2, anonymous memory,
   * or an offset past what the record holds).
   */
  readonly fileOffset?: bigint;
}

/** What the writer records for a region. */
export interface RegionRecord {
  address: bigint;
  length: bigint;
  firstChunk: number;
  chunkCount: number;
  storedBytes: bigint;
  zeroChunks: number;
  protBits: number;
  kindId: number;
  name: string;
  /** The mapping was shared (region flag SHARED); default false. */
  shared?: boolean;
  /**
   * Offset in bytes of the region's first byte in its file (region flag FILE_OFFSET): a
   * multiple of the page size, at most {@link MAX_FILE_PAGE} pages; undefined for none.
   */
  fileOffset?: bigint;
}

const enc = new TextEncoder();

/**
 * The region flags of a writer's options (section 8.1): `shared` as given, `fileOffset` when it
 * fits a record's file page (below 2^32 pages: 16 TiB with 4 KiB pages), else left out, so the
 * region is recorded as one of unknown offset rather than refused.
 * @throws RangeError when the file offset is negative, not an integer, or not a multiple of the
 *   page size (a mapping's offset always is).
 */
export function regionFlagFields(o: { shared?: boolean; fileOffset?: bigint | number }, pageSize: number): { shared: boolean; fileOffset?: bigint } {
  const shared = o.shared === true;
  if (o.fileOffset === undefined) return { shared };
  const offset = typeof o.fileOffset === 'bigint' ? o.fileOffset : Number.isSafeInteger(o.fileOffset) ? BigInt(o.fileOffset) : -1n;
  if (offset < 0n || offset % BigInt(pageSize) !== 0n) {
    throw new RangeError(`expected a file offset that is a non-negative multiple of the page size ${pageSize}, got ${o.fileOffset}`);
  }
  return offset / BigInt(pageSize) > BigInt(MAX_FILE_PAGE) ? { shared } : { shared, fileOffset: offset };
}

/**
 * Encodes region table followed by string table (the region section's plain bytes).
 *
 * Names are stored once per region, in region order, while they fit section 9's string table
 * (64 MiB): the layout every image written so far has. Past that, each distinct name is stored
 * once, where it first occurs, and every region naming it points there (section 8.1 lets
 * regions share a name): 2^20 gaps naming one 4 KiB string make a 4 KiB table, not 4 GiB.
 * Names are measured before any is encoded, so names that would not fit are never made into
 * bytes.
 * @param pageSize the image's page size: the unit of a record's file page.
 * @throws RangeError when a file offset is not a multiple of the page size or is past
 *   {@link MAX_FILE_PAGE} pages (the writer leaves such an offset out), or when the distinct
 *   names come to more than section 9's string table.
 */
export function encodeRegionSection(records: readonly RegionRecord[], pageSize: number): { bytes: Uint8Array; stringTableLength: number } {
  let each = 0;
  for (const r of records) each += Buffer.byteLength(r.name);
  const { spans, table } = each <= LIMITS.maxStringTable ? namesInOrder(records, each) : distinctNames(records);
  const out = new Uint8Array(records.length * REGION_RECORD_SIZE + table.length);
  out.set(table, records.length * REGION_RECORD_SIZE);
  records.forEach((r, i) => {
    const filePage = r.fileOffset === undefined ? 0n : r.fileOffset / BigInt(pageSize);
    if (r.fileOffset !== undefined && (r.fileOffset < 0n || r.fileOffset % BigInt(pageSize) !== 0n || filePage > BigInt(MAX_FILE_PAGE))) {
      throw new RangeError(`expected region ${i}'s file offset to be a multiple of the page size ${pageSize} below ${MAX_FILE_PAGE + 1} pages, got ${r.fileOffset}`);
    }
    const length = spans[2 * i + 1]!;
    encodeFields(REGION_RECORD, {
      address: r.address,
      length: r.length,
      firstChunk: BigInt(r.firstChunk),
      chunkCount: BigInt(r.chunkCount),
      storedBytes: r.storedBytes,
      zeroChunks: BigInt(r.zeroChunks),
      nameOffset: length ? spans[2 * i]! : 0,
      nameLength: length,
      protection: r.protBits,
      kind: r.kindId,
      flags: (r.shared ? REGION_SHARED : 0) | (r.fileOffset !== undefined ? REGION_FILE_OFFSET : 0),
      filePage: Number(filePage),
    }, out, i * REGION_RECORD_SIZE);
  });
  return { bytes: out, stringTableLength: table.length };
}

/** Each region's name (offset, length) pairs, and the string table holding them. */
interface NameLayout {
  spans: Uint32Array;
  table: Uint8Array;
}

/** Every region's name stored after the one before: `bytes` of names in all. */
function namesInOrder(records: readonly RegionRecord[], bytes: number): NameLayout {
  const spans = new Uint32Array(2 * records.length);
  const table = new Uint8Array(bytes);
  let at = 0;
  records.forEach((r, i) => {
    const n = enc.encodeInto(r.name, table.subarray(at)).written;
    spans[2 * i] = at;
    spans[2 * i + 1] = n;
    at += n;
  });
  return { spans, table };
}

/**
 * Each distinct name stored once, in order of first use. Time: one hash per region's name;
 * memory: the distinct names (at most the string table's limit, else a RangeError).
 */
function distinctNames(records: readonly RegionRecord[]): NameLayout {
  const spans = new Uint32Array(2 * records.length);
  const at = new Map<string, number>();
  const parts: Uint8Array[] = [];
  let size = 0;
  let last = '';
  let lastAt = 0;
  records.forEach((r, i) => {
    const name = r.name;
    if (name.length === 0) return;
    // The same name as the region before (gaps of one reservation): no hash.
    let offset = name === last ? lastAt : at.get(name);
    if (offset === undefined) {
      const b = enc.encode(name);
      if (size + b.length > LIMITS.maxStringTable) {
        throw new RangeError(`expected distinct region names of at most ${LIMITS.maxStringTable} bytes in all (region ${i})`);
      }
      offset = size;
      at.set(name, offset);
      parts.push(b);
      size += b.length;
    }
    spans[2 * i] = offset;
    spans[2 * i + 1] = Buffer.byteLength(name);
    last = name;
    lastAt = offset;
  });
  const table = new Uint8Array(size);
  let p = 0;
  for (const b of parts) { table.set(b, p); p += b.length; }
  return { spans, table };
}

export interface RegionSectionContext {
  regionCount: number;
  stringTableLength: number;
  chunkCount: number;
  chunkSize: number;
  pageSize: number;
  /** File offset of the region section, for messages. */
  base: number;
}

/**
 * Decodes and validates the region section (section 8.1): sorted, not overlapping,
 * page-aligned, chunk numbering consistent with the chunk count. Every region as an object:
 * a reader keeps the section in place instead ({@link RegionTable}).
 * @throws CrimgError CORRUPT_INDEX, LIMIT_EXCEEDED
 */
export function decodeRegionSection(bytes: Uint8Array, c: RegionSectionContext): Region[] {
  return new RegionTable(bytes, c).all();
}

/** A chunk record (section 5.3). */
export interface ChunkRecord {
  offset: number;
  storedLength: number;
  flags: number;
  checksum: bigint;
}

/** Layout facts a chunk record is checked against. */
export interface ChunkBounds {
  dataStart: number;
  dataEnd: number;
  pageSize: number;
  mappable: boolean;
  hasCodec: boolean;
  hasCipher: boolean;
  /** The required feature PARENT: IN_PARENT records are a form (section 8.3). Default false. */
  hasParent?: boolean;
  /** File offset of the chunk table, for messages. */
  base: number;
}

// Chunk record field offsets, taken from the table once: the writer encodes and the reader
// decodes one record per chunk, and a generic walk over the table costs more than the record.
const CR_OFFSET = offsetOf(CHUNK_RECORD, 'offset');
const CR_STORED_LENGTH = offsetOf(CHUNK_RECORD, 'storedLength');
const CR_FLAGS = offsetOf(CHUNK_RECORD, 'flags');
const CR_RESERVED = CR_FLAGS + sizeOf(CHUNK_RECORD, 'flags'); // the reserved u16 after the flags
const CR_CHECKSUM = offsetOf(CHUNK_RECORD, 'checksum');

/** Encodes one chunk record (section 5.3) into `out` at record `i`. */
export function writeChunkRecord(out: Uint8Array, i: number, r: ChunkRecord): void {
  const dv = view(out);
  const o = i * CHUNK_RECORD_SIZE;
  dv.setBigUint64(o + CR_OFFSET, BigInt(r.offset), true);
  dv.setUint32(o + CR_STORED_LENGTH, r.storedLength, true);
  dv.setUint16(o + CR_FLAGS, r.flags, true);
  dv.setUint16(o + CR_RESERVED, 0, true);
  dv.setBigUint64(o + CR_CHECKSUM, r.checksum, true);
}

/**
 * The chunk table read in place. `get` decodes one record and checks it against the layout
 * (section 5.3 rules) in O(1).
 */
export class ChunkTable {
  private readonly dv: DataView;
  readonly count: number;
  private readonly dataStart: bigint;
  private readonly dataEnd: bigint;

  constructor(readonly bytes: Uint8Array, private readonly bounds: ChunkBounds) {
    this.dv = view(bytes);
    this.dataStart = BigInt(bounds.dataStart);
    this.dataEnd = BigInt(bounds.dataEnd);
    this.count = bytes.length / CHUNK_RECORD_SIZE;
  }

  /**
   * Record `i`, checked against its plain length and the layout.
   * @throws CrimgError CORRUPT_INDEX
   */
  get(i: number, plainLength: number): ChunkRecord {
    const o = i * CHUNK_RECORD_SIZE;
    const b = this.bounds;
    const off64 = this.dv.getBigUint64(o + CR_OFFSET, true);
    const storedLength = this.dv.getUint32(o + CR_STORED_LENGTH, true);
    const flags = this.dv.getUint16(o + CR_FLAGS, true);
    const checksum = this.dv.getBigUint64(o + CR_CHECKSUM, true);
    const v = chunkFormViolation(flags, storedLength, plainLength, b.hasCodec, b.hasCipher, off64, checksum, b.hasParent === true);
    if (v !== FORM.ok) this.formError(i, v, flags, storedLength, plainLength);
    if (flags & (CHUNK_ZERO | CHUNK_IN_PARENT)) return { offset: 0, storedLength: 0, flags, checksum };
    if (off64 < this.dataStart || off64 + BigInt(storedLength) > this.dataEnd) {
      this.corrupt(i, `bytes [${off64}, +${storedLength}) lie outside the data area [${b.dataStart}, ${b.dataEnd})`, CR_OFFSET);
    }
    const offset = Number(off64);
    if (b.mappable && offset % b.pageSize !== 0) this.corrupt(i, `offset ${offset} is not page-aligned in a MAPPABLE image`, CR_OFFSET);
    return { offset, storedLength, flags, checksum };
  }

  /** Throws the CORRUPT_INDEX of a section 5.3 violation, at the field it concerns. */
  private formError(i: number, v: FormViolation, flags: number, storedLength: number, plainLength: number): never {
    switch (v) {
      case FORM.reservedBits: return this.corrupt(i, `flags 0x${flags.toString(16)} have reserved bits`, CR_FLAGS);
      case FORM.notOneForm: return this.corrupt(i, `flags 0x${flags.toString(16)} name no single stored form`, CR_FLAGS);
      case FORM.encryptedMismatch: return this.corrupt(i, 'ENCRYPTED flag disagrees with the header cipher', CR_FLAGS);
      case FORM.encodedWithoutCodec: return this.corrupt(i, 'is ENCODED in an image without codec', CR_FLAGS);
      case FORM.rawLength: return this.corrupt(i, `is RAW with ${storedLength} stored bytes for ${plainLength} plain`, CR_STORED_LENGTH);
      case FORM.encodedLength: return this.corrupt(i, `is ENCODED with ${storedLength} stored bytes for ${plainLength} plain`, CR_STORED_LENGTH);
      case FORM.inParentForm: return this.corrupt(i, `is IN_PARENT with flags 0x${flags.toString(16)}, stored bytes, an offset or a checksum`, CR_FLAGS);
      default: return this.corrupt(i, 'is a zero chunk with stored bytes', CR_OFFSET);
    }
  }

  private corrupt(i: number, why: string, field: number): never {
    throw new CrimgError('CORRUPT_INDEX', `chunk ${i} ${why}`, { offset: this.bounds.base + i * CHUNK_RECORD_SIZE + field, chunk: i });
  }
}
