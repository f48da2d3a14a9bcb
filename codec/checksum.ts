/**
 * XXH64 (seed 0) over a byte range: the one checksum algorithm of the format
 * (spec/FORMAT.md section 2.2). Two engines, the same function:
 * - the native addon's (native-mmap/src/scan.cc), when it is built: hashes the caller's memory
 *   in place, about 7 GiB/s here;
 * - xxhash-wasm, everywhere: copies the bytes into its wasm heap first, about 6 GiB/s on
 *   4 KiB..1 MiB inputs plus the copy.
 * test/sparse.test.ts checks that they agree; CRIMG_NO_NATIVE=1 selects xxhash-wasm.
 */
import xxhash from 'xxhash-wasm';
import { native } from '../native-mmap/index.js';

const hasher = await xxhash();

/** XXH64 of `bytes` with seed 0 by xxhash-wasm, as an unsigned 64-bit bigint. */
export function xxh64Wasm(bytes: Uint8Array): bigint {
  return hasher.h64Raw(bytes, 0n);
}

/** The addon, when it is built with the hashing functions (a stale build may lack them). */
const addon = native && typeof native.xxh64 === 'function' ? native : null;

/** The native addon's XXH64, when it loaded. */
const nativeHash: ((bytes: Uint8Array) => bigint) | null = addon ? addon.xxh64.bind(addon) : null;

/**
 * XXH64 of every `chunkSize` piece of `bytes` (the last may be shorter) into `sums`: one native
 * call for a run of chunks, or null without the addon (hash them one by one then).
 */
export const xxh64Chunks: ((bytes: Uint8Array, chunkSize: number, sums: BigUint64Array) => void) | null =
  addon && typeof addon.hashChunks === 'function' ? addon.hashChunks.bind(addon) : null;

/** XXH64 of `bytes` with seed 0, as an unsigned 64-bit bigint. */
export const xxh64: (bytes: Uint8Array) => bigint = nativeHash ?? xxh64Wasm;

/** Which engine {@link xxh64} is: 'native' or 'wasm'. */
export const checksumEngine: 'native' | 'wasm' = nativeHash ? 'native' : 'wasm';
