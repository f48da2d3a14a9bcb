/**
 * Header encode/decode, spec/FORMAT.md section 3. Pure: bytes in, fields out.
 */
import { Parser } from 'binary-parser';
import type { Checksum } from './checksum.js';
import {
  CIPHERS, CODECS, FORMAT_MAJOR, FORMAT_MINOR, HEADER_MAGIC, HEADER_SIZE, KNOWN_REQUIRED, LIMITS,
  MAX_HEADER_SIZE, OPTIONAL_MAPPABLE, OPTIONAL_SPARSE, REQUIRED_CIPHER, REQUIRED_CODEC, isPowerOfTwo,
} from './constants.js';
import { equalBytes, view } from './bytes.js';
import { CrimgError } from './errors.js';

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

interface RawHeader {
  magic: Uint8Array; major: number; minor: number; headerSize: number;
  requiredFeatures: bigint; optionalFeatures: bigint; pageSize: number; chunkSize: number;
  imageId: Uint8Array; created: bigint; validationSize: number; codec: number; codecLevel: number;
  cipher: number; kdf: number; scryptLog2N: number; scryptR: number; scryptP: number;
  salt: Uint8Array; keyCheck: Uint8Array;
}

// Field offsets are those of the table in section 3.
const parser = new Parser()
  .endianness('little')
  .buffer('magic', { length: 8, clone: true })      // 0
  .uint16le('major')                                 // 8
  .uint16le('minor')                                 // 10
  .uint32le('headerSize')                            // 12
  .uint64le('requiredFeatures')                      // 16
  .uint64le('optionalFeatures')                      // 24
  .uint32le('pageSize')                              // 32
  .uint32le('chunkSize')                             // 36
  .buffer('imageId', { length: 16, clone: true })    // 40
  .uint64le('created')                               // 56
  .uint32le('validationSize')                        // 64
  .uint8('codec')                                    // 68
  .uint8('codecLevel')                               // 69
  .uint8('cipher')                                   // 70
  .uint8('kdf')                                      // 71
  .uint8('scryptLog2N')                              // 72
  .uint8('scryptR')                                  // 73
  .uint8('scryptP')                                  // 74
  .seek(5)                                           // 75 reserved
  .buffer('salt', { length: 16, clone: true })       // 80
  .buffer('keyCheck', { length: 16, clone: true });  // 96; 112 reserved; checksum at headerSize-8

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
 */
export function encodeHeader(f: HeaderFields, xxh64: Checksum): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  const dv = view(b);
  b.set(HEADER_MAGIC, 0);
  dv.setUint16(8, FORMAT_MAJOR, true);
  dv.setUint16(10, (f.optionalFeatures & OPTIONAL_SPARSE) !== 0n ? FORMAT_MINOR : 0, true);
  dv.setUint32(12, HEADER_SIZE, true);
  dv.setBigUint64(16, f.requiredFeatures ?? impliedRequired(f.codec, f.cipher), true);
  dv.setBigUint64(24, f.optionalFeatures, true);
  dv.setUint32(32, f.pageSize, true);
  dv.setUint32(36, f.chunkSize, true);
  b.set(f.imageId, 40);
  dv.setBigUint64(56, f.created, true);
  dv.setUint32(64, f.validationSize, true);
  b[68] = f.codec;
  b[69] = f.codecLevel;
  b[70] = f.cipher;
  b[71] = f.kdf;
  b[72] = f.scryptLog2N;
  b[73] = f.scryptR;
  b[74] = f.scryptP;
  b.set(f.salt, 80);
  b.set(f.keyCheck, 96);
  dv.setBigUint64(HEADER_SIZE - 8, xxh64(b.subarray(0, HEADER_SIZE - 8)), true);
  return b;
}

/** Names of the set bits of `bits` outside `known`, e.g. "bit 5". */
function unknownBits(bits: bigint, known: bigint): string[] {
  const out: string[] = [];
  for (let i = 0n; i < 64n; i++) if ((bits >> i) & 1n && !((known >> i) & 1n)) out.push(`bit ${i}`);
  return out;
}

/**
 * Reads the header size field (offset 12) after checking magic and major version, so the
 * caller knows how many bytes to fetch. `first16` is the file's first 16 bytes.
 * @throws CrimgError BAD_MAGIC, UNSUPPORTED_VERSION, CORRUPT_HEADER
 */
