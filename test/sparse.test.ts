/**
 * The native write path and the SPARSE layout (spec/FORMAT.md section 5.2):
 * - the addon's XXH64 and chunk scan agree with xxhash-wasm, the format's checksum of record;
 * - the node engine (native scan, mapped file ranges) and the portable engine write the same
 *   bytes for every kind of region data, in both layouts;
 * - a sparse image has holes, reads and verifies like a compact one, and a map restore places
 *   each region with one mapping;
 * - the CLI creates, converts and inspects sparse images.
 */
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { jest } from '@jest/globals';
import xxhash from 'xxhash-wasm';
import { ImageWriter, openImage, type RegionData, type WriterOptions } from '../index.js';
import { nativeAddon, nativeStatus } from '../native-mmap/index.js';
import { readMaps } from '../restore/_maps.js';
import { checksumEngine, loadWasmXxh64, xxh64, xxh64Wasm } from '../codec/checksum.js';
import { crimg, ensureBuilt } from './cli-helpers.js';
import { memoryLike, prng, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const status = nativeStatus();
if (!status.available) throw new Error(`these tests need the native addon: ${status.reason}`);
const addon = nativeAddon()!;

describe('native chunk scan', () => {
  test('xxh64 equals xxhash-wasm for every length 0..300 at three alignments, and on chunks', async () => {
    const h = await xxhash();
    const rnd = prng(5);
    const buf = Uint8Array.from({ length: 70000 }, () => Math.floor(rnd() * 256));
    for (let len = 0; len <= 300; len++) {
      for (const at of [0, 1, 7]) {
        const v = buf.subarray(at, at + len);
        expect(addon.xxh64(v)).toBe(h.h64Raw(v, 0n));
      }
    }
    for (const len of [4095, 4096, 16384, 65536 + 3]) expect(addon.xxh64(buf.subarray(0, len))).toBe(h.h64Raw(buf.subarray(0, len), 0n));
    // The format's checksum takes the native engine when the addon is built.
    expect(checksumEngine()).toBe('native');
    expect(xxh64(buf)).toBe(xxh64Wasm(buf));
  });

  test('the wasm engine loads its module by path, and says what to do when it is missing or broken', () => {
    const pinned = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> })
      .dependencies['xxhash-wasm'];
    // Exact: the module file is found by the package's layout, which its exports map hides.
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    const entry = createRequire(import.meta.url).resolve('xxhash-wasm');
    const real = loadWasmXxh64(join(dirname(entry), '..', 'workerd', 'xxhash.wasm'));
    expect(real(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
    const remedy = `reinstall the pinned xxhash-wasm@${pinned} (npm install), or build the native addon (node native-mmap/install.mjs)`;
    const missing = t.path('moved/xxhash.wasm');
    expect(() => loadWasmXxh64(missing)).toThrow(`xxhash-wasm's module ${missing}, the wasm XXH64 engine, is missing; ${remedy}`);
    const junk = t.path('junk.wasm');
    writeFileSync(junk, 'not wasm');
    expect(() => loadWasmXxh64(junk)).toThrow(/^xxhash-wasm's module .*junk\.wasm, the wasm XXH64 engine, failed to load \(.+\); reinstall the pinned/);
  });

  test('scanChunks flags zero chunks and hashes the others, the last chunk short', async () => {
    const h = await xxhash();
    const data = Buffer.concat([memoryLike(37, 3), Buffer.alloc(1000), Buffer.from([0, 0, 1])]);
    const cs = 8192;
    const n = Math.ceil(data.length / cs);
    const sums = new BigUint64Array(n + 2).fill(7n);
    const zero = new Uint8Array(n + 2).fill(9);
    const zeros = addon.scanChunks(data, cs, sums, zero);
    let expected = 0;
    for (let k = 0; k < n; k++) {
      const c = data.subarray(k * cs, Math.min(data.length, (k + 1) * cs));
      const isZero = c.every((x) => x === 0);
      expected += isZero ? 1 : 0;
      expect([zero[k], sums[k]]).toEqual(isZero ? [1, 0n] : [0, h.h64Raw(c, 0n)]);
    }
    expect(zeros).toBe(expected);
    expect([zero[n], sums[n]]).toEqual([9, 7n]); // nothing written past the chunks
    expect(addon.scanChunks(new Uint8Array(0), cs, sums, zero)).toBe(0);
  });

  test('hashChunks hashes every chunk, zero or not, the last short; refuses a short output', async () => {
    const h = await xxhash();
    const data = Buffer.concat([memoryLike(9, 4), Buffer.alloc(8192), Buffer.from([1, 2, 3])]);
    const cs = 4096;
    const n = Math.ceil(data.length / cs);
    const sums = new BigUint64Array(n);
    addon.hashChunks(data, cs, sums);
    for (let k = 0; k < n; k++) expect(sums[k]).toBe(h.h64Raw(data.subarray(k * cs, Math.min(data.length, (k + 1) * cs)), 0n));
    expect(() => addon.hashChunks(data, cs, new BigUint64Array(n - 1))).toThrow(/^expected sums to hold 12 chunks, got 11$/);
  });

  test('writeBack: a fsynced image starts the disk writes of every data byte it writes, an unsynced one none', async () => {
    const data = memoryLike(4096, 8); // 16 MiB: several write batches
    for (const fsync of [true, false]) {
      const calls: [number, number][] = [];
      const spy = jest.spyOn(addon, 'writeBack').mockImplementation((_fd, offset, length, done) => { calls.push([offset, length]); setImmediate(done); });
      try {
        const out = t.path(`writeback-${fsync}.img`);
        const w = await ImageWriter.create(out, { fsync });
        await w.addRegion({ address: 0x100000n, data });
        const summary = await w.finish();
        if (!fsync) {
          expect(calls).toEqual([]);
          continue;
        }
        // The ranges tile the stored bytes (raw chunks are pages, so every write ends on a page
        // boundary): each once, none beyond them.
        calls.sort((a, b) => a[0] - b[0]);
        expect(calls.reduce((s, c) => s + c[1], 0)).toBe(summary.storedBytes);
        for (let i = 1; i < calls.length; i++) expect(calls[i]![0]).toBeGreaterThanOrEqual(calls[i - 1]![0] + calls[i - 1]![1]);
        for (const [offset, length] of calls) expect((offset + length) % 4096).toBe(0);
        const img = await openImage(out);
        expect((await img.verify()).ok).toBe(true);
        await img.close();
      } finally {
        spy.mockRestore();
      }
    }
    // The real call is a hint: any open fd and range, done called with nothing; bad arguments
    // are refused before anything is queued.
    const fd = openSync(t.path('writeback-true.img'), 'r');
    try {
      const args = await new Promise<unknown[]>((resolve) => { addon.writeBack(fd, 0, 4096, (...a: unknown[]) => resolve(a)); });
      expect(args).toEqual([]);
      const noop = (): void => {};
      // (The addon's errors come from the main realm: check names, not constructors.)
      const thrown = (fn: () => unknown): string => { try { fn(); return 'ok'; } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; } };
      expect(thrown(() => addon.writeBack(-1, 0, 1, noop))).toBe('RangeError: expected fd to be an integer in [0, 2147483647], got -1');
      expect(thrown(() => addon.writeBack(fd, '0' as unknown as number, 1, noop))).toBe("TypeError: expected offset to be a number, got '0'");
      expect(thrown(() => addon.writeBack(fd, 0, 1.5, noop))).toMatch(/^RangeError: expected length to be an integer/);
      // 0 would mean "to the end of the file" to the kernel.
      expect(thrown(() => addon.writeBack(fd, 0, 0, noop))).toMatch(/^RangeError: expected length to be an integer in \[1, /);
      expect(thrown(() => addon.writeBack(fd, 0, 1, undefined as unknown as () => void))).toBe('TypeError: expected done to be a function, got undefined');
    } finally {
      closeSync(fd);
    }
  });

  test('scanChunks refuses wrong types and short outputs without touching memory', () => {
    const code = (fn: () => unknown): string => { try { fn(); return 'ok'; } catch (e) { return `${(e as Error).name}:${(e as { code?: string }).code}`; } };
    const data = new Uint8Array(3 * 4096);
    const s = new BigUint64Array(3);
    const z = new Uint8Array(3);
    expect(code(() => addon.scanChunks(data, 4096, s, z))).toBe('ok');
    expect(code(() => addon.scanChunks([] as unknown as Uint8Array, 4096, s, z))).toBe('TypeError:ERR_INVALID_ARG_TYPE');
    expect(code(() => addon.scanChunks(data, 4096, new Float64Array(3) as unknown as BigUint64Array, z))).toBe('TypeError:ERR_INVALID_ARG_TYPE');
    expect(code(() => addon.scanChunks(data, 4096, s, new Int8Array(3) as unknown as Uint8Array))).toBe('TypeError:ERR_INVALID_ARG_TYPE');
    expect(code(() => addon.scanChunks(data, 0, s, z))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(code(() => addon.scanChunks(data, 1.5, s, z))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(code(() => addon.scanChunks(data, 4096, new BigUint64Array(2), z))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(code(() => addon.scanChunks(data, 4096, s, new Uint8Array(2)))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(code(() => addon.xxh64('abc' as unknown as Uint8Array))).toBe('TypeError:ERR_INVALID_ARG_TYPE');
  });

  test('aeadSeal refuses bad suites, key and nonce lengths and a wrong-sized output, naming no key bytes', () => {
    const code = (fn: () => unknown): string => { try { fn(); return 'ok'; } catch (e) { return `${(e as Error).name}:${(e as { code?: string }).code}:${(e as Error).message.includes('4141') ? 'LEAK' : ''}`; } };
    const key = new Uint8Array(32).fill(0x41);
    const nonce = new Uint8Array(12);
    const plain = new Uint8Array(100);
    expect(code(() => addon.aeadSeal(1, key, nonce, new Uint8Array(0), plain, new Uint8Array(116)))).toBe('ok');
    expect(code(() => addon.aeadSeal(2, key, nonce, new Uint8Array(0), plain, new Uint8Array(116)))).toBe('ok');
    expect(code(() => addon.aeadSeal(0 as 1, key, nonce, new Uint8Array(0), plain, new Uint8Array(116)))).toBe('RangeError:ERR_INVALID_ARG_VALUE:');
    expect(code(() => addon.aeadSeal('1' as unknown as 1, key, nonce, new Uint8Array(0), plain, new Uint8Array(116)))).toBe('TypeError:ERR_INVALID_ARG_TYPE:');
    expect(code(() => addon.aeadSeal(1, key.subarray(1), nonce, new Uint8Array(0), plain, new Uint8Array(116)))).toBe('RangeError:ERR_INVALID_ARG_VALUE:');
    expect(code(() => addon.aeadSeal(2, key, nonce.subarray(1), new Uint8Array(0), plain, new Uint8Array(116)))).toBe('RangeError:ERR_INVALID_ARG_VALUE:');
    expect(code(() => addon.aeadSeal(2, key, nonce, new Uint8Array(0), plain, new Uint8Array(115)))).toBe('RangeError:ERR_INVALID_ARG_VALUE:');
    expect(code(() => addon.aeadSeal(2, key, nonce, [] as unknown as Uint8Array, plain, new Uint8Array(116)))).toBe('TypeError:ERR_INVALID_ARG_TYPE:');
    // A key or plaintext passed as a string is named by its type only.
    for (const secret of ['4141 my secret key material 4141', 0x4141414141n]) {
      let message = '';
      try { addon.aeadSeal(1, secret as unknown as Uint8Array, nonce, new Uint8Array(0), plain, new Uint8Array(116)); } catch (e) { message = (e as Error).message; }
      expect(message).toMatch(/^expected key to be a Uint8Array, got a (string|bigint)$/);
      try { addon.scanChunks(secret as unknown as Uint8Array, 4096, new BigUint64Array(1), new Uint8Array(1)); } catch (e) { message = (e as Error).message; }
      expect(message).not.toMatch(/4141|secret/);
    }
  });
});

let input: { path: string; bytes: Buffer } | null = null;

/** The input file, made once: memory-like pages (more than two 4 MiB write blocks) and a short tail. */
function inputFile(): { path: string; bytes: Buffer } {
  if (input) return input;
  const path = t.path('input.bin');
  const bytes = Buffer.concat([memoryLike(2600, 11), Buffer.alloc(4096 * 5), Buffer.alloc(777, 3)]);
  writeFileSync(path, bytes);
  input = { path, bytes };
  return input;
}

type Source = 'path' | 'path-unaligned' | 'fd' | 'buffer' | 'pieces' | 'dev-zero';

/** Writes one image of four regions from `source`; returns the file's bytes. */
async function write(out: string, source: Source, options: WriterOptions): Promise<Buffer> {
  const { path: inputPath, bytes: inputBytes } = inputFile();
  const fd = openSync(inputPath, 'r');
  const zeroFd = openSync('/dev/zero', 'r');
  try {
    const cut = (position: number, length: number): RegionData => {
      switch (source) {
        case 'path': return { path: inputPath, position, length };
        case 'path-unaligned': return { path: inputPath, position: position + 100, length: Math.min(length, inputBytes.length - position - 100) };
        case 'fd': return { fd, position: BigInt(position), length };
        case 'buffer': return inputBytes.subarray(position, position + length);
        case 'pieces': return (function* () { for (let o = 0; o < length; o += 70001) yield inputBytes.subarray(position + o, position + Math.min(length, o + 70001)); })();
        case 'dev-zero': return { fd: zeroFd, length };
      }
    };
    const w = await ImageWriter.create(out, { fsync: false, imageId: new Uint8Array(16).fill(4), created: 1_700_000_000_000n, ...options });
    // The node engine takes the native path (scan in place; file ranges of regular files mapped).
    expect((w as unknown as { scanner: unknown }).scanner === null).toBe(options.engine === 'portable');
    await w.addRegion({ address: 0x7f0000000000n, data: cut(0, 9 << 20), kind: 'heap' });
    await w.addRegion({ address: 0x7f0001000000n, data: cut(9 << 20, 4096 * 5 + 10) });
    await w.addGap({ address: 0x7f0002000000n, length: 0x3000n });
    await w.addRegion({ address: 0x7f0002003000n, data: cut(2600 * 4096, 4096 * 5 + 777), kind: 'stack' });
    await w.finish();
    return readFileSync(out);
  } finally {
    closeSync(fd);
    closeSync(zeroFd);
  }
}

describe('node engine (native scan) and portable engine write the same bytes', () => {
  const sources: Source[] = ['path', 'path-unaligned', 'fd', 'buffer', 'pieces', 'dev-zero'];
  test.each(sources.flatMap((s) => [[s, 'compact'], [s, 'sparse']] as const))('%s, %s layout', async (source, layout) => {
    const node = await write(t.path(`n-${source}-${layout}.img`), source, { layout });
    const portable = await write(t.path(`p-${source}-${layout}.img`), source, { layout, engine: 'portable' });
    expect(node.equals(portable)).toBe(true);
    const img = await openImage(t.path(`n-${source}-${layout}.img`));
    expect(img.sparse).toBe(layout === 'sparse');
    expect((await img.verify()).ok).toBe(true);
    if (source === 'path' || source === 'fd' || source === 'buffer') {
      const bytes = inputFile().bytes;
      expect((await img.read(0x7f0000000000n, 9 << 20)).equals(bytes.subarray(0, 9 << 20))).toBe(true);
      expect((await img.read(0x7f0002003000n, 4096 * 5 + 777)).equals(bytes.subarray(2600 * 4096))).toBe(true);
    }
    await img.close();
  });
});

describe('native path edge cases', () => {
  test('chunks larger than the 4 MiB read block: file ranges keep whole chunks, both engines alike', async () => {
    const input = t.path('big-chunks.bin');
    writeFileSync(input, Buffer.concat([memoryLike(4096 + 300, 5), Buffer.alloc(5000, 1)])); // 17 MiB + a tail
    const images: Buffer[] = [];
    for (const engine of ['node', 'portable'] as const) {
      const out = t.path(`big-${engine}.img`);
      const w = await ImageWriter.create(out, { fsync: false, chunkSize: 8 << 20, engine, imageId: new Uint8Array(16).fill(1), created: 1n });
      await w.addRegion({ address: 0x10000000n, data: { path: input } });
      await w.finish();
      const img = await openImage(out);
      expect(img.regions[0]!.chunkCount).toBe(3);
      expect((await img.verify()).ok).toBe(true);
      expect((await img.read(0x10000000n, Number(img.regions[0]!.length))).equals(readFileSync(input))).toBe(true);
      await img.close();
      images.push(readFileSync(out));
    }
    expect(images[0]!.equals(images[1]!)).toBe(true);
  });

  test('region data in a SharedArrayBuffer is scanned and sealed like any other', async () => {
    const shared = new Uint8Array(new SharedArrayBuffer(5 * 16384));
    shared.set(memoryLike(20, 6));
    for (const options of [{}, { compress: 'deflate:1', encrypt: 'aes-256-gcm' as const, key: new Uint8Array(32).fill(2) }]) {
      const out = t.path('sab.img');
      const w = await ImageWriter.create(out, { fsync: false, ...options });
      await w.addRegion({ address: 0x10000n, data: shared });
      await w.finish();
      const img = await openImage(out, 'key' in options ? { key: options.key } : {});
      expect((await img.read(0x10000n, shared.length)).equals(Buffer.from(shared))).toBe(true);
      await img.close();
    }
  });

  test('mapFiles: false reads file ranges into buffers, the same bytes', async () => {
    const input = inputFile();
    const images = await Promise.all([true, false].map(async (mapFiles) => {
      const out = t.path(`map-${mapFiles}.img`);
      const w = await ImageWriter.create(out, { fsync: false, mapFiles, imageId: new Uint8Array(16), created: 1n });
      await w.addRegion({ address: 0x10000000n, data: { path: input.path } });
      await w.finish();
      return readFileSync(out);
    }));
    expect(images[0]!.equals(images[1]!)).toBe(true);
  });
});

describe('SPARSE layout', () => {
  test('holes instead of zero chunks; same data, regions and stored bytes as compact', async () => {
    const compact = t.path('c.img');
    const sparse = t.path('s.img');
    await write(compact, 'path', {});
    await write(sparse, 'path', { layout: 'sparse' });
    const a = await openImage(compact);
    const b = await openImage(sparse);
    expect(b.sparse && b.mappable).toBe(true);
    expect(b.header.optionalFeatures).toBe(3n);
    expect(b.regions.map((r) => [r.address, r.length, r.storedBytes, r.zeroChunks])).toEqual(a.regions.map((r) => [r.address, r.length, r.storedBytes, r.zeroChunks]));
    for (const r of a.regions) if (!r.isGap) expect((await b.read(r.address, Number(r.length))).equals(await a.read(r.address, Number(r.length)))).toBe(true);
    // Every region's chunk j at span + j * chunk size.
    const table = await b.chunkTable();
    for (const r of b.regions) {
      let span = -1;
      for (let j = 0; j < r.chunkCount; j++) {
        const rec = table.get(r.firstChunk + j, Math.min(b.chunkSize, Number(r.length) - j * b.chunkSize));
        if (rec.storedLength === 0) continue;
        if (span < 0) span = rec.offset - j * b.chunkSize;
        expect(rec.offset).toBe(span + j * b.chunkSize);
      }
    }
    // The apparent size counts the holes; the blocks do not (ext4, tmpfs, xfs, btrfs have holes).
    const sc = statSync(compact);
    const ss = statSync(sparse);
    expect(ss.size).toBeGreaterThan(sc.size);
    expect(ss.blocks * 512).toBeLessThan(ss.size - (1 << 20));
    await a.close();
    await b.close();
  });

  test('refused with a codec or a cipher, and for an unknown layout', async () => {
    await expect(ImageWriter.create(t.path('x.img'), { layout: 'sparse', compress: 'deflate:1' })).rejects.toThrow(/only without compression and encryption/);
    await expect(ImageWriter.create(t.path('x.img'), { layout: 'sparse', encrypt: 'aes-256-gcm', key: new Uint8Array(32) })).rejects.toThrow(RangeError);
    await expect(ImageWriter.create(t.path('x.img'), { layout: 'holes' as 'sparse' })).rejects.toThrow(/expected layout/);
  });

  test('map restore: one file mapping per region with data, anonymous memory for an all-zero one, bytes equal read()', async () => {
    const out = t.path('restore.img');
    const w = await ImageWriter.create(out, { fsync: false, layout: 'sparse' });
    const heap = memoryLike(3000, 8);
    await w.addRegion({ address: 0x100000000n, data: heap, kind: 'heap' });
    await w.addRegion({ address: 0x200000000n, data: Buffer.alloc(5 * 16384) });
    await w.addRegion({ address: 0x300000000n, data: Buffer.concat([Buffer.alloc(16384), memoryLike(40, 9), Buffer.alloc(100, 1)]), prot: 'r--' });
    await w.finish();
    const img = await openImage(out);
    const res = await img.restore({ mode: 'map' });
    try {
      expect(res.mode).toBe('map');
      const maps = readMaps();
      for (const [i, r] of res.regions.entries()) {
        const at = r.address;
        const end = at + BigInt(Math.ceil(Number(r.length) / 4096) * 4096);
        const inside = maps.filter((m) => m.start < end && m.end > at);
        if (i === 1) expect(inside.map((m) => m.path)).toEqual(['']); // anonymous
        else expect(inside.map((m) => [m.path, m.perms.slice(0, 3)])).toEqual([[out, r.prot]]); // one mapping of the file
        expect(Buffer.from(r.memory!).equals(await img.read(img.regions[i]!.address, Number(r.length)))).toBe(true);
      }
    } finally {
      res.release();
      await img.close();
    }
  });

  test.each([
    ['sparse-chunk-out-of-place', /not at its place/],
    ['sparse-spans-overlap', /span at file offset \d+ overlaps the bytes before it/],
  ])('%s: verify reports it, map restore refuses it from the chunk table, copy restore works', async (name, message) => {
    const path = `spec/vectors/v1/invalid/CORRUPT_INDEX--${name}.img`;
    const img = await openImage(path);
    const report = await img.verify();
    expect(report.errors.map((e) => e.code)).toContain('CORRUPT_INDEX');
    await expect(img.restore({ mode: 'map' })).rejects.toMatchObject({ code: 'CORRUPT_INDEX', message: expect.stringMatching(message) });
    const copy = await img.restore({ mode: 'copy' });
    const heap = img.regions[0]!;
    expect(Buffer.from(copy.regions[0]!.memory!).equals(await img.read(heap.address, Number(heap.length)))).toBe(true);
    copy.release();
    await img.close();
  });
});

describe('CLI', () => {
  beforeAll(() => ensureBuilt());

  test('create --layout sparse, inspect shows it, convert to compact and back keeps the data', async () => {
    const mem = t.path('mem.bin');
    writeFileSync(mem, memoryLike(500, 12));
    const sparse = t.path('cli-sparse.img');
    const made = await crimg(['create', sparse, '--region', `0x7f0000000000:${mem}:rw-:heap`, '--layout', 'sparse', '--quiet']);
    expect(made.status).toBe(0);
    const human = await crimg(['inspect', sparse]);
    expect(human.stdout).toMatch(/^mappable\s+yes, sparse: one mapping per region$/m);
    const asJson = JSON.parse((await crimg(['inspect', sparse, '--json'])).stdout) as { layout: string };
    expect(asJson.layout).toBe('sparse');
    const compact = t.path('cli-compact.img');
    expect((await crimg(['convert', sparse, compact, '--layout', 'compact', '--quiet'])).status).toBe(0);
    expect((JSON.parse((await crimg(['inspect', compact, '--json'])).stdout) as { layout: string }).layout).toBe('compact');
    const again = t.path('cli-again.img');
    expect((await crimg(['convert', compact, again, '--layout', 'sparse', '--quiet'])).status).toBe(0);
    const a = await openImage(sparse);
    const b = await openImage(again);
    expect(b.sparse).toBe(true);
    expect((await b.read(0x7f0000000000n, 500 * 4096)).equals(readFileSync(mem))).toBe(true);
    expect((await a.verify()).ok && (await b.verify()).ok).toBe(true);
    await a.close();
    await b.close();
    const refused = await crimg(['create', t.path('bad.img'), '--region', `0x1000:${mem}`, '--layout', 'sparse', '--compress', 'deflate']);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/sparse/);
  });
});
