/**
 * Region flags (spec/FORMAT.md section 8.1, 1.2): SHARED and FILE_OFFSET with the record's file
 * page. Golden record bytes, round trips through the writer and reader (plain and encrypted),
 * offsets past 2^32 pages left out, and the reader's tolerance: unknown flag bits and a file page
 * without FILE_OFFSET are ignored, never refused; an image without flags reads as before.
 */
import { readFileSync } from 'node:fs';
import {
  MAX_FILE_PAGE, REGION_FILE_OFFSET, REGION_RECORD, REGION_RECORD_SIZE, REGION_SHARED, decodeRegionSection, encodeRegionSection,
  offsetOf, type RegionRecord,
} from '../format/index.js';
import { regionFlagFields } from '../format/index-table.js';
import { ImageWriter, convertImage, openImage } from '../index.js';
import { tempDir } from './helpers.js';
import { crimg, ensureBuilt, json } from './cli-helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const base: RegionRecord = {
  address: 0x7f0000000000n, length: 8192n, firstChunk: 0, chunkCount: 2, storedBytes: 8192n, zeroChunks: 0, protBits: 5, kindId: 3, name: '/lib/x.so',
};
const ctx = (regionCount: number, stringTableLength: number, chunkCount: number, pageSize = 4096) => ({
  regionCount, stringTableLength, chunkCount, chunkSize: pageSize, pageSize, base: 1000,
});

test('the record holds flags at 58 (u16) and the file page at 60 (u32), in pages of the image', () => {
  expect(offsetOf(REGION_RECORD, 'flags')).toBe(58);
  expect(offsetOf(REGION_RECORD, 'filePage')).toBe(60);
  const { bytes } = encodeRegionSection([{ ...base, shared: true, fileOffset: 0x26000n }], 4096);
  expect(Buffer.from(bytes.subarray(56, 64)).toString('hex')).toBe('0503' + '0300' + '26000000');
  const [r] = decodeRegionSection(bytes, ctx(1, 9, 2));
  expect(r).toMatchObject({ shared: true, fileOffset: 0x26000n, name: '/lib/x.so', kind: 'code' });
  // 64 KiB pages: the same file page is 16 times the offset.
  const big = encodeRegionSection([{ ...base, length: 65536n, chunkCount: 1, fileOffset: 3n * 65536n }], 65536).bytes;
  expect(big.subarray(58, 64)).toEqual(Uint8Array.of(REGION_FILE_OFFSET, 0, 3, 0, 0, 0));
  expect(decodeRegionSection(big, ctx(1, 9, 1, 65536))[0]!.fileOffset).toBe(3n * 65536n);
});

test('no flags: the record is byte-for-byte what a 1.0 writer wrote (zeros at 58..63)', () => {
  const { bytes } = encodeRegionSection([base], 4096);
  expect(bytes.subarray(58, 64)).toEqual(new Uint8Array(6));
  const [r] = decodeRegionSection(bytes, ctx(1, 9, 2));
  expect(r!.shared).toBe(false);
  expect(r!.fileOffset).toBeUndefined();
  expect('fileOffset' in r!).toBe(false);
});

test('an offset of file page 0 is recorded and distinct from none', () => {
  const { bytes } = encodeRegionSection([{ ...base, fileOffset: 0n }], 4096);
  expect(bytes.subarray(58, 64)).toEqual(Uint8Array.of(REGION_FILE_OFFSET, 0, 0, 0, 0, 0));
  expect(decodeRegionSection(bytes, ctx(1, 9, 2))[0]!.fileOffset).toBe(0n);
});

test('readers ignore unknown flag bits and the file page without FILE_OFFSET (never refused)', () => {
  const { bytes } = encodeRegionSection([base], 4096);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  dv.setUint16(58, 0xfffc, true); // every reserved bit, neither SHARED nor FILE_OFFSET
  dv.setUint32(60, 0xdeadbeef, true);
  const [r] = decodeRegionSection(bytes, ctx(1, 9, 2));
  expect(r).toMatchObject({ shared: false, address: base.address, length: base.length });
  expect(r!.fileOffset).toBeUndefined();
  dv.setUint16(58, 0xffff, true);
  const [s] = decodeRegionSection(bytes, ctx(1, 9, 2));
  expect(s).toMatchObject({ shared: true, fileOffset: 0xdeadbeefn * 4096n });
});

test('the largest file page is kept; one past it is left out, not wrapped; misaligned offsets are refused', () => {
  const max = BigInt(MAX_FILE_PAGE) * 4096n;
  expect(regionFlagFields({ fileOffset: max }, 4096)).toEqual({ shared: false, fileOffset: max });
  expect(regionFlagFields({ fileOffset: max + 4096n, shared: true }, 4096)).toEqual({ shared: true });
  expect(regionFlagFields({ fileOffset: 8192 }, 4096)).toEqual({ shared: false, fileOffset: 8192n });
  expect(() => regionFlagFields({ fileOffset: 100n }, 4096)).toThrow('expected a file offset that is a non-negative multiple of the page size 4096, got 100');
  expect(() => regionFlagFields({ fileOffset: -4096 }, 4096)).toThrow(RangeError);
  expect(() => regionFlagFields({ fileOffset: 2 ** 60 }, 4096)).toThrow(RangeError); // not a safe integer
  expect(() => encodeRegionSection([{ ...base, fileOffset: max + 4096n }], 4096)).toThrow(RangeError);
  const { bytes } = encodeRegionSection([{ ...base, fileOffset: max }], 4096);
  expect(bytes.subarray(60, 64)).toEqual(Uint8Array.of(0xff, 0xff, 0xff, 0xff));
  expect(decodeRegionSection(bytes, ctx(1, 9, 2))[0]!.fileOffset).toBe(max);
});

