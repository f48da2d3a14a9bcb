/**
 * An independent parser for the byte layout: spec/crimg.ksy compiled by kaitai-struct-compiler
 * in the test, run over every valid vector of spec/vectors/v1, must see what the library sees
 * (header, validation records, footer, regions and chunk table; for encrypted images the
 * header, validation block and the sizes of the sealed sections). Checksums are checked with
 * xxhash-wasm directly, not through codec/checksum.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { load } from 'js-yaml';
import xxhash from 'xxhash-wasm';
import { openImage, type Image } from '../index.js';

const require = createRequire(import.meta.url);
const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');
const valid = readdirSync(V1).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4)).sort();

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
      default: throw new Error(`vector holds validation record type ${r.type}`);
    }
  }
  return v;
}

function checkHeaderAndValidation(k: Parsed, img: Image, bytes: Buffer): void {
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
  expect(kh.reserved1.every((x: number) => x === 0) && kh.reserved2.every((x: number) => x === 0)).toBe(true);

  const v = img.validation;
  expect(validationOf(k)).toEqual({
    producerName: v.producerName, producerVersion: v.producerVersion, architecture: v.architecture, pageSize: v.pageSize,
    labels: v.labels, metrics: v.metrics,
    bitmaps: Object.fromEntries(Object.entries(v.bitmaps).map(([key, b]) => [key, hex(b)])),
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

describe.each(valid)('Kaitai Struct parser on vector %s', (name) => {
  test('sees what the library sees', async () => {
    const bytes = readFileSync(join(V1, `${name}.img`));
    const k = parse(bytes);
    const img = await openImage(bytes, { key: keyOf(name), workers: 0 });
    try {
      checkHeaderAndValidation(k, img, bytes);
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
          expect(kc.reserved).toBe(0);
          if (kc.isZero) {
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
