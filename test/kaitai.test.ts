/**
 * An independent parser for the byte layout: spec/crimg.ksy compiled by kaitai-struct-compiler
 * in the test, run over every valid vector of spec/vectors/v1, must see what the library sees
 * (header, validation records, footer, regions and chunk table; for encrypted images the
 * header, validation block and the sizes of the sealed sections), and so must it on the
 * accepted vectors (spec section 12); on each invalid vector added with section 12, the parser
 * sees the rule the vector breaks from the bytes alone (or refuses a cut or mis-magicked file).
 * Checksums are checked with xxhash-wasm directly, not through codec/checksum.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { constants, inflateRawSync } from 'node:zlib';
import { load } from 'js-yaml';
import xxhash from 'xxhash-wasm';
import { openImage, type Image } from '../index.js';

const require = createRequire(import.meta.url);
const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');
const valid = readdirSync(V1).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4)).sort();
/** Valid vectors changed where a reader must accept the change (spec section 12). */
const accepted = readdirSync(join(V1, 'accepted')).filter((f) => f.endsWith('.img')).map((f) => `accepted/${f.slice(0, -4)}`).sort();
const invalid = readdirSync(join(V1, 'invalid')).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4)).sort();

/* eslint-disable @typescript-eslint/no-explicit-any -- the generated parser is untyped */
type Parsed = any;
let Crimg: new (stream: unknown) => Parsed;
let KaitaiStream: new (buffer: ArrayBuffer) => unknown;
let h64: (b: Uint8Array) => bigint;

beforeAll(async () => {
  const spec = load(readFileSync(join(process.cwd(), 'spec', 'crimg.ksy'), 'utf8'));
  const KSC = require('kaitai-struct-compiler') as { compile(lang: string, spec: unknown, importer: null, debug: boolean): Promise<Record<string, string>> };
  const files = await KSC.compile('javascript', spec, null, false);
  expect(Object.keys(files)).toEqual(['Crimg.js']);
  // The generated file is UMD: give it CommonJS `exports` and a `require` for its runtime.
  const exports: Record<string, unknown> = {};
  new Function('exports', 'require', files['Crimg.js']!)(exports, require);
  Crimg = exports.Crimg as typeof Crimg;
  KaitaiStream = require('kaitai-struct/KaitaiStream') as typeof KaitaiStream;
  const hasher = await xxhash();
  h64 = (b) => hasher.h64Raw(b, 0n);
}, 30_000);

function parse(bytes: Buffer): Parsed {
  return new Crimg(new KaitaiStream(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer));
}

const u64 = (h: { lo: number; hi: number }): bigint => (BigInt(h.hi) << 32n) | BigInt(h.lo);
const le64 = (b: Uint8Array): bigint => Buffer.from(b).readBigUInt64LE(0);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function keyOf(name: string): Uint8Array | { passphrase: string } | undefined {
  const exp = JSON.parse(readFileSync(join(V1, `${name}.json`), 'utf8')) as { key?: string; passphrase?: string };
  if (exp.key) return Buffer.from(exp.key, 'hex');
  if (exp.passphrase) return { passphrase: exp.passphrase };
  return undefined;
}

/** The validation block as Kaitai's records describe it, in the library's shape. */
function validationOf(k: Parsed): Record<string, unknown> {
  const T = (Crimg as any).RecordType;
  const v: Record<string, any> = { labels: {}, bitmaps: {}, metrics: {} };
  for (const r of k.validation.records) {
    const p = r.payload;
    switch (r.type) {
      case T.PRODUCER_NAME: v.producerName = p.value; break;
      case T.PRODUCER_VERSION: v.producerVersion = p.value; break;
      case T.ARCHITECTURE: v.architecture = p.value; break;
      case T.PAGE_SIZE: v.pageSize = p.value; break;
      case T.LABEL: v.labels[p.key] = p.value; break;
      case T.BITMAP: v.bitmaps[p.key] = hex(p.bits); break;
      case T.METRIC: v.metrics[p.key] = p.value; break;
      case T.PARENT: v.parent = { imageId: hex(p.parentImageId), indexHash: hex(p.indexHash), depth: p.depth, hint: p.hint }; break;
      default:
        // A type this reader does not know: skipped (section 4), never critical in a valid vector.
        if (r.isCritical) throw new Error(`vector holds critical validation record type ${r.type}`);
        v.skipped = (v.skipped ?? 0) + 1;
    }
  }
  return v;
}

