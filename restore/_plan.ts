/**
 * Restore plans: how a region's chunks become placements (map mode) or reads (copy mode),
 * decided from the chunk table alone (spec/FORMAT.md sections 5.2 and 5.3). Pure: no syscalls,
 * no reads of chunk data.
 *
 * A plan looks at every chunk record, 16384 per GiB at the default chunk size, so it reads the
 * records in place instead of through `ChunkTable.get`, which builds an object per record (1.2 ms
 * per GiB measured, as much as all the mmaps of an image without zero chunks). The fast check
 * accepts only records that `ChunkTable.get` accepts too: exactly a well-formed ZERO record, or
 * exactly a RAW record of the right length at a page-aligned offset inside the data area. Every
 * other record goes through `ChunkTable.get`, the authority, which throws the precise
 * CORRUPT_INDEX or accepts it.
 */
import { CHUNK_RAW, CHUNK_RECORD_SIZE, CHUNK_ZERO } from '../format/constants.js';
import { CrimgError } from '../format/errors.js';
import { CHUNK_RECORD, CHUNK_RECORD_WORDS as CW, offsetOf } from '../format/fields.js';
import { hex } from '../format/bytes.js';
import type { ChunkTable, Region } from '../format/index-table.js';
import type { ImageReader } from '../image/reader.js';

/** What a plan needs to know about the image. */
export interface PlanGeometry {
  chunkSize: number;
  pageSize: number;
  /** The data area: stored bytes lie in `[dataStart, dataEnd)` (section 5.3). */
  dataStart: number;
  dataEnd: number;
}

/** The geometry of an open image. */
export function planGeometry(image: ImageReader): PlanGeometry {
  return {
    chunkSize: image.header.chunkSize, pageSize: image.header.pageSize,
    dataStart: image.dataStart, dataEnd: Number(image.footer.chunkTableOffset),
  };
}

