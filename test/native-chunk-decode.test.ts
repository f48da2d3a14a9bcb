/**
 * native-mmap/src/chunk_decode.h, the C++ chunk decoder the native readers call from their own
 * threads, held against codec/chunk.ts's decodeChunk (the reference): the same plain bytes
 * over every codec (none, deflate, zstd) x cipher and stored form, and the same CrimgError code over a corruption
 * matrix (flipped stored byte, wrong tag, trailing byte after the stream, short stream, form
 * rules), in the order of spec/FORMAT.md section 5.3. A failure leaves the output zeroed.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { chunkAad, chunkNonce } from '../codec/aad.js';
import { seal, suiteForCipherId } from '../codec/aead.js';
import { decodeChunk, encodeChunk, type EncodedChunk } from '../codec/chunk.js';
import { xxh64 } from '../codec/checksum.js';
import { loadPortableEngine } from '../codec/portable.js';
import { CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_RAW, CHUNK_ZERO, type CipherId, type CodecId } from '../format/constants.js';
import { CrimgError } from '../format/errors.js';
import type { NativeChunkParams } from '../native-mmap/index.js';
import { rng } from './codec-fixture.js';
import { requireNative } from './native-fixture.js';

await loadPortableEngine();
const native = requireNative();

const CHUNK_SIZE = 65536;
const dataKey = Uint8Array.from({ length: 32 }, (_, i) => 7 * i + 1);
const imageId = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const headerHash = Uint8Array.from({ length: 32 }, (_, i) => 3 * i);
const NUMBER = 9;
const REGION = 1;
const ADDRESS = 0x7f1234560000n;

/** Compressible bytes with some noise, like a structured memory page. */
function structured(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, (_v, i) => (i % 64 < 8 ? r() & 0xff : 0x61 + ((i >> 6) % 26)));
}

/** The AAD with its form byte to be set by encodeChunk / decodeChunk. */
function sealing(plainLength: number, last: boolean) {
  return {
    dataKey,
    nonce: chunkNonce(NUMBER),
    aad: chunkAad({ imageId, headerHash, chunkNumber: NUMBER, regionNumber: REGION, plainLength, address: ADDRESS, encoded: false, last }),
  };
}

interface Case {
  codec: CodecId;
  cipher: CipherId;
  plainLength: number;
  last: boolean;
}

function encode(plain: Uint8Array, c: Case): EncodedChunk {
  return encodeChunk(plain, { codec: c.codec, level: 1, cipher: c.cipher, ...(c.cipher ? sealing(c.plainLength, c.last) : {}) });
}

/** What each decoder makes of `stored` under `record`: 'ok' plus the bytes, or the error code. */
function both(stored: Uint8Array, record: { flags: number; checksum: bigint }, c: Case) {
  let ts: { code: string; bytes?: Uint8Array };
  try {
    const bytes = decodeChunk(stored, {
      flags: record.flags, checksum: record.checksum, plainLength: c.plainLength, codec: c.codec, cipher: c.cipher,
      ...(c.cipher ? sealing(c.plainLength, c.last) : {}), at: { chunk: NUMBER },
      engine: 'portable', // the independent reference: fflate, fzstd and @noble/ciphers
    });
    ts = { code: 'ok', bytes: Uint8Array.from(bytes) };
  } catch (e) {
    if (!(e instanceof CrimgError)) throw e;
    ts = { code: e.code };
  }
  const p: NativeChunkParams = {
    codec: c.codec, cipher: c.cipher, chunkSize: CHUNK_SIZE, number: BigInt(NUMBER), region: REGION, address: ADDRESS,
    last: c.last, plainLength: c.plainLength, flags: record.flags, checksum: record.checksum,
    ...(c.cipher ? { dataKey, imageId, headerHash } : {}),
  };
  const out = new Uint8Array(c.plainLength).fill(0x5a);
  const r = native.decodeChunk(p, stored, out);
  const nat = r === null ? { code: 'ok', bytes: out, message: '' } : { code: r.code, bytes: out, message: r.message };
  return { ts, native: nat };
}

const CASES: Case[] = [];
for (const codec of [0, 1, 2] as CodecId[]) {
  for (const cipher of [0, 1, 2] as CipherId[]) {
    CASES.push({ codec, cipher, plainLength: CHUNK_SIZE, last: false }, { codec, cipher, plainLength: 5000, last: true });
  }
}
const name = (c: Case) => `codec ${c.codec} cipher ${c.cipher} plain ${c.plainLength}`;