function checkHeaderAndValidation(k: Parsed, img: Image, bytes: Buffer, reservedSet = false): void {
  const h = img.header;
  const kh = k.header;
  expect({
    major: kh.majorVersion, minor: kh.minorVersion, headerSize: kh.headerSize,
    requiredFeatures: u64(kh.requiredFeatures), optionalFeatures: u64(kh.optionalFeatures),
    pageSize: kh.pageSize, chunkSize: kh.chunkSize, imageId: hex(kh.imageId), created: BigInt(kh.created),
    validationSize: kh.validationSize, codec: kh.codecId, codecLevel: kh.codecLevel, cipher: kh.cipherId,
    kdf: kh.kdfId, scryptLog2N: kh.scryptLog2N, scryptR: kh.scryptR, scryptP: kh.scryptP,
    salt: hex(kh.salt), keyCheck: hex(kh.keyCheck), checksum: le64(kh.checksum),
  }).toEqual({
    major: h.major, minor: h.minor, headerSize: h.headerSize,
    requiredFeatures: h.requiredFeatures, optionalFeatures: h.optionalFeatures,
    pageSize: h.pageSize, chunkSize: h.chunkSize, imageId: hex(h.imageId), created: h.created,
    validationSize: h.validationSize, codec: h.codec, codecLevel: h.codecLevel, cipher: h.cipher,
    kdf: h.kdf, scryptLog2N: h.scryptLog2N, scryptR: h.scryptR, scryptP: h.scryptP,
    salt: hex(h.salt), keyCheck: hex(h.keyCheck), checksum: h.checksum,
  });
  expect(le64(kh.checksum)).toBe(h64(bytes.subarray(0, kh.headerSize - 8)));
  // Reserved bytes are written as zero; a reader ignores them (the accepted vector that sets them).
  if (!reservedSet) expect(kh.reserved1.every((x: number) => x === 0) && kh.reserved2.every((x: number) => x === 0)).toBe(true);

  const v = img.validation;
  expect(validationOf(k)).toEqual({
    producerName: v.producerName, producerVersion: v.producerVersion, architecture: v.architecture, pageSize: v.pageSize,
    labels: v.labels, metrics: v.metrics,
    bitmaps: Object.fromEntries(Object.entries(v.bitmaps).map(([key, b]) => [key, hex(b)])),
    ...(v.skipped.length ? { skipped: v.skipped.length } : {}),
    ...(v.parent ? { parent: { imageId: hex(v.parent.imageId), indexHash: hex(v.parent.indexHash), depth: v.parent.depth, hint: v.parent.hint } } : {}),
  });
  expect(k.validation.recordCount).toBe(k.validation.records.length);
  const vs = kh.headerSize;
  expect(le64(k.validation.checksum)).toBe(h64(bytes.subarray(vs, vs + kh.validationSize - 8)));
  expect(k.dataStart).toBe(img.dataStart);

  const f = img.footer;
  const kf = k.footer;
  expect({
    imageId: hex(kf.imageId), chunkTableOffset: BigInt(kf.chunkTableOffset), chunkCount: BigInt(kf.chunkCount),
    chunkTableLength: BigInt(kf.chunkTableLength), regionSectionOffset: BigInt(kf.regionSectionOffset),
    regionCount: kf.regionCount, stringTableLength: kf.stringTableLength, regionSectionLength: BigInt(kf.regionSectionLength),
    chunkTableChecksum: le64(kf.chunkTableChecksum), regionSectionChecksum: le64(kf.regionSectionChecksum),
  }).toEqual({
    imageId: hex(f.imageId), chunkTableOffset: f.chunkTableOffset, chunkCount: f.chunkCount,
    chunkTableLength: f.chunkTableLength, regionSectionOffset: f.regionSectionOffset,
    regionCount: f.regionCount, stringTableLength: f.stringTableLength, regionSectionLength: f.regionSectionLength,
    chunkTableChecksum: f.chunkTableChecksum, regionSectionChecksum: f.regionSectionChecksum,
  });
  expect(le64(kf.footerChecksum)).toBe(h64(bytes.subarray(bytes.length - 96, bytes.length - 16)));
}

