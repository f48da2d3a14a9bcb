/**
 * Verify (spec/FORMAT.md sections 5.2, 5.3, 8 and 12): every chunk's checksum (and
 * authentication tag), the placement rules of section 5.2 that reads do not need (chunk-table
 * order, SPARSE spans, MAPPABLE contiguity, packing of encoded and encrypted images), and that
 * the bytes no structure covers are zero padding. Lists every problem it finds instead of
 * stopping at the first, in the order of section 12.2.
 */
import { CHUNK_IN_PARENT, CHUNK_ZERO, OPTIONAL_MAPPABLE } from '../format/constants.js';
import { isCrimgError, type CrimgErrorCode } from '../format/errors.js';
import type { Header } from '../format/header.js';
import type { Footer } from '../format/footer.js';
import type { ChunkRecord, ChunkTable, Region } from '../format/index-table.js';
import type { RandomAccessSource } from './source.js';
import type { DecodedRun } from './chunk-decoder.js';
import { coalesceRuns, MAX_RUN_BYTES, type Run } from './_runs.js';
import { nativeBatchRefusal, verifyNative, type NativeBatchImage } from './_native-batch.js';

/** One problem found by {@link verifyImage}. */
export interface VerifyError {
  code: CrimgErrorCode;
  message: string;
  region?: number;
  chunk?: number;
  address?: bigint;
  length?: number;
  offset?: number;
  /**
   * Which image of a chain the problem belongs to (section 8.3): 0 or absent, the verified
   * image; 1 its parent; 2 the parent's parent... with {@link imageId} naming it.
   */
  image?: number;
  /** The image id (hex) of the chain's image the problem belongs to, when it is a parent. */
  imageId?: string;
}

export interface VerifyReport {
  ok: boolean;
  /** Chunks checked, zero chunks included. */
  chunksChecked: number;
  /** Plain bytes of the stored chunks that checked out (zero chunks hold none). */
  bytesChecked: number;
  errors: VerifyError[];
}

export interface VerifyOptions {
  /** Called after each batch with chunks done and total. */
  onProgress?: (done: number, total: number) => void;
  /** Stop listing after this many errors (default 1000). */
  maxErrors?: number;
}

/** One chunk of a region, as decodeRun takes it. */
interface RunItem {
  region: Region;
  j: number;
  number: number;
  rec: ChunkRecord;
}

/** What verify needs of an open image; `ImageReader` provides it. */
export interface VerifiableImage {
  readonly source: RandomAccessSource;
  readonly header: Header;
  readonly footer: Footer;
  readonly dataStart: number;
  readonly regionCount: number;
  region(index: number): Region;
  readonly sparse: boolean;
  chunkTable(): Promise<ChunkTable>;
  plainLength(r: Region, j: number): number;
  decodeRun(items: readonly RunItem[], bytes: Uint8Array, base: number): Promise<DecodedRun>;
  decodeChunk(region: Region, j: number, number: number, rec: ChunkRecord, stored: Uint8Array): Promise<Uint8Array>;
  /** With it (ImageReader), the native batch decoder checks the chunks when it can take the image. */
  chunkKeys?(): { dataKey: Uint8Array; headerHash: Uint8Array } | null;
}

/** A stored chunk to check; batches of them are read at once. */
interface Item {
  j: number;
  number: number;
  rec: ChunkRecord;
}

/**
 * A run of one region's stored chunks, read at once. It holds the region's number, not the
 * region: regions are made again when their batch is checked, one at a time (2^20 regions kept
 * whole are about 250 MiB).
 */
type Batch = Run<Item> & { region: number };

/** What walking the chunk table finds. */
interface Layout {
  batches: Batch[];
  /** File ranges between structures: they must hold zeros. */
  padding: [number, number][];
  /** Where the stored chunks seen so far end. */
  lastEnd: number;
  /** SPARSE: where the previous region's span ends. */
  spanEnd: number;
  zeroChunks: number;
  /** MAPPABLE: adjacent stored chunks of a region are contiguous in the file (section 3.1). */
  mappable: boolean;
  /** Encoded or encrypted: stored chunks are packed, each where the previous ends (section 5.2). */
  packed: boolean;
}

