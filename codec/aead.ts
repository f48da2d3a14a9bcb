/**
 * Authenticated encryption of chunks and index messages (spec/FORMAT.md section 7): cipher id 1
 * AES-256-GCM (NIST SP 800-38D) and cipher id 2 ChaCha20-Poly1305 (RFC 8439 section 2.8), both
 * with a 32-byte key, a 12-byte nonce and a 16-byte tag appended to the ciphertext
 * (spec section 5.1). Both engines produce byte-identical output.
 *
 * Errors never include the key, the nonce's derivation or any plaintext.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CrimgError } from '../format/errors.js';
import { nativeAddon } from '../native-mmap/index.js';
import { expectBytes, expectOneOf } from './_check.js';
import { checkEngine, type Engine } from './engine.js';
import { portableLibraries } from './portable.js';
import { CIPHER_AES_256_GCM, CIPHER_CHACHA20_POLY1305, KEY_LENGTH, NONCE_LENGTH, TAG_SIZE } from '../format/constants.js';

/** An AEAD suite by name; also the node:crypto cipher name. */
export type AeadSuite = 'aes-256-gcm' | 'chacha20-poly1305';

/**
 * How the node engine seals: 'native' (the addon: Node's OpenSSL without per-message object
 * set-up) when it is available, else 'cipheriv' (node:crypto).
 * @example
 * nodeSealEngine(); // 'cipheriv' under CRIMG_NO_NATIVE=1
 */
export function nodeSealEngine(): 'native' | 'cipheriv' {
  return nativeAddon() ? 'native' : 'cipheriv';
}

/** All suites, in cipher id order (spec section 7 table). */
export const AEAD_SUITES: readonly AeadSuite[] = Object.freeze(['aes-256-gcm', 'chacha20-poly1305'] as const);

/**
 * The suite of a header's cipher id (spec section 7; header offset 70).
 * @param id - 1 or 2.
 * @throws CrimgError `UNSUPPORTED_FEATURE` for any other id (0 means "no cipher" and has no suite).
 * @example
 * suiteForCipherId(2); // 'chacha20-poly1305'
 */
export function suiteForCipherId(id: number): AeadSuite {
  if (id === CIPHER_AES_256_GCM) return 'aes-256-gcm';
  if (id === CIPHER_CHACHA20_POLY1305) return 'chacha20-poly1305';
  throw new CrimgError('UNSUPPORTED_FEATURE', `unknown cipher id ${id}`, {
    hint: 'the image was written by a newer crimg; upgrade to read it',
  });
}

/**
 * The header's cipher id of a suite (spec section 7).
 * @throws TypeError / RangeError for an unknown suite name.
 * @example
 * cipherIdForSuite('aes-256-gcm'); // 1
 */
export function cipherIdForSuite(suite: AeadSuite): 1 | 2 {
  expectOneOf('suite', suite, AEAD_SUITES);
  return suite === 'aes-256-gcm' ? CIPHER_AES_256_GCM : CIPHER_CHACHA20_POLY1305;
}

function checkArgs(suite: unknown, key: unknown, nonce: unknown, aad: unknown, data: unknown, dataName: string): void {
  expectOneOf('suite', suite, AEAD_SUITES);
  expectBytes('key', key, KEY_LENGTH);
  expectBytes('nonce', nonce, NONCE_LENGTH);
  expectBytes('aad', aad);
  expectBytes(dataName, data);
}

function nobleCipher(suite: AeadSuite, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) {
  const { gcm, chacha20poly1305 } = portableLibraries();
  return suite === 'aes-256-gcm' ? gcm(key, nonce, aad) : chacha20poly1305(key, nonce, aad);
}

/**
 * Seals `plaintext`: returns ciphertext || 16-byte tag (spec sections 5.1, 7.3, 7.4).
 *
 * The caller guarantees that `(key, nonce)` is never used twice (spec section 7.3: nonces are
 * chunk numbers under a per-image key).
 * @param suite - `'aes-256-gcm'` or `'chacha20-poly1305'`.
 * @param key - 32 bytes.
 * @param nonce - 12 bytes.
 * @param aad - associated data, authenticated but not encrypted.
 * @param plaintext - the bytes to seal.
 * @param engine - `'node'` (node:crypto, default) or `'portable'` (@noble/ciphers).
 * @returns a new array of `plaintext.length + 16` bytes.
 * @throws TypeError / RangeError on misuse.
 * @example
 * const sealed = seal('chacha20-poly1305', key, chunkNonce(0), aad, plain);
 */
