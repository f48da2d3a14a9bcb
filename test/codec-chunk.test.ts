/**
 * codec/chunk.ts and format/chunk-form.ts: the per-chunk pipeline (spec/FORMAT.md sections 5.1, 5.3,
 * 6, 7.3). Round trips for every codec x cipher x engine pair, stored forms, form rules,
 * integrity and authentication failures.
 */
import fc from 'fast-check';
import { chunkAad, chunkNonce } from '../codec/aad.js';
import { decodeChunk, encodeChunk, isZero, type DecodeParams, type EncodeParams } from '../codec/chunk.js';
import type { Engine } from '../codec/engine.js';
import { CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_RAW, CHUNK_ZERO, type CipherId, type CodecId } from '../format/constants.js';
import { chunkFormProblem } from '../format/chunk-form.js';
import { xxh64 } from '../codec/checksum.js';
import { CrimgError } from '../format/errors.js';
import { rng, memoryLike } from './codec-fixture.js';
import { loadPortableEngine } from '../codec/portable.js';

// The portable engine's primitives are called directly here: load its libraries first.
await loadPortableEngine();

const ENGINES: Engine[] = ['node', 'portable'];
const CODECS: CodecId[] = [0, 1];
const CIPHERS: CipherId[] = [0, 1, 2];


const dataKey = Uint8Array.from({ length: 32 }, (_, i) => 200 - i);
const imageId = Uint8Array.from({ length: 16 }, (_, i) => i);
const headerHash = Uint8Array.from({ length: 32 }, (_, i) => 100 + i);

interface Place {
  chunkNumber?: number;
  regionNumber?: number;
  address?: bigint;
  last?: boolean;
}

/** Nonce and AAD of a chunk, as the writer and reader build them. */
function sealing(plainLength: number, at: Place = {}) {
  const c = at.chunkNumber ?? 5;
  return {
    dataKey,
    nonce: chunkNonce(c),
    aad: chunkAad({
      imageId,
      headerHash,
      chunkNumber: c,
      regionNumber: at.regionNumber ?? 2,
      plainLength,
      address: at.address ?? 0x7f0000010000n,
      encoded: false, // set by encodeChunk / decodeChunk from the form
      last: at.last ?? false,
    }),
  };
}

function encodeParams(codec: CodecId, cipher: CipherId, plainLength: number, engine: Engine, at?: Place): EncodeParams {
  return { codec, level: 1, cipher, engine, ...(cipher ? sealing(plainLength, at) : {}) };
}

function decodeParams(
  r: { flags: number; checksum: bigint },
  codec: number,
  cipher: number,
  plainLength: number,
  engine: Engine,
  at?: Place,
): DecodeParams {
  return { flags: r.flags, checksum: r.checksum, plainLength, codec, cipher, engine, ...(cipher ? sealing(plainLength, at) : {}) };
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CrimgError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('round trips', () => {
  test('property: every codec x cipher x encode engine x decode engine', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.integer({ min: 1, max: 70_000 }), fc.integer()).map(([n, seed]) => memoryLike(n, seed)),
          fc.uint8Array({ minLength: 1, maxLength: 3000 }),
          fc.integer({ min: 1, max: 9000 }).map((n) => new Uint8Array(n)),
        ),
        fc.constantFrom(...CODECS),
        fc.constantFrom(...CIPHERS),
        fc.constantFrom(...ENGINES),
        fc.constantFrom(...ENGINES),
        (plain, codec, cipher, enc, dec) => {
          const r = encodeChunk(plain, encodeParams(codec, cipher, plain.length, enc));
          expect(r.checksum).toBe(r.flags & CHUNK_ZERO ? 0n : xxh64(r.stored));
          expect(chunkFormProblem({ flags: r.flags, storedLength: r.stored.length, plainLength: plain.length, codec, cipher, checksum: r.checksum })).toBeUndefined();
          const back = decodeChunk(r.stored, decodeParams(r, codec, cipher, plain.length, dec));
          expect(Buffer.from(back).equals(plain)).toBe(true);
        },
      ),
      { seed: 0xc4a4c, numRuns: 300 },
    );
  });

  test('every combination on a 64 KiB memory-like chunk, ciphertext identical across engines', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const plain = memoryLike(65536, seed);
      for (const codec of CODECS) {
        for (const cipher of CIPHERS) {
          const results = ENGINES.map((e) => encodeChunk(plain, encodeParams(codec, cipher, plain.length, e)));
          expect(results[0]!.flags).toBe(results[1]!.flags);
          if (codec === 0) expect(results[0]!.checksum).toBe(results[1]!.checksum); // same bytes without deflate
          for (const r of results) {
            for (const dec of ENGINES) {
              expect(Buffer.from(decodeChunk(r.stored, decodeParams(r, codec, cipher, plain.length, dec))).equals(plain)).toBe(true);
            }
          }
        }
      }
    }
  });
});

