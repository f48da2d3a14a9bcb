/**
 * Header encode/decode, spec/FORMAT.md section 3. Pure: bytes in, fields out.
 */
import type { Checksum } from './checksum.js';
import {
  CIPHERS, CODECS, DEFLATE_MAX_LEVEL, DEFLATE_MIN_LEVEL, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL, FORMAT_MAJOR, FORMAT_MINOR, HEADER_MAGIC, HEADER_SIZE,
  KDF_RAW, KDF_SCRYPT, KNOWN_REQUIRED, LIMITS, MAX_HEADER_SIZE, OPTIONAL_MAPPABLE, OPTIONAL_SPARSE,
  REQUIRED_CIPHER, REQUIRED_CODEC, REQUIRED_PARENT, isPowerOfTwo,
} from './constants.js';
import { equalBytes, view } from './bytes.js';
import { CrimgError } from './errors.js';
import { HEADER, decodeFields, encodeFields, offsetOf, type FieldName } from './fields.js';

/** The decoded header. */
export interface Header {
  major: number;
  minor: number;
  headerSize: number;
  requiredFeatures: bigint;
  optionalFeatures: bigint;
  pageSize: number;
  chunkSize: number;
  imageId: Uint8Array;
  /** Milliseconds since the Unix epoch. */
  created: bigint;
  validationSize: number;
  codec: number;
  codecLevel: number;
  cipher: number;
  kdf: number;
  scryptLog2N: number;
  scryptR: number;
  scryptP: number;
  salt: Uint8Array;
  keyCheck: Uint8Array;
  checksum: bigint;
}

/** Fields a writer chooses; the rest are derived. */
export type HeaderFields = Omit<Header, 'major' | 'minor' | 'headerSize' | 'checksum' | 'requiredFeatures'> & {
  requiredFeatures?: bigint;
};

/** Required feature bits implied by the codec and cipher ids (section 3.1). */
export function impliedRequired(codec: number, cipher: number): bigint {
  return (codec !== 0 ? REQUIRED_CODEC : 0n) | (cipher !== 0 ? REQUIRED_CIPHER : 0n);
}

/**
 * Encodes a header of {@link HEADER_SIZE} bytes with its checksum, as version 1.0, or 1.1 when
 * the image uses SPARSE (section 10: the lowest version that describes the image).
 * @throws RangeError when the image id, salt or key check value is not 16 bytes.
 */
export function encodeHeader(f: HeaderFields, xxh64: Checksum): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  encodeFields(HEADER, {
    magic: HEADER_MAGIC,
    major: FORMAT_MAJOR,
    minor: (f.optionalFeatures & OPTIONAL_SPARSE) !== 0n ? FORMAT_MINOR : 0,
    headerSize: HEADER_SIZE,
    requiredFeatures: f.requiredFeatures ?? impliedRequired(f.codec, f.cipher),
    optionalFeatures: f.optionalFeatures,
    pageSize: f.pageSize,
    chunkSize: f.chunkSize,
    imageId: f.imageId,
    created: f.created,
    validationSize: f.validationSize,
    codec: f.codec,
    codecLevel: f.codecLevel,
    cipher: f.cipher,
    kdf: f.kdf,
    scryptLog2N: f.scryptLog2N,
    scryptR: f.scryptR,
    scryptP: f.scryptP,
    salt: f.salt,
    keyCheck: f.keyCheck,
    checksum: 0n,
  }, b);
  const at = offsetOf(HEADER, 'checksum');
  view(b).setBigUint64(at, xxh64(b.subarray(0, at)), true);
  return b;
}

/** Names of the set bits of `bits` outside `known`, e.g. "bit 5". */
function unknownBits(bits: bigint, known: bigint): string[] {
  const out: string[] = [];
  if ((bits & ~known) === 0n) return out;
  for (let i = 0n; i < 64n; i++) if ((bits >> i) & 1n && !((known >> i) & 1n)) out.push(`bit ${i}`);
  return out;
}

/**
 * Reads the header size field (offset 12) after checking magic and major version, so the
 * caller knows how many bytes to fetch. `first16` is the file's first 16 bytes, or all of a
 * shorter file: each of magic, major version and header size is checked only when the bytes
 * hold all of it, and the first that they do not hold is `TRUNCATED` (section 3: shorter than
 * 8 bytes is `BAD_MAGIC`; 8 to 15 bytes that start with the magic are a truncated header).
 * @throws CrimgError BAD_MAGIC, UNSUPPORTED_VERSION, TRUNCATED, CORRUPT_HEADER
 */
