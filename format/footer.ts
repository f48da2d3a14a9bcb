/**
 * Footer encode/decode, spec/FORMAT.md section 8.2. Pure: bytes in, fields out.
 */
import type { Checksum } from './checksum.js';
import { END_MAGIC, FOOTER_SIZE } from './constants.js';
import { equalBytes, view } from './bytes.js';
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
      hint: 'an interrupted write leaves NAME.tmp, never NAME; copy the image again completely',
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