/** A region's length as a Number (restorable regions are far below 2^53 bytes). */
export function regionLength(r: Region): number {
  if (r.length > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CrimgError('LIMIT_EXCEEDED', `region ${r.index} at ${hex(r.address)} is ${r.length} bytes, more than any address space can hold`, { region: r.index });
  }
  return Number(r.length);
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Zero record, raw record at this file offset, or anything else (-1). */
const ZERO = -2;
const OTHER = -1;

/**
 * Reads chunk records in place (section 5.3 layout: offset u64, length u32, flags u16, checksum
 * u64). Make one per image and reuse it for every region.
 */
/** The chunk record's words (section 5.3, format/fields.ts), and where its flags lie. */
const WORDS = CW.size;
const W_OFFSET = CW.offset; // low half; the high half follows
const W_LENGTH = CW.storedLength;
const W_FLAGS = CW.flags; // the u16 flags are its low half
const W_CHECKSUM = CW.checksum;
const FLAGS_AT = offsetOf(CHUNK_RECORD, 'flags');
const CHECKSUM_AT = offsetOf(CHUNK_RECORD, 'checksum');

export class RecordScanner {
  /** The records as 32-bit words (6 per record), when the host is little-endian and they are aligned. */
  private readonly words: Uint32Array | null;
  private readonly dv: DataView;

  constructor(private readonly table: ChunkTable, readonly g: PlanGeometry) {
    const b = table.bytes;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.words = LITTLE_ENDIAN && b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2) : null;
  }

  /** Word `k` (0 to WORDS - 1) of record `number`. */
  private word(number: number, k: number): number {
    return this.words ? this.words[number * WORDS + k]! : this.dv.getUint32(number * CHUNK_RECORD_SIZE + 4 * k, true);
  }

  /** ZERO, the file offset of a RAW chunk, or OTHER for a record the fast check leaves to get(). */
  classify(number: number, plain: number): number {
    const lo = this.word(number, W_OFFSET);
    const hi = this.word(number, W_OFFSET + 1);
    const length = this.word(number, W_LENGTH);
    const flags = this.word(number, W_FLAGS) & 0xffff; // the reserved u16 after flags is ignored, as get() does
    if (flags === CHUNK_ZERO) {
      return lo === 0 && hi === 0 && length === 0 && this.word(number, W_CHECKSUM) === 0 && this.word(number, W_CHECKSUM + 1) === 0 ? ZERO : OTHER;
    }
    if (flags !== CHUNK_RAW || length !== plain || hi >= 0x200000) return OTHER;
    const offset = hi * 0x100000000 + lo;
    const g = this.g;
    return offset >= g.dataStart && offset + length <= g.dataEnd && offset % g.pageSize === 0 ? offset : OTHER;
  }

  /**
   * The fast path of {@link sparseSpans} for one region: accepts records while each is exactly a
   * well-formed ZERO record, or a RAW record of its plain length at `span + j * chunk size`
   * inside the data area (the span fixed by the first RAW record, page-aligned, at or after no
   * earlier bound: the caller checks that). Returns the span (-1 if no RAW record yet) and the
   * first record it did not accept (`count` when it accepted all), or null without the word view.
   */
  sparseRun(first: number, count: number, length: number): { span: number; next: number } | null {
    const w = this.words;
    if (w === null) return null;
    const { chunkSize: cs, dataStart, dataEnd, pageSize } = this.g;
    const full = count - 1; // records before the last have plain length cs
    let span = -1;
    let j = 0;
    for (; j < count; j++) {
      const k = (first + j) * WORDS;
      const flags = w[k + W_FLAGS]! & 0xffff;
      if (flags === CHUNK_ZERO) {
        if ((w[k + W_OFFSET]! | w[k + W_OFFSET + 1]! | w[k + W_LENGTH]! | w[k + W_CHECKSUM]! | w[k + W_CHECKSUM + 1]!) !== 0) break;
        continue;
      }
      const plain = j < full ? cs : length - j * cs;
      if (flags !== CHUNK_RAW || w[k + W_LENGTH]! !== plain || w[k + W_OFFSET + 1]! >= 0x200000) break;
      const offset = w[k + W_OFFSET + 1]! * 0x100000000 + w[k + W_OFFSET]!;
      if (span < 0) {
        if (offset - j * cs < dataStart || offset % pageSize !== 0) break;
        span = offset - j * cs;
      } else if (offset !== span + j * cs) {
        break;
      }
      if (offset + plain > dataEnd) break;
    }
    return { span, next: j };
  }

  /** The flags of a record, unchecked. */
  flags(number: number): number {
    return this.dv.getUint16(number * CHUNK_RECORD_SIZE + FLAGS_AT, true);
  }

  /** The checksum of a record, unchecked (a plan has checked the record already). */
  checksum(number: number): bigint {
    return this.dv.getBigUint64(number * CHUNK_RECORD_SIZE + CHECKSUM_AT, true);
  }

  /** The authority for records the fast check did not accept: throws, or returns the record. */
  checked(number: number, plain: number, r: Region): number {
    const rec = this.table.get(number, plain);
    if (rec.flags & CHUNK_ZERO) return ZERO;
    if (rec.flags & CHUNK_RAW) return rec.offset;
    throw new CrimgError('CORRUPT_INDEX', `chunk ${number} of region ${r.index} is not raw, so it cannot be mapped`, {
      chunk: number, region: r.index, hint: "the image claims MAPPABLE but holds encoded chunks; restore it with mode 'copy'",
    });
  }
}

/**
 * Map mode (section 5.2): one placement per run of consecutive stored chunks that lie back to
 * back in the file, one per run of zero chunks, as `[offset in region, length, file offset]`
 * triples with file offset -1 for a zero run (the layout `placeRuns` takes). In a MAPPABLE image
 * every stored chunk is raw at a page-aligned offset and only a region's last chunk may be
 * short, so a run's length is the sum of its chunks' plain lengths and its file bytes are
 * contiguous; the last chunk's page is completed by the file's zero padding.
 * Only for images without codec and cipher (the fast check accepts RAW records without the
 * ENCRYPTED flag).
 * @throws CrimgError CORRUPT_INDEX for a record the chunk table refuses, or a stored chunk that
 *   is not raw (only raw bytes can be mapped).
 */
