/**
 * The format's one checksum, XXH64 with seed 0 (spec/FORMAT.md section 2.2), as a type. The
 * format floor computes no hash itself: callers inject one, so that this floor stays pure and
 * loads no engine (codec/checksum.ts has the native and wasm ones).
 */

/** XXH64 (seed 0) of `bytes`, as an unsigned 64-bit bigint (section 2.2). */
export type Checksum = (bytes: Uint8Array) => bigint;
