/**
 * Known-absent pages of a file range (FileRange.present, image/_file-range.ts; issue 13 item 3):
 * bytes outside the present ranges are zero and are never read. The input files hold non-zero
 * bytes in their "absent" pages, so any read of them would show in the image; the image must
 * be byte for byte the one the same bytes with those pages zeroed write. Also: /proc/PID/mem of
 * a real child whose untouched pages stay unallocated, a partial range ended by EIO, ranges
 * checked, and huge ranges handled (streamed) or refused before any allocation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImageWriter, openImage, type WriterOptions } from '../index.js';
import type { FileRange } from '../image/index.js';
import { ensureBuilt } from './cli-helpers.js';
import { memoryLike, prng, tempDir } from './helpers.js';
import { budget } from './machine.js';

const t = tempDir();
afterAll(() => t.cleanup());

const PAGE = 4096;
const KEY = new Uint8Array(32).fill(5);
const FIXED: WriterOptions = {
  imageId: new Uint8Array(16).fill(1), salt: new Uint8Array(16).fill(2), created: 1_700_000_000_000n,
  validation: { architecture: 'x86_64' }, fsync: false,
};
const CONFIGS: { name: string; options: WriterOptions }[] = [
  { name: 'raw compact', options: {} },
  { name: 'raw sparse', options: { layout: 'sparse' } },
  { name: 'raw portable', options: { engine: 'portable' } },
  { name: 'deflate', options: { compress: 'deflate:1' } },
  { name: 'deflate, aes-256-gcm', options: { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY } },
];

/** A file of `pages` pages, none of them zero but a few (present zero pages must stay zero chunks). */
function inputFile(name: string, pages: number, seed: number): Buffer {
  const bytes = memoryLike(pages, seed);
  const rnd = prng(seed);
  for (let p = 0; p < pages; p++) {
    if (rnd() < 0.1) continue;
    bytes[p * PAGE + 17] = 0xee; // memoryLike's zero pages become non-zero: an absent page read would show
  }
  writeFileSync(t.path(name), bytes);
  return bytes;
}

/** Seeded present page runs within `pages` pages: empty, scattered, long, adjacent. */
function presentRuns(pages: number, seed: number): { offset: number; length: number }[] {
  const rnd = prng(seed);
  const out: { offset: number; length: number }[] = [];
  let p = Math.floor(rnd() * 3);
  while (p < pages) {
    const len = Math.min(pages - p, 1 + Math.floor(rnd() * (rnd() < 0.2 ? 40 : 4)));
    out.push({ offset: p * PAGE, length: len * PAGE });
    p += len + (rnd() < 0.2 ? 0 : Math.floor(rnd() * (rnd() < 0.3 ? 300 : 6)));
  }
  return out;
}

/** `bytes` with everything outside `present` zeroed. */
function masked(bytes: Buffer, present: readonly { offset: number; length: number }[]): Buffer {
  const out = Buffer.alloc(bytes.length);
  for (const r of present) bytes.copy(out, r.offset, r.offset, r.offset + r.length);
  return out;
}

async function writeOne(path: string, options: WriterOptions, chunkSize: number, data: Uint8Array | FileRange): Promise<{ bytes: Buffer; length: bigint }> {
  const w = await ImageWriter.create(path, { ...FIXED, ...options, chunkSize });
  const rec = await w.addRegion({ address: 0x7f0000000000n, data });
  await w.addRegion({ address: 0x7f0000000000n + rec.length + 0x10000n, data: memoryLike(2, 9) });
  await w.finish();
  return { bytes: readFileSync(path), length: rec.length };
}

