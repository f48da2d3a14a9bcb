/**
 * zstd and deflate images written a piece at a time (ChunkEncoder.encodePiece, codec/pieces.ts
 * NativePieces, native-mmap/src/piece_js.cc zstdPiece / deflatePiece): a region's whole chunks
 * go to the addon in pieces of up to 1 MiB, one pool job each, instead of a promise per chunk.
 * The image must be byte for byte the one the chunk-by-chunk path writes (CRIMG_WRITE_PIECES=0),
 * from bytes, from streamed buffers (short ones go chunk by chunk, longer ones partly in pieces),
 * from a file by path or fd, at every chunk size and codec level, sealed or not,
 * with zero, random, structured and incompressible chunks, and with the output buffers reused
 * across many pieces; and the bindings must refuse bad arguments and memory they cannot write.
 */
import { jest } from '@jest/globals';
import { closeSync, openSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { ImageWriter, openImage, type WriterOptions } from '../index.js';
import { xxh64 } from '../codec/checksum.js';
import { chunkAad, chunkNonce } from '../codec/aad.js';
import { NativePieces } from '../codec/pieces.js';
import { zstdDecode } from '../codec/zstd.js';
import { nativeAddon } from '../native-mmap/index.js';
import { memoryLike, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();
const t = tempDir();
afterAll(() => t.cleanup());

const FIXED: WriterOptions = {
  imageId: new Uint8Array(16).fill(5), created: 1_700_000_000_000n, validation: { architecture: 'x86_64' }, fsync: false,
};

/** Region bytes mixing zero, random, structured pages, a page of one byte, and `tail` bytes of 7 (whole pages). */
function regionBytes(pages: number, seed: number, tail: number): Buffer {
  const b = Buffer.concat([memoryLike(pages, seed), randomBytes(3 * 4096), Buffer.alloc(4096, 0x41), Buffer.alloc(tail, 7)]);
  return b;
}

/** The same bytes as streamed buffers of `size` bytes. */
function* small(bytes: Uint8Array, size = 1000): Generator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, Math.min(bytes.length, o + size));
}

/** bytes: one buffer; small: buffers of 1000 bytes; odd: of 300,007 bytes (several chunks, no piece, never aligned). */
type Source = 'bytes' | 'small' | 'odd' | 'file' | 'fd';

/** `fn` with pieces turned off (CRIMG_WRITE_PIECES=0): the chunk-by-chunk path, the reference. */
async function chunkByChunk<T>(fn: () => Promise<T>): Promise<T> {
  const before = process.env.CRIMG_WRITE_PIECES;
  process.env.CRIMG_WRITE_PIECES = '0';
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.CRIMG_WRITE_PIECES;
    else process.env.CRIMG_WRITE_PIECES = before;
  }
}

async function write(path: string, options: WriterOptions, regions: Buffer[], source: Source): Promise<Buffer> {
  const w = await ImageWriter.create(path, { ...FIXED, ...options });
  let address = 0x7f0000000000n;
  for (const [i, bytes] of regions.entries()) {
    let data: Parameters<ImageWriter['addRegion']>[0]['data'];
    let fd = -1;
    if (source === 'bytes') data = bytes;
    else if (source === 'small' || source === 'odd') data = small(bytes, source === 'small' ? 1000 : 300007);
    else {
      // Each region at an odd offset of its own file: the writer switches files between regions.
      const file = `${path}.r${i}`;
      writeFileSync(file, Buffer.concat([Buffer.alloc(4097, 0xee), bytes, Buffer.alloc(100, 0xee)]));
      if (source === 'fd') fd = openSync(file, 'r');
      data = source === 'fd' ? { fd, position: 4097, length: bytes.length } : { path: file, position: 4097, length: bytes.length };
    }
    const rec = await w.addRegion({ address, data });
    // A caller's fd may be closed once addRegion resolves: every read of it is done.
    if (fd >= 0) closeSync(fd);
    address += rec.length + 0x100000n;
  }
  await w.finish();
  return readFileSync(path);
}

