/**
 * codec/deflate.ts: raw DEFLATE per chunk (spec/FORMAT.md section 6, codec id 1), bounded
 * decoding (section 5.3), and node <-> portable interoperability.
 */
import { deflateRaw, deflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { NativeDeflater, deflateDecode, deflateEncode, deflatePagesAsync, storedBlocks } from '../codec/deflate.js';
import type { Engine } from '../codec/engine.js';
import { isCrimgError } from '../format/errors.js';
import { rng, memoryLike } from './codec-fixture.js';
import { loadPortableEngine } from '../codec/portable.js';
import { budget } from './machine.js';

// The portable engine's primitives are called directly here: load its libraries first.
await loadPortableEngine();

const ENGINES: Engine[] = ['node', 'portable'];
const LEVELS = [1, 2, 3, 4, 5, 6, 7, 8, 9];

/** Deterministic xorshift32. */

const INPUTS: Array<[string, Uint8Array]> = [
  ['one byte', Uint8Array.of(7)],
  ['zero page', new Uint8Array(4096)],
  ['random page', (() => { const r = rng(1); return Uint8Array.from({ length: 4096 }, () => r() & 255); })()],
  ['text', new TextEncoder().encode('the quick brown fox jumps over the lazy dog\n'.repeat(500))],
  ['memory-like 64 KiB a', memoryLike(65536, 11)],
  ['memory-like 64 KiB b', memoryLike(65536, 12)],
  ['memory-like 200 KiB odd length', memoryLike(200_001, 13)],
];

describe('deflateEncode / deflateDecode', () => {
  test.each(ENGINES)('%s engine round-trips every input at every level', (engine) => {
    for (const [, plain] of INPUTS) {
      for (const level of LEVELS) {
        const encoded = deflateEncode(plain, level, engine);
        expect(Buffer.from(deflateDecode(encoded, plain.length, engine)).equals(plain)).toBe(true);
      }
    }
  });

  test('each engine decodes the other engine\'s streams byte for byte, all levels', () => {
    for (const [name, plain] of INPUTS) {
      for (const level of LEVELS) {
        for (const [enc, dec] of [['node', 'portable'], ['portable', 'node']] as Array<[Engine, Engine]>) {
          const encoded = deflateEncode(plain, level, enc);
          const decoded = deflateDecode(encoded, plain.length, dec);
          if (!Buffer.from(decoded).equals(plain)) throw new Error(`${name} level ${level}: ${enc} -> ${dec} differs`);
        }
      }
    }
  });

  test('property: random memory-like data round-trips across engines', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70_000 }), fc.integer(), fc.integer({ min: 1, max: 9 }), (size, seed, level) => {
        const plain = memoryLike(size, seed);
        for (const enc of ENGINES) {
          const encoded = deflateEncode(plain, level, enc);
          for (const dec of ENGINES) expect(Buffer.from(deflateDecode(encoded, size, dec)).equals(plain)).toBe(true);
        }
      }),
      { seed: 0x0def1a7e, numRuns: 40 },
    );
  });

  test('unaligned views in and out', () => {
    const big = memoryLike(70_000, 5);
    const plain = big.subarray(3, 3 + 65536);
    for (const enc of ENGINES) {
      const encoded = deflateEncode(plain, 1, enc);
      const shifted = new Uint8Array(encoded.length + 1);
      shifted.set(encoded, 1);
      for (const dec of ENGINES) {
        expect(Buffer.from(deflateDecode(shifted.subarray(1), plain.length, dec)).equals(plain)).toBe(true);
      }
    }
  });

  test('the two engines make different but interchangeable streams', () => {
    const plain = memoryLike(65536, 99);
    const a = deflateEncode(plain, 6, 'node');
    const b = deflateEncode(plain, 6, 'portable');
    expect(Buffer.from(a).equals(b)).toBe(false); // if this ever holds, the note in deflate.ts is stale
  });
});

describe('bounded decoding (spec section 5.3: exactly the plain length)', () => {
  const expectCorrupt = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(isCrimgError(e, 'CORRUPT_CHUNK')).toBe(true);
      return e as Error;
    }
    throw new Error('expected CORRUPT_CHUNK');
  };

  test.each(ENGINES)('%s: a small stream that inflates past plainLength is refused quickly', (engine) => {
    const bomb = deflateRawSync(new Uint8Array(16 * 1024 * 1024), { level: 9 }); // ~16 KiB -> 16 MiB
    expect(bomb.length).toBeLessThan(20_000);
    const t0 = performance.now();
    const e = expectCorrupt(() => deflateDecode(bomb, 65536, engine));
    expect(e.message).toMatch(/more than the plain length of 65536/);
    expect(performance.now() - t0).toBeLessThan(budget(2000));
  });

  test.each(ENGINES)('%s: one byte too many or too few is refused', (engine) => {
    const plain = memoryLike(10_000, 3);
    const encoded = deflateEncode(plain, 1, engine);
    expectCorrupt(() => deflateDecode(encoded, 9_999, engine));
    expect(expectCorrupt(() => deflateDecode(encoded, 10_001, engine)).message).toMatch(/decodes to 10000 bytes, expected 10001/);
  });

  test.each(ENGINES)('%s: truncated, empty and garbage streams are refused', (engine) => {
    const plain = memoryLike(65536, 4);
    const encoded = deflateEncode(plain, 1, engine);
    expectCorrupt(() => deflateDecode(encoded.subarray(0, encoded.length >> 1), 65536, engine));
    expectCorrupt(() => deflateDecode(encoded.subarray(0, encoded.length - 1), 65536, engine));
    expectCorrupt(() => deflateDecode(new Uint8Array(0), 65536, engine));
    expectCorrupt(() => deflateDecode(Uint8Array.of(0xff, 0xff, 0xff, 0xff), 65536, engine));
  });

  test('property: any bytes decode to exactly plainLength or throw CORRUPT_CHUNK, both engines', () => {
    const valid = deflateEncode(memoryLike(8192, 8), 1, 'node');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 0, maxLength: 300 }),
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
            const m = valid.slice();
            m[i] = m[i]! ^ x;
            return m;
          }),
        ),
        fc.integer({ min: 1, max: 9000 }),
        (bytes, plainLength) => {
          for (const engine of ENGINES) {
            try {
              expect(deflateDecode(bytes, plainLength, engine).length).toBe(plainLength);
            } catch (e) {
              if (!isCrimgError(e, 'CORRUPT_CHUNK')) throw e;
            }
          }
        },
      ),
      { seed: 0xb0b, numRuns: 300 },
    );
  });
});

