/**
 * The library's read-side APIs that the CLI used to write itself: readStream (bounded
 * streaming reads), chunkStats, diffImages, and the error category of every code.
 */
import { readFileSync } from 'node:fs';
import {
  BufferSource, CrimgError, ERROR_CATEGORY, ERROR_CODES, ImageWriter, chunkStats, diffImages, errorCategory, openImage,
  type CrimgErrorCode, type Image, type RandomAccessSource,
} from '../index.js';
import { DEFAULT_PIECE_SIZE } from '../image/index.js';
import { exitCodeOf } from '../inspect-cli/errors.js';
import { memoryLike, prng, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const PAGE = 4096;
const A = 0x7f0000000000n; // region a: 10 pages
const B = A + 10n * 4096n; // region b: 6 pages, adjacent to a
const GAP = B + 6n * 4096n; // a gap of 4 pages
const C = GAP + 4n * 4096n; // region c: 3 pages

function randomPage(seed: number): Buffer {
  const rnd = prng(seed);
  const out = Buffer.alloc(PAGE);
  for (let o = 0; o < PAGE; o += 4) out.writeUInt32LE(Math.floor(rnd() * 2 ** 32), o);
  return out;
}

async function writeImage(name: string, regions: { address: bigint; data: Buffer; name?: string; kind?: 'heap' | 'stack' | 'anonymous' }[], gap = true, options: { compress?: string } = {}): Promise<string> {
  const out = t.path(name);
  const w = await ImageWriter.create(out, { chunkSize: PAGE, fsync: false, workers: 0, ...options });
  for (const r of regions) {
    if (gap && r.address === C) await w.addGap({ address: GAP, length: 4n * 4096n, name: 'guard' });
    await w.addRegion({ address: r.address, data: r.data, name: r.name ?? '', kind: r.kind ?? 'anonymous' });
  }
  await w.finish();
  return out;
}

const dataA = memoryLike(10, 11);
const dataB = memoryLike(6, 12);
const dataC = Buffer.concat([randomPage(13), randomPage(14), randomPage(15)]);
const base = [{ address: A, data: dataA, name: 'a', kind: 'heap' as const }, { address: B, data: dataB, name: 'b' }, { address: C, data: dataC, name: 'c', kind: 'stack' as const }];

async function collect(pieces: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const p of pieces) out.push(p);
  return out;
}

