/**
 * Opening an image (spec/FORMAT.md sections 3, 4, 8.2 and 8.1): the header, the validation
 * block, the footer and its geometry, the decoder, and the region section. The chunk table is
 * read later, on the first data access.
 */
import { xxh64 } from '../codec/checksum.js';
import { FOOTER_SIZE, KDF_SCRYPT, REGION_RECORD_SIZE, REQUIRED_PARENT, alignUp } from '../format/constants.js';
import { DEFAULT_SCRYPT_LIMITS, checkScryptLimits } from '../codec/keys.js';
import { decodeHeader, peekHeaderSize, type Header } from '../format/header.js';
import { decodeValidation, type Validation } from '../format/validation.js';
import { checkFooter, decodeFooter, type Footer } from '../format/footer.js';
import { checkHotList } from './optimize-hot-list.js';
import { RegionTable, type SectionRecords } from '../format/region-table.js';
import { CrimgError, isCrimgError } from '../format/errors.js';
import type { RandomAccessSource } from './source.js';
import { createChunkDecoder, type ChunkDecoder } from './chunk-decoder.js';
import type { KeyInput } from './keying.js';
import { nativeAddon } from '../native-mmap/index.js';
import type { ParentInput } from './_parent.js';
import { IN_FILE_SECTION, fileChecksum, sectionInFile } from './_region-file.js';
import { HUGE_FROM, hugeBytes, type Held } from './_huge.js';

export interface OpenOptions {
  /** Master key or passphrase for an encrypted image. */
  key?: KeyInput;
  /** 'node' (default) or 'portable' engines for decoding. */
  engine?: 'node' | 'portable';
  /**
   * Largest scrypt parameters accepted from the image's header (section 7.1), each on its own;
   * default log2 N 17, r 8, p 1: the writers' default cost. An image asking for more is refused
   * with LIMIT_EXCEEDED before any scrypt work. Raise it only for images you trust.
   */
  maxScrypt?: { log2N?: number; r?: number; p?: number };
  /**
   * Further caps on scrypt work (section 7.1): memory `128 * r * N` and `p`. Applied after
   * {@link maxScrypt}; when left out, `maxScrypt` alone bounds the work.
   */
  scryptCaps?: { maxMemory?: number; maxP?: number };
  /** Worker threads for bulk decoding; default none on 2 cores or fewer (measured: the copies cost more than they save), else cores - 1. */
  workers?: number;
  /**
   * The parent of a child image (spec/FORMAT.md section 8.3): a path, fd, bytes or source, or
   * `{ source, key, parent }` for an encrypted parent (default key: this image's) or one whose
   * own parent is elsewhere. Default: the child's location hint, relative to the child's
   * directory. Opened on the first read that needs it, and checked (image id, index hash).
   */
  parent?: ParentInput;
}

/** What opening an image reads and checks; an `ImageReader` is built from it. */
export interface ImageParts {
  readonly source: RandomAccessSource;
  /** True when the reader opened the source itself (and closes it). */
  readonly owned: boolean;
  readonly header: Header;
  readonly headerBytes: Uint8Array;
  readonly validationBytes: Uint8Array;
  readonly validation: Validation;
  readonly footer: Footer;
  /** The region section, checked and kept in place; null while the index is sealed and no key was given. */
  readonly regionTable: RegionTable | null;
  /** Frees what opening allocated outside the JS heap (a large region section's mapping); once, at close. */
  readonly release: () => void;
  readonly decoder: ChunkDecoder | null;
  readonly dataStart: number;
  /** The options it was opened with (a child opens its parent with them). */
  readonly options?: OpenOptions;
  /** The path it was opened from, when opened by path (a parent's location hint is relative to it). */
  readonly path?: string;
}

/**
 * Reads and checks what an open image needs, in file order of trust: header, validation block,
 * footer, then (with a key when the index is sealed) the region section.
 * @throws CrimgError BAD_MAGIC, TRUNCATED, CORRUPT_*, LIMIT_EXCEEDED, WRONG_KEY, AUTH_FAILED...
 */
