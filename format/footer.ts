/**
 * Footer encode/decode, spec/FORMAT.md section 8.2. Pure: bytes in, fields out.
 */
import { Parser } from 'binary-parser';
import type { Checksum } from './checksum.js';
import { END_MAGIC, FOOTER_SIZE } from './constants.js';
import { equalBytes, view } from './bytes.js';
import { CrimgError } from './errors.js';

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

const parser = new Parser()
  .endianness('little')
  .buffer('imageId', { length: 16, clone: true }) // 0
  .uint64le('chunkTableOffset')                   // 16
  .uint64le('chunkCount')                         // 24
  .uint64le('chunkTableLength')                   // 32
  .uint64le('regionSectionOffset')                // 40
  .uint32le('regionCount')                        // 48
  .uint32le('stringTableLength')                  // 52
  .uint64le('regionSectionLength')                // 56
  .uint64le('chunkTableChecksum')                 // 64
  .uint64le('regionSectionChecksum');             // 72; 80 footer checksum; 88 end magic

export function encodeFooter(f: Footer, xxh64: Checksum): Uint8Array {
  const b = new Uint8Array(FOOTER_SIZE);
  const dv = view(b);
  b.set(f.imageId, 0);
  dv.setBigUint64(16, f.chunkTableOffset, true);
  dv.setBigUint64(24, f.chunkCount, true);
  dv.setBigUint64(32, f.chunkTableLength, true);
  dv.setBigUint64(40, f.regionSectionOffset, true);
  dv.setUint32(48, f.regionCount, true);
  dv.setUint32(52, f.stringTableLength, true);
  dv.setBigUint64(56, f.regionSectionLength, true);
  dv.setBigUint64(64, f.chunkTableChecksum, true);
  dv.setBigUint64(72, f.regionSectionChecksum, true);
  dv.setBigUint64(80, xxh64(b.subarray(0, 80)), true);
  b.set(END_MAGIC, 88);
  return b;
}

/**
 * Decodes the footer: end magic first, then its checksum (section 8.2).
 * @param bytes the file's last {@link FOOTER_SIZE} bytes; `base` their file offset.
 * @throws CrimgError BAD_MAGIC, CORRUPT_INDEX
 */
export function decodeFooter(bytes: Uint8Array, base: number, xxh64: Checksum): Footer {
  if (!equalBytes(bytes.subarray(88, 96), END_MAGIC)) {
    throw new CrimgError('BAD_MAGIC', 'the end magic is missing: the image is truncated, still being written, or not a crimg image', {
      offset: base + 88,
      hint: 'an interrupted write leaves NAME.tmp, never NAME; copy the image again completely',
    });
  }
  const stored = view(bytes).getBigUint64(80, true);
  if (stored !== xxh64(bytes.subarray(0, 80))) {
    throw new CrimgError('CORRUPT_INDEX', 'footer checksum mismatch', {
      offset: base + 80, hint: 'the last bytes of the file are damaged; restore the image from a good copy',
    });
  }
  return parser.parse(bytes) as unknown as Footer;
}