describe('readStream', () => {
  let image: Image;
  beforeAll(async () => { image = await openImage(await writeImage('stream.img', base)); });
  afterAll(async () => { await image.close(); });

  test('pieces of at most pieceSize, all but the last full, bytes equal to read(), across a region boundary', async () => {
    const from = A + 5000n;
    const length = 10 * PAGE - 5000 + 6 * PAGE - 123; // from inside a to inside b
    for (const pieceSize of [3000, PAGE, 7 * PAGE, length, length + 1]) {
      const pieces = await collect(image.readStream(from, length, { pieceSize }));
      pieces.slice(0, -1).forEach((p) => expect(p.length).toBe(pieceSize));
      expect(pieces[pieces.length - 1]!.length).toBeLessThanOrEqual(pieceSize);
      expect(pieces).toHaveLength(Math.ceil(length / pieceSize));
      expect(Buffer.concat(pieces).equals(await image.read(from, length))).toBe(true);
    }
    const bytes = await collect(image.readStream(B - 25n, 50, { pieceSize: 1 }));
    expect(bytes).toHaveLength(50);
    expect(Buffer.concat(bytes).equals(Buffer.concat([dataA.subarray(-25), dataB.subarray(0, 25)]))).toBe(true);
    expect(Buffer.concat(await collect(image.readStream(A, BigInt(dataA.length + dataB.length)))).equals(Buffer.concat([dataA, dataB]))).toBe(true);
    expect(await collect(image.readStream(A, 0))).toEqual([]);
  });

  test('the default piece is 8 MiB', async () => {
    expect(DEFAULT_PIECE_SIZE).toBe(8 * 1024 * 1024);
    const big = Buffer.alloc(DEFAULT_PIECE_SIZE + 3 * PAGE, 1);
    big.set(randomPage(5), DEFAULT_PIECE_SIZE);
    const img = await openImage(await writeImage('big.img', [{ address: A, data: big }], false));
    const pieces = await collect(img.readStream(A, big.length));
    expect(pieces.map((p) => p.length)).toEqual([DEFAULT_PIECE_SIZE, 3 * PAGE]);
    expect(Buffer.concat(pieces).equals(big)).toBe(true);
    await img.close();
  });

  test('NOT_MAPPED in a gap or outside every region, after the pieces before it', async () => {
    await expect(image.readStream(GAP, 10).next()).rejects.toMatchObject({ code: 'NOT_MAPPED' });
    await expect(image.readStream(0x1000n, 10).next()).rejects.toMatchObject({ code: 'NOT_MAPPED' });
    const got: Buffer[] = [];
    const into = async (): Promise<void> => { for await (const p of image.readStream(B + 5n * 4096n, 2 * PAGE, { pieceSize: PAGE })) got.push(p); };
    await expect(into()).rejects.toMatchObject({ code: 'NOT_MAPPED', address: GAP });
    expect(got).toHaveLength(1);
    expect(got[0]!.equals(dataB.subarray(5 * PAGE))).toBe(true);
  });

  test('bad piece sizes and lengths are refused at the call', () => {
    for (const pieceSize of [0, -1, 1.5, NaN, Infinity, 2 ** 31 + 1]) {
      expect(() => image.readStream(A, 10, { pieceSize })).toThrow(RangeError);
    }
    expect(() => image.readStream(A, 10, { pieceSize: 2 ** 31 })).not.toThrow();
    expect(() => image.readStream(A, -1)).toThrow(RangeError);
    expect(() => image.readStream(A, 1.5)).toThrow(RangeError);
    expect(() => image.readStream(-1, 1)).toThrow(RangeError);
  });

  test('reads one piece ahead, and a consumer that stops early leaves no read behind', async () => {
    const bytes = readFileSync(t.path('stream.img'));
    const reads: number[] = [];
    const inner = new BufferSource(bytes);
    const source: RandomAccessSource = { size: inner.size, name: 'counted', read: (o, n) => { reads.push(o); return inner.read(o, n); }, close: () => inner.close() };
    const img = await openImage(source);
    const table = await img.chunkTable();
    const c = img.regions.find((r) => r.address === C)!;
    const offsetOf = (j: number): number => table.get(c.firstChunk + j, PAGE).offset;
    const it = img.readStream(C, 3 * PAGE, { pieceSize: PAGE });
    const first = await it.next();
    expect(first.value!.equals(dataC.subarray(0, PAGE))).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads).toContain(offsetOf(1)); // piece 2 is on its way while the consumer holds piece 1
    expect(reads).not.toContain(offsetOf(2)); // but only one piece ahead
    await it.return(undefined);
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads).not.toContain(offsetOf(2));
    await img.close();
  });
});