describe('present ranges: the image of the masked bytes, and absent pages never read', () => {
  const PAGES = 1500; // ~6 MiB: several read blocks
  for (const { name, options } of CONFIGS) {
    for (const chunkSize of [4096, 16384, 65536, 1 << 20]) {
      test(`${name}, chunk size ${chunkSize}`, async () => {
        const file = `in-${chunkSize}.bin`;
        const bytes = inputFile(file, PAGES, chunkSize);
        for (let seed = 1; seed <= 4; seed++) {
          // From page 2 of the file: offsets are relative to `position`.
          const region = bytes.subarray(2 * PAGE);
          const present = seed === 4 ? [] : presentRuns(PAGES - 2, seed * 7 + chunkSize);
          const expected = masked(region, present);
          const want = await writeOne(t.path('want.img'), options, chunkSize, expected);
          const asArray = seed % 2 === 1;
          const calls: [number, number][] = [];
          const range: FileRange = {
            path: t.path(file), position: 2 * PAGE, length: region.length, readSize: seed === 2 ? 65536 : undefined,
            present: asArray ? present : (at, len) => {
              calls.push([at, len]);
              // The answer may reach outside the block: the writer ignores those parts.
              return present.filter((r) => r.offset < at + len + 3 * PAGE && r.offset + r.length > at - PAGE);
            },
          };
          const got = await writeOne(t.path('got.img'), options, chunkSize, range);
          expect(got.length).toBe(BigInt(region.length));
          expect(got.bytes.equals(want.bytes)).toBe(true);
          if (!asArray) {
            // Called once per block, in order, blocks of whole chunks covering the range.
            expect(calls[0]![0]).toBe(0);
            for (let i = 1; i < calls.length; i++) expect(calls[i]![0]).toBe(calls[i - 1]![0] + calls[i - 1]![1]);
            expect(calls.at(-1)![0] + calls.at(-1)![1]).toBe(region.length);
            for (const [at] of calls) expect(at % chunkSize).toBe(0);
          }
        }
        const img = await openImage(t.path('got.img'), { key: options.key });
        try {
          expect((await img.verify()).ok).toBe(true);
        } finally {
          await img.close();
        }
      });
    }
  }

  test('a partial range over a file: a present page past the end ends the region there; absent ones never do', async () => {
    const bytes = inputFile('short.bin', 20, 3);
    for (const options of [{}, { compress: 'deflate:1' }]) {
      // Pages 18-19 exist, 20-23 do not: the region ends after page 19.
      const ended = await writeOne(t.path('p1.img'), options, 16384, {
        path: t.path('short.bin'), length: 40 * PAGE, partial: true, present: [{ offset: 0, length: PAGE }, { offset: 18 * PAGE, length: 6 * PAGE }],
      });
      expect(ended.length).toBe(20n * BigInt(PAGE));
      const want1 = await writeOne(t.path('w1.img'), options, 16384, masked(bytes, [{ offset: 0, length: PAGE }, { offset: 18 * PAGE, length: 2 * PAGE }]));
      expect(ended.bytes.equals(want1.bytes)).toBe(true);
      // Everything past the file is absent: never read, so the region has its full length, zeros.
      const whole = await writeOne(t.path('p2.img'), options, 16384, {
        path: t.path('short.bin'), length: 40 * PAGE, partial: true, present: [{ offset: PAGE, length: 2 * PAGE }],
      });
      expect(whole.length).toBe(40n * BigInt(PAGE));
      const want2 = await writeOne(t.path('w2.img'), options, 16384, Buffer.concat([masked(bytes, [{ offset: PAGE, length: 2 * PAGE }]), Buffer.alloc(20 * PAGE)]));
      expect(whole.bytes.equals(want2.bytes)).toBe(true);
    }
  });

  test('bad present ranges are refused, naming the range', async () => {
    writeFileSync(t.path('eight.bin'), Buffer.alloc(8 * PAGE, 1));
    const cases: [unknown, RegExp][] = [
      [[{ offset: 4096, length: 4096 }, { offset: 0, length: 4096 }], /ascending without overlap: range 1 at 0 starts before 8192/],
      [[{ offset: 0, length: 8192 }, { offset: 4096, length: 4096 }], /ascending without overlap/],
      [[{ offset: 100, length: 4096 }], /range 0 \(100, 4096 bytes\) to start and end on pages of 4096 bytes/],
      [[{ offset: 0, length: 100 }], /to start and end on pages/],
      [[{ offset: 0, length: 9 * PAGE }], /within the range's 32768 bytes/],
      [[{ offset: -4096, length: 4096 }], /non-negative safe integers/],
      [[{ offset: 0 }], /non-negative safe integers/],
      ['all', /as an array of \{ offset, length \}/],
    ];
    for (const [present, message] of cases) {
      for (const compress of ['none', 'deflate:1']) {
        const w = await ImageWriter.create(t.path('bad.img'), { ...FIXED, compress });
        await expect(w.addRegion({ address: 0x1000, data: { path: t.path('eight.bin'), present: present as FileRange['present'] } })).rejects.toThrow(message);
      }
    }
    // A function's answers are checked per block too.
    const w = await ImageWriter.create(t.path('bad.img'), { ...FIXED });
    await expect(w.addRegion({ address: 0x1000, data: { path: t.path('eight.bin'), present: () => [{ offset: 10, length: 4096 }] } })).rejects.toThrow(/start and end on pages/);
  });
});

describe('huge file ranges', () => {
  test('64 TiB with only its first two pages present: 4,194,304 records of 16 MiB, streamed, no 64 TiB read', async () => {
    const TIB64 = 64 * 2 ** 40;
    const bytes = inputFile('small.bin', 2, 11);
    for (const options of [{}, { compress: 'deflate:1' }] as WriterOptions[]) {
      const path = t.path('huge.img');
      const t0 = performance.now();
      const w = await ImageWriter.create(path, { ...FIXED, ...options, chunkSize: 16 << 20 });
      // The file has two pages; what lies beyond is absent, so it is never read.
      const rec = await w.addRegion({ address: 0x100000000000n, data: { path: t.path('small.bin'), length: TIB64, present: [{ offset: 0, length: 2 * PAGE }] } });
      const summary = await w.finish();
      expect(performance.now() - t0).toBeLessThan(budget(8000));
      expect(rec.length).toBe(BigInt(TIB64));
      expect(summary.chunks).toBe(4_194_304);
      expect(summary.zeroChunks).toBe(4_194_303);
      expect(statSync(path).size).toBeLessThan(128 << 20); // the table: 96 MiB
      const img = await openImage(path);
      try {
        expect((await img.read(0x100000000000n, 2 * PAGE)).equals(bytes)).toBe(true);
        expect((await img.read(0x100000000000n + BigInt(TIB64) - 4096n, 4096)).equals(Buffer.alloc(4096))).toBe(true);
      } finally {
        await img.close();
      }
    }
  }, 120_000);

  test('a range whose chunks no table can hold is refused before any read or allocation, naming the fix', async () => {
    for (const compress of ['none', 'deflate:1']) {
      const w = await ImageWriter.create(t.path('huge2.img'), { ...FIXED, compress, chunkSize: 4096 });
      const t0 = performance.now();
      await expect(w.addRegion({ address: 0x1000, data: { path: '/dev/zero', length: 64 * 2 ** 40 } })).rejects.toThrow(
        /^expected a region of at most 4294967295 chunks, got 70368744177664 bytes of \/dev\/zero in 4096-byte chunks: use a larger chunk size$/,
      );
      const w1 = await ImageWriter.create(t.path('huge2.img'), { ...FIXED, compress, chunkSize: 4096 });
      await expect(w1.addRegion({ address: 0x1000, data: { path: '/dev/zero', length: 2 ** 40 } })).rejects.toThrow(
        /expected at most 178956970 chunks in an image .*got 0 and 268435456 more of 4096 bytes: use a larger chunk size/,
      );
      expect(performance.now() - t0).toBeLessThan(budget(500));
      const w2 = await ImageWriter.create(t.path('huge2.img'), { ...FIXED, compress });
      await expect(w2.addRegion({ address: 0x1000, data: { path: '/dev/zero', length: 2 ** 53 } })).rejects.toThrow(/expected a positive length of at most 9007199254740991 bytes/);
      const w3 = await ImageWriter.create(t.path('huge2.img'), { ...FIXED, compress });
      await expect(w3.addRegion({ address: 0x1000, data: { path: '/dev/zero', position: 2n ** 64n - 4096n, length: 8192 } })).rejects.toThrow(/within 2\^64 bytes/);
    }
  });
});

describe('/proc/PID/mem of a real process', () => {
  beforeAll(() => ensureBuilt()); // the child maps memory with the built addon

  const MAPPED = 64 << 20;
  const TOUCHED = [5, 6, 7, 1000, 16383];
  /** A child holding 64 MiB of anonymous memory with five pages written, and 8 MiB ending at a hole. */
  const CHILD = `
import { mapAnonymous, addressOf, reserve, unmap } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'build', 'native-mmap', 'index.js')).href)};
const big = mapAnonymous(${MAPPED}, 'rw-');
const v = new Uint8Array(big);
for (const p of ${JSON.stringify(TOUCHED)}) v.fill(p % 251 + 1, p * 4096, p * 4096 + 4096);
const r = reserve(9 << 20);
const low = mapAnonymous(8 << 20, 'rw-', { address: r.address, fixed: true });
new Uint8Array(low)[3 * 4096] = 42;
unmap(r); // the last MiB is no longer mapped: reads there fail with EIO
globalThis.keep = [big, low];
process.stdout.write(addressOf(big) + ' ' + addressOf(low) + '\\n');
process.stdin.resume();
`;

  function rss(pid: number): number {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  }

  async function startChild(): Promise<{ child: ChildProcess; big: bigint; low: bigint }> {
    writeFileSync(t.path('mem-child.mjs'), CHILD);
    const child = spawn(process.execPath, [t.path('mem-child.mjs')], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve(out.trim()); });
      child.on('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    const [big, low] = line.split(' ').map((s) => BigInt(s));
    return { child, big: big!, low: low! };
  }

  test('only present pages are read: the target does not grow, and the image holds what reading everything gives', async () => {
    const { child, big, low } = await startChild();
    try {
      const mem = `/proc/${child.pid}/mem`;
      const present = TOUCHED.map((p) => ({ offset: p * PAGE, length: PAGE }));
      for (const options of [{}, { compress: 'deflate:1' }, { layout: 'sparse' }] as WriterOptions[]) {
        const before = rss(child.pid!);
        const got = await writeOne(t.path('mem.img'), options, 16384, { path: mem, position: big, length: MAPPED, partial: true, present });
        const grew = rss(child.pid!) - before;
        expect(got.length).toBe(BigInt(MAPPED));
        expect(grew).toBeLessThan(1 << 20);
        const img = await openImage(t.path('mem.img'));
        const expected = Buffer.alloc(MAPPED);
        for (const p of TOUCHED) expected.fill(p % 251 + 1, p * PAGE, p * PAGE + PAGE);
        expect((await img.read(0x7f0000000000n, MAPPED)).equals(expected)).toBe(true);
        await img.close();
      }
      // The control: reading everything makes the target's untouched pages resident on this
      // kernel (what the option exists to avoid), and writes the same image content.
      const before = rss(child.pid!);
      await writeOne(t.path('all.img'), {}, 16384, { path: mem, position: big, length: MAPPED, partial: true });
      expect(rss(child.pid!) - before).toBeGreaterThan(MAPPED / 2);
      const all = await openImage(t.path('all.img'));
      const some = await openImage(t.path('mem.img'));
      expect((await all.read(0x7f0000000000n, MAPPED)).equals(await some.read(0x7f0000000000n, MAPPED))).toBe(true);
      await all.close();
      await some.close();

      // 9 MiB from `low`: 8 MiB mapped, then a hole. The hole's pages listed present end the
      // region at 8 MiB (EIO); listed absent, they are never read and the region is 9 MiB.
      for (const compress of ['none', 'deflate:1']) {
        const ended = await writeOne(t.path('low.img'), { compress }, 16384, {
          path: mem, position: low, length: 9 << 20, partial: true, present: [{ offset: 3 * PAGE, length: PAGE }, { offset: 8 << 20, length: 1 << 20 }],
        });
        expect(ended.length).toBe(BigInt(8 << 20));
        const img = await openImage(t.path('low.img'));
        const want = Buffer.alloc(8 << 20);
        want[3 * PAGE] = 42;
        expect((await img.read(0x7f0000000000n, 8 << 20)).equals(want)).toBe(true);
        await img.close();
        const absent = await writeOne(t.path('low2.img'), { compress }, 16384, {
          path: mem, position: low, length: 9 << 20, partial: true, present: [{ offset: 3 * PAGE, length: PAGE }],
        });
        expect(absent.length).toBe(BigInt(9 << 20));
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
});
