/**
 * The portable engine's libraries (fflate, @noble/ciphers, @noble/hashes), loaded when first
 * needed instead of with the codec: about 35 ms of module loading that every process paid,
 * `crimg` commands and captures included, though the node engine is the default.
 *
 * The codec's primitives are synchronous, so the libraries must be loaded before a primitive
 * runs with `engine: 'portable'`: {@link loadPortableEngine} does it, and the library's own
 * entry points call it when they are given that engine (ImageWriter.create, openImage, the
 * chunk pool's workers). Code that calls the primitives itself awaits it once first.
 */
import type { gcm as Gcm } from '@noble/ciphers/aes.js';
import type { chacha20poly1305 as ChaCha } from '@noble/ciphers/chacha.js';
import type { hkdf as Hkdf } from '@noble/hashes/hkdf.js';
import type { sha256 as Sha256 } from '@noble/hashes/sha2.js';
import type { scrypt as Scrypt } from '@noble/hashes/scrypt.js';
import type { Inflate as FflateInflate, deflateSync as FflateDeflateSync, inflateSync as FflateInflateSync } from 'fflate';
import type { decompress as FzstdDecompress } from 'fzstd';

/** What the portable engine uses of each library. */
export interface PortableLibraries {
  gcm: typeof Gcm;
  chacha20poly1305: typeof ChaCha;
  hkdf: typeof Hkdf;
  sha256: typeof Sha256;
  scrypt: typeof Scrypt;
  Inflate: typeof FflateInflate;
  inflateSync: typeof FflateInflateSync;
  deflateSync: typeof FflateDeflateSync;
  /** fzstd's one-shot decoder (codec/zstd.ts checks the frame rules first). */
  zstdDecompress: typeof FzstdDecompress;
}

let libraries: PortableLibraries | null = null;
let loading: Promise<void> | null = null;

/**
 * Loads the portable engine's libraries; resolves at once when they are loaded. Safe to call
 * any number of times, concurrently too.
 * @example
 * await loadPortableEngine();
 * seal('aes-256-gcm', key, nonce, aad, plain, 'portable');
 */
export function loadPortableEngine(): Promise<void> {
  if (libraries) return Promise.resolve();
  loading ??= Promise.all([
    import('@noble/ciphers/aes.js'), import('@noble/ciphers/chacha.js'), import('@noble/hashes/hkdf.js'),
    import('@noble/hashes/sha2.js'), import('@noble/hashes/scrypt.js'), import('fflate'), import('fzstd'),
  ]).then(([aes, chacha, hkdf, sha2, scrypt, fflate, fzstd]) => {
    libraries = {
      gcm: aes.gcm, chacha20poly1305: chacha.chacha20poly1305, hkdf: hkdf.hkdf, sha256: sha2.sha256,
      scrypt: scrypt.scrypt, Inflate: fflate.Inflate, inflateSync: fflate.inflateSync, deflateSync: fflate.deflateSync,
      zstdDecompress: fzstd.decompress,
    };
  }, (e: unknown) => {
    loading = null; // a later call may try again
    throw e;
  });
  return loading;
}

/** True once {@link loadPortableEngine} has resolved. */
export function portableEngineLoaded(): boolean {
  return libraries !== null;
}

/**
 * The loaded libraries.
 * @throws Error when {@link loadPortableEngine} has not resolved yet (a programming error: the
 *   primitives are synchronous and cannot load them).
 */
export function portableLibraries(): PortableLibraries {
  if (libraries === null) {
    throw new Error("the portable engine is not loaded: await loadPortableEngine() (codec/portable.js) before calling a codec primitive with engine 'portable'");
  }
  return libraries;
}