export function mapPlan(scan: RecordScanner, r: Region): Float64Array {
  const length = regionLength(r);
  const cs = scan.g.chunkSize;
  let out = new Float64Array(3 * Math.min(r.chunkCount, 16));
  let n = 0; // numbers used in `out`
  let fileEnd = -1; // file offset after the current stored run; -1 inside a zero run
  for (let j = 0; j < r.chunkCount; j++) {
    const plain = Math.min(cs, length - j * cs);
    const number = r.firstChunk + j;
    let at = scan.classify(number, plain);
    if (at === OTHER) at = scan.checked(number, plain, r);
    const zero = at === ZERO;
    if (n > 0 && (zero ? out[n - 1] === -1 : fileEnd === at)) {
      out[n - 2]! += plain;
    } else {
      if (n + 3 > out.length) {
        const grown = new Float64Array(out.length * 2);
        grown.set(out);
        out = grown;
      }
      out[n] = j * cs;
      out[n + 1] = plain;
      out[n + 2] = zero ? -1 : at;
      n += 3;
    }
    fileEnd = zero ? -1 : at + plain;
  }
  return out.subarray(0, n);
}

/**
 * SPARSE images (section 5.2): the file offset of every region's span (where its chunk 0
 * lies, stored or not), by region index; -1 for a gap or a region without stored chunks.
 * Checks what a one-mmap-per-region restore relies on: every stored chunk j of a region at
 * span + j * chunk size, and each span, rounded up to whole pages, inside the data area and
 * after the previous one (so no region's zero chunks read another's bytes). That the bytes of
 * a span no chunk covers are zero is the writer's promise, checked by verify() as padding.
 * Walks every chunk record of the image (in place, about 0.1 ms per GiB).
 * @throws CrimgError CORRUPT_INDEX
 */
export function sparseSpans(scan: RecordScanner, regions: readonly Region[]): Float64Array {
  const g = scan.g;
  const cs = g.chunkSize;
  const out = new Float64Array(regions.length).fill(-1);
  let prevEnd = g.dataStart;
  for (const r of regions) {
    if (r.isGap) continue;
    const length = regionLength(r);
    let span = -1;
    // The fast path checks every record in a tight loop over the words and stops at the first
    // it cannot accept; the loop below (the authority) then starts from there.
    let j = 0;
    const fast = scan.sparseRun(r.firstChunk, r.chunkCount, length);
    if (fast !== null) {
      span = fast.span;
      j = fast.next;
      if (span >= 0 && span < prevEnd) {
        throw new CrimgError('CORRUPT_INDEX', `region ${r.index}'s span at file offset ${span} overlaps the bytes before it (which end at ${prevEnd}) in a SPARSE image`, {
          region: r.index, offset: span, hint: 'run crimg verify; restore this image with mode copy',
        });
      }
    }
    for (; j < r.chunkCount; j++) {
      const plain = Math.min(cs, length - j * cs);
      const number = r.firstChunk + j;
      let at = scan.classify(number, plain);
      if (at === OTHER) at = scan.checked(number, plain, r);
      if (at === ZERO) continue;
      if (span < 0) {
        span = at - j * cs;
        if (span < prevEnd) {
          throw new CrimgError('CORRUPT_INDEX', `region ${r.index}'s span at file offset ${span} overlaps the bytes before it (which end at ${prevEnd}) in a SPARSE image`, {
            chunk: number, region: r.index, offset: at, hint: 'run crimg verify; restore this image with mode copy',
          });
        }
      } else if (at !== span + j * cs) {
        throw new CrimgError('CORRUPT_INDEX', `chunk ${number} at file offset ${at} is not at its place ${span + j * cs} in region ${r.index}'s span of a SPARSE image`, {
          chunk: number, region: r.index, offset: at, hint: 'run crimg verify; restore this image with mode copy',
        });
      }
    }
    if (span < 0) continue;
    const end = span + Math.ceil(length / g.pageSize) * g.pageSize;
    if (end > g.dataEnd) {
      throw new CrimgError('CORRUPT_INDEX', `region ${r.index}'s span [${span}, ${end}) runs past the data area, which ends at ${g.dataEnd}, in a SPARSE image`, {
        region: r.index, offset: span, hint: 'run crimg verify; restore this image with mode copy',
      });
    }
    out[r.index] = span;
    prevEnd = end;
  }
  return out;
}

