/**
 * Opening an image (spec/FORMAT.md sections 3, 4, 8.2 and 8.1): the header, the validation
 * block, the footer and its geometry, the decoder, and the region section. The chunk table is
 * read later, on the first data access.
 */
import { xxh64 } from '../codec/checksum.js';
import { FOOTER_SIZE, alignUp } from '../format/constants.js';
import { decodeHeader, peekHeaderSize, type Header } from '../format/header.js';
import { decodeValidation, type Validation } from '../format/validation.js';
import { checkFooter, decodeFooter, type Footer } from '../format/footer.js';
import { decodeRegionSection, type Region } from '../format/index-table.js';
import { CrimgError, isCrimgError } from '../format/errors.js';
import type { RandomAccessSource } from './source.js';
import { createChunkDecoder, type ChunkDecoder } from './chunk-decoder.js';
import type { KeyInput } from './keying.js';

export interface OpenOptions {
  /** Master key or passphrase for an encrypted image. */
  key?: KeyInput;
  /** 'node' (default) or 'portable' engines for decoding. */
  engine?: 'node' | 'portable';
  /** Reader-side caps on scrypt work (section 7.1). */
  scryptCaps?: { maxMemory?: number; maxP?: number };
  /** Worker threads for bulk decoding; default none on 2 cores or fewer (measured: the copies cost more than they save), else cores - 1. */
  workers?: number;
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
  readonly regions: Region[] | null;
  readonly decoder: ChunkDecoder | null;
  readonly dataStart: number;
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
  const footer = await readFooter(source);
  const dataStart = alignUp(header.headerSize + header.validationSize, header.pageSize);
  checkFooter(footer, header, size, dataStart);
  const decoder = header.cipher !== 0 || header.codec !== 0
    ? await createChunkDecoder({ header, headerBytes, validationBytes, key: options.key, engine: options.engine ?? 'node', scryptCaps: options.scryptCaps, workers: options.workers })
    : null;
  const regions = header.cipher === 0 || decoder?.hasKey ? await readRegions(source, header, footer, decoder) : null;
  return { source, owned, header, headerBytes, validationBytes, validation, footer, regions, decoder, dataStart };
}

/** Section 3: the header, after its magic and size (a wrong magic beats truncation). */
async function readHeader(source: RandomAccessSource): Promise<{ header: Header; headerBytes: Uint8Array }> {
  const size = source.size;
  const first = await source.read(0, Math.min(16, size));
  if (size < 16) {
    peekHeaderSize(padTo16(first)); // bad magic beats truncation
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
        offset: size, hint: 'an interrupted write leaves NAME.tmp, never NAME; copy the image again completely',
      });
    }
    throw e;
  }
}

/** Section 8.1: the region section, checksummed, opened when sealed, decoded. */
async function readRegions(source: RandomAccessSource, header: Header, footer: Footer, decoder: ChunkDecoder | null): Promise<Region[]> {
  const off = Number(footer.regionSectionOffset);
  const len = Number(footer.regionSectionLength);
  const stored = await source.read(off, len);
  if (xxh64(stored) !== footer.regionSectionChecksum) {
    throw new CrimgError('CORRUPT_INDEX', 'region section checksum mismatch', { offset: off, hint: 'the index is damaged; restore the image from a good copy' });
  }
  const plain = decoder ? decoder.openIndex(2, BigInt(footer.regionCount), stored, off) : stored;
  return decodeRegionSection(plain, {
    regionCount: footer.regionCount, stringTableLength: footer.stringTableLength,
    chunkCount: Number(footer.chunkCount), chunkSize: header.chunkSize, pageSize: header.pageSize, base: off,
  });
}

function padTo16(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out.set(b);
  return out;
}
