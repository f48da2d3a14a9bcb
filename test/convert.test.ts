/**
 * convertImage (image/convert.ts) and `crimg convert` over it: round trips through every
 * encoding, an unknown region kind (spec/FORMAT.md section 8.1) and an unknown validation
 * record (section 4) carried through, and a failure that leaves no output behind.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ImageWriter, convertImage, exportCore, importCore, openImage, openReader, type Image, type ImageReader, type KeyInput } from '../index.js';
import { decodeValidation, encodeValidation, toValidationInput } from '../format/index.js';
import { xxh64 } from '../codec/checksum.js';
import { memoryLike, tempDir } from './helpers.js';
import { crimg, ensureBuilt } from './cli-helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const A = 0x7f0000000000n;
const CREATED = Date.UTC(2025, 5, 6, 7, 8, 9);
/** A record type this version does not know, with a reserved flag bit set: both must survive. */
const UNKNOWN = { type: 777, flags: 0x0004, payload: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]) };

interface Expected { address: bigint; length: bigint; prot: string; kindId: number; name: string; isGap: boolean; bytes?: Buffer }

/** An image with data regions (one of kind byte 9), a gap and an unknown validation record. */
async function source(path: string): Promise<Expected[]> {
  const heap = memoryLike(40, 1);
  const text = memoryLike(5, 2);
  const odd = Buffer.concat([memoryLike(3, 3), Buffer.alloc(100, 0x41)]);
  const w = await ImageWriter.create(path, {
    chunkSize: 4096, fsync: false, created: CREATED,
    validation: {
      producerName: 'test', architecture: 'x86_64', labels: { engine: 'jvm-21' }, metrics: { 'heap.used': 12 },
      skipped: [UNKNOWN],
    },
  });
  await w.addRegion({ address: A, data: heap, kind: 'heap', name: 'java heap' });
  await w.addGap({ address: A + 0x28000n, length: 0x10000n, name: 'guard' });
  await w.addRegion({ address: A + 0x40000n, data: text, prot: 'r-x', kind: 'code' });
  await w.addRegion({ address: A + 0x50000n, data: odd, prot: 'r--', kind: 9, name: 'future kind' });
  await w.finish();
  return [
    { address: A, length: BigInt(heap.length), prot: 'rw-', kindId: 1, name: 'java heap', isGap: false, bytes: heap },
    { address: A + 0x28000n, length: 0x10000n, prot: '---', kindId: 6, name: 'guard', isGap: true },
    { address: A + 0x40000n, length: BigInt(text.length), prot: 'r-x', kindId: 3, name: '', isGap: false, bytes: text },
    { address: A + 0x50000n, length: BigInt(odd.length), prot: 'r--', kindId: 9, name: 'future kind', isGap: false, bytes: odd },
  ];
}

/** Every region's metadata and bytes (read in whole) equal `expected`. */
async function expectSame(image: ImageReader, expected: Expected[]): Promise<void> {
  expect(image.regions.map((r) => ({ address: r.address, length: r.length, prot: r.prot, kindId: r.kindId, name: r.name, isGap: r.isGap })))
    .toEqual(expected.map(({ bytes: _, ...e }) => e));
  for (const e of expected) if (e.bytes) expect((await image.read(e.address, e.bytes.length)).equals(e.bytes)).toBe(true);
  expect(Number(image.header.created)).toBe(CREATED);
}

const src = t.path('src.img');
let expected: Expected[];
let srcImage: Image;
beforeAll(async () => {
  ensureBuilt();
  expected = await source(src);
  srcImage = await openImage(src);
});
afterAll(() => srcImage.close());

test('raw -> deflate -> encrypted -> raw: every region, gap, kind, name and the validation block kept; new ids', async () => {
  const key: KeyInput = randomBytes(32);
  const deflated = t.path('deflated.img');
  const sealed = t.path('sealed.img');
  const back = t.path('back.img');
  const progress: [number, number][] = [];
  await convertImage(src, deflated, { compress: 'deflate:6', chunkSize: 16384, fsync: false, onProgress: (d, n) => progress.push([d, n]) });
  const total = expected.reduce((s, e) => s + (e.bytes?.length ?? 0), 0);
  expect(progress[0]).toEqual([0, total]);
  expect(progress.at(-1)).toEqual([total, total]);
  // Unset options keep the input's settings: deflate stays, chunk size stays.
  await convertImage(deflated, sealed, { encrypt: 'aes-256-gcm', outKey: key, fsync: false });
  await convertImage(sealed, back, { key, encrypt: 'none', compress: 'none', fsync: false });
  const ids = new Set<string>([srcImage.imageId]);
  for (const [path, compression, encryption, chunkSize] of [[deflated, 'deflate:6', 'none', 16384], [sealed, 'deflate:6', 'aes-256-gcm', 16384], [back, 'none', 'none', 16384]] as const) {
    const img = await openImage(path, encryption === 'none' ? {} : { key });
    try {
      expect([img.compression, img.encryption, img.chunkSize]).toEqual([compression, encryption, chunkSize]);
      await expectSame(img, expected);
      expect(Buffer.from(img.validationBytes).equals(Buffer.from(srcImage.validationBytes))).toBe(true);
      expect((await img.verify()).ok).toBe(true);
      ids.add(img.imageId);
    } finally {
      await img.close();
    }
  }
  expect(ids.size).toBe(4);
});

