/**
 * Keys of an encrypted image (spec/FORMAT.md sections 7.1 and 7.2): the master key `K` from a
 * key file or a passphrase (scrypt, with a reader-side cap on its cost), the subkeys `Kd`, `Ki`
 * and the key check value (HKDF-SHA-256), and the header hash `H`. Both engines give identical
 * bytes. Error messages never contain key bytes, passphrases or their lengths.
 */
import { createHash, hkdfSync, scryptSync } from 'node:crypto';
import { CrimgError } from '../format/errors.js';
import { describe, expectBytes, expectInt } from './_check.js';
import { checkEngine, type Engine } from './engine.js';
import { portableLibraries } from './portable.js';
import { IMAGE_ID_LENGTH, KDF_RAW, KDF_SCRYPT, KEY_CHECK_LENGTH, KEY_LENGTH, SALT_LENGTH } from '../format/constants.js';

const MiB = 1024 * 1024;
const KEY_FILE_HINT = 'a key file holds 32 raw bytes, or 64 hexadecimal characters with an optional trailing newline';

// ---------------------------------------------------------------- master key: key file, hex

/**
 * Parses a key file (spec section 7.1, KDF 0): exactly 32 raw bytes, or 64 hexadecimal
 * characters (either case) followed by nothing, `\n` or `\r\n`.
 * @param bytes - the whole file.
 * @returns the 32-byte master key (a new array).
 * @throws CrimgError `INVALID_ARGUMENT` for any other content; the message gives the file length
 *   only, never its bytes. TypeError when `bytes` is not a Uint8Array.
 * @example
 * const key = parseKeyFile(await fs.readFile('image.key'));
 */
export function parseKeyFile(bytes: Uint8Array): Uint8Array {
  expectBytes('key file bytes', bytes);
  if (bytes.byteLength === KEY_LENGTH) return bytes.slice();
  let n = bytes.byteLength;
  if (n > 0 && bytes[n - 1] === 0x0a) n -= bytes[n - 2] === 0x0d && n >= 2 ? 2 : 1;
  if (n !== 2 * KEY_LENGTH) {
    throw new CrimgError('INVALID_ARGUMENT', `key file of ${bytes.byteLength} bytes is not a crimg key`, { hint: KEY_FILE_HINT });
  }
  const key = decodeHex(bytes.subarray(0, n));
  if (!key) {
    throw new CrimgError('INVALID_ARGUMENT', 'key file of 64 characters holds a character that is not hexadecimal', {
      hint: KEY_FILE_HINT,
    });
  }
  return key;
}

/**
 * Parses a key given as 64 hexadecimal characters, e.g. from an environment variable
 * (spec section 7.1, KDF 0). One trailing `\n` or `\r\n` is accepted, as in a key file.
 * @returns the 32-byte master key.
 * @throws CrimgError `INVALID_ARGUMENT` when the string is not 64 hex digits; the message never
 *   contains the string. TypeError when `hex` is not a string.
 * @example
 * const key = keyFromHex(process.env.CRIMG_KEY ?? '');
 */
export function keyFromHex(hex: string): Uint8Array {
  if (typeof hex !== 'string') throw new TypeError(`expected hex to be a string, got ${describe(hex)}`);
  const s = hex.endsWith('\r\n') ? hex.slice(0, -2) : hex.endsWith('\n') ? hex.slice(0, -1) : hex;
  const key = s.length === 2 * KEY_LENGTH ? decodeHex(new TextEncoder().encode(s)) : undefined;
  if (!key) {
    throw new CrimgError('INVALID_ARGUMENT', 'key is not 64 hexadecimal characters', {
      hint: 'give the 32-byte key as 64 hexadecimal characters (for example the output of `openssl rand -hex 32`)',
    });
  }
  return key;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function decodeHex(chars: Uint8Array): Uint8Array | undefined {
  const out = new Uint8Array(chars.byteLength >> 1);
  let bad = 0;
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(chars[2 * i]!);
    const lo = hexValue(chars[2 * i + 1]!);
    bad |= (hi | lo) & 0x100; // set by -1; checked once after the loop
    out[i] = (hi << 4) | lo;
  }
  if (bad) {
    out.fill(0);
    return undefined;
  }
  return out;
}

