/**
 * The stored-form rules of a chunk record, spec/FORMAT.md section 5.3, written once: the chunk
 * table reader (`ChunkTable.get`, index-table.ts) and the chunk decoder (codec/chunk.ts) both
 * check a record with {@link chunkFormViolation} and word the violation for their caller. Pure.
 */
import { CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_FLAGS_KNOWN, CHUNK_IN_PARENT, CHUNK_RAW, CHUNK_ZERO, TAG_SIZE } from './constants.js';

/**
 * The rule of section 5.3 a chunk record breaks, or `ok`. Numbers, not messages, so that the
 * per-chunk path allocates nothing while the record is good.
 */
export const FORM = {
  ok: 0,
  /** Flags outside {@link CHUNK_FLAGS_KNOWN}. */
  reservedBits: 1,
  /** Not exactly one of ZERO, RAW, ENCODED. */
  notOneForm: 2,
  /** A zero chunk with ENCRYPTED set. */
  zeroEncrypted: 3,
  /** A zero chunk with a stored length. */
  zeroStored: 4,
  /** A zero chunk with a checksum. */
  zeroChecksum: 5,
  /** A zero chunk with a file offset. */
  zeroOffset: 6,
  /** ENCRYPTED on a non-zero chunk disagrees with the image's cipher. */
  encryptedMismatch: 7,
  /** ENCODED in an image without codec. */
  encodedWithoutCodec: 8,
  /** RAW with a stored length other than `p + t`. */
  rawLength: 9,
  /** ENCODED with a stored length outside `(t, p + t)`. */
  encodedLength: 10,
  /** IN_PARENT with other flags, an offset, a stored length or a checksum (section 8.3). */
  inParentForm: 11,
} as const;
export type FormViolation = (typeof FORM)[keyof typeof FORM];

/**
 * Checks a chunk record against section 5.3: reserved flag bits clear; exactly one of ZERO, RAW,
 * ENCODED; a zero chunk with offset, stored length and checksum 0 and not ENCRYPTED; ENCRYPTED
 * on exactly the non-zero chunks of an image with a cipher; ENCODED only with a codec; stored
 * length (`p` plain length, `t` = 16 with a cipher else 0) exactly `p + t` when RAW, more than
 * `t` and less than `p + t` when ENCODED. Placement in the data area is the caller's check.
 * `hasParent` (the required feature PARENT): IN_PARENT is a form too, alone and storing nothing
 * (section 8.3); without it the bit is reserved.
 * @returns the first rule broken, in that order, or `FORM.ok`.
 * @example
 * chunkFormViolation(CHUNK_RAW, 4096, 4096, false, false, 8192n, sum); // FORM.ok
 */
export function chunkFormViolation(
  flags: number, storedLength: number, plainLength: number, hasCodec: boolean, hasCipher: boolean,
  offset: bigint, checksum: bigint, hasParent = false,
): FormViolation {
  if (hasParent && (flags & CHUNK_IN_PARENT) !== 0) {
    // Section 8.3: IN_PARENT alone, nothing stored.
    return flags !== CHUNK_IN_PARENT || storedLength !== 0 || checksum !== 0n || offset !== 0n ? FORM.inParentForm : FORM.ok;
  }
  if ((flags & ~CHUNK_FLAGS_KNOWN) !== 0) return FORM.reservedBits;
  const form = flags & (CHUNK_ZERO | CHUNK_RAW | CHUNK_ENCODED);
  if (form !== CHUNK_ZERO && form !== CHUNK_RAW && form !== CHUNK_ENCODED) return FORM.notOneForm;
  const encrypted = (flags & CHUNK_ENCRYPTED) !== 0;
  if (form === CHUNK_ZERO) {
    if (encrypted) return FORM.zeroEncrypted;
    if (storedLength !== 0) return FORM.zeroStored;
    if (checksum !== 0n) return FORM.zeroChecksum;
    if (offset !== 0n) return FORM.zeroOffset;
    return FORM.ok;
  }
  if (encrypted !== hasCipher) return FORM.encryptedMismatch;
  const t = hasCipher ? TAG_SIZE : 0;
  if (form === CHUNK_RAW) return storedLength !== plainLength + t ? FORM.rawLength : FORM.ok;
  if (!hasCodec) return FORM.encodedWithoutCodec;
  return storedLength <= t || storedLength >= plainLength + t ? FORM.encodedLength : FORM.ok;
}

/** One chunk record's fields that {@link chunkFormProblem} checks. */
export interface ChunkForm {
  /** Chunk flags (u16). */
  flags: number;
  /** Stored length in bytes (u32). */
  storedLength: number;
  /** Plain length: the chunk's share of its region (section 5). */
  plainLength: number;
  /** The image's codec id (header offset 68). */
  codec: number;
  /** The image's cipher id (header offset 70). */
  cipher: number;
  /** The record's checksum; when given, a zero chunk must have 0. */
  checksum?: bigint;
}

/**
 * {@link chunkFormViolation} as a sentence, in the words of the chunk decoder (which has the
 * record's flags, stored bytes and checksum, not its offset). A violation is `CORRUPT_INDEX` for
 * a reader.
 * @returns undefined when the record is consistent, else a sentence naming the violation.
 * @example
 * chunkFormProblem({ flags: CHUNK_RAW, storedLength: 4096, plainLength: 4096, codec: 0, cipher: 0 }); // undefined
 */
export function chunkFormProblem(r: ChunkForm): string | undefined {
  const { flags, storedLength, plainLength, codec, cipher } = r;
  const t = cipher !== 0 ? TAG_SIZE : 0;
  switch (chunkFormViolation(flags, storedLength, plainLength, codec !== 0, cipher !== 0, 0n, r.checksum ?? 0n)) {
    case FORM.ok:
    case FORM.zeroOffset:
      return undefined;
    case FORM.reservedBits:
      return `chunk flags 0x${flags.toString(16)} have reserved bits set`;
    case FORM.notOneForm:
      return `chunk flags 0x${flags.toString(16)} must have exactly one of ZERO, RAW, ENCODED`;
    case FORM.zeroEncrypted:
      return 'a zero chunk must not be ENCRYPTED';
    case FORM.zeroStored:
      return `a zero chunk must have stored length 0, got ${storedLength}`;
    case FORM.zeroChecksum:
      return 'a zero chunk must have checksum 0';
    case FORM.encryptedMismatch:
      return cipher !== 0
        ? 'a non-zero chunk of an encrypted image must be ENCRYPTED'
        : 'a chunk of an image without cipher must not be ENCRYPTED';
    case FORM.rawLength:
      return `a raw chunk must have stored length ${plainLength + t} (plain length${t ? ` + ${TAG_SIZE}` : ''}), got ${storedLength}`;
    case FORM.encodedWithoutCodec:
      return 'an ENCODED chunk needs a codec, but the image has codec id 0';
    case FORM.encodedLength:
      return `an encoded chunk must have stored length from ${t + 1} to ${plainLength + t - 1}, got ${storedLength}`;
    case FORM.inParentForm:
      return 'an IN_PARENT chunk must have no other flag and no offset, stored bytes or checksum';
  }
}
