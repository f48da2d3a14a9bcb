/** How callers hand over key material (spec/FORMAT.md section 7.1). */

/** A 32-byte master key, or a passphrase stretched with scrypt. */
export type KeyInput = Uint8Array | { key: Uint8Array } | { passphrase: string | Uint8Array };