// ---------------------------------------------------------------- master key: passphrase

/**
 * The bytes `P` of a passphrase (spec section 7.1): UTF-8 of a string (no Unicode
 * normalization), or the bytes as given; in both cases one trailing `\n` or `\r\n` is removed,
 * as from a passphrase file, so that a passphrase typed, piped or read from a file gives the same
 * key.
 * @returns a new array.
 * @throws TypeError when `passphrase` is neither a string nor a Uint8Array.
 * @example
 * passphraseBytes('correct horse\n'); // bytes of 'correct horse'
 */
export function passphraseBytes(passphrase: string | Uint8Array): Uint8Array {
  let b: Uint8Array;
  if (typeof passphrase === 'string') b = new TextEncoder().encode(passphrase);
  else if (passphrase instanceof Uint8Array) b = passphrase.slice();
  else throw new TypeError(`expected passphrase to be a string or a Uint8Array, got ${describe(passphrase)}`);
  let n = b.byteLength;
  if (n > 0 && b[n - 1] === 0x0a) n -= n >= 2 && b[n - 2] === 0x0d ? 2 : 1;
  return n === b.byteLength ? b : b.subarray(0, n);
}

/** Reader-side limits on the scrypt work an image may ask for (spec section 7.1). */
export interface ScryptCaps {
  /** Largest accepted `128 * r * N` in bytes (Infinity: no cap). Default 256 MiB. */
  maxMemory: number;
  /** Largest accepted `p`. Default 16. */
  maxP: number;
}

/** The reference reader's caps: 256 MiB and p <= 16 (spec section 7.1). */
export const DEFAULT_SCRYPT_CAPS: Readonly<ScryptCaps> = Object.freeze({ maxMemory: 256 * MiB, maxP: 16 });

/** Writers' default scrypt parameters: log2 N = 17, r = 8, p = 1 (spec section 7.1). */
export const DEFAULT_SCRYPT_PARAMS = Object.freeze({ log2N: 17, r: 8, p: 1 });

/**
 * The scrypt parameters a reader accepts by default (spec section 7.1): at most the writers'
 * default cost, log2 N = 17, r = 8, p = 1 (128 MiB, about 0.4 s here), as age accepts only
 * r = 8 and p = 1. An image asking for more is refused before any scrypt work unless the
 * caller raises these limits (`maxScrypt` of openImage, `--max-scrypt LOG2N,R,P` of the CLI).
 */
export const DEFAULT_SCRYPT_LIMITS: Readonly<ScryptLimits> = Object.freeze({ ...DEFAULT_SCRYPT_PARAMS });

/** Largest scrypt parameters a reader accepts, each on its own (spec section 7.1). */
export interface ScryptLimits {
  /** Largest log2 N. */
  log2N: number;
  /** Largest r. */
  r: number;
  /** Largest p. */
  p: number;
}

/**
 * Refuses scrypt parameters above `limits`, each compared on its own (spec section 7.1): call it
 * with an image's header fields before any scrypt work. The message names the image's cost and
 * the option that raises the limit; it holds no key material.
 * @param limits - defaults to {@link DEFAULT_SCRYPT_LIMITS}; a field left out keeps its default.
 * @throws CrimgError `LIMIT_EXCEEDED`. RangeError when a limit is not an integer 0..255.
 * @example
 * checkScryptLimits(17, 8, 1);               // ok: the writers' default
 * checkScryptLimits(18, 8, 16);              // throws LIMIT_EXCEEDED
 * checkScryptLimits(20, 8, 1, { log2N: 20 }); // ok: raised by the caller
 */
