/**
 * Footer encode/decode, spec/FORMAT.md section 8.2. Pure: bytes in, fields out.
 */
import type { Checksum } from './checksum.js';
import { CHUNK_RECORD_SIZE, END_MAGIC, FOOTER_SIZE, LIMITS, REGION_RECORD_SIZE, TAG_SIZE } from './constants.js';
import { equalBytes, toHex, view } from './bytes.js';
import type { Header } from './header.js';
import { CrimgError } from './errors.js';
import { FOOTER, decodeFields, encodeFields, offsetOf } from './fields.js';

/** The decoded footer (section 8.2), without its own checksum and end magic. */
export interface Footer {
  imageId: Uint8Array;
  chunkTableOffset: bigint;
  chunkCount: bigint;
  chunkTableLength: bigint;
  regionSectionOffset: bigint;
  regionCount: number;
  stringTableLength: number;
  regionSectionLength: bigint;
  chunkTableChecksum: bigint;
  regionSectionChecksum: bigint;
}

/**
 * Encodes the footer (section 8.2) with its checksum and end magic.
 * @throws RangeError when the image id is not 16 bytes.
 */
export function encodeFooter(f: Footer, xxh64: Checksum): Uint8Array {
  const b = new Uint8Array(FOOTER_SIZE);
  encodeFields(FOOTER, {
    imageId: f.imageId, chunkTableOffset: f.chunkTableOffset, chunkCount: f.chunkCount,
    chunkTableLength: f.chunkTableLength, regionSectionOffset: f.regionSectionOffset,
    regionCount: f.regionCount, stringTableLength: f.stringTableLength,
    regionSectionLength: f.regionSectionLength, chunkTableChecksum: f.chunkTableChecksum,
    regionSectionChecksum: f.regionSectionChecksum, checksum: 0n, endMagic: END_MAGIC,
  }, b);
  const at = offsetOf(FOOTER, 'checksum');
  view(b).setBigUint64(at, xxh64(b.subarray(0, at)), true);
  return b;
}

/**
 * Decodes the footer: end magic first, then its checksum (section 8.2).
 * @param bytes the file's last {@link FOOTER_SIZE} bytes; `base` their file offset.
 * @throws CrimgError BAD_MAGIC, CORRUPT_INDEX
 */
export function decodeFooter(bytes: Uint8Array, base: number, xxh64: Checksum): Footer {
  const magic = offsetOf(FOOTER, 'endMagic');
  if (!equalBytes(bytes.subarray(magic, magic + END_MAGIC.length), END_MAGIC)) {
    throw new CrimgError('BAD_MAGIC', 'the end magic is missing: the image is truncated, still being written, or not a crimg image', {
      offset: base + magic,
      hint: 'an interrupted crimg write never leaves a partial image under its final name (only a hidden .NAME.<hex>.crimg-tmp beside it); copy the image again completely',
    });
  }
  const r = decodeFields(FOOTER, bytes);
  const at = offsetOf(FOOTER, 'checksum');
  if (r.checksum !== xxh64(bytes.subarray(0, at))) {
    throw new CrimgError('CORRUPT_INDEX', 'footer checksum mismatch', {
      offset: base + at, hint: 'the last bytes of the file are damaged; restore the image from a good copy',
    });
  }
  return {
    imageId: r.imageId, chunkTableOffset: r.chunkTableOffset, chunkCount: r.chunkCount,
    chunkTableLength: r.chunkTableLength, regionSectionOffset: r.regionSectionOffset,
    regionCount: r.regionCount, stringTableLength: r.stringTableLength,
    regionSectionLength: r.regionSectionLength, chunkTableChecksum: r.chunkTableChecksum,
    regionSectionChecksum: r.regionSectionChecksum,
  };
}

/**
 * Section 8.2: the footer's geometry against the file length, the header and the limits of
 * section 9: counts first (a hostile count is a limit problem whatever the lengths say), then
 * that the index lies inside the file, then the sections' offsets and lengths.
 * @param size the file length; `dataStart` where the data area begins (section 5.2).
 * @throws CrimgError LIMIT_EXCEEDED, TRUNCATED, CORRUPT_INDEX
 */
export function checkFooter(f: Footer, h: Header, size: number, dataStart: number): void {
  const footerBase = size - FOOTER_SIZE;
  const corrupt = (why: string, at: number): never => {
    throw new CrimgError('CORRUPT_INDEX', `footer ${why}`, { offset: footerBase + at, hint: 'the index is damaged; restore the image from a good copy' });
  };
  if (toHex(f.imageId) !== toHex(h.imageId)) corrupt('image id differs from the header\'s: the file mixes two images', offsetOf(FOOTER, 'imageId'));
  const t = BigInt(h.cipher !== 0 ? TAG_SIZE : 0);
  const end = BigInt(footerBase);
  // Counts first: a hostile count is a limit problem, whatever the lengths beside it say.
  if (f.regionCount > LIMITS.maxRegions) {
    throw new CrimgError('LIMIT_EXCEEDED', `footer claims ${f.regionCount} regions (limit ${LIMITS.maxRegions})`, { offset: footerBase + offsetOf(FOOTER, 'regionCount') });
  }
  if (f.stringTableLength > LIMITS.maxStringTable) {
    throw new CrimgError('LIMIT_EXCEEDED', `footer claims a ${f.stringTableLength}-byte string table (limit ${LIMITS.maxStringTable})`, { offset: footerBase + offsetOf(FOOTER, 'stringTableLength') });
  }
  if (f.chunkCount * BigInt(CHUNK_RECORD_SIZE) > BigInt(size)) {
    throw new CrimgError('LIMIT_EXCEEDED', `footer claims ${f.chunkCount} chunks, more records than the ${size}-byte file can hold`, { offset: footerBase + offsetOf(FOOTER, 'chunkCount') });
  }
  if (f.chunkTableOffset > end || f.chunkTableOffset + f.chunkTableLength > end || f.regionSectionOffset + f.regionSectionLength > end) {
    throw new CrimgError('TRUNCATED', `the index reaches past the footer at ${footerBase}: the file is shorter than its index says`, { offset: footerBase + offsetOf(FOOTER, 'chunkTableOffset') });
  }
  if (f.chunkTableOffset < BigInt(dataStart) || f.chunkTableOffset % 8n !== 0n) corrupt(`chunk table offset ${f.chunkTableOffset} is before the data area or unaligned`, offsetOf(FOOTER, 'chunkTableOffset'));
  if (f.chunkTableLength !== f.chunkCount * BigInt(CHUNK_RECORD_SIZE) + t) corrupt(`chunk table length ${f.chunkTableLength} does not fit ${f.chunkCount} records`, offsetOf(FOOTER, 'chunkTableLength'));
  if (f.regionSectionOffset !== f.chunkTableOffset + f.chunkTableLength) corrupt('region section does not follow the chunk table', offsetOf(FOOTER, 'regionSectionOffset'));
  if (f.regionSectionLength !== BigInt(f.regionCount * REGION_RECORD_SIZE + f.stringTableLength) + t) corrupt(`region section length ${f.regionSectionLength} does not fit ${f.regionCount} regions`, offsetOf(FOOTER, 'regionSectionLength'));
  if (f.regionSectionOffset + f.regionSectionLength !== end) corrupt('region section does not end at the footer', offsetOf(FOOTER, 'regionSectionLength'));
  if (f.regionCount === 0) corrupt('lists no regions', offsetOf(FOOTER, 'regionCount'));
}