describe('chunkStats', () => {
  // a: zero, random, zero, 'A's (compressible); c: random, 100 zero bytes (a short zero chunk).
  const zero = Buffer.alloc(PAGE);
  const regions = [
    { address: A, data: Buffer.concat([zero, randomPage(1), zero, Buffer.alloc(PAGE, 0x41)]), name: 'a', kind: 'heap' as const },
    { address: C, data: Buffer.concat([randomPage(2), Buffer.alloc(100)]), name: 'c', kind: 'stack' as const },
    { address: C + 0x100000n, data: Buffer.alloc(PAGE, 0x42), name: 'd', kind: 'heap' as const },
  ];

  test('counts by stored form, per region, per kind and in total (deflate)', async () => {
    const img = await openImage(await writeImage('stats.img', regions, true, { compress: 'deflate:1' }));
    const s = await img.chunkStats();
    expect(await chunkStats(img)).toEqual(s);
    const [a, c, d] = s.regions;
    expect(s.regions.map((r) => r.region.name)).toEqual(['a', 'c', 'd']); // the gap is left out
    expect(a!.chunks).toEqual({ total: 4, zero: 2, raw: 1, encoded: 1, encrypted: 0 });
    expect(a!.mapped).toBe(4n * 4096n);
    expect(a!.zero).toBe(2n * 4096n);
    expect(c!.chunks).toEqual({ total: 2, zero: 1, raw: 1, encoded: 0, encrypted: 0 });
    expect(c!.mapped).toBe(4196n);
    expect(c!.zero).toBe(100n);
    expect(c!.stored).toBe(4096n);
    expect(d!.chunks).toEqual({ total: 1, zero: 0, raw: 0, encoded: 1, encrypted: 0 });
    for (const r of s.regions) expect(r.stored).toBe(r.region.storedBytes);
    expect(a!.stored > 4096n && a!.stored < 2n * 4096n).toBe(true); // one raw page and one small encoded one
    expect(s.kinds.map((k) => [k.kind, k.regions, k.chunks.total, k.mapped])).toEqual([['heap', 2, 5, 5n * 4096n], ['stack', 1, 2, 4196n]]);
    expect(s.kinds[0]!.chunks).toEqual({ total: 5, zero: 2, raw: 1, encoded: 2, encrypted: 0 });
    expect(s.totals).toEqual({
      regions: 3, mapped: 5n * 4096n + 4196n, stored: a!.stored + c!.stored + d!.stored, zero: 2n * 4096n + 100n,
      chunks: { total: 7, zero: 3, raw: 2, encoded: 2, encrypted: 0 },
    });
    await img.close();
  });

  test('without a codec every stored chunk is raw; with a cipher every stored chunk is encrypted too', async () => {
    const plain = await openImage(await writeImage('stats-plain.img', regions));
    expect((await plain.chunkStats()).totals.chunks).toEqual({ total: 7, zero: 3, raw: 4, encoded: 0, encrypted: 0 });
    await plain.close();
    const key = new Uint8Array(32).fill(3);
    const out = t.path('stats-sealed.img');
    const w = await ImageWriter.create(out, { chunkSize: PAGE, fsync: false, workers: 0, compress: 'deflate:1', encrypt: 'aes-256-gcm', key });
    for (const r of regions) await w.addRegion({ address: r.address, data: r.data, kind: r.kind });
    await w.finish();
    const sealed = await openImage(out, { key });
    expect((await sealed.chunkStats()).totals.chunks).toEqual({ total: 7, zero: 3, raw: 2, encoded: 2, encrypted: 4 });
    await sealed.close();
    const locked = await openImage(out);
    await expect(locked.chunkStats()).rejects.toMatchObject({ code: 'KEY_REQUIRED' });
    await locked.close();
  });
});

describe('diffImages', () => {
  test('an image against itself: identical', async () => {
    const img = await openImage(await writeImage('diff-a.img', base));
    const d = await diffImages(img, img);
    expect(d).toEqual({ identical: true, pageSize: PAGE, added: [], removed: [], changed: [], memory: [] });
    await img.close();
  });

  test('a modified copy: exact page ranges (merged across pieces), regions added, removed and changed', async () => {
    const changedA = Buffer.from(dataA);
    changedA[3 * PAGE + 10] ^= 0xff; // page 3
    changedA[5 * PAGE + 4095] ^= 1; // pages 5 and 6: one range across the piece boundary at page 6
    changedA[6 * PAGE] ^= 1;
    changedA[9 * PAGE + 100] ^= 1; // the last page
    const e = C + 0x100000n;
    const copy = [{ address: A, data: changedA, name: 'a', kind: 'heap' as const }, { address: B, data: dataB, name: 'b2' }, { address: e, data: randomPage(9), name: 'e' }];
    const a = await openImage(t.path('diff-a.img'));
    const b = await openImage(await writeImage('diff-b.img', copy, false));
    for (const pieceSize of [undefined, 2 * PAGE, PAGE]) {
      const d = await diffImages(a, b, pieceSize === undefined ? {} : { pieceSize });
      expect(d.identical).toBe(false);
      expect(d.pageSize).toBe(PAGE);
      expect(d.added.map((r) => r.address)).toEqual([e]);
      expect(d.removed.map((r) => r.address)).toEqual([GAP, C]);
      expect(d.changed).toHaveLength(1);
      expect(d.changed[0]).toMatchObject({ address: B, fields: ['name'] });
      expect(d.changed[0]!.a.name).toBe('b');
      expect(d.changed[0]!.b.name).toBe('b2');
      expect(d.memory).toHaveLength(1);
      expect(d.memory[0]!.a.address).toBe(A);
      expect(d.memory[0]!.ranges).toEqual([
        { start: A + 3n * 4096n, end: A + 4n * 4096n },
        { start: A + 5n * 4096n, end: A + 7n * 4096n },
        { start: A + 9n * 4096n, end: A + 10n * 4096n },
      ]);
    }
    // In 8 KiB pages the changes touch pages 1, 2, 3 and 4 of the region: one range.
    expect((await diffImages(a, b, { pageSize: 2 * PAGE })).memory[0]!.ranges).toEqual([{ start: A + 2n * 4096n, end: A + 10n * 4096n }]);
    await a.close();
    await b.close();
  });

  test('bad page or piece sizes are refused', async () => {
    const img = await openImage(t.path('diff-a.img'));
    await expect(diffImages(img, img, { pieceSize: PAGE + 1 })).rejects.toThrow(RangeError);
    await expect(diffImages(img, img, { pageSize: 0 })).rejects.toThrow(RangeError);
    await expect(diffImages(img, img, { pieceSize: 0 })).rejects.toThrow(RangeError);
    await img.close();
  });
});