/** The errors found, in the order found, up to a cap. */
class Findings {
  readonly errors: VerifyError[] = [];
  constructor(readonly max: number) {}
  push(e: VerifyError): void {
    if (this.errors.length < this.max) this.errors.push(e);
  }
}

/**
 * Checks every checksum (and authentication tag) and the index's internal consistency. Errors
 * come in this order (spec section 12.2): the chunk records and their places, region by
 * region and chunk by chunk; then the chunks' bytes in the same order; then the padding
 * ranges in file order.
 * @throws CrimgError only when the image cannot be read at all (KEY_REQUIRED, or the chunk
 *   table's own checks at stage `read`: its checksum, tag, and the region totals).
 * @example
 * const report = await verifyImage(image, { onProgress: (done, total) => bar.update(done / total) });
 */
export async function verifyImage(image: VerifiableImage, options: VerifyOptions = {}): Promise<VerifyReport> {
  const found = new Findings(options.maxErrors ?? 1000);
  const table = await image.chunkTable();
  const layout = collectRecords(image, table, found);
  let checked = layout.zeroChunks;
  const bytes = await checkBatches(image, layout.batches, found, (n) => {
    checked += n;
    options.onProgress?.(checked, table.count);
  });
  layout.padding.push([layout.lastEnd, Number(image.footer.chunkTableOffset)]);
  await checkPadding(image.source, layout.padding, found);
  return { ok: found.errors.length === 0, chunksChecked: checked, bytesChecked: bytes, errors: found.errors };
}

/** Walks every region's chunk records, checking their places, into batches to read. */
function collectRecords(image: VerifiableImage, table: ChunkTable, found: Findings): Layout {
  const { header, dataStart } = image;
  // Bytes no structure covers (alignment padding) must be zero: then every byte of the file
  // is checked by something, and verify notices any change.
  const layout: Layout = {
    batches: [], padding: [[header.headerSize + header.validationSize, dataStart]],
    lastEnd: dataStart, spanEnd: dataStart, zeroChunks: 0,
    mappable: (header.optionalFeatures & OPTIONAL_MAPPABLE) !== 0n, packed: header.codec !== 0 || header.cipher !== 0,
  };
  for (let i = 0; i < image.regionCount; i++) {
    const r = image.region(i);
    if (r.chunkCount === 0) continue; // a gap
    const items = collectRegion(image, table, r, layout, found);
    for (const run of coalesceRuns(items)) layout.batches.push({ region: i, ...run });
  }
  return layout;
}

/**
 * Region `r`'s valid stored records, after checking their places. (Its totals were checked
 * when the chunk table was read: stage `read`, format/region-totals.ts.)
 */
function collectRegion(image: VerifiableImage, table: ChunkTable, r: Region, layout: Layout, found: Findings): Item[] {
  let zeros = 0;
  let span = -1; // SPARSE: the file offset of this region's chunk 0
  let previous: ChunkRecord | null = null; // the record before, when stored (MAPPABLE contiguity)
  const items: Item[] = [];
  for (let j = 0; j < r.chunkCount; j++) {
    const number = r.firstChunk + j;
    let rec: ChunkRecord;
    try {
      rec = table.get(number, image.plainLength(r, j));
    } catch (e) {
      found.push(toVerifyError(e, r, number));
      continue;
    }
    // A child's IN_PARENT chunk stores nothing: its parent's chunk is verified with the parent.
    if (rec.flags & (CHUNK_ZERO | CHUNK_IN_PARENT)) { zeros++; previous = null; continue; }
    if (image.sparse) span = checkSpan(image, r, j, number, rec, span, layout, found);
    if (layout.mappable && previous && rec.offset !== previous.offset + previous.storedLength) {
      found.push({ code: 'CORRUPT_INDEX', message: `chunk ${number} at offset ${rec.offset} does not follow chunk ${number - 1} (which ends at ${previous.offset + previous.storedLength}) in a MAPPABLE image: adjacent stored chunks of a region must be contiguous`, region: r.index, chunk: number, offset: rec.offset });
    }
    checkPlace(r, number, rec, layout, found);
    previous = rec;
    items.push({ j, number, rec });
  }
  layout.zeroChunks += zeros;
  return items;
}

