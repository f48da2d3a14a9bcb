/**
 * Byte-layout constants of format version 1.x. Every number here is defined in
 * spec/FORMAT.md; the section is cited beside it. The byte layout owns them: codec/ imports its
 * ids, flags and lengths from here rather than keeping copies.
 */

/** Header magic, section 3: "\x89CRI\r\n\x1a\n". */
export const HEADER_MAGIC = Uint8Array.of(0x89, 0x43, 0x52, 0x49, 0x0d, 0x0a, 0x1a, 0x0a);
/** Footer end magic, section 8.2: "\x89END\r\n\x1a\n". */
export const END_MAGIC = Uint8Array.of(0x89, 0x45, 0x4e, 0x44, 0x0d, 0x0a, 0x1a, 0x0a);
/** Validation block magic, section 4: "CRVB". */
export const VALIDATION_MAGIC = Uint8Array.of(0x43, 0x52, 0x56, 0x42);

export const FORMAT_MAJOR = 1;
/** The newest minor version this implementation writes: 1.1 added the optional feature SPARSE. */
export const FORMAT_MINOR = 1;

/** Section 3: header size written by v1.0 writers, and the accepted range. */
export const HEADER_SIZE = 128;
export const MAX_HEADER_SIZE = 4096;
/** Section 8.2. */
export const FOOTER_SIZE = 96;
/** Section 5.3 and 8.1. */
export const CHUNK_RECORD_SIZE = 24;
export const REGION_RECORD_SIZE = 64;
/** Section 3: lengths of the header's image id (offset 40), salt (80) and key check value (96, section 7.2). */
export const IMAGE_ID_LENGTH = 16;
export const SALT_LENGTH = 16;
export const KEY_CHECK_LENGTH = 16;

/** Section 7: AEAD key length of both suites. */
export const KEY_LENGTH = 32;
/** Section 7: AEAD nonce length of both suites. */
export const NONCE_LENGTH = 12;
/** Section 7: AEAD tag length of both suites, appended to the ciphertext (section 5.1). */
export const TAG_SIZE = 16;
/** Section 7.2: length of the header hash `H` (SHA-256). */
export const HEADER_HASH_LENGTH = 32;
/** Section 7.3: associated data length of a sealed chunk. */
export const CHUNK_AAD_LENGTH = 76;
/** Section 7.4: associated data length of a sealed index message. */
export const INDEX_AAD_LENGTH = 65;

/** Section 3.1: required feature bits. */
export const REQUIRED_CODEC = 1n << 0n;
export const REQUIRED_CIPHER = 1n << 1n;
/**
 * Bit 2, PARENT: the image is a child of a parent image (section 8.3): chunks flagged
 * {@link CHUNK_IN_PARENT} hold the parent's bytes, named by the validation record type 8.
 */
export const REQUIRED_PARENT = 1n << 2n;
export const KNOWN_REQUIRED = REQUIRED_CODEC | REQUIRED_CIPHER | REQUIRED_PARENT;
/** Section 3.1: optional feature bits. */
export const OPTIONAL_MAPPABLE = 1n << 0n;
export const OPTIONAL_SPARSE = 1n << 1n;

/** Section 5.3, chunk flags bit 0: all plain bytes are zero; nothing is stored (section 5.1). */
export const CHUNK_ZERO = 1;
/** Bit 1: the plain bytes are stored as they are, or sealed (section 5.1). */
export const CHUNK_RAW = 2;
/** Bit 2: the plain bytes are stored encoded by the image's codec (section 5.1). */
export const CHUNK_ENCODED = 4;
/** Bit 3: the stored bytes are sealed, ciphertext then 16-byte tag (sections 5.1, 7.3). */
export const CHUNK_ENCRYPTED = 8;
/**
 * Bit 4, IN_PARENT (section 8.3): nothing is stored; the plain bytes are the parent image's
 * chunk at the same address with the same plain length. Only with the required feature PARENT,
 * and alone: no other flag, offset, stored length and checksum 0.
 */
export const CHUNK_IN_PARENT = 16;
/** All defined chunk flags of an image without PARENT; the others are reserved and MUST be 0 (section 5.3). */
export const CHUNK_FLAGS_KNOWN = CHUNK_ZERO | CHUNK_RAW | CHUNK_ENCODED | CHUNK_ENCRYPTED;

/**
 * Section 9: limits a reader enforces before allocating, each with the code a reader reports
 * (section 9's table, section 12): a count that sizes a reader's work is LIMIT_EXCEEDED, a
 * field's valid range the code of its structure. All are checked at open.
 */
export const LIMITS = {
  /** Header page size range: CORRUPT_HEADER. */
  minPageSize: 4096,
  maxPageSize: 65536,
  /** Header chunk size: CORRUPT_HEADER. */
  maxChunkSize: 16 * 1024 * 1024,
  /** Header validation size range: CORRUPT_HEADER. */
  minValidationSize: 16,
  maxValidationSize: 1024 * 1024,
  /** Validation block record count: LIMIT_EXCEEDED. */
  maxValidationRecords: 65536,
  /** Footer region count: LIMIT_EXCEEDED. */
  maxRegions: 1 << 20,
  /** Footer string table length: LIMIT_EXCEEDED. */
  maxStringTable: 64 * 1024 * 1024,
  /** Region record name length: CORRUPT_INDEX. */
  maxNameLength: 4096,
  /** Validation record key length (section 4, 1 to 255 bytes): CORRUPT_VALIDATION. */
  maxKeyLength: 255,
  /** Chunks of one region (fewer than 2^32): LIMIT_EXCEEDED. */
  maxChunksPerRegion: 0xffffffff,
  /** Parent images below a child (the parent record's depth, section 8.3): LIMIT_EXCEEDED. */
  maxChainDepth: 32,
  /** Parent record location hint, UTF-8 bytes (section 8.3): CORRUPT_VALIDATION. */
  maxParentHint: 4096,
} as const;

