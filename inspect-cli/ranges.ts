/**
 * Bounded reads of an image's memory: a range is read in pieces of at most `piece` bytes so
 * that extract, convert and diff never hold a whole region in memory.
 */
import type { Image } from '../restore/image.js';

/** Default piece: 8 MiB, a multiple of every valid page and chunk size up to 8 MiB. */
export const PIECE = 8 * 1024 * 1024;

/**
 * The bytes of `[address, address + length)` in pieces of at most `piece` bytes.
 * @throws CrimgError NOT_MAPPED, CORRUPT_CHUNK... as Image.read does.
 */
export async function* readPieces(image: Image, address: bigint, length: bigint, piece = PIECE): AsyncGenerator<Buffer> {
  let at = address;
  const end = address + length;
  while (at < end) {
    const n = end - at < BigInt(piece) ? Number(end - at) : piece;
    yield await image.read(at, n);
    at += BigInt(n);
  }
}

/** A half-open address range. */
export interface AddressRange {
  start: bigint;
  end: bigint;
}

/** Collects ranges added in ascending order, merging touching ones. */
export class RangeCollector {
  readonly ranges: AddressRange[] = [];

  add(start: bigint, end: bigint): void {
    const last = this.ranges[this.ranges.length - 1];
    if (last && last.end === start) last.end = end;
    else this.ranges.push({ start, end });
  }
}