describe.each([...valid, ...accepted])('Kaitai Struct parser on vector %s', (name) => {
  test('sees what the library sees', async () => {
    const bytes = readFileSync(join(V1, `${name}.img`));
    const k = parse(bytes);
    const img = await openImage(bytes, { key: keyOf(name), workers: 0 });
    try {
      checkHeaderAndValidation(k, img, bytes, name.endsWith('--header-reserved-bytes'));
      const f = img.footer;
      if (k.isEncrypted) {
        expect(k.chunkTable).toBeUndefined();
        expect(k.regionSection).toBeUndefined();
        // Sealed sections: plain length + 16-byte tag, the checksums over the stored bytes.
        const names = img.regions.reduce((n, r) => n + Buffer.byteLength(r.name), 0);
        expect(k.chunkTableSealed.length).toBe(24 * img.chunkCount + 16);
        expect(k.regionSectionSealed.length).toBe(64 * img.regions.length + names + 16);
        expect(h64(k.chunkTableSealed)).toBe(f.chunkTableChecksum);
        expect(h64(k.regionSectionSealed)).toBe(f.regionSectionChecksum);
        return;
      }
      expect(k.chunkTableSealed).toBeUndefined();
      expect(h64(bytes.subarray(Number(f.chunkTableOffset), Number(f.chunkTableOffset + f.chunkTableLength)))).toBe(f.chunkTableChecksum);
      expect(h64(bytes.subarray(Number(f.regionSectionOffset), Number(f.regionSectionOffset + f.regionSectionLength)))).toBe(f.regionSectionChecksum);

      const kr = k.regionSection.regions.map((r: Parsed) => ({
        address: u64(r.address), length: u64(r.length), protBits: r.prot, kindId: r.kind, name: r.name,
        firstChunk: Number(r.firstChunk), chunkCount: Number(r.chunkCount), storedBytes: BigInt(r.storedBytes), zeroChunks: Number(r.zeroChunks),
        // Region flags (section 8.1, 1.2): the file offset in pages of the header's page size.
        shared: r.isShared, fileOffset: r.hasFileOffset ? BigInt(r.filePage) * BigInt(k.header.pageSize) : undefined,
      }));
      expect(kr).toEqual(img.regions.map((r) => ({
        address: r.address, length: r.length, protBits: r.protBits, kindId: r.kindId, name: r.name,
        firstChunk: r.firstChunk, chunkCount: r.chunkCount, storedBytes: r.storedBytes, zeroChunks: r.zeroChunks,
        shared: r.shared, fileOffset: r.fileOffset,
      })));

      const table = await img.chunkTable();
      const records = k.chunkTable.records as Parsed[];
      expect(records.length).toBe(table.count);
      for (const r of img.regions) {
        for (let j = 0; j < r.chunkCount; j++) {
          const n = r.firstChunk + j;
          const lib = table.get(n, img.plainLength(r, j));
          const kc = records[n];
          expect({ n, offset: kc.offset, storedLength: kc.storedLength, flags: kc.flags, checksum: hex(kc.checksum) })
            .toEqual({ n, offset: lib.offset, storedLength: lib.storedLength, flags: lib.flags, checksum: hex(Buffer.from(new BigUint64Array([lib.checksum]).buffer)) });
          if (!name.endsWith('--chunk-record-reserved-bytes')) expect(kc.reserved).toBe(0);
          if (kc.isZero || kc.isInParent) {
            expect(kc.stored).toBeUndefined();
          } else {
            // The stored bytes Kaitai locates are the ones the checksum covers, and (raw chunks
            // of an image without codec) the region's plain bytes.
            expect(h64(kc.stored)).toBe(le64(kc.checksum));
            if (kc.isRaw) expect(Buffer.from(kc.stored).equals(await img.read(r.address + BigInt(j * img.chunkSize), img.plainLength(r, j)))).toBe(true);
          }
        }
      }
    } finally {
      await img.close();
    }
  });
});