/** Section 9: default chunk size, chosen by the measurement in bench/chunk-size.ts. */
export const DEFAULT_CHUNK_SIZE = 16 * 1024;

/** Section 8.1: region kinds. */
export const REGION_KINDS = ['anonymous', 'heap', 'stack', 'code', 'metadata', 'file', 'gap'] as const;
export type RegionKind = (typeof REGION_KINDS)[number];
export const KIND_GAP = 6;

/** Section 8.1, region flags bit 0: the mapping was shared (MAP_SHARED, `s` in /proc/PID/maps). */
export const REGION_SHARED = 1;
/** Bit 1: the region record's file page holds the mapping's file offset, in pages. */
export const REGION_FILE_OFFSET = 2;
/** All defined region flags; a reader ignores the others (section 8.1). */
export const REGION_FLAGS_KNOWN = REGION_SHARED | REGION_FILE_OFFSET;
/** Section 8.1: the largest file page a region record holds (a u32). */
export const MAX_FILE_PAGE = 0xffffffff;

/** Section 6, codec id 0: no chunk is `ENCODED`. */
export const CODEC_NONE = 0;
/** Codec id 1: raw DEFLATE (RFC 1951), one complete stream per chunk. */
export const CODEC_DEFLATE = 1;
/** Codec id 2: zstd, one single-segment frame per chunk (section 6.2). */
export const CODEC_ZSTD = 2;
/** Codec names by id, as options and tools spell them. */
export const CODECS = { none: CODEC_NONE, deflate: CODEC_DEFLATE, zstd: CODEC_ZSTD } as const;
export type CodecName = keyof typeof CODECS;
/** Codec ids this implementation encodes and decodes. */
export type CodecId = typeof CODEC_NONE | typeof CODEC_DEFLATE | typeof CODEC_ZSTD;
/** Section 6: lowest and highest deflate codec level. */
export const DEFLATE_MIN_LEVEL = 1;
export const DEFLATE_MAX_LEVEL = 9;
/** Section 6: lowest and highest zstd codec level. */
export const ZSTD_MIN_LEVEL = 1;
export const ZSTD_MAX_LEVEL = 19;

/** Section 7, cipher id 0: no encryption. */
export const CIPHER_NONE = 0;
/** Cipher id 1: AES-256-GCM, NIST SP 800-38D. */
export const CIPHER_AES_256_GCM = 1;
/** Cipher id 2: ChaCha20-Poly1305, RFC 8439. */
export const CIPHER_CHACHA20_POLY1305 = 2;
/** Cipher names by id, as options and tools spell them. */
export const CIPHERS = { none: CIPHER_NONE, 'aes-256-gcm': CIPHER_AES_256_GCM, 'chacha20-poly1305': CIPHER_CHACHA20_POLY1305 } as const;
export type CipherName = keyof typeof CIPHERS;
/** Cipher ids this implementation seals and opens. */
export type CipherId = (typeof CIPHERS)[CipherName];

/** Section 7.1, KDF id 0: the master key is 32 bytes given by the user. */
export const KDF_RAW = 0;
/** KDF id 1: the master key is scrypt of a passphrase. */
export const KDF_SCRYPT = 1;
/** KDF ids this implementation understands. */
export type KdfId = typeof KDF_RAW | typeof KDF_SCRYPT;

/** Name of a codec id, or `unknown(N)`. */
export function codecName(id: number): string {
  for (const [k, v] of Object.entries(CODECS)) if (v === id) return k;
  return `unknown(${id})`;
}

/** Name of a cipher id, or `unknown(N)`. */
export function cipherName(id: number): string {
  for (const [k, v] of Object.entries(CIPHERS)) if (v === id) return k;
  return `unknown(${id})`;
}

/** Protection bits, section 8.1. */
export const PROT_R = 1;
export const PROT_W = 2;
export const PROT_X = 4;

/** "rw-" style text of protection bits. */
export function protToString(prot: number): string {
  return (prot & PROT_R ? 'r' : '-') + (prot & PROT_W ? 'w' : '-') + (prot & PROT_X ? 'x' : '-');
}

/**
 * Protection bits of "rw-" style text (also accepts "rwxp"-style /proc maps text, ignoring the
 * 4th character).
 * @throws RangeError on anything else.
 */
export function parseProt(text: string): number {
  if (!/^[r-][w-][x-][ps-]?$/.test(text)) {
    throw new RangeError(`expected protection like "rw-" or "r-x", got ${JSON.stringify(text)}`);
  }
  return (text[0] === 'r' ? PROT_R : 0) | (text[1] === 'w' ? PROT_W : 0) | (text[2] === 'x' ? PROT_X : 0);
}

/** Kind name of a kind byte; unknown kinds are "unknown(N)" (section 8.1: not an error). */
export function kindName(kind: number): string {
  return REGION_KINDS[kind] ?? `unknown(${kind})`;
}

/** Kind byte of a kind name. @throws RangeError */
export function parseKind(name: string): number {
  const i = (REGION_KINDS as readonly string[]).indexOf(name);
  if (i < 0) throw new RangeError(`expected a region kind (${REGION_KINDS.join(', ')}), got ${JSON.stringify(name)}`);
  return i;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