export function checkScryptLimits(log2N: number, r: number, p: number, limits: Partial<ScryptLimits> = DEFAULT_SCRYPT_LIMITS): void {
  const max = { ...DEFAULT_SCRYPT_LIMITS, ...definedOnly(limits) };
  expectInt('maxScrypt.log2N', max.log2N, 0, 255);
  expectInt('maxScrypt.r', max.r, 0, 255);
  expectInt('maxScrypt.p', max.p, 0, 255);
  const over: string[] = [];
  if (log2N > max.log2N) over.push(`log2 N ${log2N} > ${max.log2N}`);
  if (r > max.r) over.push(`r ${r} > ${max.r}`);
  if (p > max.p) over.push(`p ${p} > ${max.p}`);
  if (over.length === 0) return;
  const memory = 128 * r * 2 ** log2N;
  throw new CrimgError(
    'LIMIT_EXCEEDED',
    `the image asks for scrypt log2 N = ${log2N}, r = ${r}, p = ${p} (${formatBytes(memory)} of memory, ${p} pass${p === 1 ? '' : 'es'}), ` +
      `over the reader's limit (${over.join(', ')}; default log2 N ${DEFAULT_SCRYPT_LIMITS.log2N}, r ${DEFAULT_SCRYPT_LIMITS.r}, p ${DEFAULT_SCRYPT_LIMITS.p}, what writers use)`,
    { hint: `if you trust this image, raise the limit: option maxScrypt: { log2N: ${log2N}, r: ${r}, p: ${p} } of openImage, or --max-scrypt ${log2N},${r},${p} on the command line` },
  );
}

function definedOnly(o: Partial<ScryptLimits>): Partial<ScryptLimits> {
  if (typeof o !== 'object' || o === null) throw new TypeError(`expected maxScrypt to be an object, got ${describe(o)}`);
  const out: Partial<ScryptLimits> = {};
  if (o.log2N !== undefined) out.log2N = o.log2N;
  if (o.r !== undefined) out.r = o.r;
  if (o.p !== undefined) out.p = o.p;
  return out;
}

/** Largest log2 N this implementation computes (the portable engine's limit, N <= 2^32). */
export const MAX_SCRYPT_LOG2N = 32;

/**
 * Refuses scrypt parameters whose cost is over the caps (spec section 7.1): `128 * r * N`
 * bytes of memory over `caps.maxMemory`, or `p` over `caps.maxP`. Call this with an image's
 * header fields before deriving anything, so a hostile image cannot make the reader spend
 * minutes or gigabytes.
 * @param log2N - header offset 72.
 * @param r - header offset 73.
 * @param p - header offset 74.
 * @param caps - defaults to {@link DEFAULT_SCRYPT_CAPS}.
 * @throws CrimgError `LIMIT_EXCEEDED` naming the parameters and how to raise the cap.
 *   TypeError / RangeError on misuse.
 * @example
 * checkScryptCost(17, 8, 1); // ok: 128 MiB
 * checkScryptCost(20, 8, 1); // throws LIMIT_EXCEEDED: 1024 MiB
 */
export function checkScryptCost(log2N: number, r: number, p: number, caps: ScryptCaps = DEFAULT_SCRYPT_CAPS): void {
  expectInt('log2N', log2N, 0, 255);
  expectInt('r', r, 0, 255);
  expectInt('p', p, 0, 255);
  if (typeof caps !== 'object' || caps === null) throw new TypeError(`expected caps to be an object, got ${describe(caps)}`);
  if (typeof caps.maxMemory !== 'number' || !(caps.maxMemory >= 0)) {
    throw new RangeError(`expected caps.maxMemory to be a non-negative number of bytes (Infinity allowed), got ${describe(caps.maxMemory)}`);
  }
  expectInt('caps.maxP', caps.maxP, 0, 255);
  const memory = 128 * r * 2 ** log2N;
  const params = `scrypt log2 N = ${log2N}, r = ${r}, p = ${p}`;
  if (memory > caps.maxMemory) {
    throw new CrimgError(
      'LIMIT_EXCEEDED',
      `${params} needs ${formatBytes(memory)} of memory (128 * r * N), over the cap of ${formatBytes(caps.maxMemory)}`,
      { hint: `if you trust this image, raise the cap with the scryptCaps.maxMemory option to at least ${memory}` },
    );
  }
  if (p > caps.maxP) {
    throw new CrimgError('LIMIT_EXCEEDED', `${params} asks for p = ${p}, over the cap of ${caps.maxP}`, {
      hint: `if you trust this image, raise the cap with the scryptCaps.maxP option to at least ${p}`,
    });
  }
}

