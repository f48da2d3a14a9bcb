/**
 * Fixed sizes of the sealed-message construction (spec/FORMAT.md section 7 table, 7.3, 7.4).
 */

/** AEAD key length in bytes, for both ciphers (spec section 7). */
export const KEY_LENGTH = 32;
/** AEAD nonce length in bytes (spec section 7). */
export const NONCE_LENGTH = 12;
/** AEAD tag length in bytes, appended to the ciphertext (spec sections 5.1, 7). */
export const TAG_LENGTH = 16;
/** Salt length in the header (spec section 3, offset 80). */
export const SALT_LENGTH = 16;
/** Image id length (spec section 3, offset 40). */
export const IMAGE_ID_LENGTH = 16;
/** Header hash `H` length: SHA-256 (spec section 7.2). */
export const HEADER_HASH_LENGTH = 32;
/** Key check value length (spec sections 3 offset 96, 7.2). */
export const KEY_CHECK_LENGTH = 16;
/** Associated data length of a sealed chunk (spec section 7.3). */
export const CHUNK_AAD_LENGTH = 76;
/** Associated data length of a sealed index message (spec section 7.4). */
export const INDEX_AAD_LENGTH = 65;