describe('an image written in pieces is the image written chunk by chunk', () => {
  const spy = jest.spyOn(NativePieces.prototype, 'encodePiece');
  const fileSpy = jest.spyOn(NativePieces.prototype, 'encodeFilePiece');
  afterAll(() => {
    spy.mockRestore();
    fileSpy.mockRestore();
  });

  const cases: [string, number][] = [];
  for (const compress of ['zstd:1', 'deflate:1']) {
    for (const chunkSize of [4096, 16384, 65536, 2 * 1024 * 1024, 8 * 1024 * 1024]) cases.push([compress, chunkSize]);
  }
  cases.push(['zstd:3', 16384], ['deflate:6', 16384], ['deflate:9', 65536]);
  for (const [compress, chunkSize] of cases) {
    test(`${compress}, chunk size ${chunkSize}`, async () => {
      const options: WriterOptions = { compress, chunkSize };
      // Regions of one chunk or less, of several pieces (> 1 MiB), and ending short of a chunk.
      const regions = [
        regionBytes(0, 1, 0).subarray(0, 4096),
        regionBytes(700, 2, 5 * 4096),
        regionBytes(40, 3, 4096),
        Buffer.alloc(3 * chunkSize + 4096), // zeros only
      ];
      spy.mockClear();
      fileSpy.mockClear();
      const expected = await chunkByChunk(() => write(t.path(`chunks-${compress}-${chunkSize}.img`), options, regions, 'small'));
      expect(spy).not.toHaveBeenCalled();
      expect(fileSpy).not.toHaveBeenCalled();
      for (const source of ['bytes', 'small', 'odd', 'file', 'fd'] as const) {
        spy.mockClear();
        fileSpy.mockClear();
        const path = t.path(`${source}-${compress}-${chunkSize}.img`);
        const got = await write(path, options, regions, source);
        // Bytes in memory are copied a piece at a time; a file range is read by the pool jobs.
        if (source === 'bytes' || (source === 'odd' && chunkSize < 300007)) expect(spy).toHaveBeenCalled();
        if (source === 'file' || source === 'fd') expect(fileSpy).toHaveBeenCalled();
        expect(source === 'file' || source === 'fd' ? spy : fileSpy).not.toHaveBeenCalled();
        expect(got.equals(expected)).toBe(true);
        const img = await openImage(path);
        try {
          expect((await img.verify()).ok).toBe(true);
          for (const [i, r] of img.regions.entries()) expect((await img.read(r.address, regions[i]!.length)).equals(regions[i]!)).toBe(true);
        } finally {
          await img.close();
        }
      }
    });
  }

  for (const compress of ['zstd:1', 'deflate:1']) {
    test(`${compress}, 48 MiB in one region: output buffers reused across pieces, every byte where it belongs`, async () => {
      // Distinct content per MiB, so a buffer reused before its write would show in the file.
      const region = Buffer.concat(Array.from({ length: 48 }, (_, i) => memoryLike(256, 100 + i)));
      const options: WriterOptions = { compress };
      const expected = await chunkByChunk(() => write(t.path(`big-chunks-${compress}.img`), options, [region], 'bytes'));
      for (const source of ['bytes', 'small', 'file', 'fd'] as const) {
        const got = await write(t.path(`big-${source}-${compress}.img`), options, [region], source);
        expect(got.equals(expected)).toBe(true);
      }
      const img = await openImage(t.path(`big-file-${compress}.img`));
      try {
        expect((await img.read(img.regions[0]!.address, region.length)).equals(region)).toBe(true);
      } finally {
        await img.close();
      }
    });
  }

  // Sealed in the pool jobs: the nonce and associated data of each chunk (its number, region,
  // address, plain length, form, and whether it ends its region) as the chunk-by-chunk path
  // makes them. Regions ending short of a chunk and on a chunk boundary; several pieces.
  const KEY = new Uint8Array(32).map((_, i) => 200 - i);
  for (const [compress, encrypt, chunkSize] of [
    ['zstd:1', 'aes-256-gcm', 16384], ['zstd:1', 'chacha20-poly1305', 4096], ['zstd:1', 'aes-256-gcm', 2 * 1024 * 1024],
    ['deflate:1', 'aes-256-gcm', 65536], ['deflate:1', 'chacha20-poly1305', 16384], ['deflate:6', 'aes-256-gcm', 4096],
    ['none', 'aes-256-gcm', 16384], ['none', 'chacha20-poly1305', 65536],
  ] as const) {
    test(`${compress} + ${encrypt}, chunk size ${chunkSize}: sealed in the pieces, the same image`, async () => {
      const options: WriterOptions = { compress, chunkSize, encrypt, key: KEY, salt: new Uint8Array(16).fill(3) };
      const regions = [
        regionBytes(600, 11, 4096),
        regionBytes(40, 12, 0).subarray(0, 2 * chunkSize), // ends on a chunk boundary
        Buffer.alloc(chunkSize + 4096), // zeros only: nothing sealed
        regionBytes(0, 13, 0).subarray(0, 4096),
      ];
      spy.mockClear();
      fileSpy.mockClear();
      const expected = await chunkByChunk(() => write(t.path(`sealed-chunks-${compress}-${encrypt}-${chunkSize}.img`), options, regions, 'bytes'));
      expect(spy).not.toHaveBeenCalled();
      for (const source of ['bytes', 'small', 'file', 'fd'] as const) {
        spy.mockClear();
        fileSpy.mockClear();
        const path = t.path(`sealed-${source}-${compress}-${encrypt}-${chunkSize}.img`);
        const got = await write(path, options, regions, source);
        if (source !== 'small') expect(source === 'file' || source === 'fd' ? fileSpy : spy).toHaveBeenCalled();
        expect(got.equals(expected)).toBe(true);
        const img = await openImage(path, { key: KEY });
        try {
          expect((await img.verify()).ok).toBe(true);
          for (const [i, r] of img.regions.entries()) expect((await img.read(r.address, regions[i]!.length)).equals(regions[i]!)).toBe(true);
        } finally {
          await img.close();
        }
      }
      // A wrong key opens nothing.
      await expect(openImage(t.path(`sealed-file-${compress}-${encrypt}-${chunkSize}.img`), { key: new Uint8Array(32) })).rejects.toMatchObject({ code: 'WRONG_KEY' });
    });
  }

  test('sealed pieces among zero runs given by length, with a region that ends in one: the same image as chunk by chunk', async () => {
    for (const [compress, chunkSize] of [['deflate:1', 16384], ['zstd:1', 65536], ['none', 4096]] as const) {
      const cs = chunkSize;
      // Whole pieces, runs of zeros given by length (one that fills the chunk being gathered,
      // several whole chunks, one that ends the region), and a piece that starts mid-chunk.
      const parts = [memoryLike(700, 31), { zeros: 3 * cs + 100 }, memoryLike(300, 32).subarray(0, 300 * 4096 - 100), { zeros: 5 * cs }];
      const regionOf = (split: boolean) => function* (): Generator<Uint8Array | { zeros: number }> {
        for (const p of parts) {
          if (p instanceof Uint8Array && split) yield* small(p);
          else yield p;
        }
      };
      const write2 = async (path: string, split: boolean): Promise<Buffer> => {
        const w = await ImageWriter.create(path, { ...FIXED, compress, chunkSize, encrypt: 'aes-256-gcm', key: KEY, salt: new Uint8Array(16).fill(4) });
        await w.addRegion({ address: 0x7f0000000000n, data: regionOf(split)() });
        const second = Buffer.concat([memoryLike(64, 33), Buffer.alloc(2 * cs)]);
        await w.addRegion({ address: 0x7f1000000000n, data: split ? small(second) : second });
        await w.finish();
        return readFileSync(path);
      };
      spy.mockClear();
      const expected = await chunkByChunk(() => write2(t.path(`zeros-chunks-${compress}.img`), false));
      expect(spy).not.toHaveBeenCalled();
      for (const split of [false, true]) {
        spy.mockClear();
        const got = await write2(t.path(`zeros-pieces-${compress}.img`), split);
        expect(spy.mock.calls.length > 0).toBe(!split);
        expect(got.equals(expected)).toBe(true);
      }
      const img = await openImage(t.path(`zeros-pieces-${compress}.img`), { key: KEY });
      try {
        expect((await img.verify()).ok).toBe(true);
        const whole = Buffer.concat(parts.map((p) => (p instanceof Uint8Array ? p : Buffer.alloc(p.zeros))));
        expect((await img.read(0x7f0000000000n, whole.length)).equals(whole)).toBe(true);
      } finally {
        await img.close();
      }
    }
  });

  test('worker threads asked for: chunk by chunk, no piece job', async () => {
    const region = regionBytes(300, 7, 0);
    spy.mockClear();
    fileSpy.mockClear();
    for (const source of ['bytes', 'file'] as const) {
      const path = t.path(`nopiece-${source}.img`);
      await write(path, { compress: 'deflate:1', workers: 1 }, [region], source);
      const img = await openImage(path);
      try {
        expect((await img.read(img.regions[0]!.address, region.length)).equals(region)).toBe(true);
      } finally {
        await img.close();
      }
    }
    expect(spy).not.toHaveBeenCalled();
    expect(fileSpy).not.toHaveBeenCalled();
  });
});