function formatBytes(n: number): string {
  return n >= MiB && n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;
}

/** Throws RangeError unless the parameters are computable by both engines (RFC 7914 section 2). */
function checkScryptParams(log2N: unknown, r: unknown, p: unknown): void {
  expectInt('r', r, 1, 255);
  expectInt('p', p, 1, 255);
  // RFC 7914 section 2: N < 2^(128 * r / 8); OpenSSL enforces it, so both engines do.
  expectInt('log2N', log2N, 1, Math.min(MAX_SCRYPT_LOG2N, 16 * r - 1));
}

/**
 * scrypt (RFC 7914) of a passphrase with N = 2^log2N, giving the 32-byte master key `K` of KDF 1
 * (spec section 7.1). Does not apply caps: readers call {@link checkScryptCost} first.
 * @param passphrase - `P`, already through {@link passphraseBytes}.
 * @param salt - the header salt (any length; 16 bytes in an image).
 * @param log2N - 1 to 32, and less than 16 * r (RFC 7914 section 2).
 * @param r - 1 to 255.
 * @param p - 1 to 255.
 * @param engine - `'node'` (crypto.scryptSync, default) or `'portable'` (@noble/hashes).
 * @param length - output length, default 32.
 * @throws TypeError / RangeError on misuse.
 * @example
 * const K = scrypt(passphraseBytes('pw'), salt, 17, 8, 1);
 */
export function scrypt(
  passphrase: Uint8Array,
  salt: Uint8Array,
  log2N: number,
  r: number,
  p: number,
  engine?: Engine,
  length: number = KEY_LENGTH,
): Uint8Array {
  expectBytes('passphrase', passphrase);
  expectBytes('salt', salt);
  checkScryptParams(log2N, r, p);
  expectInt('length', length, 1, 1024);
  const N = 2 ** log2N;
  // Memory bound given to both engines: OpenSSL needs 128 * r * (N + 2) for V plus
  // 128 * r * p for B; the slack covers each engine's scratch blocks.
  const maxmem = 128 * r * (N + p + 2) + MiB;
  if (checkEngine(engine) === 'portable') {
    return portableLibraries().scrypt(passphrase, salt, { N, r, p, dkLen: length, maxmem });
  }
  return new Uint8Array(scryptSync(passphrase, salt, length, { N, r, p, maxmem }));
}

// ---------------------------------------------------------------- subkeys, key check, H

const INFO_DATA = new TextEncoder().encode('crimg v1 data');
const INFO_INDEX = new TextEncoder().encode('crimg v1 index');
const INFO_KEY_CHECK = new TextEncoder().encode('crimg v1 key check');

/**
 * HKDF-SHA-256 (RFC 5869 section 2): extract with `salt`, expand with `info` to `length` bytes.
 * The primitive under {@link deriveKeys} (spec section 7.2).
 * @param ikm - input keying material.
 * @param salt - extract salt (any length).
 * @param info - context string.
 * @param length - 1 to 255 * 32 bytes.
 * @param engine - `'node'` (crypto.hkdfSync, default) or `'portable'` (@noble/hashes).
 * @throws TypeError / RangeError on misuse.
 * @example
 * hkdfSha256(K, saltAndImageId, new TextEncoder().encode('crimg v1 data'), 32);
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number, engine?: Engine): Uint8Array {
  expectBytes('ikm', ikm);
  expectBytes('salt', salt);
  expectBytes('info', info);
  expectInt('length', length, 1, 255 * 32);
  if (checkEngine(engine) === 'portable') {
    const { hkdf, sha256 } = portableLibraries();
    return hkdf(sha256, ikm, salt, info, length);
  }
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

/** Subkeys of one image (spec section 7.2). */
export interface ImageKeys {
  /** `Kd`: seals chunks (spec section 7.3), 32 bytes. */
  dataKey: Uint8Array;
  /** `Ki`: seals the index (spec section 7.4), 32 bytes. */
  indexKey: Uint8Array;
  /** The header's key check value (offset 96), 16 bytes. */
  keyCheck: Uint8Array;
}