/**
 * Section 5.2, SPARSE: chunk j at span + j * chunk size, spans in order, inside the data area.
 * @returns the region's span start (`span` when already known).
 */
function checkSpan(image: VerifiableImage, r: Region, j: number, number: number, rec: ChunkRecord, span: number, layout: Layout, found: Findings): number {
  const { chunkSize, pageSize } = image.header;
  const at = rec.offset - j * chunkSize;
  if (span >= 0) {
    if (at !== span) {
      found.push({ code: 'CORRUPT_INDEX', message: `chunk ${number} at offset ${rec.offset} is not at its place ${span + j * chunkSize} in region ${r.index}'s span of a SPARSE image`, region: r.index, chunk: number, offset: rec.offset });
    }
    return span;
  }
  const end = at + Math.ceil(Number(r.length) / pageSize) * pageSize;
  if (at < layout.spanEnd || end > Number(image.footer.chunkTableOffset)) {
    found.push({ code: 'CORRUPT_INDEX', message: `region ${r.index}'s span [${at}, ${end}) of a SPARSE image overlaps the bytes before it (which end at ${layout.spanEnd}) or the index`, region: r.index, chunk: number, offset: rec.offset });
  }
  layout.spanEnd = Math.max(layout.spanEnd, end);
  return at;
}

/**
 * Section 5.2: stored chunks lie in chunk-table order, each at or after the end of the one
 * before (so they never overlap); packed (encoded or encrypted images) exactly there; the space
 * between them is padding to check.
 */
function checkPlace(r: Region, number: number, rec: ChunkRecord, layout: Layout, found: Findings): void {
  if (rec.offset < layout.lastEnd) {
    found.push({ code: 'CORRUPT_INDEX', message: `chunk ${number} at offset ${rec.offset} is out of chunk-table order or overlaps the bytes before it (which end at ${layout.lastEnd})`, region: r.index, chunk: number, offset: rec.offset });
  } else if (rec.offset > layout.lastEnd) {
    if (layout.packed) {
      found.push({ code: 'CORRUPT_INDEX', message: `chunk ${number} at offset ${rec.offset} leaves ${rec.offset - layout.lastEnd} bytes after the bytes before it (which end at ${layout.lastEnd}): an encoded or encrypted image's chunks are packed`, region: r.index, chunk: number, offset: rec.offset });
    }
    layout.padding.push([layout.lastEnd, rec.offset]);
  }
  layout.lastEnd = Math.max(layout.lastEnd, rec.offset + rec.storedLength);
}

/**
 * Reads and checks the batches in order, one read ahead of the check so that I/O and hashing
 * overlap; calls `onBatch` with each batch's chunk count.
 * @returns plain bytes of the chunks that checked out.
 */
async function checkBatches(image: VerifiableImage, batches: readonly Batch[], found: Findings, onBatch: (chunks: number) => void): Promise<number> {
  if (image.chunkKeys && nativeBatchRefusal(image as NativeBatchImage & VerifiableImage) === null) {
    // Same findings in the same order, each worded by the JavaScript path (image/_native-batch.ts).
    return verifyNative(image as NativeBatchImage & VerifiableImage, batches, (e, c) => {
      found.push(toVerifyError(e, c.region, c.number, c.rec, image));
      return found.errors.length < found.max;
    }, onBatch);
  }
  const readBatch = batchReader(image.source, batches);
  let bytes = 0;
  let ahead = readBatch(0);
  for (let n = 0; n < batches.length; n++) {
    const batch = batches[n]!;
    const got = await ahead;
    ahead = readBatch(n + 1);
    const r = image.region(batch.region);
    if (got instanceof Uint8Array) bytes += await checkBatch(image, r, batch, got, found);
    else for (const it of batch.items) found.push(toVerifyError(got.error, r, it.number, it.rec, image));
    onBatch(batch.items.length);
  }
  return bytes;
}