export async function openParts(source: RandomAccessSource, owned: boolean, options: OpenOptions): Promise<ImageParts> {
  const { header, headerBytes } = await readHeader(source);
  const vStart = header.headerSize;
  const size = source.size;
  const vEnd = vStart + header.validationSize;
  if (vEnd + FOOTER_SIZE > size) {
    throw new CrimgError('TRUNCATED', `the file is ${size} bytes; its validation block alone ends at ${vEnd}`, { offset: size, hint: 'the image is incomplete; copy it again' });
  }
  const validationBytes = await source.read(vStart, header.validationSize);
  const validation = decodeValidation(validationBytes, vStart, xxh64);
  // Section 8.3: the required feature PARENT and the parent record come together.
  if (((header.requiredFeatures & REQUIRED_PARENT) !== 0n) !== (validation.parent !== undefined)) {
    throw new CrimgError('CORRUPT_VALIDATION', validation.parent ? 'validation block has a parent record, but the header lacks the required feature PARENT' : 'the header has the required feature PARENT, but the validation block has no parent record', {
      offset: vStart, hint: 'the image is damaged; restore it from a good copy',
    });
  }
  const footer = await readFooter(source);
  const dataStart = alignUp(header.headerSize + header.validationSize, header.pageSize);
  checkFooter(footer, header, size, dataStart);
  checkHotList(header.optionalFeatures, validation, footer.chunkCount, vStart); // section 4.1
  // Section 7.1: the scrypt cost is checked against the reader's limits before any key work.
  if (header.cipher !== 0 && header.kdf === KDF_SCRYPT && isPassphrase(options.key)) {
    checkScryptLimits(header.scryptLog2N, header.scryptR, header.scryptP, options.maxScrypt ?? DEFAULT_SCRYPT_LIMITS);
  }
  const scryptCaps = options.scryptCaps ?? NO_FURTHER_CAPS;
  const decoder = header.cipher !== 0 || header.codec !== 0
    ? await createChunkDecoder({ header, headerBytes, validationBytes, key: options.key, engine: options.engine ?? 'node', scryptCaps, workers: options.workers })
    : null;
  let release = (): void => {};
  let regionTable: RegionTable | null = null;
  if (header.cipher === 0 || decoder?.hasKey) {
    const read = await readRegions(source, header, footer, decoder);
    regionTable = read.table;
    release = read.release;
  } else {
    await checkSealedRegions(source, footer);
  }
  return { source, owned, header, headerBytes, validationBytes, validation, footer, regionTable, release, decoder, dataStart, options };
}

/** The decoder's own caps once {@link checkScryptLimits} has bounded the work. */
const NO_FURTHER_CAPS = Object.freeze({ maxMemory: Infinity, maxP: 255 });

function isPassphrase(key: KeyInput | undefined): boolean {
  return typeof key === 'object' && key !== null && !(key instanceof Uint8Array) && 'passphrase' in key;
}

/** Section 3: the header, after its magic and size (a wrong magic beats truncation). */
async function readHeader(source: RandomAccessSource): Promise<{ header: Header; headerBytes: Uint8Array }> {
  const size = source.size;
  const first = await source.read(0, Math.min(16, size));
  if (size < 16) {
    peekHeaderSize(first); // bad magic beats truncation; a magic then too few bytes is TRUNCATED
    throw new CrimgError('TRUNCATED', `the file is ${size} bytes, shorter than a header`, { offset: size });
  }
  const headerSize = peekHeaderSize(first);
  if (size < headerSize) throw new CrimgError('TRUNCATED', `the file is ${size} bytes, shorter than its ${headerSize}-byte header`, { offset: size });
  const headerBytes = await source.read(0, headerSize);
  return { header: decodeHeader(headerBytes, xxh64), headerBytes };
}

/** Section 8.2: the footer; a missing end magic after a valid header means truncation. */
async function readFooter(source: RandomAccessSource): Promise<Footer> {
  const size = source.size;
  const footerBase = size - FOOTER_SIZE;
  const footerBytes = await source.read(footerBase, FOOTER_SIZE);
  try {
    return decodeFooter(footerBytes, footerBase, xxh64);
  } catch (e) {
    if (isCrimgError(e, 'BAD_MAGIC')) {
      // A valid header with no footer: the file was cut short (or is still being written).
      throw new CrimgError('TRUNCATED', 'the footer is missing: the image is truncated or was not finished', {
        offset: size, hint: 'an interrupted crimg write never leaves a partial image under its final name (only a hidden .NAME.<hex>.crimg-tmp beside it); copy the image again completely',
      });
    }
    throw e;
  }
}

