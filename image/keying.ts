/** How callers hand over key material (spec/FORMAT.md section 7.1). */
import type { KeySpec } from '../codec/keys.js';

/** A 32-byte master key, or a passphrase stretched with scrypt. */
export type KeyInput = Uint8Array | { key: Uint8Array } | { passphrase: string | Uint8Array };

/** The codec layer's form of a key input; undefined when none was given. */
export function toKeySpec(k: KeyInput | undefined): KeySpec | undefined {
  if (k === undefined || k === null) return undefined;
  if (k instanceof Uint8Array) return { key: k };
  if (typeof k === 'object' && ('key' in k || 'passphrase' in k)) return k;
  throw new TypeError(`expected a key as a 32-byte Uint8Array, { key } or { passphrase }, got ${typeof k}`);
}
