/**
 * The image writer's chunk table and data layout (spec/FORMAT.md sections 5.2 and 5.3): each
 * stored chunk is queued at the next file offset and recorded there; a zero chunk is recorded
 * with no bytes, and in the sparse layout leaves a hole of its plain length, so that chunk j of
 * a region lies at the region's start + j * chunk size. In a MAPPABLE image each region ends
 * padded to a page boundary.
 */
import { constants as bufferConstants } from 'node:buffer';
import { CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_IN_PARENT, CHUNK_RAW, CHUNK_RECORD_SIZE, CHUNK_ZERO, LIMITS, TAG_SIZE, alignUp } from '../format/constants.js';
import { writeChunkRecord, type RegionRecord } from '../format/index-table.js';
import { CHUNK_RECORD_WORDS as W } from '../format/fields.js';
import type { NativeMmap } from '../native-mmap/index.js';
import { PIECE_ZERO, type EncodedChunk, type EncodedPiece } from './chunk-encoder.js';
import { WRITE_BATCH, type WriteQueue } from './_write-queue.js';

const ZERO_PAD = new Uint8Array(LIMITS.maxPageSize);

/**
 * A stored chunk's record (section 5.3) written as 32-bit words at word `w` (format/fields.ts):
 * `offset`, `length`, `flags` (the reserved u16 above them 0) and the checksum, sum `k` of
 * `sumWords` (XXH64 sums as pairs of little-endian words).
 */
function putWords(words: Uint32Array, w: number, offset: number, length: number, flags: number, sumWords: Uint32Array, k: number): void {
  words[w + W.offset] = offset >>> 0;
  words[w + W.offset + 1] = Math.floor(offset / 0x100000000);
  words[w + W.storedLength] = length;
  words[w + W.flags] = flags;
  words[w + W.checksum] = sumWords[2 * k]!;
  words[w + W.checksum + 1] = sumWords[2 * k + 1]!;
}

/**
 * The most chunks one image can record: its chunk table (24 bytes a record) is held in memory
 * while writing and read whole by the reader, and one typed array holds at most
 * buffer.constants.MAX_LENGTH (4 GiB on Node 20) bytes. A region of 1 TiB is 268,435,456
 * chunks of 4 KiB but 65,536 of 16 MiB.
 */
export const MAX_CHUNKS = Math.floor(Math.min(2 ** 32, bufferConstants.MAX_LENGTH) / CHUNK_RECORD_SIZE);

/**
 * Refuses `more` chunks after `count` when the chunk table could not hold them, before any
 * memory is taken for them.
 * @throws RangeError naming the limit and the fix (a larger chunk size)
 */
export function checkTableRoom(count: number, more: number, chunkSize: number): void {
  if (count + more <= MAX_CHUNKS) return;
  throw new RangeError(`expected at most ${MAX_CHUNKS} chunks in an image (a chunk table of at most ${MAX_CHUNKS * CHUNK_RECORD_SIZE} bytes), got ${count} and ${more} more of ${chunkSize} bytes: use a larger chunk size (up to ${LIMITS.maxChunkSize})`);
}

/** The chunk records of one image being written, in chunk order, and their totals. */
export class ChunkRecords {
  /** Chunk records written so far. */
  count = 0;
  zeroChunks = 0;
  storedBytes = 0;
  plainBytes = 0;
  private table = new Uint8Array(CHUNK_RECORD_SIZE * 1024);
  /** The chunk table as 32-bit words, for the native scan's records. */
  private words: Uint32Array | null = null;
  /** Per-block scan results of the native scan (chunk sums and zero flags). */
  private scanSums: BigUint64Array | null = null;
  private scanZero: Uint8Array | null = null;

  constructor(
    private readonly out: WriteQueue,
    private readonly pageSize: number,
    private readonly chunkSize: number,
    /** No codec and no cipher: regions end on a page boundary (section 5.2). */
    private readonly mappable: boolean,
    /** Sparse layout: zero chunks are holes (section 5.2, SPARSE). */
    private readonly sparse: boolean,
  ) {}

  /** The chunk table's bytes (section 5.3), valid until the next record. */
  get bytes(): Uint8Array {
    return this.table.subarray(0, this.count * CHUNK_RECORD_SIZE);
  }

