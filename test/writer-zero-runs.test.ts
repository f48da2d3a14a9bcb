/**
 * Zero runs without bytes (image/_chunk-stream.ts ZeroRun; issue 14 item 5): region data may
 * say "N zero bytes here" as `{ zeros: N }`. The image must be byte for byte the one the same
 * zeros given as bytes make, in every layout, codec and cipher, at every chunk size and every
 * alignment of a run against chunks; and a TiB of zeros must cost records, not bytes.
 */
import { readFileSync, statSync } from 'node:fs';
import { ImageWriter, openImage, type WriterOptions } from '../index.js';
import type { RegionPiece, ZeroRun } from '../image/index.js';
import { memoryLike, prng, tempDir } from './helpers.js';
import { budget } from './machine.js';

const t = tempDir();
afterAll(() => t.cleanup());

const KEY = new Uint8Array(32).fill(9);
const FIXED: WriterOptions = {
  imageId: new Uint8Array(16).fill(3), salt: new Uint8Array(16).fill(4), created: 1_700_000_000_000n,
  validation: { architecture: 'x86_64' }, fsync: false,
};
const CONFIGS: { name: string; options: WriterOptions }[] = [
  { name: 'raw compact', options: {} },
  { name: 'raw sparse', options: { layout: 'sparse' } },
  { name: 'deflate', options: { compress: 'deflate:1' } },
  { name: 'deflate, aes-256-gcm', options: { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY } },
  { name: 'chacha20-poly1305, worker pool', options: { encrypt: 'chacha20-poly1305', key: KEY, workers: 1 } },
  { name: 'raw, portable engine', options: { engine: 'portable' } },
];

/** A region as pieces: bytes (some of them zero pages) and zero runs, at seeded lengths. */
function layout(seed: number, chunkSize: number): { pieces: RegionPiece[]; bytes: Buffer } {
  const rnd = prng(seed);
  const pieces: RegionPiece[] = [];
  const parts: Buffer[] = [];
  let total = 0;
  const count = 3 + Math.floor(rnd() * 10);
  for (let i = 0; i < count; i++) {
    // Lengths around chunk boundaries: part chunks, whole chunks, several chunks, odd bytes.
    const choices = [1, 7, 4096, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize, 3 * chunkSize + 4095];
    const n = choices[Math.floor(rnd() * choices.length)]!;
    if (rnd() < 0.5) {
      pieces.push({ zeros: n });
      parts.push(Buffer.alloc(n));
    } else {
      const b = memoryLike(Math.ceil(n / 4096), Math.floor(rnd() * 1e9)).subarray(0, n);
      pieces.push(b);
      parts.push(b);
    }
    total += n;
  }
  // Regions end on a page: the last piece is a run of zeros or bytes.
  const pad = (4096 - (total % 4096)) % 4096;
  if (pad > 0) {
    if (rnd() < 0.5) pieces.push({ zeros: pad }); else pieces.push(Buffer.alloc(pad, 0x5a));
    parts.push(pieces[pieces.length - 1] instanceof Uint8Array ? (pieces[pieces.length - 1] as Buffer) : Buffer.alloc(pad));
  }
  return { pieces, bytes: Buffer.concat(parts) };
}

/** Writes `regions` (each a list of pieces) and returns the file's bytes. */
async function write(path: string, options: WriterOptions, chunkSize: number, regions: RegionPiece[][], asAsync: boolean): Promise<Buffer> {
  const w = await ImageWriter.create(path, { ...FIXED, ...options, chunkSize });
  let address = 0x7f0000000000n;
  for (const pieces of regions) {
    const data = asAsync ? (async function* () { for (const p of pieces) yield p; })() : pieces;
    const rec = await w.addRegion({ address, data });
    address += rec.length + 0x10000n;
  }
  await w.finish();
  return readFileSync(path);
}

