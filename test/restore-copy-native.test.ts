/**
 * Copy-mode restore through the native batch decoder (image/_native-batch.ts, native-mmap
 * src/batch_decode.cc): exact bytes for every codec and cipher and any thread count, the first
 * failing chunk in image order rejected with its code and number (as the JavaScript path words
 * it), zero runs never touched, and the same outcome as the JavaScript engine.
 */
import { openSync, closeSync, readSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { openImage, ImageWriter, type WriterOptions } from '../index.js';
import { isCrimgError } from '../format/errors.js';
import { decodeBatch, nativeStatus, placeRuns, reserve, unmap, view } from '../native-mmap/index.js';
import { BatchItems, nativeBatchRefusal } from '../image/_native-batch.js';
import { CHUNK_ZERO } from '../format/constants.js';
import { flipByte, memoryLike, tempDir } from './helpers.js';
import { zeroTerabyte } from './hostile-corpus.js';

const CHUNK = 16384;
const BASE = 0x7e0000000000n;

const t = tempDir();
afterAll(() => t.cleanup());

/** Two data regions of memory-like bytes (the second with a short last chunk) and a gap. */
function contents(seed: number): Buffer[] {
  return [memoryLike(96, seed), Buffer.concat([memoryLike(40, seed + 1), Buffer.from(randomBytes(1000))])];
}

async function write(path: string, data: Buffer[], options: WriterOptions): Promise<void> {
  const w = await ImageWriter.create(path, { chunkSize: CHUNK, fsync: false, ...options });
  await w.addRegion({ address: BASE, data: data[0]!, prot: 'rw-', kind: 'heap', name: 'heap' });
  await w.addGap({ address: BASE + 0x100000n, length: 0x4000n, name: 'guard' });
  await w.addRegion({ address: BASE + 0x200000n, data: data[1]!, prot: 'r--', kind: 'anonymous', name: 'ro' });
  await w.finish();
}

const key = new Uint8Array(32).fill(7);
const MATRIX: { name: string; options: WriterOptions }[] = [
  { name: 'none', options: {} },
  { name: 'deflate:1', options: { compress: 'deflate:1' } },
  { name: 'deflate:6 aes-256-gcm', options: { compress: 'deflate:6', encrypt: 'aes-256-gcm', key } },
  { name: 'none chacha20-poly1305', options: { encrypt: 'chacha20-poly1305', key } },
  { name: 'deflate:1 chacha20-poly1305', options: { compress: 'deflate:1', encrypt: 'chacha20-poly1305', key } },
  { name: 'zstd:1', options: { compress: 'zstd:1' } },
  { name: 'zstd:3 aes-256-gcm', options: { compress: 'zstd:3', encrypt: 'aes-256-gcm', key } },
  { name: 'zstd:1 chacha20-poly1305', options: { compress: 'zstd:1', encrypt: 'chacha20-poly1305', key } },
];

/** Restores in copy mode with the native decoder on or off; the bytes of each data region. */
async function restoreBytes(path: string, options: WriterOptions, native: boolean): Promise<Buffer[]> {
  const before = process.env.CRIMG_NATIVE_DECODE;
  process.env.CRIMG_NATIVE_DECODE = native ? '1' : '0';
  try {
    const image = await openImage(path, options.key ? { key: options.key } : {});
    try {
      expect(nativeBatchRefusal(image) === null).toBe(native);
      const r = await image.restore({ mode: 'copy' });
      try {
        return r.regions.filter((e) => e.memory).map((e) => Buffer.from(e.memory!.slice(0)));
      } finally {
        r.release();
      }
    } finally {
      await image.close();
    }
  } finally {
    if (before === undefined) delete process.env.CRIMG_NATIVE_DECODE;
    else process.env.CRIMG_NATIVE_DECODE = before;
  }
}

test('the native addon with decodeBatch is built (these tests need it)', () => {
  expect(nativeStatus()).toEqual({ available: true });
});

describe.each(MATRIX)('copy restore of a $name image', ({ name, options }) => {
  const data = contents(name.length * 31);
  const path = t.path(`${name.replace(/[^a-z0-9]/g, '_')}.img`);
  beforeAll(() => write(path, data, options));

  test('native: exact bytes, and the JavaScript engine gives the same', async () => {
    const native = await restoreBytes(path, options, true);
    expect(native).toHaveLength(2);
    expect(native[0]!.equals(data[0]!)).toBe(true);
    expect(native[1]!.equals(data[1]!)).toBe(true);
    const js = await restoreBytes(path, options, false);
    expect(js.every((b, i) => b.equals(native[i]!))).toBe(true);
  });
});

/** Every stored chunk of a restorable image as batch items into one reservation, and the memory. */
async function decodeWith(path: string, options: WriterOptions, threads: number): Promise<Buffer[]> {
  const image = await openImage(path, options.key ? { key: options.key } : {});
  try {
    const table = await image.chunkTable();
    const regions = image.regions.filter((r) => !r.isGap);
    const spans = regions.map((r) => Math.ceil(Number(r.length) / 4096) * 4096);
    const res = reserve(spans.reduce((a, b) => a + b, 0));
    try {
      let at = 0;
      const items = new BatchItems(CHUNK);
      const runs: number[] = [];
      regions.forEach((r, i) => {
        runs.push(at, spans[i]!, -1);
        for (let j = 0; j < r.chunkCount; j++) {
          const plainLength = image.plainLength(r, j);
          const rec = table.get(r.firstChunk + j, plainLength);
          if (!(rec.flags & CHUNK_ZERO)) items.add({ region: r, j, number: r.firstChunk + j, rec, plainLength }, res, at + j * CHUNK);
        }
        at += spans[i]!;
      });
      placeRuns(res, -1, Float64Array.from(runs), 'rw-');
      const failures = await items.run(image, { all: false, populate: threads % 2 === 1, threads });
      expect(failures).toEqual([]);
      at = 0;
      return regions.map((r, i) => {
        const v = view(res, at, Number(r.length), 'r--');
        at += spans[i]!;
        const copy = Buffer.from(v.slice(0));
        unmap(v);
        return copy;
      });
    } finally {
      unmap(res);
    }
  } finally {
    await image.close();
  }
}

test.each([1, 2, 3, 8])('decodeBatch with %i threads writes the exact bytes (deflate:1 aes-256-gcm, zstd:1)', async (threads) => {
  const zstd: WriterOptions = { compress: 'zstd:1' };
  const zpath = t.path(`threads-zstd-${threads}.img`);
  const zdata = contents(900 + threads);
  await write(zpath, zdata, zstd);
  const zgot = await decodeWith(zpath, zstd, threads);
  expect(zgot[0]!.equals(zdata[0]!)).toBe(true);
  expect(zgot[1]!.equals(zdata[1]!)).toBe(true);
  const options: WriterOptions = { compress: 'deflate:1', encrypt: 'aes-256-gcm', key };
  const path = t.path(`threads-${threads}.img`);
  const data = contents(500 + threads);
  await write(path, data, options);
  const got = await decodeWith(path, options, threads);
  expect(got[0]!.equals(data[0]!)).toBe(true);
  expect(got[1]!.equals(data[1]!)).toBe(true);
});

/** The first stored byte of chunk `number`, from the chunk table. */
async function storedAt(path: string, options: WriterOptions, number: number): Promise<number> {
  const image = await openImage(path, options.key ? { key: options.key } : {});
  try {
    const table = await image.chunkTable();
    const r = image.regions.find((x) => !x.isGap && number >= x.firstChunk && number < x.firstChunk + x.chunkCount)!;
    const rec = table.get(number, image.plainLength(r, number - r.firstChunk));
    expect(rec.flags & CHUNK_ZERO).toBe(0);
    return rec.offset;
  } finally {
    await image.close();
  }
}

/** Restores with the native decoder on or off; the error thrown. */
async function restoreError(path: string, options: WriterOptions, native: boolean): Promise<unknown> {
  try {
    await restoreBytes(path, options, native);
  } catch (e) {
    return e;
  }
  throw new Error('expected the restore to fail');
}

/** Stored chunks of the first region, by number: the ones that hold data. */
async function storedChunks(path: string, options: WriterOptions): Promise<number[]> {
  const image = await openImage(path, options.key ? { key: options.key } : {});
  try {
    const table = await image.chunkTable();
    const r = image.regions[0]!;
    const out: number[] = [];
    for (let j = 0; j < r.chunkCount; j++) if (!(table.get(r.firstChunk + j, image.plainLength(r, j)).flags & CHUNK_ZERO)) out.push(r.firstChunk + j);
    return out;
  } finally {
    await image.close();
  }
}

describe.each([
  { name: 'none', options: {} as WriterOptions },
  { name: 'deflate:1 aes-256-gcm', options: { compress: 'deflate:1', encrypt: 'aes-256-gcm', key } as WriterOptions },
  { name: 'zstd:1', options: { compress: 'zstd:1' } as WriterOptions },
])('a corrupt $name image', ({ name, options }) => {
  test('rejects with the code and number of the first corrupt chunk in image order, as the JavaScript path does', async () => {
    const path = t.path(`corrupt-${name.replace(/[^a-z0-9]/g, '_')}.img`);
    await write(path, contents(77), options);
    const stored = await storedChunks(path, options);
    expect(stored.length).toBeGreaterThan(6);
    // Two damaged chunks in the middle: the earlier one is reported, whichever thread finds which.
    const first = stored[Math.floor(stored.length / 2)]!;
    const second = stored[stored.length - 2]!;
    flipByte(path, (await storedAt(path, options, second)) + 5);
    flipByte(path, (await storedAt(path, options, first)) + 3);
    const native = await restoreError(path, options, true);
    const js = await restoreError(path, options, false);
    expect(isCrimgError(native, 'CORRUPT_CHUNK')).toBe(true);
    expect((native as { chunk?: number }).chunk).toBe(first);
    expect(isCrimgError(js, 'CORRUPT_CHUNK')).toBe(true);
    expect((native as Error).message).toBe((js as Error).message);
    expect((native as { chunk?: number }).chunk).toBe((js as { chunk?: number }).chunk);
  });
});

test('zero runs are free: a 1 TiB region of zero chunks restores without allocating or touching it', async () => {
  const path = t.path('tib.img');
  writeFileSync(path, zeroTerabyte());
  const image = await openImage(path);
  try {
    expect(nativeBatchRefusal(image)).toBeNull();
    const rss = process.memoryUsage().rss;
    const r = await image.restore({ mode: 'copy' });
    try {
      expect(r.degraded).toBe(false);
      expect(r.regions[0]!.length).toBe(2n ** 40n);
      expect(r.regions[0]!.address).not.toBe(0n);
      expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 1024 * 1024);
    } finally {
      r.release();
    }
  } finally {
    await image.close();
  }
});

test('a bad job is refused before anything runs: a destination outside its target', async () => {
  const res = reserve(4096);
  try {
    const items = new BigUint64Array(8);
    items[1] = 0n;
    items[3] = 0n;
    items[4] = 8192n | (8192n << 32n); // RAW, 8192 bytes: past the 4096-byte target
    items[5] = 2n;
    items[6] = 0n;
    const fd = openSync(t.path('tib.img'), 'r');
    try {
      await expect(decodeBatch({ fd, codec: 0, cipher: 0, chunkSize: 8192, items, targets: [res] })).rejects.toThrow(/inside the target/);
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, 0);
    } finally {
      closeSync(fd);
    }
  } finally {
    unmap(res);
  }
});
