/**
 * Lazy restore through a source without a file descriptor (an image opened from bytes): the
 * native threads read each chunk through the source's read() on the JavaScript thread (a
 * thread-safe function), so the bytes are exact once `done` resolves and a damaged chunk rejects
 * `done` naming it; the default mode for such a source is copy (the JavaScript thread must not
 * touch a page before `done`: it would wait for itself). And the hot list in map mode: an
 * unchecked mapping of an image with a hot list is byte-exact (MADV_WILLNEED first).
 */
import { readFileSync } from 'node:fs';
import { ImageWriter, openImage, optimizeImage } from '../index.js';
import { hotListOf } from '../restore/_lazy.js';
import { memoryLike, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const KEY = new Uint8Array(32).fill(5);
const CHUNK = 16384;
const BASE = 0x320000000n;
const t = tempDir();
const data = memoryLike(512, 31); // 2 MiB: 128 chunks
const stack = Buffer.concat([memoryLike(3, 32), Buffer.alloc(700, 0x5a)]);
const file = t.path('enc.img');

beforeAll(async () => {
  const w = await ImageWriter.create(file, { fsync: false, compress: 'zstd:1', encrypt: 'aes-256-gcm', key: KEY, chunkSize: CHUNK });
  await w.addRegion({ address: BASE, data, prot: 'rw-', kind: 'heap', name: 'heap' });
  await w.addRegion({ address: BASE + 0x400000n, data: stack, prot: 'r--', kind: 'stack', name: 'stack' });
  await w.finish();
});
afterAll(() => t.cleanup());

test('an image opened from bytes restores lazily through read(): exact once done', async () => {
  const image = await openImage(readFileSync(file), { key: KEY });
  expect(image.source.fd).toBeUndefined();
  const r = await image.restore({ mode: 'lazy' });
  try {
    expect(r.mode).toBe('lazy');
    await r.done;
    expect(Buffer.from(r.regions[0]!.memory!).equals(data)).toBe(true);
    expect(Buffer.from(r.regions[1]!.memory!).equals(stack)).toBe(true);
    const s = r.lazyStats()!;
    expect(s.settled).toBe(s.total);
    expect(s.faultInstalls + s.prefetched).toBe(s.total);
  } finally {
    r.release();
    await image.close();
  }
});

test('from bytes, the default mode is copy and says why', async () => {
  const image = await openImage(readFileSync(file), { key: KEY });
  const r = await image.restore();
  try {
    expect(r.mode).toBe('copy');
    expect(r.reason).toMatch(/is not a local file .*must not touch a page before done/);
    expect(Buffer.from(r.regions[0]!.memory!).equals(data)).toBe(true);
  } finally {
    r.release();
    await image.close();
  }
});

test('from bytes, a damaged chunk rejects done naming it; the others are exact', async () => {
  const bytes = readFileSync(file);
  const probe = await openImage(bytes, { key: KEY });
  const table = await probe.chunkTable();
  const rec = table.get(70, CHUNK);
  await probe.close();
  bytes[Number(rec.offset) + 5]! ^= 0x40;
  const image = await openImage(bytes, { key: KEY });
  const r = await image.restore({ mode: 'lazy' });
  try {
    await expect(r.done).rejects.toMatchObject({ chunk: 70, region: 0 });
    await expect(r.done).rejects.toThrow(/lazy restore installed nothing there/);
    const m = new Uint8Array(r.regions[0]!.memory!);
    // Chunks other than 70 are in place (done settled every chunk).
    expect(Buffer.from(m.subarray(0, 70 * CHUNK)).equals(data.subarray(0, 70 * CHUNK))).toBe(true);
    expect(Buffer.from(m.subarray(71 * CHUNK)).equals(data.subarray(71 * CHUNK))).toBe(true);
  } finally {
    r.release();
    await image.close();
  }
});

test('an unchecked map of a raw image with a hot list is exact (hot pages advised first)', async () => {
  const raw = t.path('raw-hot.img');
  await optimizeImage(file, raw, { key: KEY, compress: 'none', encrypt: 'none', profile: [100, 101, 7, 127] });
  const image = await openImage(raw);
  expect(image.mappable).toBe(true);
  expect(hotListOf(image)).toEqual([100, 101, 7, 127]);
  for (const check of [false, true]) {
    const r = await image.restore({ mode: 'map', check });
    try {
      expect(r.mode).toBe('map');
      expect(Buffer.from(r.regions[0]!.memory!).equals(data)).toBe(true);
      expect(Buffer.from(r.regions[1]!.memory!).equals(stack)).toBe(true);
    } finally {
      r.release();
    }
  }
  await image.close();
});
