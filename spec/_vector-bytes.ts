/**
 * Byte surgery on vector images (spec/vectors-lib.ts): the checksums a mutation must re-seal so
 * that the check a vector names is the one that fails, and moves of stored chunks in an
 * unencrypted image. Used to make the invalid and accepted vectors; deterministic.
 */
import { xxh64 } from '../codec/checksum.js';
import { CHUNK_RECORD_SIZE, FOOTER_SIZE, HEADER_SIZE, REGION_RECORD_SIZE } from '../format/constants.js';

/** Re-seals the header checksum after a mutation (so the intended check is the one that fails). */
export function fixHeader(b: Buffer): Buffer {
  const size = b.readUInt32LE(12);
  b.writeBigUInt64LE(xxh64(b.subarray(0, size - 8)), size - 8);
  return b;
}
export function footerAt(b: Buffer): number { return b.length - FOOTER_SIZE; }
export function fixFooter(b: Buffer): Buffer {
  const f = footerAt(b);
  b.writeBigUInt64LE(xxh64(b.subarray(f, f + 80)), f + 80);
  return b;
}
export function regionSection(b: Buffer): number { return Number(b.readBigUInt64LE(footerAt(b) + 40)); }
export function chunkTable(b: Buffer): number { return Number(b.readBigUInt64LE(footerAt(b) + 16)); }
export function fixRegions(b: Buffer): Buffer {
  const f = footerAt(b);
  const off = regionSection(b);
  b.writeBigUInt64LE(xxh64(b.subarray(off, f)), f + 72);
  return fixFooter(b);
}
export function fixValidation(b: Buffer): Buffer {
  const size = b.readUInt32LE(64);
  b.writeBigUInt64LE(xxh64(b.subarray(HEADER_SIZE, HEADER_SIZE + size - 8)), HEADER_SIZE + size - 8);
  return b;
}
/** File offset of the first stored (non-zero) chunk. */
export function firstStoredChunk(b: Buffer): number {
  const t = chunkTable(b);
  const n = Number(b.readBigUInt64LE(footerAt(b) + 24));
  for (let i = 0; i < n; i++) {
    const off = Number(b.readBigUInt64LE(t + i * CHUNK_RECORD_SIZE));
    if (off !== 0) return off;
  }
  throw new Error('no stored chunk');
}

/** Edits the chunk table of an unencrypted image in place and fixes its checksum in the footer. */
export function reindexPlain(b: Buffer, edit: (chunks: Buffer, file: Buffer) => void): Buffer {
  const out = Buffer.from(b);
  const f = footerAt(out);
  const ct = chunkTable(out);
  const chunks = out.subarray(ct, ct + Number(out.readBigUInt64LE(f + 32)));
  edit(chunks, out);
  out.writeBigUInt64LE(xxh64(chunks), f + 64);
  return fixFooter(out);
}

/**
 * Inserts `bytes` at file offset `at` of an unencrypted image's data area: every stored chunk
 * at or after `at` and the index move by their length; with `grow`, chunk record `grow` (whose
 * stored bytes end at `at`) takes them (stored length, checksum, its region's stored bytes).
 * Checksums of the chunk table, region section and footer are fixed.
 */
export function insertPlain(b: Buffer, at: number, bytes: Uint8Array, grow?: number): Buffer {
  return splicePlain(b, at, 0, bytes, grow);
}

/**
 * {@link insertPlain} generalised: `remove` bytes at `at` replaced by `bytes`; stored chunks at or
 * after `at + remove` move by the difference, and record `grow` (whose stored bytes end at
 * `at + remove`) grows or shrinks by it.
 */
export function splicePlain(b: Buffer, at: number, remove: number, bytes: Uint8Array, grow?: number): Buffer {
  const n = bytes.length - remove;
  const out = Buffer.concat([b.subarray(0, at), bytes, b.subarray(at + remove)]);
  const f = footerAt(out);
  const ct = chunkTable(out) + n;
  out.writeBigUInt64LE(BigInt(ct), f + 16);
  out.writeBigUInt64LE(BigInt(regionSection(out) + n), f + 40);
  const chunks = out.subarray(ct, ct + Number(out.readBigUInt64LE(f + 32)));
  for (let i = 0; i * CHUNK_RECORD_SIZE < chunks.length; i++) {
    const o = Number(chunks.readBigUInt64LE(i * CHUNK_RECORD_SIZE));
    if (chunks.readUInt32LE(i * CHUNK_RECORD_SIZE + 8) !== 0 && o >= at + remove) chunks.writeBigUInt64LE(BigInt(o + n), i * CHUNK_RECORD_SIZE);
  }
  if (grow !== undefined) {
    const o = Number(chunks.readBigUInt64LE(grow * CHUNK_RECORD_SIZE));
    const len = chunks.readUInt32LE(grow * CHUNK_RECORD_SIZE + 8) + n;
    chunks.writeUInt32LE(len, grow * CHUNK_RECORD_SIZE + 8);
    chunks.writeBigUInt64LE(xxh64(out.subarray(o, o + len)), grow * CHUNK_RECORD_SIZE + 16);
    const rs = regionSection(out);
    for (let r = 0; r < out.readUInt32LE(f + 48); r++) {
      const first = Number(out.readBigUInt64LE(rs + r * REGION_RECORD_SIZE + 16));
      const count = Number(out.readBigUInt64LE(rs + r * REGION_RECORD_SIZE + 24));
      if (grow >= first && grow < first + count) out.writeBigUInt64LE(out.readBigUInt64LE(rs + r * REGION_RECORD_SIZE + 32) + BigInt(n), rs + r * REGION_RECORD_SIZE + 32);
    }
  }
  out.writeBigUInt64LE(xxh64(chunks), f + 64);
  return fixRegions(out);
}

/** Stored (non-zero) chunk records of a plain chunk table: [record index, offset, length]. */
export function storedRecords(chunks: Buffer): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let i = 0; i * CHUNK_RECORD_SIZE < chunks.length; i++) {
    const len = chunks.readUInt32LE(i * CHUNK_RECORD_SIZE + 8);
    if (len) out.push([i, Number(chunks.readBigUInt64LE(i * CHUNK_RECORD_SIZE)), len]);
  }
  return out;
}