export function peekHeaderSize(first16: Uint8Array): number {
  const magic = offsetOf(HEADER, 'magic');
  if (first16.length < magic + HEADER_MAGIC.length || !equalBytes(first16.subarray(magic, magic + HEADER_MAGIC.length), HEADER_MAGIC)) {
    const textDamage = first16[0] === 0x43 || (first16[4] === 0x0a && first16[5] !== 0x0a);
    throw new CrimgError('BAD_MAGIC', 'not a crimg image: the header magic is wrong', {
      offset: magic,
      hint: textDamage
        ? 'the bytes look altered by a text-mode transfer; copy the file again in binary mode'
        : 'check that this is a crimg image and that the file is complete',
    });
  }
  const truncated = (field: string): never => {
    throw new CrimgError('TRUNCATED', `the file is ${first16.length} bytes: it ends inside the header's ${field}`, {
      offset: first16.length, hint: 'the image is incomplete; copy it again',
    });
  };
  const dv = view(first16);
  if (first16.length < offsetOf(HEADER, 'major') + 2) truncated('major version');
  const major = dv.getUint16(offsetOf(HEADER, 'major'), true);
  if (major !== FORMAT_MAJOR) {
    const minor = first16.length >= offsetOf(HEADER, 'minor') + 2 ? dv.getUint16(offsetOf(HEADER, 'minor'), true) : 0;
    throw new CrimgError('UNSUPPORTED_VERSION', `image format version ${major}.${minor} is not supported (this reader reads ${FORMAT_MAJOR}.x)`, {
      offset: offsetOf(HEADER, 'major'), hint: 'use a crimg release that supports this major version',
    });
  }
  if (first16.length < offsetOf(HEADER, 'headerSize') + 4) truncated('header size');
  const size = dv.getUint32(offsetOf(HEADER, 'headerSize'), true);
  if (size < HEADER_SIZE || size > MAX_HEADER_SIZE || size % 8 !== 0) {
    throw new CrimgError('CORRUPT_HEADER', `header size ${size} is out of range (${HEADER_SIZE}..${MAX_HEADER_SIZE}, multiple of 8)`, { offset: offsetOf(HEADER, 'headerSize') });
  }
  return size;
}

/**
 * Decodes and validates a header (section 3, checks in the order the section gives).
 * @param bytes exactly `header size` bytes from offset 0.
 * @param xxh64 the checksum (section 2.2).
 * @throws CrimgError BAD_MAGIC, UNSUPPORTED_VERSION, CORRUPT_HEADER, UNSUPPORTED_FEATURE
 */
