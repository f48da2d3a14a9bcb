/**
 * The addon's streaming XXH64 (xxh64Init/Update/Digest, native-mmap/src/scan.cc), which checks a
 * large region section read piece by piece (image/_region-file.ts): for every way of cutting
 * the bytes into pieces it must equal the one-shot XXH64 of both engines (native and
 * xxhash-wasm, the format's portable checksum), and a state it did not make must not make it
 * write out of bounds.
 */
import { nativeAddon } from '../native-mmap/index.js';
import { xxh64Wasm } from '../codec/checksum.js';
import { prng } from './helpers.js';

const native = nativeAddon()!;

function streamed(bytes: Uint8Array, cuts: number[]): bigint {
  const state = new Uint8Array(80);
  native.xxh64Init(state);
  let at = 0;
  for (const n of cuts) {
    native.xxh64Update(state, bytes.subarray(at, at + n));
    at += n;
  }
  native.xxh64Update(state, bytes.subarray(at));
  return native.xxh64Digest(state);
}

test('every length 0..300 in pieces of every size 1..40: the one-shot XXH64 of both engines', () => {
  const rnd = prng(64);
  const all = Uint8Array.from({ length: 300 }, () => Math.floor(rnd() * 256));
  for (let len = 0; len <= 300; len++) {
    const bytes = all.subarray(0, len);
    const want = xxh64Wasm(bytes);
    expect(native.xxh64(bytes)).toBe(want);
    for (let piece = 1; piece <= 40; piece++) {
      const cuts = Array.from({ length: Math.floor(len / piece) }, () => piece);
      expect({ len, piece, got: streamed(bytes, cuts) }).toEqual({ len, piece, got: want });
    }
  }
});

test('1 MiB in 200 random cuts (empty pieces too), 50 times: the one-shot XXH64', () => {
  const rnd = prng(65);
  const bytes = Uint8Array.from({ length: 1 << 20 }, () => Math.floor(rnd() * 256));
  const want = xxh64Wasm(bytes);
  for (let k = 0; k < 50; k++) {
    const cuts = Array.from({ length: 200 }, () => (rnd() < 0.1 ? 0 : Math.floor(rnd() * 10000)));
    expect({ k, got: streamed(bytes, cuts) }).toEqual({ k, got: want });
  }
});

test('the digest leaves the state as it was; a state of garbage or the wrong size is handled', () => {
  const state = new Uint8Array(80);
  native.xxh64Init(state);
  native.xxh64Update(state, new Uint8Array(45).fill(7));
  const d = native.xxh64Digest(state);
  expect(native.xxh64Digest(state)).toBe(d);
  native.xxh64Update(state, new Uint8Array(0));
  expect(native.xxh64Digest(state)).toBe(d);
  // Garbage states (a buffered count up to 0xffffffff): a hash, and no byte written outside the
  // state's 80 bytes (canaries on both sides).
  const rnd = prng(66);
  for (let k = 0; k < 500; k++) {
    const frame = new Uint8Array(96).fill(0xa5);
    const junk = frame.subarray(8, 88);
    for (let i = 0; i < 80; i++) junk[i] = k === 0 ? 0xff : Math.floor(rnd() * 256);
    native.xxh64Update(junk, new Uint8Array(Math.floor(rnd() * 200)).fill(1));
    expect(typeof native.xxh64Digest(junk)).toBe('bigint');
    expect({ k, before: [...frame.subarray(0, 8)], after: [...frame.subarray(88)] }).toEqual({ k, before: Array(8).fill(0xa5), after: Array(8).fill(0xa5) });
  }
  expect(() => native.xxh64Init(new Uint8Array(79))).toThrow(/expected state to be 80 bytes, got 79/);
  expect(() => native.xxh64Update(new Uint8Array(80), 5 as unknown as Uint8Array)).toThrow(/bytes to be a Uint8Array/);
});