/** A parse, or the error the generated parser threw (a vector cut short or with a wrong magic). */
function tryParse(bytes: Buffer): Parsed | Error {
  try {
    const k = parse(bytes);
    void k.footer; // instances are lazy: reach the footer too
    return k;
  } catch (e) {
    return e as Error;
  }
}

/** Kaitai's own view of each rule an invalid vector breaks (spec section 12): only the bytes, no library. */
const stored = (k: Parsed): Parsed[] => (k.chunkTable.records as Parsed[]).filter((c) => !c.isZero);
const regionChunks = (k: Parsed, r: Parsed): Parsed[] => (k.chunkTable.records as Parsed[]).slice(Number(r.firstChunk), Number(r.firstChunk) + Number(r.chunkCount));
/** The first encoded chunk's zstd frame (spec section 6.2): its bytes, header fields and where its blocks end. */
function zstdFrame(k: Parsed): { f: Uint8Array; fhd: number; size: number; end: number } {
  const f = (k.chunkTable.records as Parsed[]).find((c) => c.isEncoded).stored as Uint8Array;
  const fhd = f[4]!;
  const single = (fhd >> 5) & 1;
  const fcsBytes = fhd >> 6 === 0 ? single : 1 << (fhd >> 6);
  let at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3]!;
  let size = 0;
  for (let i = 0; i < fcsBytes; i++) size += f[at + i]! * 2 ** (8 * i);
  if (fcsBytes === 2) size += 256;
  at += fcsBytes;
  for (let last = 0; !last && at + 3 <= f.length;) {
    const h = f[at]! | (f[at + 1]! << 8) | (f[at + 2]! << 16);
    last = h & 1;
    at += 3 + (((h >> 1) & 3) === 1 ? 1 : h >>> 3);
  }
  return { f, fhd, size, end: at + ((fhd >> 2) & 1) * 4 };
}
const RULES: Record<string, (k: Parsed, bytes: Buffer, from: Parsed) => boolean> = {
  'CORRUPT_CHUNK--zstd-skippable-frame': (k) => (Buffer.from(zstdFrame(k).f).readUInt32LE(0) & ~0xf) >>> 0 === 0x184d2a50,
  'CORRUPT_CHUNK--zstd-dictionary-id': (k) => (zstdFrame(k).fhd & 3) !== 0,
  'CORRUPT_CHUNK--zstd-window-over-chunk': (k) => (zstdFrame(k).fhd & 0x20) === 0 && 1024 << (zstdFrame(k).f[5]! >> 3) > k.header.chunkSize,
  'CORRUPT_CHUNK--zstd-content-size': (k) => zstdFrame(k).size !== k.header.chunkSize,
  'CORRUPT_CHUNK--zstd-trailing-byte': (k) => zstdFrame(k).end < zstdFrame(k).f.length,
  'CORRUPT_CHUNK--zstd-truncated': (k) => zstdFrame(k).end > zstdFrame(k).f.length,
  'CORRUPT_HEADER--zstd-level-20': (k) => k.header.codecId === (Crimg as any).Codec.ZSTD && k.header.codecLevel > 19,
  'UNSUPPORTED_FEATURE--codec-3': (k) => k.header.codecId === 3 && (k.header.requiredFeatures.lo & 1) === 1,
  'UNSUPPORTED_FEATURE--cipher-3': (k) => k.header.cipherId === 3 && (k.header.requiredFeatures.lo & 2) === 2,
  'UNSUPPORTED_FEATURE--kdf-2': (k) => k.header.kdfId === 2,
  'CORRUPT_HEADER--scrypt-parameters': (k) => k.header.kdfId === (Crimg as any).Kdf.SCRYPT && k.header.scryptLog2N === 0,
  'CORRUPT_HEADER--deflate-level-0': (k) => k.header.codecId === (Crimg as any).Codec.DEFLATE && k.header.codecLevel === 0,
  'CORRUPT_INDEX--chunk-table-offset-unaligned': (k) => Number(k.footer.chunkTableOffset) % 8 !== 0,
  'CORRUPT_INDEX--no-regions': (k) => k.footer.regionCount === 0,
  'CORRUPT_INDEX--protection-reserved-bits': (k) => k.regionSection.regions.some((r: Parsed) => (r.prot & ~7) !== 0),
  'CORRUPT_INDEX--name-outside-string-table': (k) => k.regionSection.regions.some((r: Parsed) => r.nameOffset + r.nameLength > k.footer.stringTableLength),
  'AUTH_FAILED--tampered-chunk-table': (k, _b, from) => h64(k.chunkTableSealed) === le64(k.footer.chunkTableChecksum)
    && !Buffer.from(k.chunkTableSealed).equals(Buffer.from(from.chunkTableSealed)),
  'CORRUPT_INDEX--chunk-flags': (k) => (k.chunkTable.records as Parsed[]).some((c) => (c.flags & ~15) !== 0),
  'CORRUPT_INDEX--mappable-unaligned': (k) => (k.header.optionalFeatures.lo & 1) === 1 && stored(k).some((c) => Number(c.offset) % k.header.pageSize !== 0),
  'CORRUPT_CHUNK--deflate-truncated': (k) => stored(k).some((c: Parsed) => {
    if (!c.isEncoded) return false;
    try {
      inflateRawSync(c.stored, { finishFlush: constants.Z_FINISH });
      return false;
    } catch {
      return true; // node:zlib: unexpected end of file
    }
  }),
  'LIMIT_EXCEEDED--huge-string-table': (k) => k.footer.stringTableLength > 64 * 1024 * 1024,
  'LIMIT_EXCEEDED--region-chunk-count': (k) => k.regionSection.regions.some((r: Parsed) => Number(r.chunkCount) >= 2 ** 32),
  'LIMIT_EXCEEDED--chunk-count-past-file': (k, b) => Number(k.footer.chunkCount) * 24 > b.length && (Number(k.footer.chunkCount) - 1) * 24 <= b.length,
  'LIMIT_EXCEEDED--scrypt-cost': (k) => k.header.kdfId === (Crimg as any).Kdf.SCRYPT && k.header.scryptLog2N > 17,
  'CORRUPT_HEADER--header-size-over-limit': (k) => k.header.headerSize > 4096,
  'CORRUPT_HEADER--validation-size-over-limit': (k) => k.header.validationSize > 1024 * 1024,
  'CORRUPT_HEADER--chunk-size-over-limit': (k) => k.header.chunkSize > 16 * 1024 * 1024,
  'CORRUPT_HEADER--page-size': (k) => k.header.pageSize < 4096,
  'CORRUPT_HEADER--codec-level-without-codec': (k) => k.header.codecId === (Crimg as any).Codec.NONE && k.header.codecLevel !== 0,
  'CORRUPT_HEADER--salt-without-cipher': (k) => k.header.cipherId === (Crimg as any).Cipher.NONE && k.header.salt.some((x: number) => x !== 0),
  'CORRUPT_HEADER--key-check-without-cipher': (k) => k.header.cipherId === (Crimg as any).Cipher.NONE && k.header.keyCheck.some((x: number) => x !== 0),
  'CORRUPT_HEADER--kdf-without-cipher': (k) => k.header.cipherId === (Crimg as any).Cipher.NONE && k.header.kdfId !== (Crimg as any).Kdf.RAW_KEY,
  'CORRUPT_HEADER--mappable-with-codec': (k) => k.header.codecId !== (Crimg as any).Codec.NONE && (k.header.optionalFeatures.lo & 1) === 1,
  'CORRUPT_HEADER--codec-bit-mismatch': (k) => k.header.codecId !== (Crimg as any).Codec.NONE && (k.header.requiredFeatures.lo & 1) === 0,
  'CORRUPT_INDEX--name-too-long': (k) => k.regionSection.regions.some((r: Parsed) => r.nameLength > 4096),
  'CORRUPT_INDEX--region-checksum-no-key': (k) => h64(k.regionSectionSealed) !== le64(k.footer.regionSectionChecksum),
  'CORRUPT_INDEX--chunks-out-of-order': (k) => stored(k).some((c, i, all) => i > 0 && Number(c.offset) < Number(all[i - 1].offset) + all[i - 1].storedLength),
  'CORRUPT_INDEX--mappable-not-contiguous': (k) => (k.header.optionalFeatures.lo & 1) === 1 && k.regionSection.regions.some((r: Parsed) =>
    regionChunks(k, r).some((c: Parsed, j: number, all: Parsed[]) => j > 0 && !c.isZero && !all[j - 1].isZero && Number(c.offset) !== Number(all[j - 1].offset) + all[j - 1].storedLength)),
  'CORRUPT_INDEX--encoded-chunks-not-packed': (k) => stored(k).some((c, i, all) => i > 0 && Number(c.offset) > Number(all[i - 1].offset) + all[i - 1].storedLength),
  'CORRUPT_INDEX--validation-padding-not-zero': (k, b) => b.subarray(k.header.headerSize + k.header.validationSize, k.dataStart).some((x) => x !== 0),
  'CORRUPT_INDEX--chunk-in-index': (k) => stored(k).some((c) => Number(c.offset) + c.storedLength > Number(k.footer.chunkTableOffset)),
  'CORRUPT_INDEX--region-stored-bytes': (k) => k.regionSection.regions.some((r: Parsed) =>
    regionChunks(k, r).reduce((n: number, c: Parsed) => n + c.storedLength, 0) !== Number(r.storedBytes)),
  'CORRUPT_INDEX--region-zero-chunks': (k) => k.regionSection.regions.some((r: Parsed) =>
    regionChunks(k, r).filter((c: Parsed) => c.isZero).length !== Number(r.zeroChunks)),
  'CORRUPT_CHUNK--deflate-trailing-bytes': (k) => stored(k).some((c: Parsed) => {
    if (!c.isEncoded) return false;
    // node:zlib, not the library's codec: how much of the stored bytes the stream uses.
    const r = inflateRawSync(c.stored, { info: true }) as unknown as { engine: { bytesWritten: number } };
    return r.engine.bytesWritten < c.storedLength;
  }),
  'CORRUPT_VALIDATION--record-padding-not-zero': (k) => k.validation.records.some((r: Parsed) => r.padding.some((x: number) => x !== 0)),
  // Parent images (issue 19, spec section 8.3): the rule from the bytes, and the files the hint names.
  'LIMIT_EXCEEDED--chain-depth': (k) => parentOf(k)?.depth > 32,
  'CORRUPT_HEADER--mappable-child': (k) => (k.header.requiredFeatures.lo & 4) === 4 && (k.header.optionalFeatures.lo & 1) === 1,
  'CORRUPT_VALIDATION--parent-bit-without-record': (k) => (k.header.requiredFeatures.lo & 4) === 4 && parentOf(k) === undefined,
  'PARENT_REQUIRED--missing-parent': (k, _b, from) => parentOf(k)?.hint !== parentOf(from)?.hint && !existsSync(join(V1, 'invalid', parentOf(k).hint)),
  'PARENT_MISMATCH--other-image': (k) => { const p = parentAt(k); return p !== null && hex(p.k.header.imageId) !== hex(parentOf(k).parentImageId); },
  'PARENT_MISMATCH--tampered-parent': (k) => {
    const p = parentAt(k);
    if (p === null || hex(p.k.header.imageId) !== hex(parentOf(k).parentImageId)) return false;
    const h = createHash('sha256').update(p.bytes.subarray(0, p.k.header.headerSize + p.k.header.validationSize)).update(p.bytes.subarray(Number(p.k.footer.chunkTableOffset)));
    return h.digest('hex') !== hex(parentOf(k).indexHash);
  },
  // The hot list (issue 17, spec section 4.1): record type 9 (raw bytes to the parser), optional bit 2.
  'CORRUPT_VALIDATION--hot-list-bit-without-record': (k) => (k.header.optionalFeatures.lo & 4) === 4 && hotLists(k).length === 0,
  'CORRUPT_VALIDATION--hot-list-record-without-bit': (k) => (k.header.optionalFeatures.lo & 4) === 0 && hotLists(k).length > 0,
  'CORRUPT_VALIDATION--hot-list-twice': (k) => hotLists(k).length > 1,
  'CORRUPT_VALIDATION--hot-list-length': (k) => hotLists(k).some((r) => r.payloadLength === 0 || r.payloadLength % 12 !== 0),
  'CORRUPT_VALIDATION--hot-list-count-0': (k) => hotRuns(k).some(([, n]) => n === 0),
  'CORRUPT_VALIDATION--hot-list-out-of-range': (k) => hotRuns(k).some(([f, n]) => f + n > Number(k.footer.chunkCount)),
  'CORRUPT_VALIDATION--hot-list-duplicate': (k) => hotRuns(k).some(([f, n], i, all) => all.some(([g, m], j) => j !== i && n > 0 && m > 0 && f < g + m && g < f + n)),
};
const hotLists = (k: Parsed): Parsed[] => (k.validation.records as Parsed[]).filter((r) => r.type === 9);
/** The runs (first chunk, count) of the first hot-list record. */
function hotRuns(k: Parsed): [number, number][] {
  const p = Buffer.from(hotLists(k)[0]?.payload ?? []);
  const out: [number, number][] = [];
  for (let o = 0; o + 12 <= p.length; o += 12) out.push([Number(p.readBigUInt64LE(o)), p.readUInt32LE(o + 8)]);
  return out;
}
/** The parent record's payload of a parse (record type 8), if any. */
const parentOf = (k: Parsed): Parsed => (k.validation.records as Parsed[]).find((r) => r.type === (Crimg as any).RecordType.PARENT)?.payload;
/** The parse of the file an invalid child's hint names (from invalid/), or null when there is none. */
function parentAt(k: Parsed): { k: Parsed; bytes: Buffer } | null {
  const path = join(V1, 'invalid', parentOf(k).hint);
  if (!existsSync(path)) return null;
  const bytes = readFileSync(path);
  return { k: parse(bytes), bytes };
}
const HEADER_ONLY = new Set(['CORRUPT_HEADER--header-size-over-limit', 'CORRUPT_HEADER--validation-size-over-limit']);
const stream = (bytes: Buffer): unknown => new KaitaiStream(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);

