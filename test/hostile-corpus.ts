/**
 * The hostile-file corpus of issue 14: images whose tables claim far more work than their size,
 * built byte by byte (format encoders, no writer), deterministically, so every run and every
 * test file gets the same bytes. Used by test/hostile.test.ts (the library) and the CLI tests.
 *
 *   const files = await writeHostileCorpus(dir);   // { 'shared-name-gaps': '/…/shared-name-gaps.img', … }
 *   const bytes = HOSTILE['zero-terabyte'].make(); // one file's bytes, in memory
 *
 * Each entry says what the library does with it (`open`: 'ok' or the CrimgError code an open
 * without options gives) so a test can check the right outcome as well as the bounds.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { xxh64 } from '../codec/checksum.js';
import {
  CHUNK_RAW, CHUNK_RECORD_SIZE, CHUNK_ZERO, FOOTER_SIZE, HEADER_SIZE, KDF_RAW, KDF_SCRYPT, KIND_GAP, REGION_RECORD_SIZE, TAG_SIZE,
  alignUp,
} from '../format/constants.js';
import { encodeHeader } from '../format/header.js';
import { encodeValidation, type ValidationInput } from '../format/validation.js';
import { encodeFooter } from '../format/footer.js';

/** One region record as the assembler writes it (section 8.1); chunks are all ZERO or one RAW page. */
export interface RawRegion {
  /** Numbers below 2^53 are written without BigInt arithmetic (2^20 records stay fast). */
  address: bigint | number;
  length: bigint | number;
  kind: number;
  prot: number;
  /** [offset, length] into the string table. */
  name: [number, number];
  /** 'zero': every chunk a ZERO record; 'raw': one RAW chunk of `data` (length = data length); 'gap': none. */
  chunks: 'zero' | 'raw' | 'gap';
  data?: Uint8Array;
}

export interface RawImage {
  pageSize?: number;
  chunkSize?: number;
  validation?: ValidationInput;
  /** Region `i` (called twice per region, so no array of 2^20 records is ever held). */
  region: (i: number) => RawRegion;
  regionCount: number;
  stringTable: Uint8Array;
  /** Header overrides for an encrypted header (the index is then random bytes of the sealed length). */
  encrypted?: { cipher: number; kdf: number; log2N: number; r: number; p: number };
}

const IMAGE_ID = Uint8Array.from({ length: 16 }, (_, i) => 0xc0 + i);
const SALT = Uint8Array.from({ length: 16 }, (_, i) => 0x51 + i);

/**
 * Assembles a raw image (no codec) from region records: header, validation block, data (the
 * RAW pages), chunk table, region section, footer. Records are written in one loop over a
 * preallocated buffer, so 2^20 regions take well under a second.
 */