describe('stored forms (spec section 5.1)', () => {
  test('all zero -> ZERO, nothing stored, checksum 0; decodes to zeros', () => {
    for (const cipher of CIPHERS) {
      const r = encodeChunk(new Uint8Array(65536), encodeParams(1, cipher, 65536, 'node'));
      expect(r).toEqual({ stored: new Uint8Array(0), flags: CHUNK_ZERO, checksum: 0n });
      const back = decodeChunk(r.stored, decodeParams(r, 1, cipher, 65536, 'node'));
      expect(back.length).toBe(65536);
      expect(isZero(back)).toBe(true);
    }
  });

  test('compressible -> ENCODED, incompressible -> RAW, no codec -> RAW (the same bytes)', () => {
    const text = new TextEncoder().encode('abcabcabc'.repeat(1000));
    expect(encodeChunk(text, encodeParams(1, 0, text.length, 'node')).flags).toBe(CHUNK_ENCODED);
    const r = rng(3);
    const random = Uint8Array.from({ length: 4096 }, () => r() & 255);
    for (const engine of ENGINES) {
      const raw = encodeChunk(random, encodeParams(1, 0, random.length, engine));
      expect(raw.flags).toBe(CHUNK_RAW);
      expect(raw.stored).toBe(random);
    }
    const none = encodeChunk(text, encodeParams(0, 0, text.length, 'node'));
    expect(none.flags).toBe(CHUNK_RAW);
    expect(Buffer.from(none.stored).equals(text)).toBe(true);
  });

  test('with a cipher: ENCRYPTED, tag appended, AAD form byte follows the chosen form', () => {
    const text = new TextEncoder().encode('xyz'.repeat(3000));
    const r = encodeChunk(text, encodeParams(1, 2, text.length, 'node'));
    expect(r.flags).toBe(CHUNK_ENCODED | CHUNK_ENCRYPTED);
    const one = new Uint8Array(100).fill(1);
    const raw = encodeChunk(one, encodeParams(0, 1, 100, 'node'));
    expect(raw.flags).toBe(CHUNK_RAW | CHUNK_ENCRYPTED);
    expect(raw.stored.length).toBe(116);
    // a reader that flips the form in the flags (and so in the AAD) fails authentication
    const flipped = { ...r, flags: CHUNK_RAW | CHUNK_ENCRYPTED };
    const p = decodeParams(flipped, 1, 2, r.stored.length - 16, 'node');
    expect(code(() => decodeChunk(r.stored, { ...p, verifyChecksum: true }))).toBe('AUTH_FAILED');
  });

  test('isZero: unaligned views, a single non-zero byte anywhere, sizes up to 16 MiB', () => {
    const buf = new Uint8Array(70_000);
    expect(isZero(buf.subarray(3, 65539))).toBe(true);
    for (const i of [0, 1, 4095, 32768, 65535]) {
      const v = buf.subarray(3, 65539);
      v[i] = 1;
      expect(isZero(v)).toBe(false);
      v[i] = 0;
    }
    expect(isZero(new Uint8Array(16 * 1024 * 1024))).toBe(true);
    expect(isZero(new Uint8Array(0))).toBe(true);
    expect(() => isZero(new Uint8Array(16 * 1024 * 1024 + 1))).toThrow(RangeError);
  });
});