/**
 * Reads batch `n`, never rejecting (a failed read is returned as `{ error }`). Into two buffers
 * used in turn when the source can fill a buffer (a fresh one per batch made the garbage
 * collector a quarter of verify's time), else by read().
 */
function batchReader(source: RandomAccessSource, batches: readonly Batch[]): (n: number) => Promise<Uint8Array | { error: unknown }> {
  let largest = 0;
  for (const b of batches) if (b.length > largest) largest = b.length; // no spread: batches may number millions
  const spare = source.readInto ? [0, 1].map(() => new Uint8Array(largest)) : null;
  return (n) => {
    if (n >= batches.length) return Promise.resolve(new Uint8Array(0));
    const { offset, length } = batches[n]!;
    const read = spare
      ? (async (): Promise<Uint8Array> => { const into = spare[n % 2]!.subarray(0, length); await source.readInto!(into, offset); return into; })()
      : source.read(offset, length);
    return read.catch((error: unknown) => ({ error }));
  };
}

/** Checks one batch read into `got`: as one run, then chunk by chunk if the run fails. */
async function checkBatch(image: VerifiableImage, r: Region, batch: Batch, got: Uint8Array, found: Findings): Promise<number> {
  const { items, offset } = batch;
  const run = items.map((it) => ({ region: r, j: it.j, number: it.number, rec: it.rec }));
  const ok = await image.decodeRun(run, got, offset).then((d) => { d.release(); return true; }, () => false);
  let bytes = 0;
  if (ok) {
    for (const it of items) bytes += image.plainLength(r, it.j);
    return bytes;
  }
  // Something in the batch is bad: check chunk by chunk to list each bad one.
  for (const it of items) {
    try {
      await image.decodeChunk(r, it.j, it.number, it.rec, got.subarray(it.rec.offset - offset, it.rec.offset - offset + it.rec.storedLength));
      bytes += image.plainLength(r, it.j);
    } catch (e) {
      found.push(toVerifyError(e, r, it.number, it.rec, image));
    }
  }
  return bytes;
}

/** Each padding range must read as zeros; reports the first non-zero byte of a range. */
async function checkPadding(source: RandomAccessSource, padding: readonly [number, number][], found: Findings): Promise<void> {
  for (const [from, to] of padding) {
    for (let at = from; at < to; at += MAX_RUN_BYTES) {
      const b = await source.read(at, Math.min(MAX_RUN_BYTES, to - at));
      const bad = b.findIndex((x) => x !== 0);
      if (bad >= 0) {
        found.push({ code: 'CORRUPT_INDEX', message: `byte at offset ${at + bad} lies outside every chunk and is not zero padding`, offset: at + bad });
        break;
      }
    }
  }
}

/** A CrimgError as a verify finding at chunk `chunk` of `r` (with its address range when `image` is given). */
function toVerifyError(e: unknown, r: Region, chunk: number, rec?: ChunkRecord, image?: VerifiableImage): VerifyError {
  if (!isCrimgError(e)) throw e;
  const err: VerifyError = { code: e.code, message: e.message, region: r.index, chunk };
  if (image) {
    const j = chunk - r.firstChunk;
    err.address = r.address + BigInt(j) * BigInt(image.header.chunkSize);
    err.length = image.plainLength(r, j);
  }
  if (rec) err.offset = rec.offset;
  else if (e.offset !== undefined) err.offset = e.offset;
  return err;
}