export function assemble(img: RawImage): Uint8Array {
  const pageSize = img.pageSize ?? 4096;
  const chunkSize = img.chunkSize ?? pageSize;
  const enc = img.encrypted;
  const validation = encodeValidation(img.validation ?? {}, xxh64);
  const dataStart = alignUp(HEADER_SIZE + validation.length, pageSize);
  const n = img.regionCount;
  let chunkCount = 0;
  let rawBytes = 0;
  const chunksOf = (length: bigint | number): number => (typeof length === 'number'
    ? Math.ceil(length / chunkSize) : Number((length + BigInt(chunkSize) - 1n) / BigInt(chunkSize)));
  /** A u64 field: a Number as two u32 (no BigInt per record), a bigint as it is. */
  const setU64 = (at: number, v: bigint | number): void => {
    if (typeof v === 'bigint') dv.setBigUint64(at, v, true);
    else { dv.setUint32(at, v % 4294967296, true); dv.setUint32(at + 4, Math.floor(v / 4294967296), true); }
  };
  for (let i = 0; i < n; i++) {
    const r = img.region(i);
    if (r.chunks === 'zero') chunkCount += chunksOf(r.length);
    else if (r.chunks === 'raw') { chunkCount += 1; rawBytes += alignUp(r.data!.length, 8); }
  }
  const t = enc ? TAG_SIZE : 0;
  const chunkTableOffset = alignUp(dataStart + rawBytes, 8);
  const chunkTableLength = chunkCount * CHUNK_RECORD_SIZE + t;
  const regionSectionOffset = chunkTableOffset + chunkTableLength;
  const regionSectionLength = n * REGION_RECORD_SIZE + img.stringTable.length + t;
  const size = regionSectionOffset + regionSectionLength + FOOTER_SIZE;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(validation, HEADER_SIZE);
  let data = dataStart;
  let chunk = 0;
  const ct = chunkTableOffset;
  const rs = regionSectionOffset;
  for (let i = 0; i < n; i++) {
    const r = img.region(i);
    const first = chunk;
    let count = 0;
    let zeros = 0;
    let stored = 0;
    if (r.chunks === 'zero') {
      count = chunksOf(r.length);
      zeros = count;
      for (let j = 0; j < count; j++) dv.setUint16(ct + (chunk + j) * CHUNK_RECORD_SIZE + 12, CHUNK_ZERO, true);
    } else if (r.chunks === 'raw') {
      const d = r.data!;
      count = 1;
      stored = d.length;
      out.set(d, data);
      const o = ct + chunk * CHUNK_RECORD_SIZE;
      dv.setBigUint64(o, BigInt(data), true);
      dv.setUint32(o + 8, d.length, true);
      dv.setUint16(o + 12, CHUNK_RAW, true);
      dv.setBigUint64(o + 16, xxh64(d), true);
      data += alignUp(d.length, 8);
    }
    chunk += count;
    const o = rs + i * REGION_RECORD_SIZE;
    setU64(o, r.address);
    setU64(o + 8, r.length);
    setU64(o + 16, first);
    setU64(o + 24, count);
    setU64(o + 32, stored);
    setU64(o + 40, zeros);
    dv.setUint32(o + 48, r.name[0], true);
    dv.setUint32(o + 52, r.name[1], true);
    out[o + 56] = r.prot;
    out[o + 57] = r.kind;
  }
  out.set(img.stringTable, rs + n * REGION_RECORD_SIZE);
  if (enc) {
    // A sealed index nobody can open: random-looking bytes where the tags and records would be.
    for (let i = ct; i < rs + regionSectionLength; i++) out[i] = (i * 131 + 7) & 0xff;
  }
  out.set(encodeHeader({
    optionalFeatures: 0n, pageSize, chunkSize, imageId: IMAGE_ID, created: 1_780_000_000_000n, validationSize: validation.length,
    codec: 0, codecLevel: 0, cipher: enc?.cipher ?? 0, kdf: enc?.kdf ?? KDF_RAW, scryptLog2N: enc?.log2N ?? 0, scryptR: enc?.r ?? 0,
    scryptP: enc?.p ?? 0, salt: enc ? SALT : new Uint8Array(16), keyCheck: enc ? SALT.map((b) => b ^ 0xa5) : new Uint8Array(16),
  }, xxh64), 0);
  out.set(encodeFooter({
    imageId: IMAGE_ID, chunkTableOffset: BigInt(chunkTableOffset), chunkCount: BigInt(chunkCount), chunkTableLength: BigInt(chunkTableLength),
    regionSectionOffset: BigInt(regionSectionOffset), regionCount: n, stringTableLength: img.stringTable.length,
    regionSectionLength: BigInt(regionSectionLength),
    chunkTableChecksum: xxh64(out.subarray(chunkTableOffset, chunkTableOffset + chunkTableLength)),
    regionSectionChecksum: xxh64(out.subarray(regionSectionOffset, regionSectionOffset + regionSectionLength)),
  }, xxh64), size - FOOTER_SIZE);
  return out;
}

const te = new TextEncoder();
const BASE = 0x7f00_0000_0000;

