/**
 * Engines: every primitive of the codec layer has two implementations that produce the same
 * results (spec/FORMAT.md sections 6 and 7 define the bytes, not the implementation).
 *
 * - `'node'`: node:zlib and node:crypto (OpenSSL). Fast; the default.
 * - `'portable'`: fflate, @noble/ciphers and @noble/hashes, pure JavaScript. Slower; runs
 *   wherever JavaScript runs, and serves as the differential reference in tests.
 *
 * Decoding and opening are interoperable across engines: bytes written with one engine are
 * read by the other. AEAD ciphertexts and derived keys are byte-identical across engines;
 * DEFLATE streams are not (each engine's encoder makes its own choices), but each engine
 * decodes the other's streams to the same plain bytes.
 */
import { expectOneOf } from './_check.js';

/** Implementation choice for codec primitives. */
export type Engine = 'node' | 'portable';

/** All engines, default first. */
export const ENGINES: readonly Engine[] = Object.freeze(['node', 'portable'] as const);

/** The engine used when none is given. */
export const DEFAULT_ENGINE: Engine = 'node';

/**
 * Returns `engine`, or the default when it is undefined.
 * @throws TypeError / RangeError when `engine` is neither `'node'` nor `'portable'`.
 * @example
 * checkEngine(undefined); // 'node'
 */
export function checkEngine(engine: unknown): Engine {
  if (engine === undefined) return DEFAULT_ENGINE;
  expectOneOf('engine', engine, ENGINES);
  return engine;
}
