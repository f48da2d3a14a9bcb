/**
 * The native zstd batch of the image writer (codec/zstd.ts NativeZstd, native-mmap/src/zstd_js.cc):
 * its zero and entropy tests decide every chunk as codec/chunk.ts's isZero and
 * looksIncompressible do, its checksums are XXH64 of what is stored, its frames decode to the
 * chunk, and a zstd image's chunks are stored exactly as those functions say.
 */
import { randomBytes } from 'node:crypto';
import { ImageWriter, openImage } from '../index.js';
import { isZero, looksIncompressible, pageLooksRandom } from '../codec/chunk.js';
import { xxh64 } from '../codec/checksum.js';
import { NativeZstd, zstdDecode, zstdEncode } from '../codec/zstd.js';
import { tempDir, memoryLike } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();
const t = tempDir();
afterAll(() => t.cleanup());

/** Pages whose sampled bytes sit around the entropy threshold: n distinct values over the 256 samples. */
function nearThreshold(n: number, seed: number): Uint8Array {
  const page = new Uint8Array(4096);
  let s = seed;
  for (let i = 0; i < 4096; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    page[i] = (s >>> 16) % n;
  }
  return page;
}

describe('NativeZstd with scan and sums', () => {
  test('decides each chunk as isZero / looksIncompressible, sums what is stored, frames decode', async () => {
    const z = NativeZstd.create(1, { scan: true, sums: true })!;
    const chunks: Uint8Array[] = [];
    const data = memoryLike(1024, 11); // zero, structured and random pages
    for (let o = 0; o < data.length; o += 16384) chunks.push(data.subarray(o, o + 16384));
    // Pages around the threshold (128 to 256 distinct sampled values), whole chunks of them.
    for (let n = 100; n <= 256; n += 2) {
      const c = new Uint8Array(16384);
      for (let p = 0; p < 4; p++) c.set(nearThreshold(n, n * 7 + p), p * 4096);
      chunks.push(c);
    }
    chunks.push(randomBytes(16384), new Uint8Array(16384), randomBytes(4096), new Uint8Array(1), randomBytes(100), new Uint8Array(3000).fill(7));
    const results = await Promise.all(chunks.map((c) => z.encode(c)));
    let random = 0;
    let near = 0;
    results.forEach((r, i) => {
      const c = chunks[i]!;
      expect(r.zero).toBe(isZero(c));
      if (r.zero) {
        expect(r.frame).toBeNull();
        expect(r.checksum).toBe(0n);
        return;
      }
      if (looksIncompressible(c)) {
        random++;
        expect(r.frame).toBeNull();
      } else if (r.frame) {
        expect(Buffer.from(zstdDecode(r.frame, c.length, 'portable')).equals(Buffer.from(c))).toBe(true);
        expect(r.frame.length).toBeLessThan(c.length);
      }
      expect(r.checksum).toBe(xxh64(r.frame ?? c));
    });
    for (let n = 100; n <= 256; n += 2) near += pageLooksRandom(nearThreshold(n, n * 7), 0) ? 1 : 0;
    // Both sides of the threshold are exercised.
    expect(random).toBeGreaterThan(10);
    expect(near).toBeGreaterThan(5);
    expect(near).toBeLessThan(75);
  });

  test('without scan every chunk is compressed; without sums there are none', async () => {
    const z = NativeZstd.create(3)!;
    const zero = new Uint8Array(16384);
    const r = await z.encode(zero);
    expect(r.zero).toBe(false);
    expect(r.checksum).toBeNull();
    expect(Buffer.from(zstdDecode(r.frame!, zero.length)).equals(Buffer.from(zero))).toBe(true);
    expect(await z.compress(randomBytes(16384))).toBeNull(); // not smaller
  });

  test('a batch that is all zero or random chunks settles without a job, and the next batch still runs', async () => {
    const z = NativeZstd.create(1, { scan: true, sums: true })!;
    const first = await Promise.all([new Uint8Array(16384), randomBytes(16384)].map((c) => z.encode(c)));
    expect(first.map((r) => [r.zero, r.frame])).toEqual([[true, null], [false, null]]);
    const text = new Uint8Array(16384).map((_, i) => 97 + (i % 13));
    const again = await Promise.all(Array.from({ length: 40 }, () => z.encode(text)));
    for (const r of again) expect(Buffer.from(zstdDecode(r.frame!, text.length)).equals(Buffer.from(text))).toBe(true);
  });
});