describe('native decodeChunk agrees with codec/chunk.ts byte for byte', () => {
  test.each(CASES.map((c) => [name(c), c] as const))('%s: structured, random and zero chunks', (_n, c) => {
    const random = rng(11);
    const inputs = [
      structured(c.plainLength, 3),
      Uint8Array.from({ length: c.plainLength }, () => random() & 0xff),
      new Uint8Array(c.plainLength),
    ];
    const forms = new Set<number>();
    for (const plain of inputs) {
      const e = encode(plain, c);
      forms.add(e.flags & (CHUNK_ZERO | CHUNK_RAW | CHUNK_ENCODED));
      const r = both(e.stored, e, c);
      expect(r.ts.code).toBe('ok');
      expect(r.native.code).toBe('ok');
      expect(Buffer.from(r.native.bytes).equals(Buffer.from(plain))).toBe(true);
      expect(Buffer.from(r.native.bytes).equals(Buffer.from(r.ts.bytes!))).toBe(true);
    }
    // Every stored form went through: zero, raw, and encoded where there is a codec.
    expect([...forms].sort()).toEqual(c.codec ? [CHUNK_ZERO, CHUNK_RAW, CHUNK_ENCODED] : [CHUNK_ZERO, CHUNK_RAW]);
  });
});

/** Re-seals `body` (raw or encoded bytes) as the writer would, so a change gets past the tag. */
function reseal(body: Uint8Array, encoded: boolean, c: Case): Uint8Array {
  if (!c.cipher) return body;
  const s = sealing(c.plainLength, c.last);
  const aad = s.aad.slice();
  aad[72] = encoded ? 1 : 0;
  return seal(suiteForCipherId(c.cipher), dataKey, s.nonce, aad, body);
}

/** The encoded body (before sealing) of a memory-like chunk. */
function encodedBody(c: Case): Uint8Array {
  const plain = structured(c.plainLength, 5);
  const e = encodeChunk(plain, { codec: c.codec, level: 1, cipher: 0 });
  expect(e.flags).toBe(CHUNK_ENCODED);
  return Uint8Array.from(e.stored); // a copy: node:zlib's Buffer.slice() would alias
}

/** A record for `stored` with a fresh checksum, so the damage reaches the tag or the decoder. */
function record(stored: Uint8Array, form: number, c: Case) {
  return { flags: form | (c.cipher ? CHUNK_ENCRYPTED : 0), checksum: xxh64(stored) };
}

function expectSame(stored: Uint8Array, rec: { flags: number; checksum: bigint }, c: Case, code: string): void {
  const r = both(stored, rec, c);
  expect({ ts: r.ts.code, native: r.native.code }).toEqual({ ts: code, native: code });
  expect(r.native.message).toMatch(new RegExp(`^chunk ${NUMBER}: `));
  expect(r.native.bytes.every((b) => b === 0)).toBe(true); // nothing partly decoded left behind
}