describe('misuse', () => {
  test('levels outside 1..9, non-integers, wrong types, oversize, unknown engine', () => {
    const p = new Uint8Array(10);
    expect(() => deflateEncode(p, 0)).toThrow(RangeError);
    expect(() => deflateEncode(p, 10)).toThrow(/expected level to be an integer from 1 to 9, got 10/);
    expect(() => deflateEncode(p, 1.5)).toThrow(RangeError);
    expect(() => deflateEncode(p, '1' as unknown as number)).toThrow(TypeError);
    expect(() => deflateEncode([1, 2] as unknown as Uint8Array, 1)).toThrow(TypeError);
    expect(() => deflateEncode(new Uint8Array(16 * 1024 * 1024 + 1), 1)).toThrow(RangeError);
    expect(() => deflateEncode(p, 1, 'zstd' as Engine)).toThrow(/expected engine to be one of "node", "portable", got "zstd"/);
    expect(() => deflateDecode(p, 0)).toThrow(RangeError);
    expect(() => deflateDecode(p, 16 * 1024 * 1024 + 1)).toThrow(RangeError);
    expect(() => deflateDecode('x' as unknown as Uint8Array, 1)).toThrow(TypeError);
  });
});

describe('mixed chunks: deflated runs and stored blocks in one stream', () => {
  const decode = deflateDecode;
  test.each([
    ['random, compressible, random', [true, false, true], 3 * 4096],
    ['compressible then random', [false, true], 2 * 4096],
    ['random then compressible with a partial page', [true, false], 4096 + 1000],
    ['a long random run (stored blocks over 64 KiB)', Array.from({ length: 20 }, (_, i) => i !== 0), 20 * 4096],
  ])('%s decodes with both engines', async (_name, random, size) => {
    const plain = memoryLike(size, 77);
    const r = rng(5);
    (random as boolean[]).forEach((isRandom, p) => {
      const end = Math.min(size, (p + 1) * 4096);
      for (let i = p * 4096; i < end; i++) plain[i] = isRandom ? r() & 0xff : (i % 7);
    });
    for (const level of [1, 9]) {
      const enc = await deflatePagesAsync(plain, level, random as boolean[]);
      for (const engine of ['node', 'portable'] as const) expect(Buffer.from(decode(enc, size, engine)).equals(Buffer.from(plain))).toBe(true);
    }
  });
  test('stored blocks alone are a valid final stream', () => {
    const bytes = memoryLike(70000, 3);
    for (const engine of ['node', 'portable'] as const) expect(Buffer.from(deflateDecode(storedBlocks(bytes, true), 70000, engine)).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('NativeDeflater (the addon over Node\'s zlib): the same bits as node:zlib, batched', () => {
  test('every chunk of memory-like data, whole or with random pages kept stored, at levels 1, 6, 9', async () => {
    const deflateRawAsync = promisify(deflateRaw) as (b: Uint8Array, o: { level: number }) => Promise<Buffer>;
    for (const level of [1, 6, 9]) {
      const native = NativeDeflater.create(level);
      expect(native).not.toBeNull();
      const r = rng(level);
      const chunks: { plain: Uint8Array; random: boolean[] | null }[] = [];
      for (let i = 0; i < 120; i++) {
        const size = [16384, 16384, 4096, 16384 - 1000, 65536, 100][i % 6]!;
        const plain = memoryLike(size, 1000 + i);
        const pages = Math.floor(size / 4096);
        let random: boolean[] | null = null;
        if (i % 3 === 1 && pages > 1) {
          random = Array.from({ length: pages }, (_, p) => p % 2 === (i & 1));
          random.forEach((isRandom, p) => { if (isRandom) for (let k = p * 4096; k < (p + 1) * 4096; k++) plain[k] = r() & 0xff; });
        }
        if (i % 11 === 5) for (let k = 0; k < size; k++) plain[k] = r() & 0xff; // incompressible: null
        chunks.push({ plain, random });
      }
      // Submitted in one synchronous stretch: several batches of the pool in flight at once.
      const got = await Promise.all(chunks.map((c) => native!.deflate(c.plain, c.random)));
      for (const [i, c] of chunks.entries()) {
        const want = c.random ? await deflatePagesAsync(c.plain, level, c.random) : await deflateRawAsync(c.plain, { level });
        if (want.byteLength < c.plain.byteLength) {
          expect(got[i]).not.toBeNull();
          expect(Buffer.from(got[i]!).equals(want)).toBe(true);
        } else {
          expect(got[i]).toBeNull();
        }
      }
    }
  });
});