export function decodeHeader(bytes: Uint8Array, xxh64: Checksum): Header {
  const headerSize = peekHeaderSize(bytes.subarray(0, 16));
  if (bytes.length < headerSize) {
    throw new CrimgError('TRUNCATED', `header needs ${headerSize} bytes, got ${bytes.length}`, { offset: 0 });
  }
  const r = decodeFields(HEADER, bytes, 0, headerSize);
  const checksumAt = offsetOf(HEADER, 'checksum', headerSize);
  if (r.checksum !== xxh64(bytes.subarray(0, checksumAt))) {
    throw new CrimgError('CORRUPT_HEADER', 'header checksum mismatch', {
      offset: checksumAt, hint: 'the first bytes of the file are damaged; restore it from a good copy',
    });
  }
  const bad = (field: string, name: FieldName<typeof HEADER.fields[number]>, why: string): never => {
    throw new CrimgError('CORRUPT_HEADER', `header field ${field} ${why}`, { offset: offsetOf(HEADER, name) });
  };
  const unknownReq = unknownBits(r.requiredFeatures, KNOWN_REQUIRED);
  if (unknownReq.length) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `image requires feature ${unknownReq.join(', ')} of the required set, unknown to this reader`, {
      offset: offsetOf(HEADER, 'requiredFeatures'), hint: 'use a newer crimg that implements this feature',
    });
  }
  if (!isPowerOfTwo(r.pageSize) || r.pageSize < LIMITS.minPageSize || r.pageSize > LIMITS.maxPageSize) {
    bad('page size', 'pageSize', `${r.pageSize} is not a power of two in ${LIMITS.minPageSize}..${LIMITS.maxPageSize}`);
  }
  if (!isPowerOfTwo(r.chunkSize) || r.chunkSize < r.pageSize || r.chunkSize > LIMITS.maxChunkSize) {
    bad('chunk size', 'chunkSize', `${r.chunkSize} is not a power of two from the page size to ${LIMITS.maxChunkSize}`);
  }
  if (r.validationSize < LIMITS.minValidationSize || r.validationSize > LIMITS.maxValidationSize || r.validationSize % 8 !== 0) {
    bad('validation size', 'validationSize', `${r.validationSize} is out of range (${LIMITS.minValidationSize}..${LIMITS.maxValidationSize}, multiple of 8)`);
  }
  if (((r.requiredFeatures & REQUIRED_CODEC) !== 0n) !== (r.codec !== 0)) {
    bad('codec id', 'codec', `${r.codec} disagrees with the CODEC required feature bit`);
  }
  if (((r.requiredFeatures & REQUIRED_CIPHER) !== 0n) !== (r.cipher !== 0)) {
    bad('cipher id', 'cipher', `${r.cipher} disagrees with the CIPHER required feature bit`);
  }
  if (r.codec !== CODECS.none && r.codec !== CODECS.deflate && r.codec !== CODECS.zstd) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `codec id ${r.codec} is not supported by this reader`, {
      offset: offsetOf(HEADER, 'codec'), hint: 'use a newer crimg',
    });
  }
  if (r.cipher > CIPHERS['chacha20-poly1305']) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `cipher id ${r.cipher} is not supported by this reader`, { offset: offsetOf(HEADER, 'cipher') });
  }
  if (r.cipher === 0 && r.kdf !== KDF_RAW) bad('KDF id', 'kdf', `${r.kdf} is set on an unencrypted image`);
  if (r.cipher === 0 && (r.salt.some((x) => x !== 0) || r.keyCheck.some((x) => x !== 0))) {
    bad('salt / key check value', 'salt', 'are set on an unencrypted image (they must be zero)');
  }
  if (r.kdf > KDF_SCRYPT) throw new CrimgError('UNSUPPORTED_FEATURE', `KDF id ${r.kdf} is not supported by this reader`, { offset: offsetOf(HEADER, 'kdf') });
  if (r.kdf === KDF_RAW && (r.scryptLog2N | r.scryptR | r.scryptP) !== 0) bad('scrypt parameters', 'scryptLog2N', 'are set with a raw key');
  if (r.kdf === KDF_SCRYPT && (r.scryptLog2N < 1 || r.scryptLog2N > 32 || r.scryptLog2N >= 16 * r.scryptR || r.scryptR < 1 || r.scryptP < 1)) {
    bad('scrypt parameters', 'scryptLog2N', `log2N=${r.scryptLog2N} r=${r.scryptR} p=${r.scryptP} are invalid`);
  }
  if (r.codec === CODECS.deflate && (r.codecLevel < DEFLATE_MIN_LEVEL || r.codecLevel > DEFLATE_MAX_LEVEL)) {
    bad('codec level', 'codecLevel', `${r.codecLevel} is not a deflate level ${DEFLATE_MIN_LEVEL}..${DEFLATE_MAX_LEVEL}`);
  }
  if (r.codec === CODECS.zstd && (r.codecLevel < ZSTD_MIN_LEVEL || r.codecLevel > ZSTD_MAX_LEVEL)) {
    bad('codec level', 'codecLevel', `${r.codecLevel} is not a zstd level ${ZSTD_MIN_LEVEL}..${ZSTD_MAX_LEVEL}`);
  }
  if (r.codec === CODECS.none && r.codecLevel !== 0) bad('codec level', 'codecLevel', `${r.codecLevel} is set without a codec (it must be 0)`);
  if ((r.optionalFeatures & OPTIONAL_MAPPABLE) !== 0n && (r.codec !== 0 || r.cipher !== 0)) {
    bad('optional features', 'optionalFeatures', 'MAPPABLE is set on an encoded or encrypted image');
  }
  // Section 8.3: a child's chunks are not all in its file.
  if ((r.optionalFeatures & OPTIONAL_MAPPABLE) !== 0n && (r.requiredFeatures & REQUIRED_PARENT) !== 0n) {
    bad('optional features', 'optionalFeatures', 'MAPPABLE is set on a child image (required feature PARENT)');
  }
  if ((r.optionalFeatures & OPTIONAL_SPARSE) !== 0n && (r.optionalFeatures & OPTIONAL_MAPPABLE) === 0n) {
    bad('optional features', 'optionalFeatures', 'SPARSE is set without MAPPABLE');
  }
  return {
    major: r.major, minor: r.minor, headerSize,
    requiredFeatures: r.requiredFeatures, optionalFeatures: r.optionalFeatures,
    pageSize: r.pageSize, chunkSize: r.chunkSize, imageId: r.imageId, created: r.created,
    validationSize: r.validationSize, codec: r.codec, codecLevel: r.codecLevel, cipher: r.cipher,
    kdf: r.kdf, scryptLog2N: r.scryptLog2N, scryptR: r.scryptR, scryptP: r.scryptP,
    salt: r.salt, keyCheck: r.keyCheck, checksum: r.checksum,
  };
}