/** One page of a fixed pattern (the data of the small images). */
export function patternPage(seed: number, pageSize = 4096): Uint8Array {
  const p = new Uint8Array(pageSize);
  for (let i = 0; i < pageSize; i++) p[i] = (i * 31 + seed * 17 + (i >> 8)) & 0xff;
  return p;
}

/** A small valid image around `validation`: one RAW page by default. */
function small(extra: Partial<RawImage> = {}): Uint8Array {
  const name = te.encode('heap');
  return assemble({
    region: () => ({ address: BASE, length: 4096, kind: 1, prot: 3, name: [0, name.length], chunks: 'raw', data: patternPage(1) }),
    regionCount: 1, stringTable: name, ...extra,
  });
}

/** Region count of the two table-heavy images: the format's limit (section 9). */
export const MAX_REGIONS = 1 << 20;

/**
 * 2^20 gaps whose names all point at the same 4,096-byte string: 64 MiB whose names, decoded
 * once per record, are 4 GiB of text (issue 14, item 1).
 */
export function sharedNameGaps(count = MAX_REGIONS): Uint8Array {
  const name = new Uint8Array(4096);
  for (let i = 0; i < name.length; i++) name[i] = 0x61 + (i % 26);
  const region = (i: number): RawRegion => ({ address: BASE + i * 8192, length: 4096, kind: KIND_GAP, prot: 0, name: [0, 4096], chunks: 'gap' });
  return assemble({ region, regionCount: count, stringTable: name });
}

/**
 * 2^20 gaps naming 2^20 different slices (up to 4096 bytes each) of an 8 KiB string table that
 * is not UTF-8 as a whole (one stray byte at its end): no cache helps, each name must be judged
 * on its own, in O(1). Not in {@link HOSTILE} (the CLI tests need not run it); the library's
 * test opens it within the same bounds.
 */
export function distinctNameGaps(count = MAX_REGIONS): Uint8Array {
  const table = new Uint8Array(8192);
  for (let i = 0; i < table.length; i++) table[i] = 0x61 + (i % 26);
  table[table.length - 1] = 0xff;
  const region = (i: number): RawRegion => ({
    address: BASE + i * 8192, length: 4096, kind: KIND_GAP, prot: 0, name: [i & 4095, 4096 - ((i >> 12) & 255)], chunks: 'gap',
  });
  return assemble({ region, regionCount: count, stringTable: table });
}

/**
 * A valid image of 2^20 regions (the limit): even ones a page of zeros (one ZERO chunk) named
 * `r<i>`, odd ones unnamed one-page gaps, region 0 a RAW page (issue 14, item 1).
 */
export function manyRegions(count = MAX_REGIONS): Uint8Array {
  // Names `r<i>` of the even regions, back to back (ASCII, written in place: no array per name).
  const table = new Uint8Array(8 * (count / 2 + 1));
  const spans = new Uint32Array(count + 2);
  let at = 0;
  for (let i = 0; i < count; i += 2) {
    const n = `r${i}`;
    spans[i] = at;
    for (let k = 0; k < n.length; k++) table[at++] = n.charCodeAt(k);
    spans[i + 1] = n.length;
  }
  const first = patternPage(2);
  const region = (i: number): RawRegion => {
    const address = BASE + i * 4096;
    if (i % 2) return { address, length: 4096, kind: KIND_GAP, prot: 0, name: [0, 0], chunks: 'gap' };
    const name: [number, number] = [spans[i]!, spans[i + 1]!];
    if (i === 0) return { address, length: 4096, kind: 0, prot: 3, name, chunks: 'raw', data: first };
    return { address, length: 4096, kind: 0, prot: 3, name, chunks: 'zero' };
  };
  return assemble({ region, regionCount: count, stringTable: table.subarray(0, at) });
}

/**
 * An encrypted image (ChaCha20-Poly1305, passphrase) whose header asks for scrypt log2 N = 18,
 * r = 8, p = 16: 256 MiB and about 11 s per open before the key check could say WRONG_KEY
 * (issue 14, item 3). Its index is sealed under no key at all.
 */