describe('failures', () => {
  const plain = memoryLike(65536, 42);

  test('a damaged stored byte is CORRUPT_CHUNK (checked first, without a key)', () => {
    for (const cipher of CIPHERS) {
      const r = encodeChunk(plain, encodeParams(1, cipher, plain.length, 'node'));
      const bad = r.stored.slice();
      bad[bad.length >> 1]! ^= 4;
      const p = decodeParams(r, 1, cipher, plain.length, 'node');
      expect(code(() => decodeChunk(bad, { ...p, dataKey: new Uint8Array(32) }))).toBe('CORRUPT_CHUNK');
      if (cipher) expect(code(() => decodeChunk(bad, { ...p, verifyChecksum: false }))).toBe('AUTH_FAILED');
    }
  });

  test('moving a sealed chunk (number, region, address, last flag) or the wrong key is AUTH_FAILED', () => {
    for (const cipher of [1, 2] as CipherId[]) {
      for (const engine of ENGINES) {
        const at = { chunkNumber: 7, regionNumber: 1, address: 0x10000n, last: false };
        const r = encodeChunk(plain, encodeParams(1, cipher, plain.length, engine, at));
        expect(Buffer.from(decodeChunk(r.stored, decodeParams(r, 1, cipher, plain.length, engine, at))).equals(plain)).toBe(true);
        for (const moved of [{ chunkNumber: 8 }, { regionNumber: 2 }, { address: 0x20000n }, { last: true }]) {
          expect(code(() => decodeChunk(r.stored, decodeParams(r, 1, cipher, plain.length, engine, { ...at, ...moved })))).toBe('AUTH_FAILED');
        }
        const p = decodeParams(r, 1, cipher, plain.length, engine, at);
        expect(code(() => decodeChunk(r.stored, { ...p, dataKey: dataKey.map((x) => x ^ 1) }))).toBe('AUTH_FAILED');
        // a different cipher id than the one sealed
        expect(code(() => decodeChunk(r.stored, { ...p, cipher: cipher === 1 ? 2 : 1 }))).toBe('AUTH_FAILED');
      }
    }
  });

  test('a wrong plain length makes decode fail (CORRUPT_CHUNK unsealed, AUTH_FAILED sealed)', () => {
    const r = encodeChunk(plain, encodeParams(1, 0, plain.length, 'node'));
    expect(code(() => decodeChunk(r.stored, decodeParams(r, 1, 0, plain.length + 1, 'portable')))).toBe('CORRUPT_CHUNK');
    expect(code(() => decodeChunk(r.stored, decodeParams(r, 1, 0, plain.length - 1, 'node')))).toBe('CORRUPT_CHUNK');
    const s = encodeChunk(plain, encodeParams(1, 1, plain.length, 'node'));
    expect(code(() => decodeChunk(s.stored, decodeParams(s, 1, 1, plain.length - 1, 'node')))).toBe('AUTH_FAILED');
  });

  test('records that break the rules of section 5.3 are CORRUPT_INDEX', () => {
    const raw = encodeChunk(plain, encodeParams(0, 0, plain.length, 'node'));
    const enc = encodeChunk(plain, encodeParams(1, 0, plain.length, 'node'));
    const cases: Array<[Uint8Array, Partial<DecodeParams>]> = [
      [raw.stored, { flags: CHUNK_RAW | CHUNK_ENCODED }], // two forms
      [raw.stored, { flags: 0 }], // no form
      [raw.stored, { flags: CHUNK_RAW | 0x10 }], // reserved bit
      [raw.stored, { flags: CHUNK_RAW | CHUNK_ENCRYPTED }], // encrypted without cipher
      [raw.stored, { plainLength: plain.length - 1 }], // raw length != plain length
      [enc.stored, { codec: 0 }], // encoded without codec
      [enc.stored, { flags: CHUNK_ENCODED, plainLength: enc.stored.length }], // encoded not smaller
      [new Uint8Array(1), { flags: CHUNK_ZERO, checksum: 0n }], // zero with bytes
      [new Uint8Array(0), { flags: CHUNK_ZERO, checksum: 1n }], // zero with a checksum
      [new Uint8Array(0), { flags: CHUNK_ZERO | CHUNK_ENCRYPTED, checksum: 0n, cipher: 1 }],
      [raw.stored, { cipher: 1 }], // not encrypted in an image with a cipher
    ];
    for (const [stored, over] of cases) {
      const base = decodeParams(stored === raw.stored ? raw : enc, 1, 0, plain.length, 'node');
      expect(code(() => decodeChunk(stored, { ...base, ...over }))).toBe('CORRUPT_INDEX');
    }
  });

  test('unknown ids are UNSUPPORTED_FEATURE', () => {
    const enc = encodeChunk(plain, encodeParams(1, 0, plain.length, 'node'));
    expect(code(() => decodeChunk(enc.stored, decodeParams(enc, 3, 0, plain.length, 'node')))).toBe('UNSUPPORTED_FEATURE');
    const sealed = encodeChunk(plain, encodeParams(0, 1, plain.length, 'node'));
    expect(code(() => decodeChunk(sealed.stored, decodeParams(sealed, 0, 3, plain.length, 'node')))).toBe('UNSUPPORTED_FEATURE');
  });

  test('errors carry the chunk location when given', () => {
    const r = encodeChunk(plain, encodeParams(1, 2, plain.length, 'node'));
    const p = decodeParams(r, 1, 2, plain.length, 'node');
    const at = { chunk: 5, region: 2, offset: 8192, address: 0x7f0000010000n };
    for (const [stored, params] of [
      [r.stored, { ...p, at, dataKey: new Uint8Array(32) }],
      [r.stored.subarray(1), { ...p, at }],
      [r.stored, { ...p, at, flags: 0 }],
    ] as Array<[Uint8Array, DecodeParams]>) {
      try {
        decodeChunk(stored, params);
        throw new Error('expected an error');
      } catch (e) {
        const err = e as CrimgError;
        expect(err).toBeInstanceOf(CrimgError);
        expect(err.message).toMatch(/^chunk 5: .* \(at file offset 8192\); /);
        expect(err.chunk).toBe(5);
        expect(err.region).toBe(2);
        expect(err.address).toBe(0x7f0000010000n);
      }
    }
  });
});

