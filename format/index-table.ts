/**
 * The trailing index: region table, string table and chunk table, spec/FORMAT.md sections
 * 5.3 and 8.1. Pure: bytes in, fields out. The chunk table is read in place (a DataView over
 * its bytes), never expanded into one object per chunk.
 */
import {
  CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_RAW, CHUNK_RECORD_SIZE, CHUNK_ZERO, KIND_GAP, LIMITS,
  REGION_RECORD_SIZE, TAG_SIZE, kindName, protToString,
} from './constants.js';
import { hex, view } from './bytes.js';
import { CrimgError } from './errors.js';

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
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** Encodes region table followed by string table (the region section's plain bytes). */
export function encodeRegionSection(records: readonly RegionRecord[]): { bytes: Uint8Array; stringTableLength: number } {
  const names = records.map((r) => enc.encode(r.name));
  const stringTableLength = names.reduce((s, n) => s + n.length, 0);
  const out = new Uint8Array(records.length * REGION_RECORD_SIZE + stringTableLength);
  const dv = view(out);
  let str = records.length * REGION_RECORD_SIZE;
  records.forEach((r, i) => {
    const o = i * REGION_RECORD_SIZE;
    dv.setBigUint64(o, r.address, true);
    dv.setBigUint64(o + 8, r.length, true);
    dv.setBigUint64(o + 16, BigInt(r.firstChunk), true);
    dv.setBigUint64(o + 24, BigInt(r.chunkCount), true);
    dv.setBigUint64(o + 32, r.storedBytes, true);
    dv.setBigUint64(o + 40, BigInt(r.zeroChunks), true);
    const n = names[i]!;
    dv.setUint32(o + 48, n.length ? str - records.length * REGION_RECORD_SIZE : 0, true);
    dv.setUint32(o + 52, n.length, true);
    out[o + 56] = r.protBits;
    out[o + 57] = r.kindId;
    out.set(n, str);
    str += n.length;
  });
  return { bytes: out, stringTableLength };
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
 * page-aligned, chunk numbering consistent with the chunk count.
 * @throws CrimgError CORRUPT_INDEX, LIMIT_EXCEEDED
 */
export function decodeRegionSection(bytes: Uint8Array, c: RegionSectionContext): Region[] {
  const dv = view(bytes);
  const strBase = c.regionCount * REGION_RECORD_SIZE;
  if (bytes.length !== strBase + c.stringTableLength) {
    throw new CrimgError('CORRUPT_INDEX', `region section is ${bytes.length} bytes, expected ${strBase + c.stringTableLength}`, { offset: c.base });
  }
  const regions: Region[] = [];
  const chunkSize = BigInt(c.chunkSize);
  let nextChunk = 0;
  let prevEnd = -1n;
  for (let i = 0; i < c.regionCount; i++) {
    const o = i * REGION_RECORD_SIZE;
    const corrupt = (why: string, at = 0): never => {
      throw new CrimgError('CORRUPT_INDEX', `region ${i} ${why}`, { offset: c.base + o + at, region: i });
    };
    const address = dv.getBigUint64(o, true);
    const length = dv.getBigUint64(o + 8, true);
    const firstChunk = dv.getBigUint64(o + 16, true);
    const chunkCount = dv.getBigUint64(o + 24, true);
    const storedBytes = dv.getBigUint64(o + 32, true);
    const zeroChunks = dv.getBigUint64(o + 40, true);
    const nameOffset = dv.getUint32(o + 48, true);
    const nameLength = dv.getUint32(o + 52, true);
    const protBits = bytes[o + 56]!;
    const kindId = bytes[o + 57]!;
    if (address % BigInt(c.pageSize) !== 0n) corrupt(`address ${hex(address)} is not page-aligned`, 0);
    if (length === 0n) corrupt('has length 0', 8);
    if (address + length > 1n << 64n) corrupt(`${hex(address)} + ${length} runs past the 64-bit address space`, 8);
    if (address < prevEnd) corrupt(`at ${hex(address)} overlaps or is not after the previous region (ends ${hex(prevEnd)})`, 0);
    prevEnd = address + length;
    const isGap = kindId === KIND_GAP;
    const expectChunks = isGap ? 0n : (length + chunkSize - 1n) / chunkSize;
    if (chunkCount !== expectChunks) corrupt(`has ${chunkCount} chunks, expected ${expectChunks} for ${length} bytes`, 24);
    if (expectChunks > BigInt(LIMITS.maxChunksPerRegion)) {
      throw new CrimgError('LIMIT_EXCEEDED', `region ${i} has ${expectChunks} chunks (limit ${LIMITS.maxChunksPerRegion})`, { offset: c.base + o + 24, region: i });
    }
    if (firstChunk !== BigInt(nextChunk)) corrupt(`first chunk ${firstChunk} should be ${nextChunk}`, 16);
    if (zeroChunks > chunkCount) corrupt(`zero chunk count ${zeroChunks} exceeds its chunk count`, 40);
    if (isGap && (protBits !== 0 || storedBytes !== 0n)) corrupt('is a gap with protection or stored bytes', 56);
    if (protBits & ~7) corrupt(`protection ${protBits} has reserved bits`, 56);
    nextChunk += Number(chunkCount);
    if (nextChunk > c.chunkCount) corrupt(`chunks run past the chunk table's ${c.chunkCount} records`, 16);
    if (nameLength > LIMITS.maxNameLength) corrupt(`name length ${nameLength} exceeds ${LIMITS.maxNameLength}`, 52);
    if (nameOffset + nameLength > c.stringTableLength) corrupt(`name [${nameOffset}, +${nameLength}) lies outside the string table`, 48);
    let name = '';
    try {
      name = dec.decode(bytes.subarray(strBase + nameOffset, strBase + nameOffset + nameLength));
    } catch {
      corrupt('name is not UTF-8', 48);
    }
    regions.push({
      index: i, address, length, protBits, prot: protToString(protBits), kindId, kind: kindName(kindId), name,
      firstChunk: Number(firstChunk), chunkCount: Number(chunkCount), storedBytes, zeroChunks: Number(zeroChunks), isGap,
    });
  }
  if (nextChunk !== c.chunkCount) {
    throw new CrimgError('CORRUPT_INDEX', `regions account for ${nextChunk} chunks, the chunk table has ${c.chunkCount}`, { offset: c.base });
  }
  return regions;
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
  /** File offset of the chunk table, for messages. */
  base: number;
}

/** Encodes one chunk record into `out` at record `i`. */
export function writeChunkRecord(out: Uint8Array, i: number, r: ChunkRecord): void {
  const dv = view(out);
  const o = i * CHUNK_RECORD_SIZE;
  dv.setBigUint64(o, BigInt(r.offset), true);
  dv.setUint32(o + 8, r.storedLength, true);
  dv.setUint16(o + 12, r.flags, true);
  dv.setUint16(o + 14, 0, true);
  dv.setBigUint64(o + 16, r.checksum, true);
}

/**
 * The chunk table read in place. `get` decodes one record and checks it against the layout
 * (section 5.3 rules) in O(1).
 */
export class ChunkTable {
  private readonly dv: DataView;
  readonly count: number;

  constructor(readonly bytes: Uint8Array, private readonly bounds: ChunkBounds) {
    this.dv = view(bytes);
    this.count = bytes.length / CHUNK_RECORD_SIZE;
  }

  /**
   * Record `i`, checked against its plain length and the layout.
   * @throws CrimgError CORRUPT_INDEX
   */
  get(i: number, plainLength: number): ChunkRecord {
    const o = i * CHUNK_RECORD_SIZE;
    const b = this.bounds;
    const corrupt = (why: string, at: number): never => {
      throw new CrimgError('CORRUPT_INDEX', `chunk ${i} ${why}`, { offset: b.base + o + at, chunk: i });
    };
    const off64 = this.dv.getBigUint64(o, true);
    const storedLength = this.dv.getUint32(o + 8, true);
    const flags = this.dv.getUint16(o + 12, true);
    const checksum = this.dv.getBigUint64(o + 16, true);
    if (flags & ~0xf) corrupt(`flags 0x${flags.toString(16)} have reserved bits`, 12);
    const form = flags & (CHUNK_ZERO | CHUNK_RAW | CHUNK_ENCODED);
    if (form !== CHUNK_ZERO && form !== CHUNK_RAW && form !== CHUNK_ENCODED) corrupt(`flags 0x${flags.toString(16)} name no single stored form`, 12);
    if (form === CHUNK_ZERO) {
      if (off64 !== 0n || storedLength !== 0 || checksum !== 0n || flags !== CHUNK_ZERO) corrupt('is a zero chunk with stored bytes', 0);
      return { offset: 0, storedLength: 0, flags, checksum };
    }
    if (((flags & CHUNK_ENCRYPTED) !== 0) !== b.hasCipher) corrupt('ENCRYPTED flag disagrees with the header cipher', 12);
    if (form === CHUNK_ENCODED && !b.hasCodec) corrupt('is ENCODED in an image without codec', 12);
    const t = b.hasCipher ? TAG_SIZE : 0;
    if (form === CHUNK_RAW && storedLength !== plainLength + t) corrupt(`is RAW with ${storedLength} stored bytes for ${plainLength} plain`, 8);
    if (form === CHUNK_ENCODED && (storedLength <= t || storedLength >= plainLength + t)) corrupt(`is ENCODED with ${storedLength} stored bytes for ${plainLength} plain`, 8);
    if (off64 < BigInt(b.dataStart) || off64 + BigInt(storedLength) > BigInt(b.dataEnd)) {
      corrupt(`bytes [${off64}, +${storedLength}) lie outside the data area [${b.dataStart}, ${b.dataEnd})`, 0);
    }
    const offset = Number(off64);
    if (b.mappable && offset % b.pageSize !== 0) corrupt(`offset ${offset} is not page-aligned in a MAPPABLE image`, 0);
    return { offset, storedLength, flags, checksum };
  }
}