test('a zstd image stores zero chunks as ZERO and random ones raw, with and without a cipher; both engines read it', async () => {
  const data = memoryLike(512, 5);
  const key = new Uint8Array(32).fill(9);
  for (const encrypt of [undefined, 'aes-256-gcm'] as const) {
    const out = t.path(`batch-${encrypt ?? 'plain'}.img`);
    const w = await ImageWriter.create(out, { compress: 'zstd:1', fsync: false, ...(encrypt ? { encrypt, key } : {}) });
    await w.addRegion({ address: 0x10000000n, data });
    const summary = await w.finish();
    let zeros = 0;
    for (let o = 0; o < data.length; o += 16384) zeros += isZero(data.subarray(o, o + 16384)) ? 1 : 0;
    expect(summary.zeroChunks).toBe(zeros);
    for (const engine of ['node', 'portable'] as const) {
      const img = await openImage(out, { engine, ...(encrypt ? { key } : {}) });
      expect((await img.read(0x10000000n, data.length)).equals(data)).toBe(true);
      expect(await img.verify()).toMatchObject({ ok: true });
      const stats = await img.chunkStats();
      let random = 0;
      for (let o = 0; o < data.length; o += 16384) {
        const c = data.subarray(o, o + 16384);
        random += !isZero(c) && looksIncompressible(c) ? 1 : 0;
      }
      expect(stats.totals.chunks.raw).toBeGreaterThanOrEqual(random);
      await img.close();
    }
  }
});

test('file ranges read into reused buffers (zstd copies each chunk as it is submitted): many regions, small reads, present spans, byte for byte', async () => {
  const { writeFileSync } = await import('node:fs');
  const data = memoryLike(2048, 21); // 8 MiB
  const input = t.path('ranges.bin');
  writeFileSync(input, data);
  const cuts = [0, 16384, 1 << 20, (1 << 20) + 4096 * 3, 3 << 20, 8 << 20];
  const out = t.path('ranges.img');
  const w = await ImageWriter.create(out, { compress: 'zstd:1', fsync: false });
  const present = [{ offset: 0, length: 4096 * 5 }, { offset: 4096 * 40, length: 4096 * 100 }, { offset: 4096 * 300, length: 4096 * 200 }];
  for (let i = 0; i + 1 < cuts.length; i++) {
    // Reads of 2 chunks: every buffer is given back and reused many times over.
    await w.addRegion({ address: 0x20000000n + BigInt(cuts[i]!) * 2n, data: { path: input, position: cuts[i]!, length: cuts[i + 1]! - cuts[i]!, readSize: 32768, ...(i === 4 ? { present } : {}) } });
  }
  await w.finish();
  const img = await openImage(out);
  for (let i = 0; i + 1 < cuts.length; i++) {
    let want = data.subarray(cuts[i]!, cuts[i + 1]!);
    if (i === 4) {
      want = Buffer.alloc(want.length);
      for (const p of present) data.copy(want, p.offset, cuts[i]! + p.offset, cuts[i]! + p.offset + p.length);
    }
    expect((await img.read(0x20000000n + BigInt(cuts[i]!) * 2n, want.length)).equals(want)).toBe(true);
  }
  expect(await img.verify()).toMatchObject({ ok: true });
  await img.close();
});

test('a context reused across levels and chunk lengths makes the same frames whatever came before', () => {
  const big = memoryLike(300, 3).subarray(0, 1 << 20); // a window of 2^20
  const small = memoryLike(4, 4);
  const steps: [Uint8Array, number][] = [[small, 1], [small, 1], [small, 19], [small.subarray(0, 5000), 19], [big, 1], [small, 1], [small, 3], [small, 1]];
  const first = new Map<string, string>();
  for (const [plain, level] of steps) {
    const frame = zstdEncode(plain, level)!;
    expect(Buffer.from(zstdDecode(frame, plain.length, 'portable')).equals(Buffer.from(plain))).toBe(true);
    const key = `${plain.length}/${level}`;
    const hex = Buffer.from(frame).toString('hex');
    if (first.has(key)) expect(hex).toBe(first.get(key)); // the same bytes whatever came before
    else first.set(key, hex);
  }
  expect(first.get('16384/19')).not.toBe(first.get('16384/1'));
});

test('chunks over 4 MiB are not copied into stages (64 in flight of 16 MiB were +1 GiB): an 8 MiB-chunk image from file ranges and from memory, byte for byte', async () => {
  const { writeFileSync } = await import('node:fs');
  const data = memoryLike(4096, 22); // 16 MiB: two 8 MiB chunks
  const input = t.path('big-chunks.bin');
  writeFileSync(input, data);
  const native = NativeZstd.create(1)!;
  // Up to 4 MiB the caller may reuse its buffer at once (copied); above, it keeps it until settled.
  const small = Buffer.from(data.subarray(0, 4 << 20));
  const pending = native.encode(small);
  small.fill(0x5a); // reused at once
  expect(Buffer.from(zstdDecode((await pending).frame!, 4 << 20)).equals(data.subarray(0, 4 << 20))).toBe(true);
  for (const source of ['range', 'memory'] as const) {
    const out = t.path(`big-chunks-${source}.img`);
    const w = await ImageWriter.create(out, { compress: 'zstd:1', fsync: false, chunkSize: 8 << 20 });
    await w.addRegion({ address: 0x40000000n, data: source === 'range' ? { path: input, position: 0, length: data.length } : data });
    await w.finish();
    const img = await openImage(out);
    expect((await img.read(0x40000000n, data.length)).equals(data)).toBe(true);
    expect(await img.verify()).toMatchObject({ ok: true });
    await img.close();
  }
});