export function peekHeaderSize(first16: Uint8Array): number {
  if (!equalBytes(first16.subarray(0, 8), HEADER_MAGIC)) {
    const textDamage = first16[0] === 0x43 || (first16[4] === 0x0a && first16[5] !== 0x0a);
    throw new CrimgError('BAD_MAGIC', 'not a crimg image: the header magic is wrong', {
      offset: 0,
      hint: textDamage
        ? 'the bytes look altered by a text-mode transfer; copy the file again in binary mode'
        : 'check that this is a crimg image and that the file is complete',
    });
  }
  const dv = view(first16);
  const major = dv.getUint16(8, true);
  if (major !== FORMAT_MAJOR) {
    throw new CrimgError('UNSUPPORTED_VERSION', `image format version ${major}.${dv.getUint16(10, true)} is not supported (this reader reads ${FORMAT_MAJOR}.x)`, {
      offset: 8, hint: 'use a crimg release that supports this major version',
    });
  }
  const size = dv.getUint32(12, true);
  if (size < HEADER_SIZE || size > MAX_HEADER_SIZE || size % 8 !== 0) {
    throw new CrimgError('CORRUPT_HEADER', `header size ${size} is out of range (${HEADER_SIZE}..${MAX_HEADER_SIZE}, multiple of 8)`, { offset: 12 });
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
  const dv = view(bytes);
  const checksum = dv.getBigUint64(headerSize - 8, true);
  const actual = xxh64(bytes.subarray(0, headerSize - 8));
  if (checksum !== actual) {
    throw new CrimgError('CORRUPT_HEADER', 'header checksum mismatch', {
      offset: headerSize - 8, hint: 'the first bytes of the file are damaged; restore it from a good copy',
    });
  }
  const r = parser.parse(bytes) as unknown as RawHeader;
  const bad = (field: string, off: number, why: string): never => {
    throw new CrimgError('CORRUPT_HEADER', `header field ${field} ${why}`, { offset: off });
  };
  const unknownReq = unknownBits(r.requiredFeatures, KNOWN_REQUIRED);
  if (unknownReq.length) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `image requires feature ${unknownReq.join(', ')} of the required set, unknown to this reader`, {
      offset: 16, hint: 'use a newer crimg that implements this feature',
    });
  }
  if (!isPowerOfTwo(r.pageSize) || r.pageSize < LIMITS.minPageSize || r.pageSize > LIMITS.maxPageSize) {
    bad('page size', 32, `${r.pageSize} is not a power of two in ${LIMITS.minPageSize}..${LIMITS.maxPageSize}`);
  }
  if (!isPowerOfTwo(r.chunkSize) || r.chunkSize < r.pageSize || r.chunkSize > LIMITS.maxChunkSize) {
    bad('chunk size', 36, `${r.chunkSize} is not a power of two from the page size to ${LIMITS.maxChunkSize}`);
  }
  if (r.validationSize < LIMITS.minValidationSize || r.validationSize > LIMITS.maxValidationSize || r.validationSize % 8 !== 0) {
    bad('validation size', 64, `${r.validationSize} is out of range (${LIMITS.minValidationSize}..${LIMITS.maxValidationSize}, multiple of 8)`);
  }
  if (((r.requiredFeatures & REQUIRED_CODEC) !== 0n) !== (r.codec !== 0)) {
    bad('codec id', 68, `${r.codec} disagrees with the CODEC required feature bit`);
  }
  if (((r.requiredFeatures & REQUIRED_CIPHER) !== 0n) !== (r.cipher !== 0)) {
    bad('cipher id', 70, `${r.cipher} disagrees with the CIPHER required feature bit`);
  }
  if (r.codec !== CODECS.none && r.codec !== CODECS.deflate) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `codec id ${r.codec}${r.codec === CODECS.zstd ? ' (zstd)' : ''} is not supported by this reader`, {
      offset: 68, hint: r.codec === CODECS.zstd ? 'convert the image with a crimg that has zstd' : 'use a newer crimg',
    });
  }
  if (r.cipher > CIPHERS['chacha20-poly1305']) {
    throw new CrimgError('UNSUPPORTED_FEATURE', `cipher id ${r.cipher} is not supported by this reader`, { offset: 70 });
  }
  if (r.cipher === 0 && r.kdf !== 0) bad('KDF id', 71, `${r.kdf} is set on an unencrypted image`);
  if (r.cipher === 0 && (r.salt.some((x) => x !== 0) || r.keyCheck.some((x) => x !== 0))) {
    bad('salt / key check value', 80, 'are set on an unencrypted image (they must be zero)');
  }
  if (r.kdf > 1) throw new CrimgError('UNSUPPORTED_FEATURE', `KDF id ${r.kdf} is not supported by this reader`, { offset: 71 });
  if (r.kdf === 0 && (r.scryptLog2N | r.scryptR | r.scryptP) !== 0) bad('scrypt parameters', 72, 'are set with a raw key');
  if (r.kdf === 1 && (r.scryptLog2N < 1 || r.scryptLog2N > 32 || r.scryptLog2N >= 16 * r.scryptR || r.scryptR < 1 || r.scryptP < 1)) {
    bad('scrypt parameters', 72, `log2N=${r.scryptLog2N} r=${r.scryptR} p=${r.scryptP} are invalid`);
  }
  if (r.codec === CODECS.deflate && (r.codecLevel < 1 || r.codecLevel > 9)) {
    bad('codec level', 69, `${r.codecLevel} is not a deflate level 1..9`);
  }
  if ((r.optionalFeatures & OPTIONAL_MAPPABLE) !== 0n && (r.codec !== 0 || r.cipher !== 0)) {
    bad('optional features', 24, 'MAPPABLE is set on an encoded or encrypted image');
  }
  if ((r.optionalFeatures & OPTIONAL_SPARSE) !== 0n && (r.optionalFeatures & OPTIONAL_MAPPABLE) === 0n) {
    bad('optional features', 24, 'SPARSE is set without MAPPABLE');
  }
  return {
    major: r.major, minor: r.minor, headerSize,
    requiredFeatures: r.requiredFeatures, optionalFeatures: r.optionalFeatures,
    pageSize: r.pageSize, chunkSize: r.chunkSize, imageId: r.imageId, created: r.created,
    validationSize: r.validationSize, codec: r.codec, codecLevel: r.codecLevel, cipher: r.cipher,
    kdf: r.kdf, scryptLog2N: r.scryptLog2N, scryptR: r.scryptR, scryptP: r.scryptP,
    salt: r.salt, keyCheck: r.keyCheck, checksum,
  };
}