describe('misuse', () => {
  const p = new Uint8Array(10).fill(1);
  test('encode', () => {
    expect(() => encodeChunk(new Uint8Array(0), { codec: 0, level: 0, cipher: 0 })).toThrow(RangeError);
    expect(() => encodeChunk(p, { codec: 1, level: 0, cipher: 0 })).toThrow(/expected level to be an integer from 1 to 9, got 0/);
    expect(() => encodeChunk(p, { codec: 3 as CodecId, level: 1, cipher: 0 })).toThrow(RangeError);
    expect(() => encodeChunk(p, { codec: 0, level: 1, cipher: 1 })).toThrow(/expected dataKey to be a Uint8Array of 32 bytes, got undefined/);
    expect(() => encodeChunk(p, { codec: 0, level: 1, cipher: 1, ...sealing(10), aad: new Uint8Array(65) })).toThrow(RangeError);
    expect(() => encodeChunk(p, null as unknown as EncodeParams)).toThrow(TypeError);
    expect(() => encodeChunk('p' as unknown as Uint8Array, { codec: 0, level: 1, cipher: 0 })).toThrow(TypeError);
  });
  test('decode', () => {
    const base: DecodeParams = { flags: CHUNK_RAW, plainLength: 10, checksum: xxh64(p), codec: 0, cipher: 0 };
    expect(decodeChunk(p, base)).toBe(p);
    expect(() => decodeChunk(p, { ...base, checksum: 1 as unknown as bigint })).toThrow(TypeError);
    expect(() => decodeChunk(p, { ...base, plainLength: 0 })).toThrow(RangeError);
    expect(() => decodeChunk(p, { ...base, engine: 'fast' as Engine })).toThrow(RangeError);
  });
});
