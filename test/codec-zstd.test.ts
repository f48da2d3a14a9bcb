/**
 * Codec id 2, zstd (spec/FORMAT.md section 6.2; codec/zstd.ts): images written with the native
 * encoder round trip through both engines (the portable engine decodes the native frames with
 * fzstd, byte for byte), the portable engine refuses to write zstd with UNSUPPORTED_FEATURE
 * naming the fix, and hostile frames (skippable, dictionary id, not single-segment, window
 * larger than the chunk, content size other than the plain length, truncated, trailing bytes)
 * are CORRUPT_CHUNK in the native decoder, the node engine and the portable engine alike, with
 * bounded output.
 */
import { ImageWriter, openImage, CrimgError } from '../index.js';
import { parseCompress } from '../image/writer.js';
import { decodeChunk, encodeChunk } from '../codec/chunk.js';
import { xxh64 } from '../codec/checksum.js';
import { loadPortableEngine } from '../codec/portable.js';
import { zstdDecode, zstdEncode, zstdFrameProblem } from '../codec/zstd.js';
import { CHUNK_ENCODED } from '../format/constants.js';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, memoryLike } from './helpers.js';
import { crimg, ensureBuilt, json } from './cli-helpers.js';
import { requireNative } from './native-fixture.js';

await loadPortableEngine();
const native = requireNative();
const t = tempDir();
beforeAll(() => ensureBuilt());
afterAll(() => t.cleanup());

const key = Uint8Array.from({ length: 32 }, (_, i) => i * 5 + 3);