  /** Records one encoded chunk of `rec` and queues its bytes. */
  store(c: EncodedChunk, rec: RegionRecord): void {
    this.plainBytes += c.plainLength;
    if (c.stored.length === 0) {
      this.record(0, 0, c.flags, 0n);
      if (c.flags & CHUNK_IN_PARENT) return; // a child's chunk held by its parent (section 8.3)
      rec.zeroChunks++;
      this.zeroChunks++;
      if (this.sparse) this.out.skip(c.plainLength);
      return;
    }
    this.record(this.out.pos, c.stored.length, c.flags, c.checksum);
    rec.storedBytes += BigInt(c.stored.length);
    this.storedBytes += c.stored.length;
    this.out.queue(c.stored);
  }

  /**
   * Records the chunks of `bytes` (whole chunks but for a region's last) from one native scan
   * and queues their stored runs as views of `bytes`, one per run of stored chunks.
   * The same records and bytes as {@link store} of the plain encoder, chunk by chunk.
   * @returns the number of chunks.
   */
  storeScanned(n: NativeMmap, bytes: Uint8Array, rec: RegionRecord): number {
    const cs = this.chunkSize;
    const out = this.out;
    const chunks = Math.ceil(bytes.length / cs);
    if (this.scanSums === null || this.scanSums.length < chunks) {
      this.scanSums = new BigUint64Array(Math.max(chunks, Math.ceil(WRITE_BATCH / cs)));
      this.scanZero = new Uint8Array(this.scanSums.length);
    }
    const sums = this.scanSums;
    const zero = this.scanZero!;
    n.scanChunks(bytes, cs, sums, zero);
    // The sums as 32-bit words: copied into the records with no BigInt per chunk.
    const sumWords = new Uint32Array(sums.buffer, sums.byteOffset, sums.length * 2);
    this.reserve(chunks);
    const words = this.words!;
    let stored = 0;
    let zeros = 0;
    let runStart = -1;
    let runPos = 0; // file offset of the run's first chunk
    for (let k = 0; k <= chunks; k++) {
      if (k < chunks && zero[k] === 0) {
        if (runStart < 0) {
          runStart = k;
          runPos = out.pos;
        }
        const plain = Math.min(cs, bytes.length - k * cs);
        putWords(words, this.count++ * W.size, runPos + (k - runStart) * cs, plain, CHUNK_RAW, sumWords, k);
        stored += plain;
        continue;
      }
      if (runStart >= 0) {
        out.queue(bytes.subarray(runStart * cs, Math.min(bytes.length, k * cs)));
        runStart = -1;
      }
      if (k === chunks) break;
      const w = this.count++ * W.size;
      words.fill(0, w, w + W.size);
      words[w + W.flags] = CHUNK_ZERO;
      zeros++;
      if (this.sparse) out.skip(Math.min(cs, bytes.length - k * cs));
    }
    rec.storedBytes += BigInt(stored);
    rec.zeroChunks += zeros;
    this.storedBytes += stored;
    this.zeroChunks += zeros;
    this.plainBytes += bytes.length;
    return chunks;
  }

  /**
   * Records the chunks of one encoded piece of `rec` (`plain` bytes: whole chunks but for a
   * region's last) and queues their stored bytes, `p.stored`, in one piece: the same records
   * and bytes as {@link store} of each chunk's {@link EncodedChunk} in the compact layout (an
   * encoded image is never sparse).
   * @throws RangeError beyond the chunk table's limit ({@link MAX_CHUNKS})
   */
  storePiece(p: EncodedPiece, rec: RegionRecord, plain: number): void {
    const cs = this.chunkSize;
    const out = this.out;
    const chunks = p.sizes.length;
    let total = 0;
    const tag = p.sealed ? TAG_SIZE : 0;
    for (let k = 0; k < chunks; k++) {
      const size = p.sizes[k]!;
      if (size !== PIECE_ZERO) total += (size > 0 ? size : Math.min(cs, plain - k * cs)) + tag;
    }
    if (chunks !== Math.ceil(plain / cs) || total !== p.stored.length) {
      throw new RangeError(`expected an encoded piece of ${Math.ceil(plain / cs)} chunks storing ${total} bytes, got ${chunks} chunks and ${p.stored.length} bytes`);
    }
    if (this.sparse) throw new RangeError('expected an encoded piece only in the compact layout');
    this.reserve(chunks);
    const words = this.words!;
    const sumWords = new Uint32Array(p.sums.buffer, p.sums.byteOffset, chunks * 2);
    const base = out.pos;
    let at = 0; // bytes of p.stored recorded so far
    let zeros = 0;
    for (let k = 0; k < chunks; k++) {
      const size = p.sizes[k]!;
      const w = this.count++ * W.size;
      if (size === PIECE_ZERO) {
        words.fill(0, w, w + W.size);
        words[w + W.flags] = CHUNK_ZERO;
        zeros++;
        continue;
      }
      const length = (size > 0 ? size : Math.min(cs, plain - k * cs)) + tag;
      putWords(words, w, base + at, length, (size > 0 ? CHUNK_ENCODED : CHUNK_RAW) | (p.sealed ? CHUNK_ENCRYPTED : 0), sumWords, k);
      at += length;
    }
    if (at > 0) out.queue(p.stored);
    // Its memory is reused once the write that takes it is done.
    if (at > 0) out.afterWrite(p.release); else p.release();
    rec.storedBytes += BigInt(at);
    rec.zeroChunks += zeros;
    this.storedBytes += at;
    this.zeroChunks += zeros;
    this.plainBytes += plain;
  }