/** Vectors the generated parser must refuse (its `contents` checks, or the end of the file). */
const REFUSED: Record<string, RegExp> = {
  'TRUNCATED--header-8-bytes': /EOF|end of stream|requested/i,
  'TRUNCATED--header-12-bytes': /EOF|end of stream|requested/i,
  'TRUNCATED--header-15-bytes': /EOF|end of stream|requested/i,
  'CORRUPT_VALIDATION--magic': /not equal|ValidationNotEqual/i,
  // The count says one more record than the block holds: Kaitai's repeat reads past the block.
  'CORRUPT_VALIDATION--record-count': /EOF|end of stream|requested/i,
};

describe('Kaitai Struct parser on the invalid vectors of spec section 12', () => {
  test('every vector added with the section has a rule here', () => {
    const covered = [...Object.keys(RULES), ...Object.keys(REFUSED)].sort();
    for (const name of covered) expect(invalid).toContain(name);
    // The vectors issue 15 added: every name after the last vector of format 1.1.
    const added = invalid.filter((n) => !FIRST_INVALID.has(n));
    expect(added.sort()).toEqual(covered);
  });

  test.each(Object.keys(RULES))('%s: the parser sees the broken rule', (name) => {
    const bytes = readFileSync(join(V1, 'invalid', `${name}.img`));
    // A header too long for the file: the header type alone (the image's layout is not the format's).
    const k = HEADER_ONLY.has(name) ? { header: new (Crimg as any).Header(stream(bytes)) } : tryParse(bytes);
    expect(k).not.toBeInstanceOf(Error);
    const from = (JSON.parse(readFileSync(join(V1, 'invalid', `${name}.json`), 'utf8')) as { from: string }).from;
    const fromBytes = readFileSync(join(V1, `${from}.img`));
    const fromK = parse(fromBytes);
    expect(RULES[name]!(k, bytes, fromK)).toBe(true);
    // ... and the vector it was made from does not break it
    expect(RULES[name]!(fromK, fromBytes, fromK)).toBe(false);
  });

  test.each(Object.keys(REFUSED))('%s: the parser refuses it', (name) => {
    const k = tryParse(readFileSync(join(V1, 'invalid', `${name}.img`)));
    expect(k).toBeInstanceOf(Error);
    expect(String((k as Error).message ?? k) + ' ' + (k as Error).constructor.name).toMatch(REFUSED[name]!);
  });
});