export function scryptHeavy(log2N = 18, r = 8, p = 16): Uint8Array {
  const name = te.encode('heap');
  return assemble({
    region: () => ({ address: BASE, length: 4096, kind: 1, prot: 3, name: [0, name.length], chunks: 'zero' }),
    regionCount: 1, stringTable: name, encrypted: { cipher: 2, kdf: KDF_SCRYPT, log2N, r, p },
  });
}

const BITMAP_KEY = 'cpu.features';
/** Bitmap bytes that make the validation block exactly 1 MiB: 16 (block) + 16 (architecture) + 8 + 2 + 12 + n = 2^20. */
const BITMAP_BYTES = (1 << 20) - 16 - 16 - 8 - 2 - BITMAP_KEY.length;

/** A bitmap record of nearly 1 MiB with every bit set: 8.4 million feature bits (issue 14, item 4). */
export function allOnesBitmap(): Uint8Array {
  return small({ validation: { architecture: 'x86_64', bitmaps: { [BITMAP_KEY]: new Uint8Array(BITMAP_BYTES).fill(0xff) } } });
}

/**
 * 1 TiB of zero chunks in a 1.5 MiB file: one region of 2^40 bytes, chunk size 16 MiB, 65,536
 * ZERO records (issue 14, item 5).
 */
export function zeroTerabyte(): Uint8Array {
  const name = te.encode('zeros');
  return assemble({
    chunkSize: 16 << 20,
    region: () => ({ address: 0x1000_0000_0000n, length: 1n << 40n, kind: 0, prot: 3, name: [0, name.length], chunks: 'zero' }),
    regionCount: 1, stringTable: name,
  });
}

/** A data region of kind 200, which a reader must take as data of an unknown kind (section 8.1; issue 14, item 6). */
export function unknownKind(): Uint8Array {
  const name = te.encode('future');
  return assemble({
    region: () => ({ address: BASE, length: 4096, kind: 200, prot: 1, name: [0, name.length], chunks: 'raw', data: patternPage(3) }),
    regionCount: 1, stringTable: name,
  });
}

/**
 * A validation block of exactly the maximum size, 1 MiB (section 9): 100 labels and one record
 * of an unknown type filling the rest (issue 14, item 6).
 */
export function maxValidation(): Uint8Array {
  const labels: Record<string, string> = {};
  let size = 16 + 8 + 16; // block overhead, architecture record
  for (let i = 0; i < 100; i++) {
    const k = `label.${i}`;
    const v = `value ${i}`;
    labels[k] = v;
    size += 8 + alignUp(2 + k.length + v.length, 8);
  }
  const filler = (1 << 20) - size - 8;
  return small({ validation: { architecture: 'x86_64', labels, skipped: [{ type: 1000, payload: new Uint8Array(filler).fill(0x2a) }] } });
}

/** Names, labels, producer and metric keys with ESC, BEL, CR, LF and bidi controls (issue 14, item 7). */
export const CONTROL_NAMES = [
  '\x1b[2J\x1b[31mred\x1b[0m', 'bell\x07', 'carriage\rreturn', 'fake\nregion 9 0x0 rwx', 'bidi \u202egnp.exe', 'isolate \u2066x\u2069', 'nul\x00byte', 'del\x7f c1\x9b',
];

export function controlNames(): Uint8Array {
  const encoded = CONTROL_NAMES.map((n) => te.encode(n));
  const table = new Uint8Array(encoded.reduce((s, n) => s + n.length, 0));
  const spans: [number, number][] = [];
  let o = 0;
  for (const n of encoded) { table.set(n, o); spans.push([o, n.length]); o += n.length; }
  const regions: RawRegion[] = spans.map((s, i) => (i % 2
    ? { address: BASE + i * 8192, length: 4096, kind: KIND_GAP, prot: 0, name: s, chunks: 'gap' as const }
    : { address: BASE + i * 8192, length: 4096, kind: (i / 2) % 6, prot: 3, name: s, chunks: 'raw' as const, data: patternPage(i) }));
  return assemble({
    validation: {
      producerName: 'evil\x1b]0;title\x07', producerVersion: '1\r\n2', architecture: 'x86_64',
      labels: { 'esc\x1b[1m': 'v\x1b[0m', 'line': 'a\nb', 'bidi': '\u202eabc' }, metrics: { 'm\x07': 1 },
    },
    region: (i) => regions[i]!, regionCount: regions.length, stringTable: table,
  });
}