test('an encrypted input stays encrypted under its own key when nothing else is asked; no key to encrypt is a TypeError', async () => {
  const key: KeyInput = { passphrase: 'correct horse' };
  const sealed = t.path('pass.img');
  await convertImage(src, sealed, { encrypt: 'chacha20-poly1305', outKey: key, fsync: false, scrypt: { log2N: 10 } });
  const again = t.path('pass-again.img');
  await convertImage(sealed, again, { key, fsync: false, scrypt: { log2N: 10 } });
  const img = await openImage(again, { key });
  try {
    expect(img.encryption).toBe('chacha20-poly1305');
    await expectSame(img, expected);
  } finally {
    await img.close();
  }
  await expect(convertImage(src, t.path('nokey.img'), { encrypt: 'aes-256-gcm' })).rejects.toThrow(TypeError);
  expect(existsSync(t.path('nokey.img'))).toBe(false);
});

test('an open image is converted and left open; a sparse raw input stays sparse', async () => {
  const sparse = t.path('sparse.img');
  await convertImage(srcImage, sparse, { layout: 'sparse', fsync: false });
  const copy = t.path('sparse-copy.img');
  const reader = await openReader(sparse);
  try {
    await convertImage(reader, copy, { fsync: false });
    expect(reader.regions.length).toBe(expected.length); // still open
  } finally {
    await reader.close();
  }
  const img = await openImage(copy);
  try {
    expect(img.sparse).toBe(true);
    await expectSame(img, expected);
  } finally {
    await img.close();
  }
});

test('an unknown region kind (section 8.1) is carried as its kind byte', async () => {
  const out = t.path('kind.img');
  await convertImage(src, out, { chunkSize: 8192, fsync: false });
  const img = await openImage(out);
  try {
    const r = img.regions.find((x) => x.kindId === 9)!;
    expect([r.kind, r.name, r.prot]).toEqual(['unknown(9)', 'future kind', 'r--']);
  } finally {
    await img.close();
  }
});

/** `bytes` with the first validation record turned into type 999 with flags 0x0002, checksum fixed. */
function withUnknownRecord(bytes: Buffer, headerSize: number, validationSize: number): Buffer {
  const c = Buffer.from(bytes);
  const at = headerSize + 8; // the first record
  c.writeUInt16LE(999, at);
  c.writeUInt16LE(0x0002, at + 2);
  c.writeBigUInt64LE(xxh64(c.subarray(headerSize, headerSize + validationSize - 8)), headerSize + validationSize - 8);
  return c;
}

test('unknown validation records are kept byte for byte, wherever they stood', async () => {
  // Written by this version: the whole block comes out the same.
  const out = t.path('records.img');
  await convertImage(src, out, { compress: 'deflate', fsync: false });
  const img = await openImage(out);
  try {
    expect(img.validation.skipped).toEqual([{ type: 777, flags: 4, length: 11, payload: UNKNOWN.payload }]);
    expect(Buffer.from(img.validationBytes).equals(Buffer.from(srcImage.validationBytes))).toBe(true);
  } finally {
    await img.close();
  }
  // The first record turned into an unknown type by another producer: that record's bytes are
  // found again in the copy (after the known records, where this writer puts skipped ones).
  const hs = srcImage.headerBytes.length;
  const vs = srcImage.validationBytes.length;
  const patched = t.path('patched.img');
  writeFileSync(patched, withUnknownRecord(readFileSync(src), hs, vs));
  const p = await openImage(patched);
  const len = p.validationBytes.subarray(12, 16);
  const recordLength = 8 + Math.ceil(Buffer.from(len).readUInt32LE(0) / 8) * 8;
  const record = Buffer.from(p.validationBytes.subarray(8, 8 + recordLength));
  expect(p.validation.producerName).toBeUndefined();
  expect(p.validation.skipped.map((r) => [r.type, r.flags])).toEqual([[999, 2], [777, 4]]);
  const copy = t.path('patched-copy.img');
  try {
    await convertImage(p, copy, { fsync: false });
  } finally {
    await p.close();
  }
  const c = await openImage(copy);
  try {
    expect(c.validation.skipped.map((r) => [r.type, r.flags])).toEqual([[999, 2], [777, 4]]);
    expect(Buffer.from(c.validationBytes).includes(record)).toBe(true);
    expect(c.validationBytes.length).toBe(vs);
  } finally {
    await c.close();
  }
});