/** The spans of each chunk table already checked: the table of an open image never changes. */
const checkedSpans = new WeakMap<ChunkTable, Float64Array>();

/**
 * {@link sparseSpans} of an image's chunk table, checked once per opened image (like the table's
 * checksum, at first use) and remembered with the table: every restore after the first places
 * its regions without walking the chunk records again.
 */
export function sparseSpansOnce(table: ChunkTable, g: PlanGeometry, regions: readonly Region[]): Float64Array {
  let spans = checkedSpans.get(table);
  if (spans === undefined) {
    spans = sparseSpans(new RecordScanner(table, g), regions);
    checkedSpans.set(table, spans);
  }
  return spans;
}

/**
 * Map mode of a SPARSE image: one placement for the whole region, from its span in the file,
 * or one anonymous placement when it has no stored chunk.
 */
export function sparsePlan(spans: Float64Array, r: Region): Float64Array {
  return Float64Array.of(0, regionLength(r), spans[r.index]!);
}

/** A run of non-zero chunks: `[offset, offset + length)` of the region. */
export interface DataRun {
  offset: number;
  length: number;
}

/**
 * Copy mode: the runs of non-zero chunks, merged regardless of where their bytes lie in the
 * file (readInto coalesces the file reads, and checks every record it reads). Zero chunks are
 * skipped: fresh anonymous memory and new ArrayBuffers already read as zeros.
 * @throws CrimgError CORRUPT_INDEX for a record the chunk table refuses.
 */
export function dataRuns(scan: RecordScanner, r: Region): DataRun[] {
  const length = regionLength(r);
  const cs = scan.g.chunkSize;
  const runs: DataRun[] = [];
  let current: DataRun | null = null;
  for (let j = 0; j < r.chunkCount; j++) {
    const plain = Math.min(cs, length - j * cs);
    const number = r.firstChunk + j;
    // Only ZERO matters here; a record claiming it that the fast check refuses goes to get().
    const zero = scan.classify(number, plain) === ZERO || ((scan.flags(number) & CHUNK_ZERO) !== 0 && scan.checked(number, plain, r) === ZERO);
    if (zero) {
      current = null;
    } else if (current) {
      current.length += plain;
    } else {
      current = { offset: j * cs, length: plain };
      runs.push(current);
    }
  }
  return runs;
}

/** Cuts runs into pieces of at most `piece` bytes (a multiple of the chunk size). */
export function* pieces(runs: readonly DataRun[], piece: number): Generator<DataRun> {
  for (const run of runs) {
    for (let o = 0; o < run.length; o += piece) yield { offset: run.offset + o, length: Math.min(piece, run.length - o) };
  }
}

/**
 * Windows of at most `piece` bytes that cover every data run, spanning the zero runs between
 * them: one window is one readInto (with `zeroFilled`, so the zero chunks inside are not
 * written), large enough for the decoder to split across its workers. Memory-like data
 * alternates data and zero runs every few chunks; a piece per data run would hand the decoder
 * batches too small to be worth a worker.
 */
export function* windows(runs: readonly DataRun[], piece: number): Generator<DataRun> {
  let start = -1;
  let end = -1;
  for (const run of runs) {
    let off = run.offset;
    const runEnd = run.offset + run.length;
    while (off < runEnd) {
      if (start < 0) start = off;
      end = Math.min(runEnd, start + piece);
      off = end;
      if (end - start >= piece) {
        yield { offset: start, length: end - start };
        start = -1;
      }
    }
  }
  if (start >= 0) yield { offset: start, length: end - start };
}