/** A bitmap keyed `__proto__` (and labels keyed like Object's own properties) (issue 14, item 13). */
export function protoKeys(): Uint8Array {
  const bitmaps = Object.create(null) as Record<string, Uint8Array>;
  bitmaps['__proto__'] = Uint8Array.of(0x80, 0x01);
  const labels = Object.create(null) as Record<string, string>;
  labels['__proto__'] = 'p';
  labels['constructor'] = 'c';
  labels['toString'] = 't';
  return small({ validation: { architecture: 'x86_64', labels, bitmaps } });
}

/** What a plain open (no options) gives. */
export type OpenOutcome = 'ok' | 'LIMIT_EXCEEDED' | 'CORRUPT_INDEX';

export interface HostileFile {
  /** What it is, for messages. */
  what: string;
  make(): Uint8Array;
  /** A plain open: ok, or the code. A passphrase open of 'scrypt-heavy' is LIMIT_EXCEEDED. */
  open: OpenOutcome;
  /** True for the encrypted one: open with `{ key: { passphrase } }` to reach the cap. */
  passphrase?: boolean;
}

/** The corpus, by file name (without `.img`). */
export const HOSTILE: Readonly<Record<string, HostileFile>> = Object.freeze({
  'shared-name-gaps': { what: '2^20 gaps naming one 4096-byte string (64 MiB)', make: () => sharedNameGaps(), open: 'ok' },
  'many-regions': { what: 'a valid image of 2^20 regions', make: () => manyRegions(), open: 'ok' },
  'scrypt-heavy': { what: 'scrypt log2 N 18, r 8, p 16 in the header', make: () => scryptHeavy(), open: 'ok', passphrase: true },
  'all-ones-bitmap': { what: 'a 1 MiB bitmap record with every bit set', make: allOnesBitmap, open: 'ok' },
  'zero-terabyte': { what: '1 TiB of zero chunks in a 1.5 MiB file', make: zeroTerabyte, open: 'ok' },
  'unknown-kind': { what: 'a data region of kind 200', make: unknownKind, open: 'ok' },
  'max-validation': { what: 'a validation block of exactly 1 MiB', make: maxValidation, open: 'ok' },
  'control-names': { what: 'names, labels and producer with ESC, BEL, CR, LF, bidi', make: controlNames, open: 'ok' },
  'proto-keys': { what: 'a bitmap and labels keyed __proto__, constructor, toString', make: protoKeys, open: 'ok' },
} satisfies Record<string, HostileFile>);

export type HostileName = keyof typeof HOSTILE;

/** The passphrase the tests give 'scrypt-heavy' (any passphrase: the cap comes first). */
export const HOSTILE_PASSPHRASE = 'hostile';

const written = new Map<string, Record<string, string>>();

/**
 * Writes every corpus file into `dir` (created if needed) as `NAME.img` and returns the paths
 * by name. Once per process and directory (about 2 s, 150 MB); the bytes are deterministic, so
 * several test files may share one directory.
 */
export function writeHostileCorpus(dir: string): Record<string, string> {
  const done = written.get(dir);
  if (done) return done;
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const [name, f] of Object.entries(HOSTILE)) {
    const path = join(dir, `${name}.img`);
    // Written whole and renamed: another process sharing `dir` sees the old file or the new one.
    writeFileSync(`${path}.${process.pid}.part`, f.make());
    renameSync(`${path}.${process.pid}.part`, path);
    out[name] = path;
  }
  written.set(dir, out);
  return out;
}