test('encodeValidation refuses what a reader would not skip: a known type, the CRITICAL flag', () => {
  expect(() => encodeValidation({ skipped: [{ type: 5, payload: new Uint8Array(1) }] }, xxh64)).toThrow(RangeError);
  expect(() => encodeValidation({ skipped: [{ type: 999, flags: 1, payload: new Uint8Array(1) }] }, xxh64)).toThrow(RangeError);
  expect(() => encodeValidation({ skipped: [{ type: 70000, payload: new Uint8Array(1) }] }, xxh64)).toThrow(RangeError);
  const block = encodeValidation({ architecture: 'x86_64', skipped: [{ type: 999, payload: new Uint8Array(0) }] }, xxh64);
  const v = decodeValidation(block, 0, xxh64);
  expect(v.skipped).toEqual([{ type: 999, flags: 0, length: 0, payload: new Uint8Array(0) }]);
  expect(Buffer.from(encodeValidation(toValidationInput(v), xxh64)).equals(Buffer.from(block))).toBe(true);
});

test('export-core then import-core keeps unknown validation records (the CRIMG validation note)', async () => {
  const core = t.path('src.core');
  await exportCore(srcImage, core, { fsync: false });
  const out = t.path('imported.img');
  await importCore(core, out, { fsync: false });
  const img = await openImage(out);
  try {
    expect(img.validation.skipped).toEqual([{ type: 777, flags: 4, length: 11, payload: UNKNOWN.payload }]);
  } finally {
    await img.close();
  }
});

/** File offset of the last region's first stored chunk. */
async function lastRegionChunk(): Promise<number> {
  const table = await srcImage.chunkTable();
  const last = srcImage.regions.at(-1)!;
  for (let j = 0; j < last.chunkCount; j++) {
    const rec = table.get(last.firstChunk + j, srcImage.plainLength(last, j));
    if (rec.storedLength > 0) return rec.offset;
  }
  throw new Error('the last region has no stored chunk');
}

test('a failure part way (a damaged chunk of the last region) aborts: no output, no temporary file', async () => {
  const dir = tempDir();
  try {
    const damaged = dir.path('damaged.img');
    const b = readFileSync(src);
    b[await lastRegionChunk() + 10]! ^= 0x20;
    writeFileSync(damaged, b);
    const out = dir.path('out.img');
    const seen: number[] = [];
    await expect(convertImage(damaged, out, { compress: 'deflate', fsync: false, onProgress: (d) => seen.push(d) })).rejects.toMatchObject({ code: 'CORRUPT_CHUNK' });
    expect(seen.at(-1)).toBeGreaterThan(0); // it failed part way, not at the start
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir.dir)).toEqual(['damaged.img']);
  } finally {
    dir.cleanup();
  }
});

describe('crimg convert', () => {
  test('converts an image with a region kind this version does not know (was INVALID_ARGUMENT "unknown(9)")', async () => {
    const out = t.path('cli-kind.img');
    const r = await crimg(['convert', src, out, '--compress', 'deflate:3']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^converted ${src} to ${out}: 4 regions, `));
    const img = await openImage(out);
    try {
      await expectSame(img, expected);
      expect(img.validation.skipped.map((x) => x.type)).toEqual([777]);
    } finally {
      await img.close();
    }
  });

  test('a failure leaves no OUT file', async () => {
    const dir = tempDir();
    try {
      const b = readFileSync(src);
      b[await lastRegionChunk()]! ^= 1;
      writeFileSync(dir.path('bad.img'), b);
      const r = await crimg(['convert', dir.path('bad.img'), dir.path('out.img')]);
      expect([r.status, r.stderr.slice(0, 'crimg: CORRUPT_CHUNK: '.length)]).toEqual([1, 'crimg: CORRUPT_CHUNK: ']);
      expect(readdirSync(dir.dir)).toEqual(['bad.img']);
    } finally {
      dir.cleanup();
    }
  });
});
