/**
 * The mutation fuzzer's mutator: from a valid vector and a seed, a damaged image. Deterministic:
 * case `i` of seed `s` is the same bytes on every machine, so a failure is reproduced by its
 * seed and case number alone (`npm run fuzz -- --seed S --case I`).
 *
 * Mutations: blind byte-level ones (flip, set, overwrite, truncate, insert, delete, copy a span
 * elsewhere) and field-aware ones that set one field of the header, footer, validation block,
 * a region record or a chunk record (offsets of spec/FORMAT.md sections 3, 4, 5.3, 8.1, 8.2) to
 * a hostile value, then usually re-seal the checksums around it so that the mutation reaches
 * the checks behind them. For encrypted vectors a field-aware mutation of the (sealed) index
 * may decrypt it with the vector's key, change a record and re-seal it: a hostile index made by
 * a key holder, which only the crash, hang and allocation properties apply to.
 */
import { xxh64 } from '../../codec/checksum.js';
import { indexAad, indexNonce } from '../../codec/aad.js';
import { open as openSealed, seal, type AeadSuite } from '../../codec/aead.js';
import { deflateSync } from 'fflate';
import { loadPortableEngine } from '../../codec/portable.js';

// The portable engine's primitives are called directly here: load its libraries first.
await loadPortableEngine();

import { Rng, caseSeed, HEADER_FIELDS, FOOTER_FIELDS, REGION_FIELDS, CHUNK_FIELDS, VALIDATION_RECORD_FIELDS, type Field } from './_tables.js';
export { Rng, caseSeed, HEADER_FIELDS, FOOTER_FIELDS, REGION_FIELDS, CHUNK_FIELDS, VALIDATION_RECORD_FIELDS };

const FOOTER = 96;

/** What the mutator knows about a vector. */
export interface VectorInfo {
  name: string;
  bytes: Uint8Array;
  /** Index crypto of an encrypted vector, for re-sealing a mutated index. */
  crypto?: IndexCrypto;
}

/** What re-sealing the index of an encrypted vector needs (spec section 7.4). */
export interface IndexCrypto {
  suite: AeadSuite;
  indexKey: Uint8Array;
  imageId: Uint8Array;
  headerHash: Uint8Array;
}

/** One fuzz case. */
export interface FuzzCase {
  index: number;
  vector: string;
  bytes: Uint8Array;
  /** The mutations applied, in words (for the report). */
  steps: string[];
  /** The index was decrypted, changed and re-sealed with the key: a key holder's hostile image. */
  resealed: boolean;
  /** False when the mutations happened to leave the bytes as they were. */
  changed: boolean;
  /**
   * A plain image's chunk bytes were rewritten with a matching checksum: a different image as
   * far as checksums can tell (they detect accidents, not edits), so the bytes read may differ.
   */
  dataRewritten: boolean;
}

/** Layout of an image, read leniently from its bytes (a mutated image may lie). */
interface Layout {
  headerSize: number;
  validationSize: number;
  footer: number;
  chunkTable: number;
  chunkTableLength: number;
  chunkCount: number;
  regionSection: number;
  regionSectionLength: number;
  regionCount: number;
}

function u64(b: Uint8Array, at: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Number(dv.getBigUint64(at, true));
}
function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}
function setU64(b: Uint8Array, at: number, v: bigint): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setBigUint64(at, BigInt.asUintN(64, v), true);
}

function layout(b: Uint8Array): Layout | null {
  if (b.length < 128 + FOOTER) return null;
  const f = b.length - FOOTER;
  return {
    headerSize: u32(b, 12), validationSize: u32(b, 64), footer: f,
    chunkTable: u64(b, f + 16), chunkCount: u64(b, f + 24), chunkTableLength: u64(b, f + 32),
    regionSection: u64(b, f + 40), regionCount: u32(b, f + 48), regionSectionLength: u64(b, f + 56),
  };
}

const inFile = (b: Uint8Array, at: number, len: number): boolean => Number.isSafeInteger(at) && Number.isSafeInteger(len) && at >= 0 && len >= 0 && at + len <= b.length;

