/**
 * The per-chunk pipeline of writer and reader (spec/FORMAT.md sections 5.1, 5.3, 6, 7.3):
 * zero test, encode, seal and checksum on the way in; checksum, open and decode on the way out.
 * Pure and synchronous, so it runs inline or in a worker (see `pool.ts`). It knows nothing of
 * regions: the caller builds the nonce and associated data (`aad.ts`) from the chunk's number,
 * region and address.
 */
import { Buffer } from 'node:buffer';
import { CrimgError, type CrimgErrorDetail } from '../format/errors.js';
import { xxh64 } from './checksum.js';
import { describe, expectBytes, expectInt } from './_check.js';
import { CHUNK_AAD_ENCODED_OFFSET } from './aad.js';
import { open, seal, suiteForCipherId } from './aead.js';
import { deflateDecode, deflateEncode } from './deflate.js';
import { zstdDecode, zstdEncode } from './zstd.js';
import { checkEngine, type Engine } from './engine.js';
import {
  CHUNK_AAD_LENGTH, CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_RAW, CHUNK_ZERO, CIPHER_NONE, CODEC_DEFLATE, CODEC_NONE, CODEC_ZSTD, ZSTD_MAX_LEVEL,
  KEY_LENGTH, LIMITS, NONCE_LENGTH, type CipherId, type CodecId,
} from '../format/constants.js';
import { chunkFormProblem } from '../format/chunk-form.js';

let zeros = Buffer.alloc(0);

/**
 * True when every byte of `bytes` is zero (the test for the zero form, spec section 5.1).
 * Compares against a shared zero buffer with memcmp (`Buffer.equals`), several times faster
 * than a typed-array scan.
 * @throws TypeError when `bytes` is not a Uint8Array; RangeError above 16 MiB.
 * @example
 * isZero(new Uint8Array(4096)); // true
 */
export function isZero(bytes: Uint8Array): boolean {
  expectBytes('bytes', bytes);
  const n = bytes.byteLength;
  if (n > LIMITS.maxChunkSize) throw new RangeError(`expected at most ${LIMITS.maxChunkSize} bytes, got ${n} bytes`);
  if (zeros.byteLength < n) zeros = Buffer.alloc(Math.min(LIMITS.maxChunkSize, 2 ** Math.ceil(Math.log2(n))));
  return Buffer.from(bytes.buffer, bytes.byteOffset, n).equals(zeros.subarray(0, n));
}

/** n * log2(n) for n = 0..256: the entropy estimate's histogram terms. */
const N_LOG_N = Float64Array.from({ length: 257 }, (_, n) => (n === 0 ? 0 : n * Math.log2(n)));
const PAGE = 4096;
const SAMPLES = 256;
const STRIDE = PAGE / SAMPLES;
/** Bits per byte above which a sample is taken as random (compressible memory measured <= 6.44, random >= 6.94). */
const RANDOM_BITS = 6.9;

/**
 * True when every whole 4 KiB page of `bytes` looks random: the Shannon entropy of 256 bytes
 * sampled at stride 16 is above 6.9 bits per byte. Deflating such a chunk costs a full
 * compression only to be stored raw (spec section 5.1 allows raw at any time); about 30 % of
 * process memory is like that (keys, compressed and encrypted data, hashes). The test costs
 * ~4 us per 16 KiB chunk; on the memory-like bench input it changed no chunk's stored form
 * and cut the deflate:1 writer's CPU time by a third.
 */
export function looksIncompressible(bytes: Uint8Array): boolean {
  const pages = Math.floor(bytes.byteLength / PAGE);
  if (pages === 0) return false;
  for (let p = 0; p < pages; p++) if (!pageLooksRandom(bytes, p)) return false;
  return true;
}

const hist = new Uint16Array(256);

/** True when whole page `p` of `bytes` looks random (see {@link looksIncompressible}). */
export function pageLooksRandom(bytes: Uint8Array, p: number): boolean {
  hist.fill(0);
  const base = p * PAGE;
  for (let i = 0; i < SAMPLES; i++) hist[bytes[base + i * STRIDE]!]!++;
  let sum = 0;
  for (let b = 0; b < 256; b++) sum += N_LOG_N[hist[b]!]!;
  return 8 - sum / SAMPLES > RANDOM_BITS;
}

/** Parameters of {@link encodeChunk}: the image's codec and cipher, and this chunk's nonce and AAD. */
export interface EncodeParams {
  /** Header codec id: 0 none, 1 deflate, 2 zstd. */
  codec: CodecId;
  /** Codec level, 1 to 9 with deflate, 1 to 19 with zstd; ignored without a codec. */
  level: number;
  /** Header cipher id: 0 none, 1 AES-256-GCM, 2 ChaCha20-Poly1305. */
  cipher: CipherId;
  /** `Kd` (spec section 7.2), with a cipher. */
  dataKey?: Uint8Array;
  /** `chunkNonce(c)` (spec section 7.3), with a cipher. */
  nonce?: Uint8Array;
  /**
   * `chunkAad(...)`, 76 bytes (spec section 7.3), with a cipher. Its form byte (offset 72) is
   * set here from the form chosen, so the caller may pass either value.
   */
  aad?: Uint8Array;
  /** Engine for codec and cipher; default 'node'. */
  engine?: Engine;
}