test.each([
  ['raw', {}],
  ['deflate + aes-256-gcm', { compress: 'deflate' as const, encrypt: 'aes-256-gcm' as const, key: new Uint8Array(32).fill(7) }],
])('writer and reader round trip (%s): regions and gaps keep shared and file offset', async (label, opts) => {
  const path = t.path(`flags-${label.replace(/\W+/g, '-')}.img`);
  const w = await ImageWriter.create(path, { validation: { architecture: 'x86_64' }, ...opts });
  const r0 = await w.addRegion({ address: 0x400000n, data: Buffer.alloc(8192, 1), prot: 'r-x', kind: 'code', name: '/usr/lib/libc.so.6', fileOffset: 0x26000n });
  await w.addGap({ address: 0x402000n, length: 4096n, name: '/usr/lib/libc.so.6', fileOffset: 0x28000 });
  await w.addRegion({ address: 0x500000n, data: Buffer.alloc(4096, 2), prot: 'rw-', kind: 'file', name: '/dev/shm/x', shared: true, fileOffset: 0 });
  await w.addRegion({ address: 0x600000n, data: Buffer.alloc(4096, 3), shared: true }); // shared anonymous
  const r4 = await w.addRegion({ address: 0x700000n, data: Buffer.alloc(4096, 4), kind: 'file', name: '/huge', fileOffset: (BigInt(MAX_FILE_PAGE) + 1n) * 4096n });
  await w.addRegion({ address: 0x800000n, data: Buffer.alloc(4096, 5) });
  await w.finish();
  expect(r0.fileOffset).toBe(0x26000n);
  expect(r4.fileOffset).toBeUndefined(); // past 2^32 pages: left out, and the caller can see it
  const image = await openImage(path, 'key' in opts ? { key: opts.key } : {});
  try {
    expect(image.regions.map((r) => [r.shared, r.fileOffset])).toEqual([
      [false, 0x26000n], [false, 0x28000n], [true, 0n], [true, undefined], [false, undefined], [false, undefined],
    ]);
    expect(image.version).toBe('1.0'); // flags do not raise the minor version (section 10)
    expect((await image.read(0x500000n, 4)).toString('hex')).toBe('02020202');
  } finally {
    await image.close();
  }
  if (!('key' in opts)) {
    // The region section is plain here: the flags are at 58 of record 0 (0x0002) and 2 (0x0003).
    const file = readFileSync(path);
    const footer = file.subarray(file.length - 96);
    const at = Number(footer.readBigUInt64LE(40));
    expect(file.readUInt16LE(at + 58)).toBe(REGION_FILE_OFFSET);
    expect(file.readUInt32LE(at + 60)).toBe(0x26);
    expect(file.readUInt16LE(at + 2 * REGION_RECORD_SIZE + 58)).toBe(REGION_SHARED | REGION_FILE_OFFSET);
  }
});

test('convert keeps the flags (the vector region-flags, raw to deflate and back)', async () => {
  const vector = 'spec/vectors/v1/region-flags.img';
  const source = await openImage(vector);
  const want = source.regions.map((r) => [r.shared, r.fileOffset]);
  await source.close();
  expect(want.filter(([s, o]) => s || o !== undefined)).toHaveLength(6);
  await convertImage(vector, t.path('conv.img'), { compress: 'deflate:1' });
  await convertImage(t.path('conv.img'), t.path('back.img'), { compress: 'none' });
  for (const p of [t.path('conv.img'), t.path('back.img')]) {
    const image = await openImage(p);
    expect(image.regions.map((r) => [r.shared, r.fileOffset])).toEqual(want);
    await image.close();
  }
  // The region section is plain in both: byte for byte the vector's (flags and file pages included).
  const regionSection = (b: Buffer): Buffer => b.subarray(Number(b.readBigUInt64LE(b.length - 96 + 40)), b.length - 96);
  expect(regionSection(readFileSync(t.path('back.img'))).equals(regionSection(readFileSync(vector)))).toBe(true);
});

test('crimg inspect --json shows shared and fileOffset of each region', async () => {
  ensureBuilt();
  const d = json<{ regions: { name: string; shared: boolean; fileOffset: string | null }[] }>(await crimg(['inspect', 'spec/vectors/v1/region-flags.img', '--json']));
  expect(d.regions.map((r) => [r.shared, r.fileOffset])).toEqual([
    [false, '0x28000'], [false, '0x2b000'], [false, '0x1bc000'], [true, '0x0'], [true, null], [false, '0xffffffff000'], [false, null],
  ]);
});