describe('corruption: the same code in the same order (spec 5.3)', () => {
  const ENCODED = CASES.filter((c) => c.codec !== 0);
  test.each(ENCODED.map((c) => [name(c), c] as const))('%s', (_n, c) => {
    const body = encodedBody(c);
    const good = reseal(body, true, c);
    // A flipped stored byte with the old checksum: the checksum catches it first.
    const flipped = Uint8Array.from(good);
    flipped[flipped.length >> 1]! ^= 0x10;
    expectSame(flipped, { flags: record(good, CHUNK_ENCODED, c).flags, checksum: xxh64(good) }, c, 'CORRUPT_CHUNK');
    if (c.cipher) {
      // The same flip with a matching checksum: the tag fails before anything is decoded.
      expectSame(flipped, record(flipped, CHUNK_ENCODED, c), c, 'AUTH_FAILED');
      // A wrong tag.
      const badTag = Uint8Array.from(good);
      badTag[badTag.length - 1]! ^= 1;
      expectSame(badTag, record(badTag, CHUNK_ENCODED, c), c, 'AUTH_FAILED');
      // Sealed as RAW but recorded ENCODED: the form byte of the AAD differs.
      const asRaw = reseal(body, false, c);
      expectSame(asRaw, record(asRaw, CHUNK_ENCODED, c), c, 'AUTH_FAILED');
    }
    // A byte after the end of the stream, sealed and checksummed as the writer would.
    const trailing = reseal(Uint8Array.from([...body, 0]), true, c);
    expectSame(trailing, record(trailing, CHUNK_ENCODED, c), c, 'CORRUPT_CHUNK');
    // A stream that ends early.
    const short = reseal(body.subarray(0, body.length - 3), true, c);
    expectSame(short, record(short, CHUNK_ENCODED, c), c, 'CORRUPT_CHUNK');
    // Garbage that is no stream at all.
    const garbage = reseal(Uint8Array.from(body, (_b, i) => (i * 37) & 0xff | 0x07), true, c);
    expectSame(garbage, record(garbage, CHUNK_ENCODED, c), c, 'CORRUPT_CHUNK');
    // A stream of another plain length: decodes to fewer bytes than the record's.
    const other = { ...c, plainLength: c.plainLength - 1 };
    const shorter = reseal(encodedBody(other), true, c);
    expectSame(shorter, record(shorter, CHUNK_ENCODED, c), c, 'CORRUPT_CHUNK');
  });

  test.each(CASES.filter((c) => c.plainLength === CHUNK_SIZE).map((c) => [name(c), c] as const))('%s: form rules', (_n, c) => {
    const plain = Uint8Array.from({ length: c.plainLength }, (_v, i) => (i * 131) >> 3);
    const e = encode(plain, c);
    // Reserved flag bits, two forms, ENCRYPTED against the image's cipher, a raw length off by one.
    expectSame(e.stored, { flags: e.flags | 0x10, checksum: e.checksum }, c, 'CORRUPT_INDEX');
    expectSame(e.stored, { flags: e.flags | CHUNK_ZERO, checksum: e.checksum }, c, 'CORRUPT_INDEX');
    expectSame(e.stored, { flags: e.flags ^ CHUNK_ENCRYPTED, checksum: e.checksum }, c, 'CORRUPT_INDEX');
    const raw = reseal(plain, false, c);
    const longer = Uint8Array.from([...raw, 0]);
    expectSame(longer, record(longer, CHUNK_RAW, c), c, 'CORRUPT_INDEX');
    // A zero chunk with a checksum.
    expectSame(new Uint8Array(0), { flags: CHUNK_ZERO, checksum: 1n }, c, 'CORRUPT_INDEX');
  });

  test('an unknown codec id is UNSUPPORTED_FEATURE after the checksum', () => {
    const c: Case = { codec: 1, cipher: 0, plainLength: CHUNK_SIZE, last: false };
    const body = encodedBody(c);
    const r = native.decodeChunk({
      codec: 7, cipher: 0, chunkSize: CHUNK_SIZE, number: 1n, region: 0, address: 0n, last: false,
      plainLength: CHUNK_SIZE, flags: CHUNK_ENCODED, checksum: xxh64(body),
    }, body, new Uint8Array(CHUNK_SIZE));
    expect(r?.code).toBe('UNSUPPORTED_FEATURE');
    const bad = native.decodeChunk({
      codec: 7, cipher: 0, chunkSize: CHUNK_SIZE, number: 1n, region: 0, address: 0n, last: false,
      plainLength: CHUNK_SIZE, flags: CHUNK_ENCODED, checksum: xxh64(body) ^ 1n,
    }, body, new Uint8Array(CHUNK_SIZE));
    expect(bad?.code).toBe('CORRUPT_CHUNK');
  });

  test('misuse is refused before any byte is written', () => {
    const p: NativeChunkParams = {
      codec: 0, cipher: 0, chunkSize: CHUNK_SIZE, number: 0n, region: 0, address: 0n, last: true,
      plainLength: 16, flags: CHUNK_RAW, checksum: 0n,
    };
    expect(() => native.decodeChunk(p, new Uint8Array(16), new Uint8Array(15))).toThrow(/expected out to hold plainLength = 16 bytes, got 15/);
    expect(() => native.decodeChunk({ ...p, plainLength: 0 }, new Uint8Array(0), new Uint8Array(0))).toThrow(/expected plainLength to be an integer in \[1, 16777216\], got 0/);
    expect(() => native.decodeChunk({ ...p, cipher: 1, dataKey: new Uint8Array(31) }, new Uint8Array(32), new Uint8Array(16)))
      .toThrow(/expected dataKey to be 32 bytes, got 31 bytes/);
    // With a cipher but no key: a coded refusal, not a crash.
    const r = native.decodeChunk({ ...p, cipher: 1, flags: CHUNK_RAW | CHUNK_ENCRYPTED, checksum: xxh64(new Uint8Array(32)) }, new Uint8Array(32), new Uint8Array(16));
    expect(r?.code).toBe('INVALID_ARGUMENT');
  });
});

test('the vendored zstd is not among the addon\'s dynamic symbols (nothing else in the process can interpose)', () => {
  const r = spawnSync('nm', ['-D', '--defined-only', join(process.cwd(), 'native-mmap', 'build', 'Release', 'crimg_mmap.node')], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/napi_register_module_v1|node_api_module_get_api_version/);
  expect(r.stdout.split('\n').filter((l) => /zstd|\bHUF_|\bFSE_|XXH/i.test(l))).toEqual([]);
});