/**
 * Section 8.1: the region section, checksummed, opened when sealed, checked in place: time
 * linear in its stored length, no object per region (section 9 bounds it at 64 MiB + 64 MiB).
 * A large plain section of a local file stays in the file (image/_region-file.ts): memory is
 * its string table and a 4 MiB cache. A sealed one is opened whole in memory (the tag covers
 * all of it): bounded by the file's size. So is any section of a source without a file
 * descriptor (bytes, remote images).
 */
async function readRegions(source: RandomAccessSource, header: Header, footer: Footer, decoder: ChunkDecoder | null): Promise<{ table: RegionTable; release: () => void }> {
  const off = Number(footer.regionSectionOffset);
  const len = Number(footer.regionSectionLength);
  if (header.cipher === 0 && typeof source.fd === 'number' && len >= IN_FILE_SECTION && len === footer.regionCount * REGION_RECORD_SIZE + footer.stringTableLength) {
    const records = sectionInFile({ fd: source.fd, name: source.name, offset: off, length: len, regionCount: footer.regionCount, checksum: footer.regionSectionChecksum });
    try {
      return { table: regionTable(records, header, footer, off), release: records.release };
    } catch (e) {
      records.release();
      throw e;
    }
  }
  const { bytes: stored, release } = await readLarge(source, off, len);
  try {
    if (xxh64(stored) !== footer.regionSectionChecksum) {
      throw new CrimgError('CORRUPT_INDEX', 'region section checksum mismatch', { offset: off, hint: 'the index is damaged; restore the image from a good copy' });
    }
    const plain = decoder ? decoder.openIndex(2, BigInt(footer.regionCount), stored, off) : stored;
    const inPlace = plain.buffer === stored.buffer;
    if (!inPlace) release(); // the opened copy is the table; the stored bytes are done with
    return { table: regionTable(plain, header, footer, off), release: inPlace ? release : () => {} };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * Section 8.2: without a key the sealed region section is not opened, but its checksum is
 * checked at open all the same, as with a key (damage is told from tampering without a key).
 */
async function checkSealedRegions(source: RandomAccessSource, footer: Footer): Promise<void> {
  const off = Number(footer.regionSectionOffset);
  const len = Number(footer.regionSectionLength);
  if (typeof source.fd === 'number' && len >= IN_FILE_SECTION) {
    // Streamed: a large sealed section is not held just to be checksummed.
    if (fileChecksum({ fd: source.fd, name: source.name, offset: off, length: len }) !== footer.regionSectionChecksum) {
      throw new CrimgError('CORRUPT_INDEX', 'region section checksum mismatch', { offset: off, hint: 'the index is damaged; restore the image from a good copy' });
    }
    return;
  }
  const { bytes, release } = await readLarge(source, off, Number(footer.regionSectionLength));
  try {
    if (xxh64(bytes) !== footer.regionSectionChecksum) {
      throw new CrimgError('CORRUPT_INDEX', 'region section checksum mismatch', { offset: off, hint: 'the index is damaged; restore the image from a good copy' });
    }
  } finally {
    release();
  }
}

function regionTable(plain: Uint8Array | SectionRecords, header: Header, footer: Footer, off: number): RegionTable {
  return new RegionTable(plain, {
    regionCount: footer.regionCount, stringTableLength: footer.stringTableLength,
    chunkCount: Number(footer.chunkCount), chunkSize: header.chunkSize, pageSize: header.pageSize, base: off,
  }, nativeAddon());
}

/**
 * `length` bytes at `offset` kept as long as they are reachable (a chunk table): a large read
 * from a file in huge-page memory (image/_huge.ts), which the collector unmaps. Why: a 12 MiB
 * chunk table read into a fresh Buffer cost 36 ms of a first read here, page faults mostly.
 */
export async function readTable(source: RandomAccessSource, offset: number, length: number): Promise<Uint8Array> {
  return (await readLarge(source, offset, length)).bytes;
}

/**
 * `length` bytes at `offset`; a large read from a file goes into huge-page memory
 * (image/_huge.ts). `release()` unmaps that memory (the buffer is then detached); for other
 * reads it does nothing.
 */
async function readLarge(source: RandomAccessSource, offset: number, length: number): Promise<Held> {
  if (length < HUGE_FROM || !source.readInto) return { bytes: await source.read(offset, length), release: () => {} };
  const held = hugeBytes(length);
  try {
    await source.readInto(held.bytes, offset);
    return held;
  } catch (e) {
    held.release();
    throw e;
  }
}