/**
 * Re-computes every checksum that the layout in the bytes lets us find: validation block,
 * header, chunk table, region section, footer (in that order: the footer covers the section
 * checksums). Chunk checksums are never fixed: a chunk's bytes are data, and a consistent
 * rewrite of data and checksum is a different image, not damage.
 */
export function fixChecksums(b: Uint8Array): void {
  const l = layout(b);
  if (!l) return;
  if (inFile(b, l.headerSize, l.validationSize) && l.validationSize >= 16) {
    setU64(b, l.headerSize + l.validationSize - 8, xxh64(b.subarray(l.headerSize, l.headerSize + l.validationSize - 8)));
  }
  if (l.headerSize >= 16 && inFile(b, 0, l.headerSize)) setU64(b, l.headerSize - 8, xxh64(b.subarray(0, l.headerSize - 8)));
  if (inFile(b, l.chunkTable, l.chunkTableLength) && l.chunkTable + l.chunkTableLength <= l.footer) {
    setU64(b, l.footer + 64, xxh64(b.subarray(l.chunkTable, l.chunkTable + l.chunkTableLength)));
  }
  if (inFile(b, l.regionSection, l.regionSectionLength) && l.regionSection + l.regionSectionLength <= l.footer) {
    setU64(b, l.footer + 72, xxh64(b.subarray(l.regionSection, l.regionSection + l.regionSectionLength)));
  }
  setU64(b, l.footer + 80, xxh64(b.subarray(l.footer, l.footer + 80)));
}

/** A hostile value for a field of `size` bytes whose current value is `cur`. */
function hostileValue(rng: Rng, size: number, cur: bigint, fileLength: number): bigint {
  const bits = BigInt(size * 8);
  const max = (1n << bits) - 1n;
  const candidates: bigint[] = [
    0n, 1n, max, max - 1n, 1n << (bits - 1n), (1n << (bits - 1n)) - 1n,
    cur + 1n, cur - 1n, cur + 8n, cur - 8n, cur + 16n, cur - 16n, cur + 4096n, cur - 4096n, cur * 2n, cur / 2n,
    cur ^ (1n << BigInt(rng.int(size * 8))),
    BigInt(fileLength), BigInt(fileLength) - 96n, BigInt(fileLength) + 1n,
  ];
  if (size === 8) candidates.push(1n << 32n, (1n << 32n) - 1n, 1n << 53n, (1n << 53n) + 1n, 1n << 63n, 1n << 60n, 0xffff_ffff_ffff_f000n);
  if (size >= 4) candidates.push(4096n, 65536n, 1n << 24n, 1n << 31n, BigInt(rng.u32()));
  return BigInt.asUintN(Number(bits), rng.pick(candidates));
}