/** A chunk as the chunk table records it (spec section 5.3). */
export interface EncodedChunk {
  /** The stored bytes; empty for a zero chunk; may be the caller's `plain` for a raw chunk without cipher. */
  stored: Uint8Array;
  /** `ZERO`, `RAW` or `ENCODED`, plus `ENCRYPTED` when sealed. */
  flags: number;
  /** XXH64 of `stored`; 0 for a zero chunk. */
  checksum: bigint;
}

interface SealParams {
  dataKey?: Uint8Array | undefined;
  nonce?: Uint8Array | undefined;
  aad?: Uint8Array | undefined;
}

function checkSealParams(p: SealParams): asserts p is { dataKey: Uint8Array; nonce: Uint8Array; aad: Uint8Array } {
  expectBytes('dataKey', p.dataKey, KEY_LENGTH);
  expectBytes('nonce', p.nonce, NONCE_LENGTH);
  expectBytes('aad', p.aad, CHUNK_AAD_LENGTH);
}

function aadWithForm(aad: Uint8Array, encoded: boolean): Uint8Array {
  const out = aad.slice();
  out[CHUNK_AAD_ENCODED_OFFSET] = encoded ? 1 : 0;
  return out;
}

function checkParams(p: unknown, name: string): asserts p is Record<string, unknown> {
  if (typeof p !== 'object' || p === null) throw new TypeError(`expected ${name} to be an object, got ${describe(p)}`);
}

/**
 * Turns a chunk's plain bytes into its stored form (spec sections 5.1, 6, 7.3): all zero ->
 * `ZERO` with nothing stored; else encoded with the codec, kept only when smaller than the plain
 * bytes (`ENCODED`, else `RAW`); then sealed when the image has a cipher (`ENCRYPTED`); then
 * checksummed (section 5.3).
 * @param plain - 1 byte to 16 MiB; not modified.
 * @param p - codec, level, cipher, and with a cipher the data key, nonce and AAD.
 * @throws TypeError / RangeError on misuse (including a missing key, nonce or AAD with a cipher).
 * @example
 * const { stored, flags, checksum } = encodeChunk(plain, { codec: 1, level: 1, cipher: 0 });
 */
export function encodeChunk(plain: Uint8Array, p: EncodeParams): EncodedChunk {
  expectBytes('plain', plain);
  expectInt('plain length', plain.byteLength, 1, LIMITS.maxChunkSize);
  checkParams(p, 'encode params');
  expectInt('codec', p.codec, CODEC_NONE, CODEC_ZSTD);
  expectInt('cipher', p.cipher, 0, 2);
  if (p.codec !== CODEC_NONE) expectInt('level', p.level, 1, p.codec === CODEC_ZSTD ? ZSTD_MAX_LEVEL : 9);
  const engine = checkEngine(p.engine);
  if (p.cipher !== CIPHER_NONE) checkSealParams(p);

  if (isZero(plain)) return { stored: new Uint8Array(0), flags: CHUNK_ZERO, checksum: 0n };

  let body = plain;
  let flags = CHUNK_RAW;
  if (p.codec === CODEC_DEFLATE && !looksIncompressible(plain)) {
    const encoded = deflateEncode(plain, p.level, engine);
    if (encoded.byteLength < plain.byteLength) {
      body = encoded;
      flags = CHUNK_ENCODED;
    }
  } else if (p.codec === CODEC_ZSTD && !looksIncompressible(plain)) {
    const encoded = zstdEncode(plain, p.level, engine);
    if (encoded !== null) {
      body = encoded;
      flags = CHUNK_ENCODED;
    }
  }
  if (p.cipher !== CIPHER_NONE) {
    const aad = aadWithForm(p.aad!, flags === CHUNK_ENCODED);
    body = seal(suiteForCipherId(p.cipher), p.dataKey!, p.nonce!, aad, body, engine);
    flags |= CHUNK_ENCRYPTED;
  }
  return { stored: body, flags, checksum: xxh64(body) };
}

/** Where a chunk is, for error messages (spec section 2.1). */
export interface ChunkLocation {
  /** Chunk number. */
  chunk?: number;
  /** Region number. */
  region?: number;
  /** File offset of the stored bytes. */
  offset?: number;
  /** Address of the chunk's first byte. */
  address?: bigint;
}

