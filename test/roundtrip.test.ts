import fc from 'fast-check';
import { readFileSync, existsSync, statSync, readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ImageWriter, openImage, CrimgError } from '../index.js';
import { isTempOf } from '../image/_output-file.js';
import { tempDir, memoryLike } from './helpers.js';

/** The writer's temporary files of `out` (image/_output-file.ts) still in its directory. */
function tempsOf(out: string): string[] {
  return readdirSync(dirname(out)).filter((n) => isTempOf(n, basename(out)));
}

const t = tempDir();
afterAll(() => t.cleanup());

describe('write then read', () => {
  test('regions, gaps and zero chunks round trip; read at every boundary', async () => {
    const heap = memoryLike(40, 1);
    const stack = memoryLike(5, 2);
    const out = t.path('a.img');
    const w = await ImageWriter.create(out, { chunkSize: 16384, validation: { architecture: 'x86_64', labels: { engine: 'test' } } });
    await w.addRegion({ address: 0x10000n, data: heap, kind: 'heap', name: 'heap' });
    await w.addGap({ address: 0x10000n + BigInt(heap.length), length: 8192n, name: 'guard' });
    await w.addRegion({ address: 0x10000n + BigInt(heap.length) + 8192n, data: [stack.subarray(0, 100), stack.subarray(100)], prot: 'rw-', kind: 'stack' });
    const summary = await w.finish();
    expect(existsSync(out)).toBe(true);
    expect(tempsOf(out)).toEqual([]);
    expect(statSync(out).size).toBe(summary.fileSize);
    const img = await openImage(out);
    expect(img.regions).toHaveLength(3);
    expect(img.regions[1]!.isGap).toBe(true);
    expect(img.mappable).toBe(true);
    expect(img.validation.labels).toEqual({ engine: 'test' });
    for (const off of [0, 1, 4095, 4096, 16383, 16384, 16385, heap.length - 1]) {
      for (const len of [0, 1, 7, 4096, 16384 + 3]) {
        const n = Math.min(len, heap.length - off);
        expect((await img.read(0x10000n + BigInt(off), n)).equals(heap.subarray(off, off + n))).toBe(true);
      }
    }
    expect((await img.read(0x10000n, heap.length)).equals(heap)).toBe(true);
    const stackAt = img.regions[2]!.address;
    expect((await img.read(stackAt, stack.length)).equals(stack)).toBe(true);
    await expect(img.read(0x10000n + BigInt(heap.length), 1)).rejects.toMatchObject({ code: 'NOT_MAPPED' });
    await expect(img.read(0x0n, 1)).rejects.toMatchObject({ code: 'NOT_MAPPED' });
    await expect(img.read(stackAt + BigInt(stack.length) - 1n, 2)).rejects.toBeInstanceOf(CrimgError);
    const report = await img.verify();
    expect(report).toMatchObject({ ok: true, errors: [] });
    await img.close();
  });

  test('random region sets round trip (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ gapPages: fc.integer({ min: 0, max: 3 }), pages: fc.integer({ min: 1, max: 12 }), tail: fc.integer({ min: 0, max: 4095 }), seed: fc.integer(), split: fc.integer({ min: 1, max: 70000 }) }), { minLength: 1, maxLength: 5 }),
      fc.constantFrom(4096, 8192, 65536),
      async (specs, chunkSize) => {
        const out = t.path('p.img');
        const w = await ImageWriter.create(out, { chunkSize, fsync: false });
        let addr = 0x7f0000000000n;
        const expected: [bigint, Buffer][] = [];
        for (const s of specs) {
          addr += BigInt(s.gapPages * 4096);
          const data = Buffer.concat([memoryLike(s.pages, s.seed), Buffer.alloc(s.tail, 7)]);
          const pieces: Buffer[] = [];
          for (let o = 0; o < data.length; o += s.split) pieces.push(data.subarray(o, o + s.split));
          await w.addRegion({ address: addr, data: (async function* () { yield* pieces; })() });
          expected.push([addr, data]);
          addr += BigInt(Math.ceil(data.length / 4096) * 4096);
        }
        await w.finish();
        const img = await openImage(readFileSync(out));
        for (const [a, d] of expected) expect((await img.read(a, d.length)).equals(d)).toBe(true);
        expect((await img.verify()).ok).toBe(true);
        await img.close();
      }), { numRuns: 40, seed: 42 });
  });

  test.each([['none'], ['deflate:1']])('file ranges (path, fd + position + length) as region data, compress %s', async (compress) => {
    const { writeFileSync, openSync, closeSync } = await import('node:fs');
    const raw = memoryLike(2100, 9); // > 2 write blocks of 4 MiB
    const input = t.path('input.bin');
    writeFileSync(input, Buffer.concat([raw, Buffer.alloc(777, 5)]));
    const out = t.path('fr.img');
    const fd = openSync(input, 'r');
    const w = await ImageWriter.create(out, { chunkSize: 16384, fsync: false, compress, workers: 0 });
    await w.addRegion({ address: 0x100000n, data: { path: input } });
    await w.addRegion({ address: 0x10000000n, data: { fd, position: 4096n * 3n, length: 4096 * 700 + 13 } });
    await w.finish();
    closeSync(fd);
    const img = await openImage(out);
    expect((await img.read(0x100000n, raw.length + 777)).equals(readFileSync(input))).toBe(true);
    expect((await img.read(0x10000000n, 4096 * 700 + 13)).equals(raw.subarray(4096 * 3, 4096 * 703 + 13))).toBe(true);
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });

  test.each([['none'], ['deflate:1']])('a path with no length is the whole file as it is now, though the writer keeps it open, compress %s', async (compress) => {
    const { writeFileSync, appendFileSync } = await import('node:fs');
    const first = memoryLike(3, 31);
    const more = memoryLike(2, 32);
    const input = t.path(`grows-${compress}.bin`);
    writeFileSync(input, first);
    const out = t.path(`grows-${compress}.img`);
    const w = await ImageWriter.create(out, { fsync: false, compress, workers: 0 });
    const r1 = await w.addRegion({ address: 0x100000n, data: { path: input } });
    appendFileSync(input, more);
    const r2 = await w.addRegion({ address: 0x200000n, data: { path: input } });
    await w.finish();
    expect([r1.length, r2.length]).toEqual([BigInt(first.length), BigInt(first.length + more.length)]);
    const img = await openImage(out);
    expect(img.regions.map((r) => r.length)).toEqual([BigInt(first.length), BigInt(first.length + more.length)]);
    expect((await img.read(0x100000n, first.length)).equals(first)).toBe(true);
    expect((await img.read(0x200000n, first.length + more.length)).equals(Buffer.concat([first, more]))).toBe(true);
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });

  test('the caller may reuse its buffer once addRegion resolves (raw chunks are written from it)', async () => {
    const out = t.path('reuse.img');
    const buf = memoryLike(4096, 21); // 16 MiB: several write batches
    const copy = Buffer.from(buf);
    const w = await ImageWriter.create(out, { fsync: false });
    await w.addRegion({ address: 0x40000000n, data: buf });
    buf.fill(9);
    await w.finish();
    const img = await openImage(out);
    expect((await img.verify()).ok).toBe(true);
    expect((await img.read(0x40000000n, copy.length)).equals(copy)).toBe(true);
    await img.close();
  });

  test('validation keys that are Object.prototype names round trip', async () => {
    const out = t.path('keys.img');
    const labels = JSON.parse('{"constructor":"a","__proto__":"b","toString":"c","hasOwnProperty":"d"}') as Record<string, string>;
    const w = await ImageWriter.create(out, { fsync: false, validation: { labels, metrics: { constructor: 1 }, bitmaps: { toString: Uint8Array.of(1) } } });
    await w.addRegion({ address: 0x1000n, data: Buffer.alloc(4096, 1) });
    await w.finish();
    const img = await openImage(out);
    expect(Object.entries(img.validation.labels).sort()).toEqual(Object.entries(labels).sort());
    expect(img.validation.metrics['constructor']).toBe(1);
    expect(img.checkCompatibility({ architecture: 'x', pageSize: 4096, labels: {}, bitmaps: {}, cpuFlags: [] }).labels.map((l) => l.key).sort())
      .toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
    await img.close();
  });

  test('regions cut from one file, in order, out of order and interleaved with another file', async () => {
    const { writeFileSync } = await import('node:fs');
    const a = memoryLike(3000, 31); // ~12 MiB: several 4 MiB blocks
    const b = memoryLike(300, 32);
    writeFileSync(t.path('a.bin'), a);
    writeFileSync(t.path('b.bin'), b);
    const cuts: [string, Buffer, number, number][] = [
      ['a.bin', a, 0, 5 << 20], ['a.bin', a, 5 << 20, 4096 * 10], // consecutive: the read-ahead is taken
      ['a.bin', a, (5 << 20) + 4096 * 20, 4096 * 7], // a hole before: the read-ahead is dropped
      ['b.bin', b, 0, b.length], // another file
      ['a.bin', a, 4096, 4096 * 3], // back to the first file, earlier position
      ['a.bin', a, 4096 * 4, a.length - 4096 * 4], // consecutive again, to the end
    ];
    const out = t.path('cuts.img');
    const w = await ImageWriter.create(out, { fsync: false });
    let addr = 0x100000000n;
    const expected: [bigint, Buffer][] = [];
    for (const [file, bytes, position, length] of cuts) {
      await w.addRegion({ address: addr, data: { path: t.path(file), position, length } });
      expected.push([addr, bytes.subarray(position, position + length)]);
      addr += BigInt(Math.ceil(length / 4096) * 4096) + 0x10000n;
    }
    await w.finish();
    const img = await openImage(out);
    for (const [at, bytes] of expected) expect((await img.read(at, bytes.length)).equals(bytes)).toBe(true);
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });

  test.each([['deflate:1', undefined], ['deflate:6', 'aes-256-gcm'], ['none', 'chacha20-poly1305']] as const)(
    'many file-range regions pipelined through the encoder (%s, %s), with gaps and caller-memory regions between', async (compress, encrypt) => {
      const { writeFileSync } = await import('node:fs');
      const input = memoryLike(1200, 41);
      writeFileSync(t.path('pipe.bin'), input);
      const out = t.path('pipe.img');
      const key = new Uint8Array(32).fill(9);
      const w = await ImageWriter.create(out, { fsync: false, compress, ...(encrypt ? { encrypt, key } : {}) });
      const expected: [bigint, Buffer][] = [];
      let addr = 0x7f0000000000n;
      let off = 0;
      for (let i = 0; off < input.length; i++) {
        const length = Math.min(input.length - off, 4096 * (1 + ((i * 37) % 90)) + (i % 3 === 0 ? 100 : 0));
        if (i % 7 === 3) {
          await w.addRegion({ address: addr, data: input.subarray(off, off + length) }); // caller memory: drains the queue
        } else {
          await w.addRegion({ address: addr, data: { path: t.path('pipe.bin'), position: off, length } });
        }
        expected.push([addr, input.subarray(off, off + length)]);
        addr += BigInt(Math.ceil(length / 4096) * 4096);
        if (i % 5 === 2) {
          await w.addGap({ address: addr, length: 0x2000n });
          addr += 0x2000n;
        }
        addr += 0x10000n;
        off += length;
      }
      await w.finish();
      const img = await openImage(out, encrypt ? { key } : {});
      let next = 0;
      for (const r of img.regions) {
        expect(r.firstChunk).toBe(next);
        next += r.chunkCount;
      }
      for (const [a, d] of expected) expect((await img.read(a, d.length)).equals(d)).toBe(true);
      expect((await img.verify()).ok).toBe(true);
      await img.close();
    });

  test('compression option parsing: levels, and zstd levels (test/codec-zstd.test.ts writes them)', async () => {
    const { parseCompress } = await import('../index.js');
    expect(parseCompress('deflate')).toEqual({ codec: 1, level: 1 });
    expect(parseCompress('deflate:9')).toEqual({ codec: 1, level: 9 });
    expect(() => parseCompress('deflate:0')).toThrow(RangeError);
    expect(parseCompress('zstd:3')).toEqual({ codec: 2, level: 3 });
    await expect(ImageWriter.create(t.path('z.img'), { compress: 'zstd:20' })).rejects.toThrow(RangeError);
  });

  test.each([['none', undefined], ['none', 8192], ['deflate:1', undefined], ['deflate:1', 20000]])('a partial file range ends at the last whole page, compress %s, read size %s', async (compress, readSize) => {
    const { writeFileSync } = await import('node:fs');
    // 1030 pages and a part page: the file ends inside a page, past the 4 MiB read block.
    const raw = memoryLike(1030, 12);
    const input = t.path(`partial-${compress}-${readSize}.bin`);
    writeFileSync(input, Buffer.concat([raw, Buffer.alloc(100, 7)]));
    const out = t.path(`partial-${compress}-${readSize}.img`);
    const seen: number[] = [];
    const w = await ImageWriter.create(out, { fsync: false, compress, workers: 0 });
    // Asks for 2000 pages from page 2: gets the 1028 whole pages the file has from there.
    const rec = await w.addRegion({
      address: 0x200000n,
      data: { path: input, position: 8192, length: 2000 * 4096, partial: true, onRead: (n) => seen.push(n), ...(readSize && { readSize }) },
    });
    expect(rec.length).toBe(1028n * 4096n);
    expect(seen.at(-1)).toBe(1028 * 4096);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    // The next region starts where that one stopped; a whole range reads as before.
    await w.addRegion({ address: 0x200000n + rec.length, data: { path: input, length: 4096, partial: true } });
    await w.finish();
    const img = await openImage(out);
    expect((await img.read(0x200000n, 1028 * 4096)).equals(raw.subarray(8192))).toBe(true);
    expect((await img.read(0x200000n + rec.length, 4096)).equals(raw.subarray(0, 4096))).toBe(true);
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });

  test('a partial file range whose first page cannot be read adds nothing and leaves the writer open (EOF, and EIO from /proc/self/mem)', async () => {
    const { writeFileSync } = await import('node:fs');
    const input = t.path('short.bin');
    writeFileSync(input, Buffer.alloc(4000, 1)); // not one whole page
    const page = memoryLike(1, 3);
    for (const compress of ['none', 'deflate:1']) {
      const out = t.path(`unreadable-${compress}.img`);
      const w = await ImageWriter.create(out, { fsync: false, compress, workers: 0 });
      const eof = await w.addRegion({ address: 0x1000n, data: { path: input, length: 8192, partial: true } });
      expect(eof.length).toBe(0n);
      // Address 0x1000 is never mapped: /proc/self/mem says EIO, which ends a partial range.
      const eio = await w.addRegion({ address: 0x1000n, data: { path: '/proc/self/mem', position: 0x1000n, length: 8192, partial: true } });
      expect(eio.length).toBe(0n);
      // Neither took the address range or any file space: the same address is free.
      await w.addGap({ address: 0x1000n, length: 8192n, name: 'unreadable' });
      await w.addRegion({ address: 0x3000n, data: page });
      const summary = await w.finish();
      expect(summary.regions).toBe(2);
      const img = await openImage(out);
      expect(img.regions.map((r) => [r.address, r.isGap])).toEqual([[0x1000n, true], [0x3000n, false]]);
      expect((await img.read(0x3000n, 4096)).equals(page)).toBe(true);
      expect((await img.verify()).ok).toBe(true);
      await img.close();
      // Without `partial` the same read fails the image, and a partial range needs a length.
      const w3 = await ImageWriter.create(t.path('eio.img'), { fsync: false, compress, workers: 0 });
      await expect(w3.addRegion({ address: 0x1000n, data: { path: '/proc/self/mem', name: 'memory', position: 0x1000n, length: 8192 } }))
        .rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(/^cannot read memory at 4096: EIO$/) });
      const w4 = await ImageWriter.create(t.path('eio.img'), { fsync: false, compress, workers: 0 });
      await expect(w4.addRegion({ address: 0x1000n, data: { path: input, partial: true } })).rejects.toThrow(/expected a length with a partial file range/);
      for (const length of [0, -4096, 4096.5]) {
        const w5 = await ImageWriter.create(t.path('len.img'), { fsync: false, compress, workers: 0 });
        await expect(w5.addRegion({ address: 0x1000n, data: { path: input, length, partial: true } })).rejects.toThrow(/expected a positive length/);
      }
    }
  });

  test.each([['none'], ['deflate:1']])('a partial file range read whole keeps a part page at its end, compress %s', async (compress) => {
    const { writeFileSync } = await import('node:fs');
    const input = t.path('tail.bin');
    const bytes = memoryLike(3, 5).subarray(0, 10000);
    writeFileSync(input, bytes);
    const out = t.path(`tail-${compress}.img`);
    const w = await ImageWriter.create(out, { fsync: false, compress, workers: 0 });
    const rec = await w.addRegion({ address: 0x10000n, data: { path: input, length: 10000, partial: true } });
    expect(rec.length).toBe(10000n);
    await w.finish();
    const img = await openImage(out);
    expect((await img.read(0x10000n, 10000)).equals(bytes)).toBe(true);
    await img.close();
  });

  test('onRead reports progress on the mapped path too', async () => {
    const { writeFileSync } = await import('node:fs');
    const input = t.path('mapped.bin');
    writeFileSync(input, memoryLike(2048, 6)); // 8 MiB: two mapped blocks of 4 MiB, eight reads of 1 MiB
    for (const mapFiles of [true, false]) {
      const seen: number[] = [];
      const w = await ImageWriter.create(t.path('mapped.img'), { fsync: false, mapFiles });
      await w.addRegion({ address: 0x100000n, data: { path: input, onRead: (n) => seen.push(n) } });
      await w.finish();
      const block = mapFiles ? 4 << 20 : 1 << 20;
      expect(seen).toEqual(Array.from({ length: (8 << 20) / block }, (_, i) => (i + 1) * block));
    }
  });

  test('finish() replaces an image or a symlink (itself, not its target); a FIFO there is refused, never opened or replaced', async () => {
    const { execFileSync } = await import('node:child_process');
    const { symlinkSync, lstatSync, writeFileSync: write } = await import('node:fs');
    const first = memoryLike(300, 1);
    const second = memoryLike(7, 2);
    const write1 = async (path: string, data: Uint8Array): Promise<void> => {
      const w = await ImageWriter.create(path, { fsync: true });
      await w.addRegion({ address: 0x10000n, data });
      await w.finish();
    };
    const readsAs = async (path: string, data: Uint8Array): Promise<void> => {
      const img = await openImage(path);
      expect(img.regions[0]!.length).toBe(BigInt(data.length));
      expect((await img.read(0x10000n, data.length)).equals(data)).toBe(true);
      await img.close();
    };
    const out = t.path('replaced.img');
    await write1(out, first);
    await write1(out, second); // the first is held open across the rename, then closed
    await readsAs(out, second);
    const fifo = t.path('fifo.img');
    execFileSync('mkfifo', [fifo]);
    // Opening a FIFO would block until a reader came; a rename would replace it: refused.
    await expect(write1(fifo, second)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT', message: expect.stringContaining(`${fifo} is a FIFO, not a regular file; crimg writes files by rename`),
    });
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(tempsOf(fifo)).toEqual([]);
    const target = t.path('link-target.bin');
    write(target, 'kept');
    const link = t.path('link.img');
    symlinkSync(target, link);
    await write1(link, second);
    expect(lstatSync(link).isFile()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('kept');
  });

  test('a file range that cannot be opened is IO_ERROR on both write paths', async () => {
    for (const compress of ['none', 'deflate:1']) {
      const w = await ImageWriter.create(t.path('missing.img'), { fsync: false, compress });
      await expect(w.addRegion({ address: 0x1000n, data: { path: t.path('no-such-file') } })).rejects.toMatchObject({ code: 'IO_ERROR' });
    }
  });

  test('writer refuses overlapping, unordered and unaligned regions and removes its temporary file', async () => {
    const out = t.path('bad.img');
    const w = await ImageWriter.create(out);
    expect(tempsOf(out)).toHaveLength(1);
    await w.addRegion({ address: 0x20000n, data: Buffer.alloc(8192, 1) });
    await expect(w.addRegion({ address: 0x21000n, data: Buffer.alloc(4096, 1) })).rejects.toThrow(RangeError);
    expect(tempsOf(out)).toEqual([]);
    expect(existsSync(out)).toBe(false);
    const w2 = await ImageWriter.create(out);
    await expect(w2.addRegion({ address: 0x20001n, data: Buffer.alloc(1) })).rejects.toThrow(/page-aligned/);
    await expect(w2.finish()).rejects.toThrow(TypeError);
  });
});