/**
 * HKDF-SHA-256 (RFC 5869) with IKM = `masterKey`, salt = `salt || imageId`, and info
 * `crimg v1 data` (32 bytes), `crimg v1 index` (32) and `crimg v1 key check` (16)
 * (spec section 7.2).
 * @param masterKey - `K`, 32 bytes.
 * @param salt - header salt, 16 bytes.
 * @param imageId - header image id, 16 bytes.
 * @param engine - `'node'` (crypto.hkdfSync, default) or `'portable'` (@noble/hashes).
 * @throws TypeError / RangeError on misuse.
 * @example
 * const { dataKey, indexKey, keyCheck } = deriveKeys(K, salt, imageId);
 */
export function deriveKeys(masterKey: Uint8Array, salt: Uint8Array, imageId: Uint8Array, engine?: Engine): ImageKeys {
  expectBytes('masterKey', masterKey, KEY_LENGTH);
  expectBytes('salt', salt, SALT_LENGTH);
  expectBytes('imageId', imageId, IMAGE_ID_LENGTH);
  const eng = checkEngine(engine);
  const hkdfSalt = new Uint8Array(SALT_LENGTH + IMAGE_ID_LENGTH);
  hkdfSalt.set(salt, 0);
  hkdfSalt.set(imageId, SALT_LENGTH);
  const derive = (info: Uint8Array, length: number): Uint8Array => hkdfSha256(masterKey, hkdfSalt, info, length, eng);
  return {
    dataKey: derive(INFO_DATA, KEY_LENGTH),
    indexKey: derive(INFO_INDEX, KEY_LENGTH),
    keyCheck: derive(INFO_KEY_CHECK, KEY_CHECK_LENGTH),
  };
}

/**
 * Compares a derived key check value with the header's, in constant time (spec section 7.2).
 * @throws CrimgError `WRONG_KEY` when they differ. TypeError / RangeError on misuse.
 * @example
 * verifyKeyCheck(deriveKeys(K, salt, imageId).keyCheck, header.keyCheck);
 */
export function verifyKeyCheck(derived: Uint8Array, stored: Uint8Array): void {
  expectBytes('derived', derived, KEY_CHECK_LENGTH);
  expectBytes('stored', stored, KEY_CHECK_LENGTH);
  let diff = 0;
  for (let i = 0; i < KEY_CHECK_LENGTH; i++) diff |= derived[i]! ^ stored[i]!;
  if (diff !== 0) {
    throw new CrimgError('WRONG_KEY', 'the key does not match this image (key check value differs)', {
      hint: 'give the key or passphrase the image was written with',
    });
  }
}

/**
 * `H = SHA-256(header bytes || validation block bytes)` (spec section 7.2), which every sealed
 * message's associated data carries.
 * @param headerBytes - the whole header, `header size` bytes.
 * @param validationBytes - the whole validation block.
 * @param engine - `'node'` (default) or `'portable'`.
 * @returns 32 bytes.
 * @throws TypeError on misuse.
 * @example
 * const H = headerHash(file.subarray(0, 128), file.subarray(128, 128 + validationSize));
 */
export function headerHash(headerBytes: Uint8Array, validationBytes: Uint8Array, engine?: Engine): Uint8Array {
  expectBytes('headerBytes', headerBytes);
  expectBytes('validationBytes', validationBytes);
  if (checkEngine(engine) === 'portable') {
    return portableLibraries().sha256.create().update(headerBytes).update(validationBytes).digest();
  }
  return new Uint8Array(createHash('sha256').update(headerBytes).update(validationBytes).digest());
}