export function seal(
  suite: AeadSuite,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  engine?: Engine,
): Uint8Array {
  checkArgs(suite, key, nonce, aad, plaintext, 'plaintext');
  if (checkEngine(engine) === 'portable') return nobleCipher(suite, key, nonce, aad).encrypt(plaintext);
  const addon = nativeAddon();
  if (addon) {
    // Node's own OpenSSL through the addon: the same bits as createCipheriv below, without its
    // ~10 us of set-up per message (test/codec-aead.test.ts compares them).
    const out = new Uint8Array(plaintext.byteLength + TAG_SIZE);
    addon.aeadSeal(suite === 'aes-256-gcm' ? CIPHER_AES_256_GCM : CIPHER_CHACHA20_POLY1305, key, nonce, aad, plaintext, out);
    return out;
  }
  return sealWithCipheriv(suite, key, nonce, aad, plaintext);
}

/** The node engine's seal through node:crypto's createCipheriv (used when the addon is absent). */
export function sealWithCipheriv(suite: AeadSuite, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = suite === 'aes-256-gcm'
    ? createCipheriv(suite, key, nonce, { authTagLength: TAG_SIZE })
    : createCipheriv(suite, key, nonce, { authTagLength: TAG_SIZE });
  cipher.setAAD(aad, { plaintextLength: plaintext.byteLength });
  // One output allocation: the ciphertext is written where it will be stored, tag after it.
  const out = new Uint8Array(plaintext.byteLength + TAG_SIZE);
  const body = cipher.update(plaintext);
  out.set(body, 0);
  const rest = cipher.final();
  out.set(rest, body.byteLength);
  out.set(cipher.getAuthTag(), body.byteLength + rest.byteLength);
  return out;
}

/**
 * Opens `sealed` (ciphertext || 16-byte tag) and returns the plaintext (spec sections 7.3, 7.4).
 * Nothing is returned unless the tag verifies.
 * @param suite - `'aes-256-gcm'` or `'chacha20-poly1305'`.
 * @param key - 32 bytes.
 * @param nonce - 12 bytes.
 * @param aad - the associated data the message was sealed with.
 * @param sealed - at least 16 bytes.
 * @param engine - `'node'` (default) or `'portable'`.
 * @returns the plaintext, `sealed.length - 16` bytes.
 * @throws CrimgError `AUTH_FAILED` when the tag does not verify (wrong key, tampered bytes,
 *   associated data or nonce) or `sealed` is shorter than a tag. TypeError / RangeError on misuse.
 * @example
 * const plain = open('chacha20-poly1305', key, chunkNonce(0), aad, sealed);
 */
export function open(
  suite: AeadSuite,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  sealed: Uint8Array,
  engine?: Engine,
): Uint8Array {
  checkArgs(suite, key, nonce, aad, sealed, 'sealed');
  const eng = checkEngine(engine);
  if (sealed.byteLength < TAG_SIZE) {
    throw authFailed(`sealed message of ${sealed.byteLength} bytes is shorter than its 16-byte tag`);
  }
  const n = sealed.byteLength - TAG_SIZE;
  if (eng === 'portable') {
    try {
      return nobleCipher(suite, key, nonce, aad).decrypt(sealed);
    } catch {
      throw authFailed();
    }
  }
  const decipher = suite === 'aes-256-gcm'
    ? createDecipheriv(suite, key, nonce, { authTagLength: TAG_SIZE })
    : createDecipheriv(suite, key, nonce, { authTagLength: TAG_SIZE });
  decipher.setAuthTag(sealed.subarray(n));
  decipher.setAAD(aad, { plaintextLength: n });
  const out = new Uint8Array(n);
  const body = decipher.update(sealed.subarray(0, n));
  let rest: Uint8Array;
  try {
    rest = decipher.final();
  } catch {
    out.fill(0); // unauthenticated plaintext never leaves this function
    body.fill(0);
    throw authFailed();
  }
  out.set(body, 0);
  out.set(rest, body.byteLength);
  return out;
}

function authFailed(why = 'authentication tag does not verify'): CrimgError {
  return new CrimgError('AUTH_FAILED', why, {
    hint: 'the bytes, their position or the header were changed after sealing, or the key is wrong',
  });
}