describe('a zero run writes the image its zeros as bytes write', () => {
  for (const { name, options } of CONFIGS) {
    for (const chunkSize of [4096, 16384, 65536]) {
      test(`${name}, chunk size ${chunkSize}`, async () => {
        for (let seed = 1; seed <= 6; seed++) {
          // Three regions: the seeded layout, one that is only zeros, one that ends in a run.
          const a = layout(seed * 31 + chunkSize, chunkSize);
          const regions: RegionPiece[][] = [
            a.pieces,
            [{ zeros: 5 * chunkSize + 8192 }],
            [memoryLike(3, seed), { zeros: chunkSize - 4096 }, { zeros: 0 }, { zeros: 4096 }, { zeros: 2 * chunkSize }],
          ];
          const asBytes = regions.map((pieces) => pieces.map((p) => (p instanceof Uint8Array ? p : new Uint8Array((p as ZeroRun).zeros))));
          const expected = await write(t.path(`bytes-${seed}.img`), options, chunkSize, asBytes, false);
          const got = await write(t.path(`runs-${seed}.img`), options, chunkSize, regions, seed % 2 === 0);
          expect(got.equals(expected)).toBe(true);
          const img = await openImage(t.path(`runs-${seed}.img`), { key: options.key });
          try {
            expect((await img.verify()).ok).toBe(true);
            expect((await img.read(img.regions[0]!.address, a.bytes.length)).equals(a.bytes)).toBe(true);
          } finally {
            await img.close();
          }
        }
      });
    }
  }
});

describe('a TiB of zeros costs records, not bytes', () => {
  const TIB = 2 ** 40;
  const CHUNK = 16 * 1024 * 1024;
  for (const { name, options } of CONFIGS.slice(0, 4)) {
    test(`${name}: 65,536 zero records between two pages of data, in bounded time and memory`, async () => {
      const path = t.path(`tib-${name.replace(/\W+/g, '-')}.img`);
      const head = memoryLike(1, 1);
      head[0] = 1;
      const tail = Buffer.alloc(4096, 0xab);
      const rss0 = process.memoryUsage().rss;
      const t0 = performance.now();
      const w = await ImageWriter.create(path, { ...FIXED, ...options, chunkSize: CHUNK });
      const rec = await w.addRegion({ address: 0x100000000000n, data: [head, { zeros: TIB }, tail] });
      const summary = await w.finish();
      const ms = performance.now() - t0;
      const grew = process.memoryUsage().rss - rss0;
      expect(rec.length).toBe(BigInt(TIB + 8192));
      // The head and tail share their chunks with the run: 65,536 + 1 chunks, two of them stored.
      expect(summary.chunks).toBe(TIB / CHUNK + 1);
      expect(summary.zeroChunks).toBe(TIB / CHUNK - 1);
      expect(summary.plainBytes).toBe(TIB + 8192);
      if (options.layout === 'sparse') expect(statSync(path).size).toBeGreaterThan(TIB);
      else expect(statSync(path).size).toBeLessThan(2 * CHUNK + 2 * 1024 * 1024);
      expect(ms).toBeLessThan(budget(1500));
      // Two edge chunks of 16 MiB, the table (1.5 MiB) and the encoder's buffers at most.
      expect(grew).toBeLessThan(160 * 1024 * 1024);
      const img = await openImage(path, { key: options.key });
      try {
        const at = img.regions[0]!.address;
        expect((await img.read(at, 4096)).equals(head)).toBe(true);
        expect((await img.read(at + BigInt(TIB) + 4096n, 4096)).equals(tail)).toBe(true);
        expect((await img.read(at + BigInt(TIB / 2), 4096)).equals(Buffer.alloc(4096))).toBe(true);
      } finally {
        await img.close();
      }
    });
  }

  test('4 KiB chunks for 64 TiB of zeros: refused before any table memory, naming the fix', async () => {
    const w = await ImageWriter.create(t.path('huge.img'), { ...FIXED });
    await expect(w.addRegion({ address: 0x100000000000n, data: [{ zeros: 64 * TIB }] })).rejects.toThrow(
      /expected at most 178956970 chunks in an image .* use a larger chunk size/,
    );
  });

  test('bad zero runs are refused', async () => {
    for (const [piece, message] of [
      [{ zeros: -1 }, /non-negative safe integer/],
      [{ zeros: 1.5 }, /non-negative safe integer/],
      [{ zeros: 2 ** 53 }, /non-negative safe integer/],
      [{ zeros: '4096' }, /non-negative safe integer/],
      [{ length: 4096 }, /as Uint8Array, \{ zeros: number \} or \{ sameAsParent: number \}/],
      [null, /got null/],
    ] as const) {
      const w = await ImageWriter.create(t.path('bad.img'), { ...FIXED });
      await expect(w.addRegion({ address: 0x1000, data: [piece as unknown as RegionPiece] })).rejects.toThrow(message);
    }
  });
});
