/**
 * Numeric identifiers stored in the header (spec/FORMAT.md section 3, offsets 68-74): codec id
 * (section 6), cipher id (section 7) and KDF id (section 7.1).
 */

/** Codec id 0: no chunk is `ENCODED` (spec section 6). */
export const CODEC_NONE = 0;
/** Codec id 1: raw DEFLATE (RFC 1951), one complete stream per chunk (spec section 6). */
export const CODEC_DEFLATE = 1;
/** Codec id 2: zstd, reserved; not written or read by v1.0 implementations (spec section 6). */
export const CODEC_ZSTD = 2;

/** Codec ids this implementation encodes and decodes. */
export type CodecId = typeof CODEC_NONE | typeof CODEC_DEFLATE;

/** Cipher id 0: no encryption (spec section 7). */
export const CIPHER_NONE = 0;
/** Cipher id 1: AES-256-GCM, NIST SP 800-38D (spec section 7). */
export const CIPHER_AES_256_GCM = 1;
/** Cipher id 2: ChaCha20-Poly1305, RFC 8439 (spec section 7). */
export const CIPHER_CHACHA20_POLY1305 = 2;

/** Cipher ids this implementation seals and opens. */
export type CipherId = typeof CIPHER_NONE | typeof CIPHER_AES_256_GCM | typeof CIPHER_CHACHA20_POLY1305;

/** KDF id 0: the master key is 32 bytes given by the user (spec section 7.1). */
export const KDF_RAW = 0;
/** KDF id 1: the master key is scrypt of a passphrase (spec section 7.1). */
export const KDF_SCRYPT = 1;

/** KDF ids this implementation understands. */
export type KdfId = typeof KDF_RAW | typeof KDF_SCRYPT;

/** Lowest and highest DEFLATE codec level (spec section 6). */
export const DEFLATE_MIN_LEVEL = 1;
/** @see DEFLATE_MIN_LEVEL */
export const DEFLATE_MAX_LEVEL = 9;

/** Largest chunk size and therefore largest plain length of a chunk: 16 MiB (spec section 9). */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