describe('a file range read by the pool jobs', () => {
  const bytes = memoryLike(4096, 21); // 16 MiB: sixteen pieces

  test('every read done, and told in order, before addRegion resolves', async () => {
    const file = t.path('range.bin');
    writeFileSync(file, bytes);
    const seen: number[] = [];
    const w = await ImageWriter.create(t.path('progress.img'), { ...FIXED, compress: 'zstd:1' });
    await w.addRegion({ address: 0x10000000n, data: { path: file, onRead: (n) => seen.push(n) } });
    expect(seen).toEqual(Array.from({ length: 16 }, (_, k) => (k + 1) * 1024 * 1024));
    // The file may change now: the image holds what was read.
    writeFileSync(file, Buffer.alloc(bytes.length, 0xaa));
    await w.finish();
    const img = await openImage(t.path('progress.img'));
    try {
      expect((await img.read(0x10000000n, bytes.length)).equals(bytes)).toBe(true);
    } finally {
      await img.close();
    }
  });

  test('a file whose size says nothing of its contents (/proc/self/mem) is read as before', async () => {
    const addon = nativeAddon()!;
    const mapped = addon.mapAnonymous(1024 * 1024, 'rw-');
    const mem = Buffer.from(mapped);
    mem.set(memoryLike(256, 5));
    const path = t.path('self-mem.img');
    try {
      const w = await ImageWriter.create(path, { ...FIXED, compress: 'zstd:1' });
      await w.addRegion({ address: 0x10000000n, data: { path: '/proc/self/mem', position: addon.addressOf(mapped), length: mem.length } });
      await w.finish();
      const img = await openImage(path);
      try {
        expect((await img.read(0x10000000n, mem.length)).equals(memoryLike(256, 5))).toBe(true);
      } finally {
        await img.close();
      }
    } finally {
      addon.unmap(mapped);
    }
  });

  test('abort() while a file range is being added: no piece starts after it, nothing is left behind', async () => {
    const file = t.path('aborted.bin');
    writeFileSync(file, bytes);
    const w = await ImageWriter.create(t.path('aborted.img'), { ...FIXED, compress: 'zstd:1' });
    const adding = w.addRegion({ address: 0x10000000n, data: { path: file } });
    adding.catch(() => {}); // it rejects while abort() runs: asserted below
    await w.abort();
    await expect(adding).rejects.toThrow(/aborted while adding a region/);
    expect(readdirSync(t.path('.')).filter((f) => f.startsWith('aborted.img'))).toEqual([]);
  });

  for (const by of ['path', 'fd'] as const) {
    test(`a range past the end of the file, or a file that shrinks while read, fails addRegion with IO_ERROR (by ${by})`, async () => {
      const file = t.path(`shrinks-${by}.bin`);
      writeFileSync(file, bytes);
      const fd = by === 'fd' ? openSync(file, 'r') : -1;
      const range = by === 'fd' ? { fd, name: file } : { path: file };
      try {
        const short = await ImageWriter.create(t.path(`short-${by}.img`), { ...FIXED, compress: 'zstd:1' });
        await expect(short.addRegion({ address: 0x10000000n, data: { ...range, position: 4096, length: bytes.length } }))
          .rejects.toMatchObject({ code: 'IO_ERROR', message: `${file} ended 4096 bytes early at ${bytes.length}` });
        // Cut to 2 MiB once the first piece is read: the fourth piece is submitted only after
        // the first is stored (three in flight at most), and finds the end of the file.
        const w = await ImageWriter.create(t.path(`shrunk-${by}.img`), { ...FIXED, compress: 'zstd:1' });
        const cut = (n: number): void => { if (n === 1024 * 1024) truncateSync(file, 2 * 1024 * 1024); };
        await expect(w.addRegion({ address: 0x10000000n, data: { ...range, length: bytes.length, onRead: cut } }))
          // The third piece may have been read before the cut or after: it ends at 2 or at 3 MiB.
          .rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(new RegExp(`^${file} ended ${1024 * 1024} bytes early at (${2 * 1024 * 1024}|${3 * 1024 * 1024})$`)) });
        for (const name of [`short-${by}.img`, `shrunk-${by}.img`]) expect(() => readFileSync(t.path(name))).toThrow(/ENOENT/);
      } finally {
        if (fd >= 0) closeSync(fd);
      }
    });
  }
});

