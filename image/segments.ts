/**
 * Memory as segments: the bytes of an address range as pieces of at most `pieceSize` bytes,
 * except that runs of zero chunks (spec/FORMAT.md section 5.1, ZERO) come as `{ zeros: n }`
 * without a byte behind them. A region of 1 TiB of zero chunks is then 65,536 records read
 * from the chunk table and one `{ zeros: 2^40 }`, not a terabyte of zeros made and looked at:
 * convert hands the runs to the writer, export-core and extract leave holes, diff compares two
 * runs by their lengths.
 */
import { CHUNK_ZERO } from '../format/constants.js';
import { toBigAddress } from '../format/address.js';
import { DEFAULT_PIECE_SIZE, type ImageReader } from './reader.js';
import type { ZeroRun } from './_chunk-stream.js';
import { zeroRecords } from './_runs.js';

/** A piece of memory: its bytes, or the length of a run of zero chunks. */
export type Segment = Buffer | ZeroRun;

/** What {@link readSegments} needs of an open image; `ImageReader` and the package's `Image` provide it. */
export type SegmentedImage = Pick<ImageReader, 'chunkTable' | 'regionAt' | 'plainLength' | 'read' | 'chunkSize'>;

export interface SegmentOptions {
  /** The largest piece of bytes yielded: 1 to 2 GiB, default 8 MiB. Zero runs have no bound. */
  pieceSize?: number;
}

/** True for a `{ zeros: n }` segment. */
export function isZeroRun(s: Segment | Uint8Array): s is ZeroRun {
  return !(s instanceof Uint8Array);
}

/** The longest zero run yielded: 2^52 bytes, so that runs add up exactly as Numbers. */
const MAX_RUN = 2 ** 52;

/** A planned segment: a run of zero chunks, or bytes to read. */
type Plan = ZeroRun | { address: bigint; length: number };

/**
 * The `length` bytes at `address` as {@link Segment}s, in order: bytes in pieces of at most
 * `pieceSize` (read one piece ahead of the consumer), and each run of zero chunks as one
 * `{ zeros: n }`. Work is O(chunk records) plus the bytes of stored chunks. A range may span
 * adjacent regions, as in ImageReader.read; pieces do not cross a region's end.
 * @throws RangeError at the call for a bad address, length or piece size; CrimgError NOT_MAPPED
 *   (an address in a gap or in no region), CORRUPT_INDEX, CORRUPT_CHUNK, AUTH_FAILED while
 *   iterating, as read() does.
 * @example
 * for await (const s of readSegments(image, r.address, r.length)) {
 *   if (isZeroRun(s)) at += s.zeros; // a hole
 *   else { await out.write(s, 0, s.length, at); at += s.length; }
 * }
 */
export function readSegments(image: SegmentedImage, address: bigint | number, length: bigint | number, options: SegmentOptions = {}): AsyncGenerator<Segment> {
  const start = toBigAddress(address);
  const end = start + toBigAddress(length, 'length');
  const pieceSize = options.pieceSize ?? DEFAULT_PIECE_SIZE;
  if (!Number.isSafeInteger(pieceSize) || pieceSize < 1 || pieceSize > 2 ** 31) {
    throw new RangeError(`expected pieceSize as an integer from 1 to 2^31, got ${pieceSize}`);
  }
  return segments(image, start, end, pieceSize);
}

async function* segments(image: SegmentedImage, start: bigint, end: bigint, pieceSize: number): AsyncGenerator<Segment> {
  if (start >= end) return;
  const table = await image.chunkTable();
  const plans = plan(image, table, start, end, pieceSize);
  // One read ahead: the next piece's bytes are read while the consumer handles this one.
  const begin = (p: Plan): ZeroRun | Promise<Buffer> => {
    if (!('address' in p)) return p;
    const read = image.read(p.address, p.length);
    read.catch(() => {}); // awaited (and thrown) when its turn comes
    return read;
  };
  let next = plans.next();
  let current = next.done ? null : begin(next.value);
  while (current !== null) {
    next = plans.next();
    const following = next.done ? null : begin(next.value);
    yield current instanceof Promise ? await current : current;
    current = following;
  }
}

/**
 * The segments of [start, end), from the chunk table alone: consecutive zero chunks merge into
 * one run, consecutive stored chunks into reads of at most `pieceSize` bytes.
 */
function* plan(image: SegmentedImage, table: Awaited<ReturnType<SegmentedImage['chunkTable']>>, start: bigint, end: bigint, pieceSize: number): Generator<Plan> {
  const cs = BigInt(image.chunkSize);
  let cur = start;
  while (cur < end) {
    const r = image.regionAt(cur);
    if (!r || r.isGap) {
      // The reader's own NOT_MAPPED error, with its message and hint.
      yield { address: cur, length: 1 };
      return;
    }
    const rEnd = r.address + r.length < end ? r.address + r.length : end;
    let zeros = 0;
    let readAt = cur;
    let readLength = 0;
    while (cur < rEnd) {
      const rel = cur - r.address;
      const j = Number(rel / cs);
      const chunkEnd = r.address + BigInt(j) * cs + BigInt(image.plainLength(r, j));
      const stop = chunkEnd < rEnd ? chunkEnd : rEnd;
      const n = Number(stop - cur);
      const rec = table.get(r.firstChunk + j, image.plainLength(r, j));
      if (rec.flags & CHUNK_ZERO) {
        if (readLength) { yield { address: readAt, length: readLength }; readLength = 0; }
        zeros += n;
        // The whole chunks after it up to (not including) the one holding the range's last
        // byte: their zero records counted on the table's bytes, one step for the run.
        const lastJ = Number((rEnd - 1n - r.address) / cs);
        const more = lastJ > j + 1 ? zeroRecords(table, r.firstChunk + j + 1, Math.min(lastJ - j - 1, Math.floor((MAX_RUN - zeros) / image.chunkSize))) : 0;
        if (more) { zeros += more * image.chunkSize; cur = stop + BigInt(more) * cs; if (zeros >= MAX_RUN) { yield { zeros }; zeros = 0; } continue; }
        // A run stays a safe integer: a region may claim up to 2^56 bytes (2^32 chunks of 16 MiB).
        if (zeros >= MAX_RUN) { yield { zeros }; zeros = 0; }
      } else {
        if (zeros) { yield { zeros }; zeros = 0; }
        // Stored bytes: whole pieces of pieceSize, the chunk split where a piece ends.
        let at = cur;
        let left = n;
        while (left > 0) {
          if (readLength === 0) readAt = at;
          const take = Math.min(left, pieceSize - readLength);
          readLength += take;
          at += BigInt(take);
          left -= take;
          if (readLength === pieceSize) { yield { address: readAt, length: readLength }; readLength = 0; }
        }
      }
      cur = stop;
    }
    if (zeros) yield { zeros };
    if (readLength) yield { address: readAt, length: readLength };
  }
}
