/**
 * Byte-layout constants of format version 1.0. Every number here is defined in
 * spec/FORMAT.md; the section is cited beside it.
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
/** Section 7: AEAD tag length of both suites. */
export const TAG_SIZE = 16;
/** Section 3: lengths of the header's image id (offset 40), salt (80) and key check value (96). */
export const IMAGE_ID_LENGTH = 16;
export const SALT_LENGTH = 16;
export const KEY_CHECK_LENGTH = 16;

/** Section 3.1: required feature bits. */
export const REQUIRED_CODEC = 1n << 0n;
export const REQUIRED_CIPHER = 1n << 1n;
export const KNOWN_REQUIRED = REQUIRED_CODEC | REQUIRED_CIPHER;
/** Section 3.1: optional feature bits. */
export const OPTIONAL_MAPPABLE = 1n << 0n;
export const OPTIONAL_SPARSE = 1n << 1n;

/** Section 5.3: chunk flags. */
export const CHUNK_ZERO = 1;
export const CHUNK_RAW = 2;
export const CHUNK_ENCODED = 4;
export const CHUNK_ENCRYPTED = 8;

/** Section 9: limits a reader enforces before allocating. */
export const LIMITS = {
  minPageSize: 4096,
  maxPageSize: 65536,
  maxChunkSize: 16 * 1024 * 1024,
  minValidationSize: 16,
  maxValidationSize: 1024 * 1024,
  maxValidationRecords: 65536,
  maxRegions: 1 << 20,
  maxStringTable: 64 * 1024 * 1024,
  maxNameLength: 4096,
  maxKeyLength: 255,
  maxChunksPerRegion: 0xffffffff,
} as const;

/** Section 9: default chunk size, chosen by the measurement in bench/chunk-size.ts. */
export const DEFAULT_CHUNK_SIZE = 16 * 1024;

/** Section 8.1: region kinds. */
export const REGION_KINDS = ['anonymous', 'heap', 'stack', 'code', 'metadata', 'file', 'gap'] as const;
export type RegionKind = (typeof REGION_KINDS)[number];
export const KIND_GAP = 6;

/** Section 6: codec ids. */
export const CODECS = { none: 0, deflate: 1, zstd: 2 } as const;
export type CodecName = keyof typeof CODECS;
/** Section 7: cipher ids. */
export const CIPHERS = { none: 0, 'aes-256-gcm': 1, 'chacha20-poly1305': 2 } as const;
export type CipherName = keyof typeof CIPHERS;

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