type Piece = { sizes: Int32Array; sums: BigUint64Array; stored: Uint8Array };
const addon = nativeAddon()!;
const CODECS = [
  { name: 'zstd', piece: addon.zstdPiece.bind(addon), filePiece: addon.zstdFilePiece.bind(addon), level: 1, minLevel: 1, maxLevel: 19, code: 'ERR_CRIMG_ZSTD', random: -3, decode: (b: Uint8Array, n: number) => Buffer.from(zstdDecode(b, n)) },
  { name: 'deflate', piece: addon.deflatePiece.bind(addon), filePiece: addon.deflateFilePiece.bind(addon), level: 1, minLevel: 1, maxLevel: 9, code: 'ERR_CRIMG_DEFLATE', random: -1, decode: (b: Uint8Array) => inflateRawSync(b) },
  // No codec: every chunk but a zero one raw (for sealing, below).
  { name: 'raw', piece: addon.rawPiece.bind(addon), filePiece: addon.rawFilePiece.bind(addon), level: 0, minLevel: 0, maxLevel: 0, code: 'ERR_CRIMG_AEAD', random: -1, decode: (b: Uint8Array) => Buffer.from(b) },
];

for (const c of CODECS) describe(`${c.name}Piece, the binding`, () => {
  const piece = (bytes: Uint8Array, chunkSize: number, alloc: (n: number) => Uint8Array): Promise<Piece> =>
    new Promise((resolve, reject) => {
      c.piece(c.level, bytes, chunkSize, alloc, (err, sizes, sums, stored) => (err ? reject(err) : resolve({ sizes, sums, stored })));
    });

  test('codes, sums and stored bytes per chunk, in what alloc gave; encoded forms decode to their chunk', async () => {
    const cs = 16384;
    const bytes = Buffer.concat([Buffer.alloc(cs), randomBytes(cs), memoryLike(4, 9), Buffer.alloc(cs, 3), Buffer.from([1, 2, 3])]);
    let asked = -1;
    const { sizes, sums, stored: out } = await piece(bytes, cs, (n) => {
      asked = n;
      return new Uint8Array(n + 10).subarray(5, 5 + n);
    });
    // Zeros; random pages (stored raw untried: zstd says -3, deflate -1 as for not smaller).
    expect(Array.from(sizes.slice(0, 2))).toEqual([-2, c.random]);
    expect(sizes.length).toBe(5);
    let at = 0;
    for (let k = 0; k < sizes.length; k++) {
      const plain = bytes.subarray(k * cs, Math.min(bytes.length, (k + 1) * cs));
      const s = sizes[k]!;
      if (s === -2) {
        expect(sums[k]).toBe(0n);
        continue;
      }
      const len = s > 0 ? s : plain.length;
      const stored = out.subarray(at, at + len);
      expect(sums[k]).toBe(xxh64(stored));
      if (s > 0) expect(c.decode(stored, plain.length).equals(plain)).toBe(true);
      else expect(Buffer.from(stored).equals(plain)).toBe(true);
      at += len;
    }
    expect(sizes[3]! > 0).toBe(c.name !== 'raw'); // a run of one byte value: encoded, but for raw
    expect(asked).toBe(at);
    expect(out.length).toBe(at);
    // A 3-byte chunk is never smaller encoded: stored raw.
    expect(sizes[4]).toBe(-1);
  });

  test('refuses bad arguments before queuing anything', () => {
    const cb = (): void => {};
    const alloc = (n: number): Uint8Array => new Uint8Array(n);
    expect(() => c.piece(c.level, new Uint8Array(0), 4096, alloc, cb)).toThrow(/1 byte to 64 MiB/);
    expect(() => c.piece(c.level, new Uint8Array(65537), 1, alloc, cb)).toThrow(/at most 65536 chunks/);
    expect(() => c.piece(c.minLevel - 1, new Uint8Array(1), 4096, alloc, cb)).toThrow(new RegExp(`level to be an integer in \\[${c.minLevel}, ${c.maxLevel}\\]`));
    expect(() => c.piece(c.maxLevel + 1, new Uint8Array(1), 4096, alloc, cb)).toThrow(new RegExp(`level to be an integer in \\[${c.minLevel}, ${c.maxLevel}\\]`));
    expect(() => c.piece(c.level, new Uint8Array(1), 0, alloc, cb)).toThrow(/chunkSize/);
    expect(() => c.piece(c.level, new Uint8Array(1), 4096, null as never, cb)).toThrow(/alloc to be a function/);
    expect(() => c.piece(c.level, new Uint8Array(1), 4096, alloc, null as never)).toThrow(/callback/);
  });

  test(`${c.name}FilePiece: the piece read from the file; a failed read or an early end is the callback's coded error`, async () => {
    const bytes = memoryLike(32, 8);
    const file = t.path(`piece-${c.name}.bin`);
    writeFileSync(file, bytes);
    const fd = openSync(file, 'r');
    const dir = openSync(t.path('.'), 'r');
    // `read` comes before the callback, and never with a failed read.
    const events: string[] = [];
    const run = (f: number, position: number, length: number): Promise<{ sizes: Int32Array; stored: Uint8Array }> => new Promise((resolve, reject) => {
      c.filePiece(c.level, f, position, length, 16384, (n) => new Uint8Array(n), (err, sizes, _sums, stored) => {
        events.push(err ? 'failed' : 'done');
        if (err) reject(err); else resolve({ sizes, stored });
      }, () => events.push('read'));
    });
    try {
      const fromFile = await run(fd, 4096, 65536);
      const fromBytes = await piece(bytes.subarray(4096, 4096 + 65536), 16384, (n) => new Uint8Array(n));
      expect(Array.from(fromFile.sizes)).toEqual(Array.from(fromBytes.sizes));
      expect(Buffer.from(fromFile.stored).equals(Buffer.from(fromBytes.stored))).toBe(true);
      await expect(run(fd, 65536, 131072)).rejects.toMatchObject({ code: 'ERR_CRIMG_EOF', position: bytes.length, message: `${c.name}FilePiece: the file ended early` });
      await expect(run(dir, 0, 4096)).rejects.toMatchObject({ code: 'EISDIR', syscall: 'pread', position: 0 });
      expect(events).toEqual(['read', 'done', 'failed', 'failed']);
      expect(() => c.filePiece(c.level, fd, 0, 1, 4096, () => new Uint8Array(1), () => {}, 5 as never)).toThrow(/read to be a function/);
      expect(() => c.filePiece(c.level, -1, 0, 1, 4096, () => new Uint8Array(1), () => {})).toThrow(/fd/);
      expect(() => c.filePiece(c.level, fd, -1, 1, 4096, () => new Uint8Array(1), () => {})).toThrow(/position/);
      expect(() => c.filePiece(c.level, fd, 0, 64 * 1024 * 1024 + 1, 4096, () => new Uint8Array(1), () => {})).toThrow(/length/);
      expect(() => c.filePiece(c.maxLevel + 1, fd, 0, 1, 4096, () => new Uint8Array(1), () => {})).toThrow(/level/);
    } finally {
      closeSync(fd);
      closeSync(dir);
    }
  });

  test('seal: each stored chunk sealed under its own nonce and associated data, opened here by node:crypto', async () => {
    const cs = 16384;
    const bytes = Buffer.concat([memoryLike(4, 9), Buffer.alloc(cs), randomBytes(cs), Buffer.alloc(cs, 3), Buffer.from([1, 2, 3])]);
    const key = randomBytes(32);
    const prefix = randomBytes(48);
    for (const cipher of [1, 2] as const) {
      for (const last of [true, false]) {
        const seal = { cipher, key, prefix, chunk: 1000, region: 7, address: 0x7f0000004000n, last };
        const { sizes, sums, stored } = await new Promise<Piece>((resolve, reject) => {
          c.piece(c.level, bytes, cs, (n) => new Uint8Array(n), (err, sizes, sums, stored) => (err ? reject(err) : resolve({ sizes, sums, stored })), seal);
        });
        expect(sizes[1]).toBe(-2);
        let at = 0;
        for (let k = 0; k < sizes.length; k++) {
          const plain = bytes.subarray(k * cs, Math.min(bytes.length, (k + 1) * cs));
          const size = sizes[k]!;
          if (size === -2) continue;
          const body = size > 0 ? size : plain.length;
          const sealed = stored.subarray(at, at + body + 16);
          expect(sums[k]).toBe(xxh64(sealed));
          const aad = chunkAad({
            imageId: prefix.subarray(0, 16), headerHash: prefix.subarray(16), chunkNumber: 1000 + k, regionNumber: 7,
            plainLength: plain.length, address: 0x7f0000004000n + BigInt(k * cs), encoded: size > 0, last: last && k === sizes.length - 1,
          });
          const d = cipher === 1 ? createDecipheriv('aes-256-gcm', key, chunkNonce(1000 + k), { authTagLength: 16 }) : createDecipheriv('chacha20-poly1305', key, chunkNonce(1000 + k), { authTagLength: 16 });
          d.setAAD(aad, { plaintextLength: body });
          d.setAuthTag(sealed.subarray(body));
          const opened = Buffer.concat([d.update(sealed.subarray(0, body)), d.final()]);
          expect((size > 0 ? c.decode(opened, plain.length) : opened).equals(plain)).toBe(true);
          at += body + 16;
        }
        expect(stored.length).toBe(at);
      }
    }
  });

  test('seal: refused when malformed, before queuing anything; the key never shows', () => {
    const cb = (): void => {};
    const alloc = (n: number): Uint8Array => new Uint8Array(n);
    const key = new Uint8Array(32).fill(0xab);
    const good = { cipher: 1, key, prefix: new Uint8Array(48), chunk: 0, region: 0, address: 0n, last: false };
    const bad: [object, RegExp][] = [
      [{ ...good, cipher: 3 }, /seal\.cipher/],
      [{ ...good, key: new Uint8Array(31) }, /seal\.key to be 32 bytes, got 31/],
      [{ ...good, key: 'k' }, /seal\.key to be a Uint8Array/],
      [{ ...good, prefix: new Uint8Array(47) }, /seal\.prefix to be 48 bytes/],
      [{ ...good, chunk: -1 }, /seal\.chunk/],
      [{ ...good, chunk: 2 ** 53 - 2 }, /seal\.chunk/], // its 4 chunks would pass 2^53 - 1
      [{ ...good, region: 2 ** 32 }, /seal\.region/],
      [{ ...good, address: 5 }, /seal\.address to be a bigint/],
      [{ ...good, address: 2n ** 64n - 4096n }, /below 2\^64/],
      [{ ...good, address: -1n }, /seal\.address/],
      [{ ...good, last: 1 }, /seal\.last to be a boolean/],
    ];
    for (const [seal, message] of bad) {
      let thrown: unknown = null;
      try {
        c.piece(c.level, new Uint8Array(4 * 4096), 4096, alloc, cb, seal as never);
      } catch (e) {
        thrown = e;
      }
      // A TypeError or RangeError of the addon's realm: matched by its message.
      expect((thrown as Error | null)?.message).toMatch(message);
      expect((thrown as Error).message).not.toMatch(/171|0xab/i);
    }
    expect(() => c.piece(c.level, new Uint8Array(1), 4096, alloc, cb, new Uint8Array(32) as never)).toThrow(/seal to be an object/);
    // A seal whose getter detaches the piece (read first): refused, nothing read from freed memory.
    const bytes = new Uint8Array(3 * 4096).fill(7);
    const detaching = { ...good, get last(): boolean { structuredClone(bytes.buffer, { transfer: [bytes.buffer] }); return false; } };
    expect(() => c.piece(c.level, bytes, 4096, alloc, cb, detaching as never)).toThrow(/1 byte to 64 MiB, got 0 bytes/);
    // One that detaches its own key: refused by the key's length.
    const key2 = new Uint8Array(32);
    const losing = { ...good, key: key2, get last(): boolean { structuredClone(key2.buffer, { transfer: [key2.buffer] }); return false; } };
    expect(() => c.piece(c.level, new Uint8Array(4096), 4096, alloc, cb, losing as never)).toThrow(/seal\.key to be 32 bytes, got 0/);
    expect(() => c.filePiece(c.level, 0, 0, 4096, 4096, alloc, cb, undefined, { ...good, key: new Uint8Array(33) } as never)).toThrow(/seal\.key to be 32 bytes/);
  });

  test('alloc giving too little, a detached buffer, or throwing: an error to the callback, nothing written', async () => {
    const bytes = memoryLike(64, 4);
    await expect(piece(bytes, 16384, (n) => new Uint8Array(n - 1))).rejects.toMatchObject({ code: c.code, message: expect.stringMatching(new RegExp(`^${c.name}Piece: expected alloc to return a Uint8Array of at least \\d+ bytes`)) });
    await expect(piece(bytes, 16384, () => new Uint16Array(bytes.length) as never)).rejects.toMatchObject({ code: c.code });
    await expect(piece(bytes, 16384, (n) => {
      const b = new Uint8Array(n);
      structuredClone(b.buffer, { transfer: [b.buffer] });
      return b;
    })).rejects.toMatchObject({ code: c.code });
    await expect(piece(bytes, 16384, () => { throw new TypeError('no memory here'); })).rejects.toThrow('no memory here');
  });
});