/** The invalid vectors before issue 15 (format 1.0 and 1.1's). */
const FIRST_INVALID = new Set([
  'WRONG_KEY--other-key', 'KEY_REQUIRED--no-key', 'AUTH_FAILED--swapped-chunks', 'AUTH_FAILED--chunk-from-other-image', 'AUTH_FAILED--truncated-last-chunk',
  'AUTH_FAILED--tampered-header', 'AUTH_FAILED--tampered-validation', 'AUTH_FAILED--tampered-index', 'BAD_MAGIC--first-byte', 'BAD_MAGIC--text-mode-crlf',
  'BAD_MAGIC--not-an-image', 'UNSUPPORTED_VERSION--major-2', 'UNSUPPORTED_FEATURE--required-bit-9', 'UNSUPPORTED_FEATURE--codec-zstd', 'UNSUPPORTED_FEATURE--critical-record',
  'CORRUPT_HEADER--checksum', 'CORRUPT_HEADER--chunk-size', 'CORRUPT_VALIDATION--checksum', 'CORRUPT_INDEX--footer-checksum', 'CORRUPT_INDEX--region-checksum',
  'CORRUPT_INDEX--chunk-table-checksum', 'CORRUPT_INDEX--overlapping-regions', 'CORRUPT_INDEX--image-id-mismatch', 'CORRUPT_CHUNK--checksum', 'TRUNCATED--in-header',
  'TRUNCATED--in-validation', 'TRUNCATED--in-data', 'TRUNCATED--in-index', 'TRUNCATED--in-footer', 'TRUNCATED--index-past-end', 'LIMIT_EXCEEDED--huge-chunk-count',
  'LIMIT_EXCEEDED--huge-region-count', 'CORRUPT_HEADER--sparse-without-mappable', 'CORRUPT_INDEX--sparse-chunk-out-of-place', 'CORRUPT_INDEX--sparse-hole-not-zero',
  'CORRUPT_INDEX--sparse-spans-overlap', 'LIMIT_EXCEEDED--validation-record-count',
]);