/** Parameters of {@link decodeChunk}: the chunk-table record, the image's codec and cipher, keys. */
export interface DecodeParams {
  /** Chunk flags from the chunk table. */
  flags: number;
  /** The chunk's plain length (from the region table and chunk size). */
  plainLength: number;
  /** Checksum from the chunk table. */
  checksum: bigint;
  /** Header codec id. */
  codec: number;
  /** Header cipher id. */
  cipher: number;
  /** `Kd`, with a cipher. */
  dataKey?: Uint8Array;
  /** `chunkNonce(c)`, with a cipher. */
  nonce?: Uint8Array;
  /** `chunkAad(...)`, 76 bytes, with a cipher; its form byte is set here from `flags`. */
  aad?: Uint8Array;
  /** Engine for codec and cipher; default 'node'. */
  engine?: Engine;
  /** Check the stored bytes' XXH64 first; default true. */
  verifyChecksum?: boolean;
  /** Added to errors: chunk number, region, offset, address. */
  at?: ChunkLocation;
}

/**
 * Turns a chunk's stored bytes back into its plain bytes (spec sections 5.3, 6, 7.3): checks
 * the record's form rules, the checksum (before anything is decoded, and without a key), opens,
 * then decodes to exactly the plain length.
 * @param stored - the stored bytes (empty for a zero chunk). Not modified.
 * @param p - the chunk-table record, the image's codec and cipher, and with a cipher the data
 *   key, nonce and AAD.
 * @returns `plainLength` bytes; a new zero-filled array for a zero chunk; may be `stored` itself
 *   for a raw chunk without cipher.
 * @throws CrimgError `CORRUPT_INDEX` when flags and stored length break the rules of section 5.3;
 *   `CORRUPT_CHUNK` on a checksum mismatch or a stream that does not decode to `plainLength`
 *   bytes; `AUTH_FAILED` when the tag does not verify; `UNSUPPORTED_FEATURE` for an unknown
 *   codec or cipher id. TypeError / RangeError on misuse.
 * @example
 * const plain = decodeChunk(stored, { flags, plainLength: 65536, checksum, codec: 1, cipher: 0 });
 */
export function decodeChunk(stored: Uint8Array, p: DecodeParams): Uint8Array {
  expectBytes('stored', stored);
  checkParams(p, 'decode params');
  expectInt('flags', p.flags, 0, 0xffff);
  expectInt('plainLength', p.plainLength, 1, LIMITS.maxChunkSize);
  if (typeof p.checksum !== 'bigint') throw new TypeError(`expected checksum to be a bigint, got ${describe(p.checksum)}`);
  expectInt('codec', p.codec, 0, 255);
  expectInt('cipher', p.cipher, 0, 255);
  const engine = checkEngine(p.engine);
  const at: CrimgErrorDetail = { ...(p.at ?? {}) };
  const label = p.at?.chunk !== undefined ? `chunk ${p.at.chunk}: ` : '';

  const problem = chunkFormProblem({
    flags: p.flags,
    storedLength: stored.byteLength,
    plainLength: p.plainLength,
    codec: p.codec,
    cipher: p.cipher,
    checksum: p.checksum,
  });
  if (problem) {
    throw new CrimgError('CORRUPT_INDEX', `${label}${problem}`, { ...at, hint: 'the chunk table is damaged; verify the image' });
  }
  if (p.flags & CHUNK_ZERO) return new Uint8Array(p.plainLength);
  if (p.verifyChecksum !== false && xxh64(stored) !== p.checksum) {
    throw new CrimgError('CORRUPT_CHUNK', `${label}checksum of the stored bytes does not match the chunk table`, {
      ...at,
      hint: 'the chunk is damaged; re-copy the image from its source',
    });
  }
  const encoded = (p.flags & CHUNK_ENCODED) !== 0;
  if (encoded && p.codec !== CODEC_DEFLATE && p.codec !== CODEC_ZSTD) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `${label}unknown codec id ${p.codec}`, {
      ...at,
      hint: 'the image was written by a newer crimg; upgrade to read it',
    });
  }
  try {
    let body = stored;
    if (p.flags & CHUNK_ENCRYPTED) {
      const suite = suiteForCipherId(p.cipher);
      checkSealParams(p);
      body = open(suite, p.dataKey, p.nonce, aadWithForm(p.aad, encoded), stored, engine);
    }
    if (!encoded) return body;
    return p.codec === CODEC_ZSTD ? zstdDecode(body, p.plainLength, engine) : deflateDecode(body, p.plainLength, engine);
  } catch (e) {
    if (!(e instanceof CrimgError) || p.at === undefined) throw e;
    const reason = e.hint !== undefined && e.message.endsWith(`; ${e.hint}`)
      ? e.message.slice(0, -(e.hint.length + 2))
      : e.message;
    throw new CrimgError(e.code, `${label}${reason}`, { ...at, ...(e.hint !== undefined ? { hint: e.hint } : {}), cause: e });
  }
}
