/**
 * `diffImages` of a child and its parent (spec/FORMAT.md section 8.3): an IN_PARENT chunk holds
 * the parent's bytes at its address by definition, so only the child's other chunks need
 * comparing. The relation is proven, not assumed: the other image's id and index hash must be
 * the ones the child's parent record names.
 */
import { CHUNK_IN_PARENT } from '../format/constants.js';
import { toHex } from '../format/bytes.js';
import type { Region } from '../format/index-table.js';
import { ImageReader } from './reader.js';
import { parentIndexHash } from './_parent.js';

/** True when `child` is a child image whose parent is exactly `parent` (image id and index hash). */
export async function isParentOf(parent: unknown, child: unknown): Promise<boolean> {
  if (!(parent instanceof ImageReader) || !(child instanceof ImageReader)) return false;
  const rec = child.validation.parent;
  if (rec === undefined || toHex(rec.imageId) !== parent.imageId) return false;
  if (parent.pageSize !== child.pageSize || parent.chunkSize !== child.chunkSize) return false;
  return toHex(await parentIndexHash(parent)) === toHex(rec.indexHash);
}

/**
 * The address ranges of `[r.address, r.address + length)` that `child` holds itself (its
 * chunks that are not IN_PARENT), merged, from the chunk table alone.
 */
export async function ownRanges(child: ImageReader, r: Region, length: bigint): Promise<{ start: bigint; length: bigint }[]> {
  const table = await child.chunkTable();
  const cs = BigInt(child.chunkSize);
  const out: { start: bigint; length: bigint }[] = [];
  const chunks = Number((length + cs - 1n) / cs);
  for (let j = 0; j < chunks; j++) {
    if (table.get(r.firstChunk + j, child.plainLength(r, j)).flags & CHUNK_IN_PARENT) continue;
    const start = r.address + BigInt(j) * cs;
    const end = start + cs < r.address + length ? start + cs : r.address + length;
    const last = out[out.length - 1];
    if (last && last.start + last.length === start) last.length += end - start;
    else out.push({ start, length: end - start });
  }
  return out;
}