  /**
   * Records `count` zero chunks of `rec` (a run of zeros given without bytes, or pages a file
   * range says are absent): records only, no bytes touched; the sparse layout skips their plain
   * length. The same records as {@link store} of `count` zero chunks. `plain`: their plain bytes,
   * whole chunks but for a region's last, which may be short.
   * @throws RangeError beyond the chunk table's limit ({@link MAX_CHUNKS})
   */
  storeZeros(count: number, rec: RegionRecord, plain = count * this.chunkSize): void {
    if (count <= 0) return;
    this.recordsOnly(count, CHUNK_ZERO);
    rec.zeroChunks += count;
    this.zeroChunks += count;
    this.plainBytes += plain;
    if (this.sparse) this.out.skip(plain);
  }

  /**
   * Records `count` IN_PARENT chunks (a child's chunks held by its parent, section 8.3), `plain`
   * bytes in all: no bytes, and counted in no region total (neither stored nor zero).
   * @throws RangeError beyond the chunk table's limit ({@link MAX_CHUNKS})
   */
  storeInParent(count: number, plain: number): void {
    if (count <= 0) return;
    this.recordsOnly(count, CHUNK_IN_PARENT);
    this.plainBytes += plain;
  }

  /** `count` records with no stored bytes (offset, length and checksum 0) and flags `flag`. */
  private recordsOnly(count: number, flag: number): void {
    this.reserve(count);
    const words = this.words!;
    const w = this.count * W.size;
    words.fill(0, w, w + count * W.size);
    for (let k = 0, at = w + W.flags; k < count; k++, at += W.size) words[at] = flag;
    this.count += count;
  }

  /**
   * Ends region `rec` of `chunks` chunks: sets its chunk count and, in a MAPPABLE image, pads
   * to a page boundary, where the next region's first chunk starts (section 5.2).
   * @throws RangeError beyond {@link LIMITS}.maxChunksPerRegion chunks
   */
  endRegion(rec: RegionRecord, chunks: number): void {
    if (chunks > LIMITS.maxChunksPerRegion) throw new RangeError(`expected at most ${LIMITS.maxChunksPerRegion} chunks per region`);
    rec.chunkCount = chunks;
    const pos = this.out.pos;
    if (!this.mappable || pos % this.pageSize === 0) return;
    const pad = alignUp(pos, this.pageSize) - pos;
    if (this.sparse) this.out.skip(pad); else this.out.queue(ZERO_PAD.subarray(0, pad));
  }

  /** Appends the next chunk record. */
  private record(offset: number, storedLength: number, flags: number, checksum: bigint): void {
    this.reserve(1);
    writeChunkRecord(this.table, this.count++, { offset, storedLength, flags, checksum });
  }

  /**
   * Makes room for `n` more chunk records; {@link words} views the table as 32-bit words (the
   * records are 24 bytes, so 6 words each, little-endian on the hosts the native scan runs on).
   */
  private reserve(n: number): void {
    checkTableRoom(this.count, n, this.chunkSize);
    const need = (this.count + n) * CHUNK_RECORD_SIZE;
    if (need > this.table.length) {
      let size = this.table.length * 2;
      while (size < need) size *= 2;
      size = Math.min(size, MAX_CHUNKS * CHUNK_RECORD_SIZE);
      const grown = new Uint8Array(size);
      grown.set(this.table);
      this.table = grown;
      this.words = null;
    }
    this.words ??= new Uint32Array(this.table.buffer, this.table.byteOffset, this.table.length >> 2);
  }
}