/** Sets field `f` of the structure at `base` to a hostile value; returns a description. */
function mutateField(rng: Rng, b: Uint8Array, base: number, f: Field, what: string): string {
  const at = base + f.at;
  if (!inFile(b, at, f.size)) return `${what}.${f.name}: out of file, skipped`;
  if (f.size > 8) {
    if (rng.chance(0.5)) b[at + rng.int(f.size)]! ^= 1 << rng.int(8);
    else b.set(rng.bytes(f.size), at);
    return `${what}.${f.name} @${at} scrambled`;
  }
  let cur = 0n;
  for (let i = f.size - 1; i >= 0; i--) cur = (cur << 8n) | BigInt(b[at + i]!);
  const v = hostileValue(rng, f.size, cur, b.length);
  for (let i = 0; i < f.size; i++) b[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return `${what}.${f.name} @${at} ${cur} -> ${v}`;
}

/** Offsets of the validation records, walking the block leniently. */
function validationRecords(b: Uint8Array): number[] {
  const l = layout(b);
  if (!l || !inFile(b, l.headerSize, l.validationSize)) return [];
  const out: number[] = [];
  const end = l.headerSize + l.validationSize - 8;
  let off = l.headerSize + 8;
  const count = u32(b, l.headerSize + 4);
  for (let i = 0; i < count && off + 8 <= end && out.length < 1024; i++) {
    out.push(off);
    off += 8 + Math.ceil(u32(b, off + 4) / 8) * 8;
  }
  return out;
}

type Bytes = Uint8Array;

/** Blind byte-level mutations. */
const BLIND: readonly ((rng: Rng, b: Bytes) => [Bytes, string])[] = [
  (rng, b) => { const i = rng.int(b.length); b[i]! ^= 1 + rng.int(255); return [b, `flip byte @${i}`]; },
  (rng, b) => { const i = rng.int(b.length); b[i] = rng.pick([0, 1, 0x7f, 0x80, 0xff]); return [b, `set byte @${i}`]; },
  (rng, b) => {
    const n = 2 + rng.int(31);
    const i = rng.int(Math.max(1, b.length - n));
    const fill = rng.int(3);
    for (let k = i; k < Math.min(b.length, i + n); k++) b[k] = fill === 0 ? 0 : fill === 1 ? 0xff : rng.u32() & 0xff;
    return [b, `overwrite ${n} bytes @${i} with ${['zeros', '0xff', 'random'][fill]}`];
  },
  (rng, b) => {
    const cuts = [rng.int(b.length), b.length - 1 - rng.int(200), Math.floor(rng.int(b.length) / 4096) * 4096, b.length - 96 - rng.int(8)];
    const at = Math.max(0, Math.min(b.length, rng.pick(cuts)));
    return [b.slice(0, at), `truncate to ${at}`];
  },
  (rng, b) => {
    const at = rng.int(b.length + 1);
    const n = rng.pick([1, 7, 8, 16, 24, 64, 4096, 1 + rng.int(5000)]);
    const ins = rng.chance(0.5) ? new Uint8Array(n) : rng.bytes(n);
    const out = new Uint8Array(b.length + n);
    out.set(b.subarray(0, at), 0);
    out.set(ins, at);
    out.set(b.subarray(at), at + n);
    return [out, `insert ${n} bytes @${at}`];
  },
  (rng, b) => {
    const at = rng.int(b.length);
    const n = Math.min(b.length - at, rng.pick([1, 8, 16, 24, 64, 4096, 1 + rng.int(5000)]));
    const out = new Uint8Array(b.length - n);
    out.set(b.subarray(0, at), 0);
    out.set(b.subarray(at + n), at);
    return [out, `delete ${n} bytes @${at}`];
  },
  (rng, b) => {
    const n = rng.pick([8, 16, 24, 64, 4096, 8192]);
    if (b.length <= n) return [b, 'copy span: file too short'];
    const from = rng.int(b.length - n);
    const to = rng.int(b.length - n);
    b.copyWithin(to, from, from + n);
    return [b, `copy ${n} bytes @${from} -> @${to}`];
  },
];

/** A field-aware mutation in the clear parts of the image (any structure for plain images). */
function fieldMutation(rng: Rng, b: Bytes, encrypted: boolean): string {
  const l = layout(b)!;
  const targets: (() => string)[] = [
    () => mutateField(rng, b, 0, rng.pick(HEADER_FIELDS), 'header'),
    () => mutateField(rng, b, l.footer, rng.pick(FOOTER_FIELDS), 'footer'),
    () => {
      const recs = validationRecords(b);
      if (recs.length === 0 || rng.chance(0.2)) return mutateField(rng, b, l.headerSize, { name: 'record count', at: 4, size: 4 }, 'validation');
      const i = rng.int(recs.length);
      return mutateField(rng, b, recs[i]!, rng.pick(VALIDATION_RECORD_FIELDS), `validation record ${i}`);
    },
  ];
  if (!encrypted) {
    targets.push(() => structuralMutation(rng, b));
    targets.push(() => nameMutation(rng, b));
    targets.push(
      () => {
        const i = rng.int(Math.max(1, l.regionCount));
        return mutateField(rng, b, l.regionSection + i * 64, rng.pick(REGION_FIELDS), `region ${i}`);
      },
      () => {
        const i = rng.int(Math.max(1, l.chunkCount));
        return mutateField(rng, b, l.chunkTable + i * 24, rng.pick(CHUNK_FIELDS), `chunk ${i}`);
      },
    );
  }
  // Weights: header and footer 1 each, validation 1; plain images: structural 1.5, names 1,
  // region and chunk records 1.5 each.
  const weights = encrypted ? [1, 1, 1] : [1, 1, 1, 1.5, 1, 1.5, 1.5];
  const total = weights.reduce((s, w) => s + w, 0);
  let r = (rng.u32() / 4294967296) * total;
  for (let i = 0; i < targets.length; i++) {
    r -= weights[i]!;
    if (r < 0) return targets[i]!();
  }
  return targets[0]!();
}

/**
 * Mutations of a plain image's index that keep each record well-formed, so that they pass the
 * per-record checks and reach the cross-checks (verify's overlap, counter and padding checks):
 * a chunk turned into a zero chunk (optionally with its region's counters adjusted), two chunk
 * or region records swapped, a chunk record pointing at another chunk's bytes.
 */
function structuralMutation(rng: Rng, b: Bytes): string {
  const l = layout(b)!;
  const rec = (i: number): number => l.chunkTable + i * 24;
  const ok = (i: number): boolean => inFile(b, rec(i), 24) && rec(i) + 24 <= l.footer;
  const stored = Array.from({ length: Math.min(l.chunkCount, 1 << 16) }, (_, i) => i).filter((i) => ok(i) && u32(b, rec(i) + 8) !== 0);
  const kind = rng.int(4);
  if (kind === 0 && stored.length > 0) {
    const i = rng.pick(stored);
    const len = u32(b, rec(i) + 8);
    b.fill(0, rec(i), rec(i) + 24);
    b[rec(i) + 12] = 1; // ZERO
    let fixed = '';
    if (rng.chance(0.5)) {
      // Adjust the counters of the region holding chunk i, so only the padding check is left.
      for (let r = 0; r < l.regionCount; r++) {
        const at = l.regionSection + r * 64;
        if (!inFile(b, at, 64)) break;
        const first = u64(b, at + 16);
        const count = u64(b, at + 24);
        if (i >= first && i < first + count) {
          setU64(b, at + 32, BigInt(u64(b, at + 32) - len));
          setU64(b, at + 40, BigInt(u64(b, at + 40) + 1));
          fixed = ` and region ${r}'s counters adjusted`;
          break;
        }
      }
    }
    return `chunk ${i} turned into a zero chunk${fixed}`;
  }
  if (kind === 1 && stored.length > 1) {
    const i = rng.pick(stored);
    const same = stored.filter((k) => k !== i && u32(b, rec(k) + 8) === u32(b, rec(i) + 8));
    const k = same.length ? rng.pick(same) : rng.pick(stored.filter((x) => x !== i));
    const a = b.slice(rec(i), rec(i) + 24);
    b.copyWithin(rec(i), rec(k), rec(k) + 24);
    b.set(a, rec(k));
    return `chunk records ${i} and ${k} swapped`;
  }
  if (kind === 2 && stored.length > 1) {
    const i = rng.pick(stored);
    const same = stored.filter((k) => k !== i && u32(b, rec(k) + 8) === u32(b, rec(i) + 8));
    const k = same.length ? rng.pick(same) : rng.pick(stored.filter((x) => x !== i));
    b.copyWithin(rec(i), rec(k), rec(k) + 24);
    return `chunk record ${i} made a copy of chunk record ${k}`;
  }
  if (l.regionCount > 1) {
    const i = rng.int(l.regionCount);
    const k = (i + 1 + rng.int(l.regionCount - 1)) % l.regionCount;
    const at = (r: number): number => l.regionSection + r * 64;
    if (!inFile(b, at(Math.max(i, k)), 64)) return 'region swap: out of file, skipped';
    const a = b.slice(at(i), at(i) + 64);
    b.copyWithin(at(i), at(k), at(k) + 64);
    b.set(a, at(k));
    return `region records ${i} and ${k} swapped`;
  }
  return mutateField(rng, b, l.footer, rng.pick(FOOTER_FIELDS), 'footer');
}

/**
 * Mutations of a plain image's names (spec sections 8.1 and 9): a record's name pointed at
 * another record's, at a slice that cuts a multi-byte character, at the whole string table or
 * past it, at the 4096-byte maximum; a byte of the string table made invalid UTF-8. Names are
 * decoded lazily and once per string, so these reach the name checks at open and on access.
 */
function nameMutation(rng: Rng, b: Bytes): string {
  const l = layout(b)!;
  const stringTableLength = u32(b, l.footer + 52);
  const strBase = l.regionSection + l.regionCount * 64;
  if (l.regionCount === 0 || !inFile(b, l.regionSection, l.regionCount * 64 + stringTableLength) || strBase + stringTableLength > l.footer) return 'names: section out of file, skipped';
  const i = rng.int(l.regionCount);
  const at = l.regionSection + i * 64;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const kind = rng.int(6);
  if (kind === 0 && stringTableLength > 0) {
    const k = rng.int(stringTableLength);
    b[strBase + k] = rng.pick([0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf5, 0xff]);
    return `string table byte ${k} made ${b[strBase + k]!.toString(16)}`;
  }
  const other = l.regionSection + rng.int(l.regionCount) * 64;
  const [off, len] = kind === 1 ? [u32(b, other + 48), u32(b, other + 52)] // another record's name
    : kind === 2 ? [0, stringTableLength] // the whole table
      : kind === 3 ? [rng.int(stringTableLength + 1), 1 + rng.int(8)] // a short slice anywhere, maybe cutting a character
        : kind === 4 ? [rng.int(stringTableLength + 1), 4096] // the longest name a record may have
          : [stringTableLength - rng.int(2), rng.pick([1, 4097, 0xffffffff])]; // at or past the end
  dv.setUint32(at + 48, off >>> 0, true);
  dv.setUint32(at + 52, len >>> 0, true);
  return `region ${i} name -> [${off}, +${len}) of a ${stringTableLength}-byte string table`;
}

/**
 * Grows a plain image's region table (spec section 8.1): `k` one-page gaps after the last
 * region, all naming one existing name, with the footer's counts and lengths adjusted: a valid
 * image of up to 2^12 more regions (a small form of issue 14's 2^20 gaps sharing one name), or,
 * with `claim`, a footer that claims more regions than the section holds.
 */
function growRegions(rng: Rng, b: Bytes): [Bytes, string] {
  const l = layout(b);
  if (!l || l.regionCount === 0) return [b, 'grow regions: no layout, skipped'];
  const stringTableLength = u32(b, l.footer + 52);
  const recordsEnd = l.regionSection + l.regionCount * 64;
  if (!inFile(b, l.regionSection, l.regionCount * 64 + stringTableLength) || recordsEnd + stringTableLength !== l.footer) return [b, 'grow regions: section out of place, skipped'];
  const k = rng.pick([1, 2, 64, 1000, 1 << 12]); // more would make a case slower than the watchdog allows on a loaded machine; test/hostile.test.ts opens 2^20
  const last = l.regionSection + (l.regionCount - 1) * 64;
  const lastEnd = BigInt(u64(b, last)) + BigInt(u64(b, last + 8));
  const page = 65536n; // any page size divides it
  let address = (lastEnd + page - 1n) / page * page;
  const name = l.regionSection + rng.int(l.regionCount) * 64;
  const chunks = BigInt(l.chunkCount);
  const out = new Uint8Array(b.length + k * 64);
  out.set(b.subarray(0, recordsEnd), 0);
  const dv = new DataView(out.buffer);
  for (let g = 0; g < k; g++) {
    const at = recordsEnd + g * 64;
    if (address + 4096n > 1n << 64n) break;
    dv.setBigUint64(at, address, true);
    dv.setBigUint64(at + 8, 4096n, true);
    dv.setBigUint64(at + 16, chunks, true);
    out.set(b.subarray(name + 48, name + 56), at + 48); // the same name offset and length
    out[at + 57] = 6; // gap
    address += page;
  }
  out.set(b.subarray(recordsEnd), recordsEnd + k * 64);
  const f = out.length - FOOTER;
  const claim = rng.chance(0.2) ? rng.pick([1, 1 << 20, (1 << 20) + 1, 0xffffffff]) : 0;
  new DataView(out.buffer).setUint32(f + 48, claim || l.regionCount + k, true);
  setU64(out, f + 56, BigInt(l.regionSectionLength + k * 64));
  return [out, `${k} gaps appended naming region ${(name - l.regionSection) / 64}'s name${claim ? `, footer claims ${claim} regions` : ''}`];
}

/**
 * Decrypts the index of an encrypted vector, sets one field of a region or chunk record,
 * re-seals it with the key and fixes the section and footer checksums.
 */
function resealMutation(rng: Rng, b: Bytes, c: IndexCrypto): string {
  const l = layout(b)!;
  const unseal = (d: 1 | 2, count: number, at: number, len: number): Uint8Array =>
    openSealed(c.suite, c.indexKey, indexNonce(d), indexAad({ imageId: c.imageId, headerHash: c.headerHash, domain: d, count, plainLength: len - 16 }), b.subarray(at, at + len), 'portable');
  const reseal = (d: 1 | 2, count: number, plain: Uint8Array, at: number): void => {
    b.set(seal(c.suite, c.indexKey, indexNonce(d), indexAad({ imageId: c.imageId, headerHash: c.headerHash, domain: d, count, plainLength: plain.length }), plain, 'portable'), at);
  };
  let step: string;
  if (rng.chance(0.5)) {
    const plain = Uint8Array.from(unseal(2, l.regionCount, l.regionSection, l.regionSectionLength));
    const i = rng.int(l.regionCount);
    step = mutateField(rng, plain, i * 64, rng.pick(REGION_FIELDS), `sealed region ${i}`);
    reseal(2, l.regionCount, plain, l.regionSection);
  } else {
    const plain = Uint8Array.from(unseal(1, l.chunkCount, l.chunkTable, l.chunkTableLength));
    const i = rng.int(l.chunkCount);
    step = mutateField(rng, plain, i * 24, rng.pick(CHUNK_FIELDS), `sealed chunk ${i}`);
    reseal(1, l.chunkCount, plain, l.chunkTable);
  }
  fixChecksums(b);
  return `${step}, re-sealed with the key`;
}

const bombs = new Map<number, Uint8Array>();
/** Raw DEFLATE of `n` zero bytes (about n / 1000 bytes), made once per size. */
function deflateBomb(n: number): Uint8Array {
  let b = bombs.get(n);
  if (!b) bombs.set(n, (b = deflateSync(new Uint8Array(n), { level: 9 })));
  return b;
}

/**
 * One fixed-Huffman DEFLATE block: a literal 0, then `n` copies of <length 258, distance 1>
 * (13 bits for 258 bytes), then end of block. Unlike zlib's output it is a single block, so a
 * decoder that only stops at block boundaries decodes all of it.
 */
export function fixedBlockBomb(n: number): Uint8Array {
  const out = new Uint8Array(Math.ceil((3 + 8 + 13 * Math.max(0, n) + 7) / 8));
  let bit = 0;
  // Huffman codes go most significant bit first; header bits least significant first.
  const put = (v: number, len: number, msbFirst: boolean): void => {
    for (let i = 0; i < len; i++, bit++) out[bit >> 3]! |= (msbFirst ? (v >> (len - 1 - i)) & 1 : (v >> i) & 1) << (bit & 7);
  };
  put(1, 1, false); // BFINAL
  put(1, 2, false); // BTYPE 01: fixed Huffman
  put(0x30, 8, true); // literal 0
  for (let i = 0; i < n; i++) { put(0xc5, 8, true); put(0, 5, true); } // length code 285 (258), distance code 0 (1)
  put(0, 7, true); // end of block (256)
  return out;
}

/**
 * Rewrites one stored chunk's bytes and puts the matching checksum in its record, so that the
 * bytes reach the decoder (deflate) or the AEAD tag check behind the checksum. Plain deflate
 * images sometimes get a "deflate bomb": a short stream of a long run of zeros. Encrypted
 * images get their chunk table re-sealed with only that checksum changed: the tag must fail.
 */
function dataRewrite(rng: Rng, b: Bytes, c: IndexCrypto | undefined): string | null {
  const l = layout(b)!;
  let table: Uint8Array = b.subarray(l.chunkTable, l.chunkTable + l.chunkTableLength);
  if (c) {
    table = Uint8Array.from(openSealed(c.suite, c.indexKey, indexNonce(1), indexAad({ imageId: c.imageId, headerHash: c.headerHash, domain: 1, count: l.chunkCount, plainLength: l.chunkTableLength - 16 }), table, 'portable'));
  }
  const stored: number[] = [];
  for (let i = 0; i < l.chunkCount; i++) if (u32(table, i * 24 + 8) !== 0) stored.push(i);
  if (stored.length === 0) return null;
  const i = rng.pick(stored);
  const off = u64(table, i * 24);
  let len = u32(table, i * 24 + 8);
  let what: string;
  const encoded = (table[i * 24 + 12]! & 4) !== 0;
  if (!c && encoded && rng.chance(0.3)) {
    // Stored length stays below the plain length (at most the chunk size), so the record is valid.
    const bomb = rng.chance(0.5) ? deflateBomb(rng.pick([1 << 16, 1 << 20, 4 << 20, 8 << 20])) : fixedBlockBomb(Math.floor(((len - 2) * 8) / 13) - 2);
    if (bomb.length >= len) return null;
    b.set(bomb, off);
    len = bomb.length;
    new DataView(table.buffer, table.byteOffset).setUint32(i * 24 + 8, len, true);
    what = `chunk ${i} replaced by a deflate bomb of ${len} bytes`;
  } else {
    const n = 1 + rng.int(8);
    for (let k = 0; k < n; k++) b[off + rng.int(len)]! ^= 1 + rng.int(255);
    what = `chunk ${i}: ${n} bytes changed`;
    if (rng.chance(0.2) && len > 16) {
      len -= 1 + rng.int(Math.min(16, len - 1));
      new DataView(table.buffer, table.byteOffset).setUint32(i * 24 + 8, len, true);
      what += `, stored length cut to ${len}`;
    }
  }
  setU64(table, i * 24 + 16, xxh64(b.subarray(off, off + len)));
  if (c) {
    b.set(seal(c.suite, c.indexKey, indexNonce(1), indexAad({ imageId: c.imageId, headerHash: c.headerHash, domain: 1, count: l.chunkCount, plainLength: table.length }), table, 'portable'), l.chunkTable);
  }
  fixChecksums(b);
  return `${what}, its checksum fixed${c ? ' in the re-sealed chunk table' : ''}`;
}

/**
 * Case `index` of a run with `seed`: picks a vector and applies one to three mutations.
 * @param vectors the valid vectors, in a fixed order.
 */
export function makeCase(vectors: readonly VectorInfo[], seed: number, index: number): FuzzCase {
  const rng = new Rng(caseSeed(seed, index));
  const v = vectors[rng.int(vectors.length)]!;
  let b: Bytes = Uint8Array.from(v.bytes);
  const steps: string[] = [];
  let resealed = false;
  let dataRewritten = false;
  if (v.crypto && rng.chance(0.12)) {
    steps.push(resealMutation(rng, b, v.crypto));
    resealed = true;
  } else if (rng.chance(0.12)) {
    const what = dataRewrite(rng, b, v.crypto);
    if (what) {
      steps.push(what);
      dataRewritten = !v.crypto;
    }
  }
  if (!v.crypto && rng.chance(0.05)) {
    const [out, what] = growRegions(rng, b);
    b = out;
    steps.push(what);
    fixChecksums(b);
  }
  const n = 1 + (rng.chance(0.3) ? 1 + rng.int(2) : 0);
  for (let k = 0; k < n; k++) {
    if (b.length < 128 + FOOTER || rng.chance(0.45)) {
      if (b.length === 0) break;
      const [out, what] = rng.pick(BLIND)(rng, b);
      b = out;
      steps.push(what);
    } else {
      const what = fieldMutation(rng, b, v.crypto !== undefined);
      steps.push(what);
      // Re-sealing the checksums would undo a mutation of a checksum field itself.
      if (!/checksum @/.test(what) && rng.chance(0.85)) {
        fixChecksums(b);
        steps.push('checksums fixed');
      }
    }
  }
  const changed = b.length !== v.bytes.length || !b.every((x, i) => x === v.bytes[i]);
  return { index, vector: v.name, bytes: b, steps, resealed, changed, dataRewritten };
}
