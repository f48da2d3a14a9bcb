/**
 * XXH64 (seed 0) over a byte range: the one checksum algorithm of the format
 * (spec/FORMAT.md section 2.2). Two engines, the same function:
 * - the native addon's (native-mmap/src/scan.cc), when it is built: hashes the caller's memory
 *   in place, about 7 GiB/s here;
 * - xxhash-wasm's module, everywhere: copies the bytes into its wasm heap first, about 6 GiB/s
 *   on 4 KiB..1 MiB inputs plus the copy.
 * test/sparse.test.ts checks that they agree; CRIMG_NO_NATIVE=1 selects the wasm engine.
 *
 * Importing this module runs nothing: the engine is chosen on the first hash, when the addon
 * loads or the wasm module compiles. Both happen synchronously, so {@link xxh64} stays a plain
 * function for the format's encoders and decoders.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { nativeAddon } from '../native-mmap/index.js';

type Hash = (bytes: Uint8Array) => bigint;

/** The part of the WebAssembly global used here (lib es2022 does not declare it). */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}

const WASM_PAGE = 65536;

/** The xxhash-wasm release package.json pins exactly: its file layout is relied on below. */
const XXHASH_WASM_VERSION = '1.1.0';
const REMEDY =
  `reinstall the pinned xxhash-wasm@${XXHASH_WASM_VERSION} (npm install), ` +
  'or build the native addon (node native-mmap/install.mjs), which hashes without it';

/**
 * Where xxhash-wasm ships its module as a file (for workerd), byte for byte the one its loaders
 * embed. Its exports map hides that file, so it is found beside the resolved entry point, by the
 * layout of the pinned release (cjs/, workerd/): a later release may move it, hence the pin.
 */
function wasmModuleFile(): string {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('xxhash-wasm');
  } catch (err) {
    throw new Error(`the wasm XXH64 engine needs the package xxhash-wasm, which is not installed (${errText(err)}); ${REMEDY}`);
  }
  return path.join(path.dirname(entry), '..', 'workerd', 'xxhash.wasm');
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * xxhash-wasm's module at `file`, compiled and instantiated synchronously: the package's own
 * loader is async, which would cost a top-level await at import.
 * @param file - the module, xxhash-wasm's workerd/xxhash.wasm.
 * @returns XXH64 (seed 0) by that module.
 * @throws Error naming `file` and the remedy (reinstall the pinned xxhash-wasm, or build the
 *   native addon) when it is missing, unreadable, not a wasm module, or lacks the mem and xxh64
 *   exports.
 * @example
 * const h = loadWasmXxh64(file);
 * h(new Uint8Array(0)); // 0xef46db3751d8e999n
 */
export function loadWasmXxh64(file: string): Hash {
  const { Module, Instance } = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;
  let exports: Record<string, unknown>;
  try {
    ({ exports } = new Instance(new Module(readFileSync(file))));
  } catch (err) {
    const what = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `failed to load (${errText(err)})`;
    throw new Error(`xxhash-wasm's module ${file}, the wasm XXH64 engine, ${what}; ${REMEDY}`);
  }
  const mem = exports.mem as WasmMemory | undefined;
  const h64 = exports.xxh64 as ((at: number, length: number, seed: bigint) => bigint) | undefined;
  if (typeof h64 !== 'function' || typeof mem?.grow !== 'function') {
    throw new Error(`xxhash-wasm's module ${file}, the wasm XXH64 engine, lacks the mem and xxh64 exports; ${REMEDY}`);
  }
  let heap = new Uint8Array(mem.buffer);
  return (bytes) => {
    if (heap.byteLength < bytes.byteLength) {
      mem.grow(Math.ceil((bytes.byteLength - heap.byteLength) / WASM_PAGE));
      heap = new Uint8Array(mem.buffer);
    }
    heap.set(bytes);
    // The wasm i64 comes back signed.
    return BigInt.asUintN(64, h64(0, bytes.byteLength, 0n));
  };
}

/** The wasm engine, or why it failed: loaded on the first hash, once, the same answer ever after. */
function instantiateWasm(): Hash {
  try {
    return loadWasmXxh64(wasmModuleFile());
  } catch (err) {
    // Every later hash throws the first failure again rather than retry the file system.
    return () => {
      throw err;
    };
  }
}

let wasmHash: Hash | undefined;
let hash: Hash | undefined;

/**
 * XXH64 of `bytes` with seed 0 by xxhash-wasm's module, as an unsigned 64-bit bigint.
 * @throws Error saying what is missing and what to do when the module cannot be loaded
 *   (see {@link loadWasmXxh64}); decided on the first call.
 */
export function xxh64Wasm(bytes: Uint8Array): bigint {
  return (wasmHash ??= instantiateWasm())(bytes);
}

function chooseEngine(): Hash {
  const addon = nativeAddon();
  return addon ? addon.xxh64.bind(addon) : xxh64Wasm;
}

/**
 * XXH64 of `bytes` with seed 0, as an unsigned 64-bit bigint (spec section 2.2).
 * @param bytes - any length.
 * @returns the checksum, in [0, 2^64).
 * @throws Error when neither the native addon nor xxhash-wasm's module is available, saying
 *   what is missing and what to do (see {@link loadWasmXxh64}).
 * @example
 * xxh64(new Uint8Array(0)); // 0xef46db3751d8e999n
 */
export function xxh64(bytes: Uint8Array): bigint {
  return (hash ??= chooseEngine())(bytes);
}

/**
 * XXH64 of every `chunkSize` piece of `bytes` (the last may be shorter) into `sums`: one native
 * call for a run of chunks when the addon is available, else one {@link xxh64} per chunk.
 * @param bytes - chunks back to back.
 * @param chunkSize - bytes per chunk, >= 1.
 * @param sums - receives ceil(bytes.length / chunkSize) checksums.
 * @example
 * const sums = new BigUint64Array(2);
 * xxh64Chunks(twoChunks, 4096, sums);
 */
export function xxh64Chunks(bytes: Uint8Array, chunkSize: number, sums: BigUint64Array): void {
  const addon = nativeAddon();
  if (addon) {
    addon.hashChunks(bytes, chunkSize, sums);
    return;
  }
  for (let at = 0, k = 0; at < bytes.byteLength; at += chunkSize, k++) {
    sums[k] = xxh64(bytes.subarray(at, Math.min(at + chunkSize, bytes.byteLength)));
  }
}

/**
 * Which engine {@link xxh64} uses: 'native' or 'wasm'. Decides it, if no hash has yet.
 * @example
 * checksumEngine(); // 'wasm' under CRIMG_NO_NATIVE=1
 */
export function checksumEngine(): 'native' | 'wasm' {
  return nativeAddon() ? 'native' : 'wasm';
}