describe('error categories', () => {
  const expected: Record<CrimgErrorCode, string> = {
    BAD_MAGIC: 'image', UNSUPPORTED_VERSION: 'image', UNSUPPORTED_FEATURE: 'image', TRUNCATED: 'image',
    CORRUPT_HEADER: 'image', CORRUPT_VALIDATION: 'image', CORRUPT_INDEX: 'image', CORRUPT_CHUNK: 'image',
    LIMIT_EXCEEDED: 'image', NOT_MAPPED: 'image', INCOMPATIBLE: 'host', KEY_REQUIRED: 'key', WRONG_KEY: 'key',
    AUTH_FAILED: 'image', PARENT_REQUIRED: 'image', PARENT_MISMATCH: 'image', ADDRESS_IN_USE: 'process', NO_SUCH_PROCESS: 'process', PERMISSION_DENIED: 'process',
    PROCESS_EXITED: 'process', PROCESS_BUSY: 'process', CORRUPT_CORE: 'image', IO_ERROR: 'io', INVALID_ARGUMENT: 'usage',
    SOURCE_CHANGED: 'io',
  };

  test.each([...ERROR_CODES])('%s has its category, on the table, the function and the error', (code) => {
    expect(ERROR_CATEGORY[code]).toBe(expected[code]);
    expect(errorCategory(code)).toBe(expected[code]);
    expect(new CrimgError(code, 'x').category).toBe(expected[code]);
  });

  test('the table lists exactly the codes; an unknown code is refused', () => {
    expect(Object.keys(ERROR_CATEGORY).sort()).toEqual([...ERROR_CODES].sort());
    expect(() => errorCategory('NO_SUCH_CODE' as CrimgErrorCode)).toThrow(RangeError);
    expect(() => errorCategory('toString' as CrimgErrorCode)).toThrow(RangeError);
  });

  test('the CLI exit status follows the category: 1 for image, key and host, 2 for the rest (as before)', () => {
    const usage = ['IO_ERROR', 'INVALID_ARGUMENT', 'NO_SUCH_PROCESS', 'PERMISSION_DENIED', 'PROCESS_EXITED', 'PROCESS_BUSY', 'ADDRESS_IN_USE', 'SOURCE_CHANGED'];
    for (const code of ERROR_CODES) expect([code, exitCodeOf(new CrimgError(code, 'x'))]).toEqual([code, usage.includes(code) ? 2 : 1]);
    expect(exitCodeOf(new Error('boom'))).toBe(2);
    expect(exitCodeOf(new RangeError('bad'))).toBe(2);
  });
});

describe('opening what is not a regular file', () => {
  test('a FIFO, /dev/null and a directory are IO_ERROR at once (a FIFO is never waited on for a writer)', async () => {
    const { execFileSync } = await import('node:child_process');
    const t = tempDir();
    try {
      const fifo = t.path('fifo');
      execFileSync('mkfifo', [fifo]);
      for (const path of [fifo, '/dev/null', t.dir]) {
        await expect(openImage(path)).rejects.toMatchObject({ code: 'IO_ERROR' });
      }
    } finally {
      t.cleanup();
    }
  });
});