describe('zstd images', () => {
  test.each([
    ['zstd:1', undefined], ['zstd:3', 'aes-256-gcm'], ['zstd:1', 'chacha20-poly1305'],
  ] as const)('%s %s: written natively, read by both engines, verified', async (compress, encrypt) => {
    const data = memoryLike(96, 7); // 384 KiB: zero, structured and random pages
    const tail = data.subarray(0, 5000);
    const out = t.path(`z-${compress}-${encrypt ?? 'none'}.img`);
    const w = await ImageWriter.create(out, { compress, ...(encrypt ? { encrypt, key } : {}), fsync: false });
    await w.addRegion({ address: 0x7f0000000000n, data, name: 'heap' });
    await w.addRegion({ address: 0x7f0000100000n, data: tail, name: 'tail' });
    await w.finish();
    for (const engine of ['node', 'portable'] as const) {
      const img = await openImage(out, { ...(encrypt ? { key } : {}), engine });
      expect(img.compression).toBe(compress); // what inspect and stats print
      expect((await img.read(0x7f0000000000n, data.length)).equals(data)).toBe(true);
      expect((await img.read(0x7f0000100000n, tail.length)).equals(tail)).toBe(true);
      expect(await img.verify()).toMatchObject({ ok: true, errors: [] });
      const stats = await img.chunkStats();
      expect(stats.totals.chunks.encoded).toBeGreaterThan(0);
      await img.close();
    }
  });

  test('the portable engine cannot write zstd: UNSUPPORTED_FEATURE naming the fix', async () => {
    const err = await ImageWriter.create(t.path('p.img'), { compress: 'zstd:1', engine: 'portable' }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CrimgError);
    expect(err).toMatchObject({ code: 'UNSUPPORTED_FEATURE', message: expect.stringMatching(/portable engine cannot write zstd.*use the node engine/) });
    expect(() => zstdEncode(new Uint8Array(100).fill(1), 1, 'portable')).toThrow(/portable engine cannot write zstd/);
  });

  test('without the addon (CRIMG_NO_NATIVE=1): the node engine reads zstd with fzstd, and writing zstd is UNSUPPORTED_FEATURE naming the build', async () => {
    const data = memoryLike(24, 3);
    const out = t.path('no-native.img');
    const w = await ImageWriter.create(out, { compress: 'zstd:1', fsync: false });
    await w.addRegion({ address: 0x7f0000000000n, data });
    await w.finish();
    writeFileSync(t.path('data.bin'), data);
    const script = `
      import { readFileSync } from 'node:fs';
      import { ImageWriter, openImage } from ${JSON.stringify(join(process.cwd(), 'build', 'index.js'))};
      import { nativeStatus } from ${JSON.stringify(join(process.cwd(), 'build', 'native-mmap', 'index.js'))};
      const img = await openImage(process.argv[1]);
      const same = (await img.read(0x7f0000000000n, ${data.length})).equals(readFileSync(process.argv[2]));
      const report = await img.verify();
      await img.close();
      const refused = await ImageWriter.create(process.argv[3], { compress: 'zstd:1' }).then(() => 'created', (e) => e.code + ': ' + e.message);
      console.log(JSON.stringify({ native: nativeStatus().available, same, ok: report.ok, refused }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, out, t.path('data.bin'), t.path('never.img')], { env: { ...process.env, CRIMG_NO_NATIVE: '1' }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      native: false, same: true, ok: true,
      refused: expect.stringMatching(/^UNSUPPORTED_FEATURE: zstd \(codec id 2\) needs the native addon to write.*build it with node native-mmap\/install.mjs/),
    });
  });

  test('compression option parsing: zstd levels 1..19, default 1', () => {
    expect(parseCompress('zstd')).toEqual({ codec: 2, level: 1 });
    expect(parseCompress('zstd:19')).toEqual({ codec: 2, level: 19 });
    expect(() => parseCompress('zstd:0')).toThrow(/expected a zstd level 1..19, got 0/);
    expect(() => parseCompress('zstd:20')).toThrow(/expected a zstd level 1..19, got 20/);
  });
});

describe('crimg --compress zstd:N', () => {
  test('create and convert write zstd; inspect and stats show it; verify passes', async () => {
    const heap = memoryLike(40, 9);
    writeFileSync(t.path('heap.bin'), heap);
    const made = t.path('cli-z.img');
    const c = await crimg(['create', made, '--region', `0x7f0000000000:${t.path('heap.bin')}:rw-:heap`, '--compress', 'zstd:5']);
    expect({ status: c.status, stderr: c.stderr }).toEqual({ status: 0, stderr: '' });
    expect(json(await crimg(['inspect', made, '--json']))).toMatchObject({ compression: 'zstd:5' });
    expect((await crimg(['inspect', made])).stdout).toMatch(/^compression\s+zstd:5$/m);
    expect((await crimg(['stats', made])).stdout).toMatch(/compression zstd:5/);
    const converted = t.path('cli-z2.img');
    const v = await crimg(['convert', made, converted, '--compress', 'zstd:1', '--encrypt', 'chacha20-poly1305', '--key-file', keyFile()]);
    expect({ status: v.status, stderr: v.stderr }).toEqual({ status: 0, stderr: '' });
    const img = await openImage(converted, { key });
    expect(img.compression).toBe('zstd:1');
    expect((await img.read(0x7f0000000000n, heap.length)).equals(heap)).toBe(true);
    await img.close();
    expect((await crimg(['verify', converted, '--key-file', keyFile()])).status).toBe(0);
    const bad = await crimg(['create', t.path('bad.img'), '--region', `0x7f0000000000:${t.path('heap.bin')}`, '--compress', 'zstd:20']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/expected a zstd level 1..19, got 20/);
  });
});

function keyFile(): string {
  const p = t.path('k.key');
  writeFileSync(p, key);
  return p;
}

describe('frames: native and portable decode each other byte for byte', () => {
  test.each([1, 3, 9, 19])('level %i over structured and mixed chunks', (level) => {
    for (const [size, seed] of [[16384, 1], [65536, 2], [5000, 3], [4096 * 33, 4]] as const) {
      const plain = memoryLike(Math.ceil(size / 4096), seed).subarray(0, size);
      if (plain.every((b) => b === 0)) continue;
      const frame = zstdEncode(plain, level);
      if (frame === null) continue; // incompressible: stored raw
      expect(zstdFrameProblem(frame, size)).toBeUndefined();
      expect(frame[4]! & 0x20).toBe(0x20); // single-segment
      expect(Buffer.from(zstdDecode(frame, size, 'portable')).equals(Buffer.from(plain))).toBe(true);
      expect(Buffer.from(zstdDecode(frame, size, 'node')).equals(Buffer.from(plain))).toBe(true);
    }
  });

  test('encodeChunk (node engine) then decodeChunk (portable engine)', () => {
    const plain = Uint8Array.from({ length: 16384 }, (_v, i) => (i % 48 < 4 ? i & 0xff : 0x41 + ((i >> 5) % 7)));
    const e = encodeChunk(plain, { codec: 2, level: 1, cipher: 0 });
    expect(e.flags).toBe(CHUNK_ENCODED);
    const back = decodeChunk(e.stored, { flags: e.flags, checksum: e.checksum, plainLength: plain.length, codec: 2, cipher: 0, engine: 'portable' });
    expect(Buffer.from(back).equals(Buffer.from(plain))).toBe(true);
  });
});

/** A frame rebuilt with another header: single-segment or with a window, a dictionary id, a content size. */
function reheader(frame: Uint8Array, o: { single?: boolean; dictId?: number; size?: number | null; windowLog?: number; reserved?: boolean }): Uint8Array {
  const fhd = frame[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
  const at = 5 + (single ? 0 : 1) + dictBytes;
  let size = 0;
  for (let i = 0; i < fcsBytes; i++) size += frame[at + i]! * 2 ** (8 * i);
  if (fcsBytes === 2) size += 256;
  const body = frame.subarray(at + fcsBytes);
  const newSingle = o.single ?? true;
  const newSize = o.size === undefined ? size : o.size;
  const head: number[] = [0x28, 0xb5, 0x2f, 0xfd];
  const dict = o.dictId ?? 0;
  head.push((newSize === null ? 0 : 2 << 6) | (newSingle ? 0x20 : 0) | (o.reserved ? 0x08 : 0) | (dict ? 3 : 0) | (fhd & 0x04));
  if (!newSingle) head.push(((o.windowLog ?? 17) - 10) << 3);
  if (dict) head.push(dict & 0xff, (dict >> 8) & 0xff, (dict >> 16) & 0xff, dict >>> 24);
  if (newSize !== null) head.push(newSize & 0xff, (newSize >> 8) & 0xff, (newSize >> 16) & 0xff, newSize >>> 24);
  return Uint8Array.from([...head, ...body]);
}

/**
 * A single-segment frame of `blocks` RLE blocks of `each` bytes (byte k & 0xff in block k), with
 * a content checksum (`checksum`: the right one, or this value) or none.
 */
function rleFrame(blocks: number, each: number, checksum?: 'right' | number): Uint8Array {
  const size = blocks * each;
  const out = [0x28, 0xb5, 0x2f, 0xfd, 0x80 | 0x20 | (checksum === undefined ? 0 : 0x04), size & 0xff, (size >> 8) & 0xff, (size >> 16) & 0xff, size >>> 24];
  for (let k = 0; k < blocks; k++) {
    const h = (k === blocks - 1 ? 1 : 0) | (1 << 1) | (each << 3);
    out.push(h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, k & 0xff);
  }
  if (checksum !== undefined) {
    const plain = new Uint8Array(size);
    for (let k = 0; k < blocks; k++) plain.fill(k & 0xff, k * each, (k + 1) * each);
    const c = checksum === 'right' ? Number(xxh64(plain) & 0xffffffffn) : checksum;
    out.push(c & 0xff, (c >> 8) & 0xff, (c >> 16) & 0xff, c >>> 24);
  }
  return Uint8Array.from(out);
}

describe('hostile frames are CORRUPT_CHUNK in every decoder (spec 6.2)', () => {
  const CHUNK = 65536;
  const plain = Uint8Array.from({ length: CHUNK }, (_v, i) => (i % 64 < 6 ? (i * 7) & 0xff : 0x61 + ((i >> 6) % 26)));
  const good = zstdEncode(plain, 1)!;
  const right = rleFrame(4, CHUNK / 4, 'right');
  const wrong = rleFrame(4, CHUNK / 4, ((right[right.length - 4]! | (right[right.length - 3]! << 8) | (right[right.length - 2]! << 16) | (right[right.length - 1]! << 24)) ^ 1) >>> 0);
  const cases: [string, Uint8Array, number, RegExp][] = [
    ['the good frame rebuilt (control)', reheader(good, {}), CHUNK, /^$/],
    ['a content checksum that matches (control)', right, CHUNK, /^$/],
    ['a content checksum that does not match', wrong, CHUNK, /checksum/],
    ['a skippable frame before the frame', Uint8Array.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4, ...good]), CHUNK, /skippable/],
    ['a dictionary id', reheader(good, { dictId: 77 }), CHUNK, /dictionar/],
    ['not single-segment, window 128 KiB > chunk', reheader(good, { single: false, windowLog: 17 }), CHUNK, /single-segment/],
    ['not single-segment, no content size', reheader(good, { single: false, size: null, windowLog: 16 }), CHUNK, /single-segment/],
    ['content size larger than the plain length', reheader(good, { size: CHUNK + 1 }), CHUNK, /content size/],
    ['content size smaller than the plain length', reheader(good, { size: CHUNK - 1 }), CHUNK, /content size/],
    ['the reserved header bit', reheader(good, { reserved: true }), CHUNK, /reserved|does not decode/],
    ['truncated by one byte', good.subarray(0, good.length - 1), CHUNK, /truncated|cut off|does not decode/],
    ['truncated to its header', good.subarray(0, 9), CHUNK, /truncated|cut off/],
    ['a trailing byte', Uint8Array.from([...good, 0]), CHUNK, /followed by 1 bytes/],
    ['a second frame after it', Uint8Array.from([...good, ...good]), CHUNK, /followed by/],
    ['a magic that is not zstd', Uint8Array.from([0x29, ...good.subarray(1)]), CHUNK, /does not decode|magic/],
    ['three bytes', good.subarray(0, 3), CHUNK, /truncated/],
  ];
  test.each(cases)('%s', (_name, frame, plainLength, why) => {
    const codes: string[] = [];
    for (const engine of ['node', 'portable'] as const) {
      try {
        const out = zstdDecode(frame, plainLength, engine);
        expect(out.byteLength).toBe(plainLength);
        codes.push('ok');
      } catch (e) {
        if (!(e instanceof CrimgError)) throw e;
        expect(e.message).toMatch(why);
        codes.push(e.code);
      }
    }
    // The C++ decoder as the native readers call it, with the chunk size.
    const out = new Uint8Array(plainLength).fill(0x77);
    const r = native.decodeChunk({
      codec: 2, cipher: 0, chunkSize: CHUNK, number: 3n, region: 0, address: 0n, last: false, plainLength,
      flags: CHUNK_ENCODED, checksum: xxh64(frame),
    }, frame, out);
    const nat = r === null ? 'ok' : r.code;
    if (r !== null) expect(out.every((b) => b === 0)).toBe(true);
    const expected = why.source === '^$' ? 'ok' : 'CORRUPT_CHUNK';
    expect({ node: codes[0], portable: codes[1], native: nat }).toEqual({ node: expected, portable: expected, native: expected });
  });
});

test('a frame of half a million 8-byte RLE blocks (4 MiB) decodes in every engine, the same bytes: the portable decoder\'s work is linear', () => {
  // fzstd's streaming decoder shifted its 4 MiB window for every block: ~2 TiB of copying.
  const plainLength = 4 << 20;
  const frame = rleFrame(plainLength / 8, 8);
  expect(zstdFrameProblem(frame, plainLength)).toBeUndefined();
  const portable = zstdDecode(frame, plainLength, 'portable');
  const node = zstdDecode(frame, plainLength, 'node');
  expect(Buffer.from(portable).equals(Buffer.from(node))).toBe(true);
  expect([portable[0], portable[8], portable[8 * 255], portable[8 * 256 + 7], portable[plainLength - 1]]).toEqual([0, 1, 255, 0, 255]);
});

test('a raw or RLE block over 128 KiB (chunks over 128 KiB) is CORRUPT_CHUNK in every decoder; two of 128 KiB decode', () => {
  const plainLength = 256 << 10;
  const nativeCode = (frame: Uint8Array): string => {
    const out = new Uint8Array(plainLength);
    const r = requireNative().decodeChunk({
      codec: 2, cipher: 0, chunkSize: plainLength, number: 0n, region: 0, address: 0n, last: false, plainLength,
      flags: CHUNK_ENCODED, checksum: 0n, verifyChecksum: false,
    }, frame, out);
    return r === null ? 'ok' : `${r.code} ${r.message}`;
  };
  const one = rleFrame(1, plainLength); // RFC 8878: a block holds at most 128 KiB
  for (const engine of ['node', 'portable'] as const) {
    expect(() => zstdDecode(one, plainLength, engine)).toThrow(expect.objectContaining({ code: 'CORRUPT_CHUNK', message: expect.stringMatching(/a block is larger than the window/) }));
  }
  expect(nativeCode(one)).toMatch(/^CORRUPT_CHUNK .*a block is larger than the window/);
  const two = rleFrame(2, plainLength / 2);
  expect(Buffer.from(zstdDecode(two, plainLength, 'portable')).equals(Buffer.from(zstdDecode(two, plainLength, 'node')))).toBe(true);
  expect(nativeCode(two)).toBe('ok');
});

test('known gap (spec 6.2): a short frame whose literals fill the gap decodes in the portable engine; the native one refuses it', () => {
  // Content size 100, one compressed block: 60 RLE literals of 'A', no sequence. libzstd makes
  // 60 bytes and refuses; fzstd lays the literals out at [40, 100) before moving them to [0, 60).
  const frame = Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x64, 0x25, 0x00, 0x00, 0xc5, 0x03, 0x41, 0x00]);
  expect(zstdFrameProblem(frame, 100)).toBeUndefined();
  expect(Buffer.from(zstdDecode(frame, 100, 'portable')).equals(Buffer.alloc(100, 0x41))).toBe(true);
  expect(() => zstdDecode(frame, 100, 'node')).toThrow(expect.objectContaining({ code: 'CORRUPT_CHUNK' }));
});

describe('compressed blocks that decode to other than the content size are CORRUPT_CHUNK', () => {
  // Headers that pass zstdFrameProblem (it counts raw and RLE blocks only): fzstd's one-shot
  // decoder returned the buffer it was given, so these came back as plain-length bytes.
  const cases: [string, Uint8Array, number, RegExp][] = [
    // magic, single-segment with content size 100, one compressed block of 5 raw literals
    ['5 literals for a content size of 100', Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x64, 0x3d, 0x00, 0x00, 0x28, 0x41, 0x42, 0x43, 0x44, 0x45, 0x00]), 100, /decodes to fewer than its 100 bytes/],
    // content size 40, one compressed block of 100 RLE literals (fzstd clipped them to 40)
    ['100 literals for a content size of 40', Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x28, 0x25, 0x00, 0x00, 0x45, 0x06, 0x41, 0x00]), 40, /literals are larger than the window/],
  ];
  test.each(cases)('%s', (_name, frame, plainLength, why) => {
    const err = (() => {
      try {
        zstdDecode(frame, plainLength, 'portable');
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CrimgError);
    expect(err).toMatchObject({ code: 'CORRUPT_CHUNK', message: expect.stringMatching(why) });
    expect(() => zstdDecode(frame, plainLength, 'node')).toThrow(expect.objectContaining({ code: 'CORRUPT_CHUNK' }));
    const out = new Uint8Array(plainLength);
    const r = native.decodeChunk({
      codec: 2, cipher: 0, chunkSize: 0, number: 0n, region: 0, address: 0n, last: false, plainLength,
      flags: CHUNK_ENCODED, checksum: 0n, verifyChecksum: false,
    }, frame, out);
    expect(r?.code).toBe('CORRUPT_CHUNK');
  });
});

/**
 * `n` bytes of pages that repeat one page of pointer-like 64-bit words (into a 1 MiB heap), each
 * page with its number written at a place of its own: compressible at every level (level 19
 * included, quickly), no zero page, and no two pages alike.
 */
function pointers(n: number, seed: number): Buffer {
  const page = Buffer.alloc(4096);
  let x = seed >>> 0;
  for (let o = 0; o < page.length; o += 8) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    page.writeBigUInt64LE(0x7f0000000000n + BigInt((x >>> 16) * 16), o);
  }
  const b = Buffer.alloc(n);
  for (let p = 0; p < n / 4096; p++) {
    page.copy(b, p * 4096);
    b.writeUInt32LE(p, p * 4096 + (p % 512) * 8);
  }
  return b;
}

describe('chunks of 1 MiB and more: the window holds the whole chunk (single-segment frames)', () => {
  // The levels' own windows are 512 KiB (1), 2 MiB (3) and 8 MiB (19): chunks larger than them
  // were written as frames every reader refuses unless the encoder sizes the window per chunk.
  test.each([
    [1 << 20, 1], [1 << 20, 3], [1 << 20, 19], [16 << 20, 1], [16 << 20, 3], [16 << 20, 19],
  ])('chunk size %i, zstd:%i: written, verified and read exactly by the native decoder and fzstd', async (chunkSize, level) => {
    // Two full chunks and a shorter last one of 1.5 chunks' worth at 1 MiB; at 16 MiB one full
    // chunk and a last one of 9 MiB (larger than level 19's own 8 MiB window).
    const length = chunkSize === 1 << 20 ? 2 * chunkSize + (chunkSize >> 1) : chunkSize + (9 << 20);
    const data = pointers(length, chunkSize + level);
    const out = t.path(`big-${chunkSize}-${level}.img`);
    const w = await ImageWriter.create(out, { compress: `zstd:${level}`, chunkSize, fsync: false });
    await w.addRegion({ address: 0x7f0000000000n, data, name: 'heap' });
    await w.finish();
    for (const engine of ['node', 'portable'] as const) {
      const img = await openImage(out, { engine });
      expect({ engine, chunkSize: img.chunkSize }).toEqual({ engine, chunkSize });
      expect(await img.verify()).toMatchObject({ ok: true, errors: [] });
      expect((await img.read(0x7f0000000000n, length)).equals(data)).toBe(true);
      expect((await img.chunkStats()).totals.chunks.encoded).toBe(chunkSize === 1 << 20 ? 3 : 2);
      await img.close();
    }
    // The frames themselves: single-segment, content size the plain length, both decoders.
    for (const size of [chunkSize, chunkSize === 1 << 20 ? chunkSize >> 1 : 9 << 20]) {
      const plain = data.subarray(0, size);
      const frame = zstdEncode(plain, level)!;
      expect({ size, level, problem: zstdFrameProblem(frame, size), single: frame[4]! & 0x20 }).toEqual({ size, level, problem: undefined, single: 0x20 });
      expect(Buffer.from(zstdDecode(frame, size, 'node')).equals(plain)).toBe(true);
      expect(Buffer.from(zstdDecode(frame, size, 'portable')).equals(plain)).toBe(true);
    }
  });
});
