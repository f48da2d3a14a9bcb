/**
 * Chunk flags of the chunk table (spec/FORMAT.md section 5.3, record offset 12, u16) and the
 * rules that tie them to the stored length (section 5.3) and to the image's codec and cipher.
 */
import { TAG_LENGTH } from './sizes.js';

/** Bit 0: all plain bytes are zero; nothing is stored (spec section 5.1). */
export const CHUNK_ZERO = 1;
/** Bit 1: the plain bytes are stored as they are, or sealed (spec section 5.1). */
export const CHUNK_RAW = 2;
/** Bit 2: the plain bytes are stored encoded by the image's codec (spec section 5.1). */
export const CHUNK_ENCODED = 4;
/** Bit 3: the stored bytes are sealed, ciphertext then 16-byte tag (spec sections 5.1, 7.3). */
export const CHUNK_ENCRYPTED = 8;
/** All defined bits; the others are reserved and MUST be 0 (spec section 5.3). */
export const CHUNK_FLAGS_KNOWN = CHUNK_ZERO | CHUNK_RAW | CHUNK_ENCODED | CHUNK_ENCRYPTED;

/** One chunk-table record's fields that {@link chunkFormProblem} checks. */
export interface ChunkForm {
  /** Chunk flags (u16). */
  flags: number;
  /** Stored length in bytes (u32). */
  storedLength: number;
  /** Plain length: the chunk's share of its region (spec section 5). */
  plainLength: number;
  /** The image's codec id (header offset 68). */
  codec: number;
  /** The image's cipher id (header offset 70). */
  cipher: number;
  /** The record's checksum; when given, a zero chunk must have 0. */
  checksum?: bigint;
}

/**
 * Checks a chunk-table record against the rules of spec section 5.3: reserved bits clear,
 * exactly one of `ZERO`/`RAW`/`ENCODED`, `ENCODED` only with a codec, `ENCRYPTED` on exactly the
 * non-zero chunks of an image with a cipher, and the stored length rules (`p` plain length,
 * `t` = 16 with a cipher else 0): zero 0, raw exactly `p + t`, encoded more than `t` and less
 * than `p + t`. A violation is `CORRUPT_INDEX` for a reader.
 * @returns undefined when the record is consistent, else a sentence naming the violation
 *   (for the reader's CrimgError message).
 * @example
 * chunkFormProblem({ flags: CHUNK_RAW, storedLength: 4096, plainLength: 4096, codec: 0, cipher: 0 }); // undefined
 */
export function chunkFormProblem(r: ChunkForm): string | undefined {
  const { flags, storedLength, plainLength, codec, cipher } = r;
  if ((flags & ~CHUNK_FLAGS_KNOWN) !== 0) {
    return `chunk flags 0x${flags.toString(16)} have reserved bits set`;
  }
  const forms = (flags & CHUNK_ZERO ? 1 : 0) + (flags & CHUNK_RAW ? 1 : 0) + (flags & CHUNK_ENCODED ? 1 : 0);
  if (forms !== 1) return `chunk flags 0x${flags.toString(16)} must have exactly one of ZERO, RAW, ENCODED`;
  const encrypted = (flags & CHUNK_ENCRYPTED) !== 0;
  if (flags & CHUNK_ZERO) {
    if (encrypted) return 'a zero chunk must not be ENCRYPTED';
    if (storedLength !== 0) return `a zero chunk must have stored length 0, got ${storedLength}`;
    if (r.checksum !== undefined && r.checksum !== 0n) return 'a zero chunk must have checksum 0';
    return undefined;
  }
  if (encrypted !== (cipher !== 0)) {
    return cipher !== 0
      ? 'a non-zero chunk of an encrypted image must be ENCRYPTED'
      : 'a chunk of an image without cipher must not be ENCRYPTED';
  }
  const t = cipher !== 0 ? TAG_LENGTH : 0;
  if (flags & CHUNK_RAW) {
    if (storedLength !== plainLength + t) {
      return `a raw chunk must have stored length ${plainLength + t} (plain length${t ? ' + 16' : ''}), got ${storedLength}`;
    }
    return undefined;
  }
  if (codec === 0) return 'an ENCODED chunk needs a codec, but the image has codec id 0';
  if (storedLength <= t || storedLength >= plainLength + t) {
    return `an encoded chunk must have stored length from ${t + 1} to ${plainLength + t - 1}, got ${storedLength}`;
  }
  return undefined;
}