// ---------------------------------------------------------------- key spec -> master key

/** What the user gives to open or write an encrypted image (spec section 7.1). */
export type KeySpec = { key: Uint8Array } | { passphrase: string | Uint8Array };

/** The header's KDF fields (spec section 3, offsets 71-74 and 80). */
export interface KdfParams {
  /** KDF id: 0 raw key, 1 scrypt. */
  kdf: number;
  /** Header salt, 16 bytes. */
  salt: Uint8Array;
  /** scrypt log2 N (KDF 1). */
  log2N: number;
  /** scrypt r (KDF 1). */
  r: number;
  /** scrypt p (KDF 1). */
  p: number;
}

/** Options of {@link resolveMasterKey}. */
export interface ResolveOptions {
  /** Caps on the scrypt cost of the image; default {@link DEFAULT_SCRYPT_CAPS}. */
  scryptCaps?: ScryptCaps;
  /** Engine for scrypt. */
  engine?: Engine;
}

/**
 * The master key `K` of an image (spec section 7.1): the given 32-byte key for KDF 0; for KDF 1,
 * scrypt of the passphrase with the header's parameters, after {@link checkScryptCost}.
 * @param spec - `{ key }` or `{ passphrase }`; undefined when the user gave none.
 * @param params - the header's KDF fields.
 * @throws CrimgError `KEY_REQUIRED` without a spec; `INVALID_ARGUMENT` when the spec's kind does
 *   not match the image's KDF; `UNSUPPORTED_FEATURE` for an unknown KDF id; `LIMIT_EXCEEDED` over
 *   the scrypt caps; `CORRUPT_HEADER` for scrypt parameters no scrypt accepts.
 *   RangeError for a key that is not 32 bytes.
 * @example
 * const K = resolveMasterKey({ passphrase: 'pw' }, { kdf: 1, salt, log2N: 17, r: 8, p: 1 });
 */
export function resolveMasterKey(spec: KeySpec | undefined, params: KdfParams, options: ResolveOptions = {}): Uint8Array {
  if (spec === undefined || spec === null) {
    throw new CrimgError('KEY_REQUIRED', 'the image is encrypted and no key was given', {
      hint: 'give a key file, a hex key or a passphrase',
    });
  }
  if (typeof spec !== 'object') throw new TypeError(`expected a key spec object, got ${describe(spec)}`);
  expectBytes('salt', params.salt, SALT_LENGTH);
  if (params.kdf === KDF_RAW) {
    if (!('key' in spec)) {
      throw new CrimgError('INVALID_ARGUMENT', 'the image was encrypted with a raw key, but a passphrase was given', {
        hint: 'give the key file or hex key the image was written with',
      });
    }
    expectBytes('key', spec.key, KEY_LENGTH);
    return spec.key;
  }
  if (params.kdf !== KDF_SCRYPT) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `unknown KDF id ${params.kdf}`, {
      hint: 'the image was written by a newer crimg; upgrade to read it',
    });
  }
  if (!('passphrase' in spec)) {
    throw new CrimgError('INVALID_ARGUMENT', 'the image was encrypted with a passphrase, but a key was given', {
      hint: 'give the passphrase the image was written with',
    });
  }
  const { log2N, r, p } = params;
  checkScryptCost(log2N, r, p, options.scryptCaps ?? DEFAULT_SCRYPT_CAPS);
  try {
    checkScryptParams(log2N, r, p);
  } catch (e) {
    if (log2N > MAX_SCRYPT_LOG2N && r >= 1 && p >= 1) {
      throw new CrimgError('LIMIT_EXCEEDED', `scrypt log2 N = ${log2N} is over the largest supported, ${MAX_SCRYPT_LOG2N}`);
    }
    throw new CrimgError('CORRUPT_HEADER', `scrypt parameters log2 N = ${log2N}, r = ${r}, p = ${p} are invalid (${(e as Error).message})`);
  }
  return scrypt(passphraseBytes(spec.passphrase), params.salt, log2N, r, p, options.engine);
}
