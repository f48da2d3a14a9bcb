/**
 * File ranges as region data: the image writer reads them itself. One reader
 * ({@link FileRangeReader.blocks}) serves both paths: reused buffers for a raw image, whose
 * chunks are written from them and which come back when the write is done; fresh buffers for
 * an encoded image, whose chunks keep their plain bytes until they are encoded. A raw image
 * maps a regular file instead when it can (see {@link FileRange}).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fstatSync, read } from 'node:fs';
import { CrimgError } from '../format/errors.js';
import { LIMITS } from '../format/constants.js';
import type { RegionRecord } from '../format/index-table.js';
import type { NativeMmap } from '../native-mmap/index.js';
import type { EncodedChunk } from './chunk-encoder.js';
import { checkTableRoom, type ChunkRecords } from './_chunk-records.js';
import type { RegionPiece } from './_chunk-stream.js';
import { chunkSpans, presentFinder, zeroOutside, type PresentInput, type Span } from './_present-ranges.js';

export type { PresentRange } from './_present-ranges.js';
import { WRITE_BATCH, type WriteQueue } from './_write-queue.js';

/**
 * A byte range of a file to copy into a region. The writer reads it itself into a few reused
 * buffers, with no fresh memory per read (first-touching new pages costs more than the copy):
 * for an image without codec and cipher its chunks are tested, hashed and written from those
 * buffers, which then hold a private copy, so a file that changes meanwhile (a live process's
 * tmpfs segment) still yields chunks that match their checksums. With a codec or cipher every
 * read takes a fresh buffer instead, whose bytes become the chunks' plain bytes, held until they
 * are encoded (zstd: reused buffers, each chunk copied as it is submitted). An image with a
 * codec or cipher whose encoder has piece jobs (ChunkEncoder.encodeFilePiece: the addon's zstd,
 * deflate and sealing) has them read a regular file's range themselves, 1 MiB each, all read
 * before addRegion resolves.
 *
 * `mapFiles: true` maps a regular file's range instead (raw images, native addon, 4 MiB at a
 * time, MAP_POPULATE): chunks are tested and hashed in place and written from the mapping.
 * That saves a copy but costs a map and unmap per block and range and scans memory the read
 * would have brought into the cache. Measured on 2 vCPUs, 512 MiB of memory-like input, fsync,
 * each write in a fresh process (medians of 7): 200 regions 637 ms mapped, 458 ms read (`cat`
 * + `sync FILE` 460 ms); 1 region 648 ms mapped, 403 ms read.
 * The file must then stay as it is until addRegion resolves: as with any mmap reader a
 * truncation under the writer is a SIGBUS, and a concurrent write can make a stored chunk
 * differ from the checksum taken of it a moment before (verify() then reports CORRUPT_CHUNK).
 */
export interface FileRange {
  /** An open file descriptor (the caller keeps ownership), or use `path`. */
  fd?: number;
  path?: string;
  /** Where the range starts; bigint for positions beyond 2^53 (e.g. /proc/PID/mem). Default 0. */
  position?: number | bigint;
  /** Bytes to copy; default up to the end of the file (regular files only). */
  length?: number;
  /** How messages name the file (default: `path`, or `fd N`). */
  name?: string;
  /**
   * The range may end early, as /proc/PID/mem does at an unreadable page: a read that fails
   * with EIO, EFAULT or ENOMEM or finds the end of the file ends the region after the last whole
   * page read (pages counted from `position`), and the record addRegion returns has that shorter
   * length. When not even the first page can be read, addRegion writes nothing and returns a
   * record of length 0 that is not in the image; the writer stays open. Needs `length`; never
   * mapped.
   */
  partial?: boolean;
  /** Called after each read (or mapped block) with the bytes of this range read so far. */
  onRead?: (bytes: number) => void;
  /**
   * Which parts of the range hold data; every byte outside them is zero and is never read.
   * For /proc/PID/mem, whose reads of never-touched anonymous pages allocate them in the target:
   * the caller says which pages are present (or swapped) from /proc/PID/pagemap, and the rest
   * costs zero chunk records only. A chunk wholly outside is a ZERO chunk recorded without a
   * read; a chunk partly inside has its present pages read and the rest zero-filled. The image
   * is the one reading everything would write, byte for byte, when the absent bytes are zero.
   * Either:
   * - an array of `{ offset, length }` relative to `position`: ascending, not overlapping,
   *   within the range, offset and length multiples of the image's page size (the last may end
   *   at the range's end instead); or
   * - a function the writer calls once per block of the range, in order, with the block's
   *   offset (relative to `position`) and length, both whole chunks but for the range's end;
   *   it returns (or resolves to) the present ranges meeting the block under the same rules
   *   but for the bounds: parts outside the block are ignored. It may read the page map lazily.
   * With `partial`, a present page that cannot be read ends the region there, as without
   * `present`; absent pages are never read, so they never end it. Never mapped (`mapFiles`).
   */
  present?: PresentInput;
  /**
   * Bytes per read, rounded up to a whole number of chunks (default: 4 MiB, or the chunk size
   * when larger). Smaller reads mean more system calls; they exist for callers that must notice
   * a change between reads soon.
   */
  readSize?: number;
}

/** Reads in flight ahead of the consumer, on libuv's thread pool beside the writes. */
const READ_AHEAD = 2;
/**
 * Bytes per read when copying a file range into a raw image: small enough that a region of a
 * few MiB is several reads, so reading the next block overlaps scanning and writing this one.
 * 512 MiB in 200 regions with fsync, medians of 7 (three runs): 1 MiB 440-471 ms, 2 MiB
 * 463-476 ms, 4 MiB 511-544 ms, against `cat && sync` 446-471 ms.
 */
const COPY_BLOCK = 1024 * 1024;
/** Largest FileRange.readSize: with reads ahead and writes in flight, ~6 such buffers exist. */
const MAX_READ_SIZE = 64 * 1024 * 1024;
/** Errors that end a partial file range (an unreadable page of /proc/PID/mem) instead of failing it. */
const ENDS_PARTIAL = new Set(['EIO', 'EFAULT', 'ENOMEM']);

/** A file range checked and resolved against its open file. */
interface OpenRange {
  fd: number;
  name: string;
  start: bigint;
  total: number;
  partial: boolean;
  /** The size of a regular file we opened by path; null for an fd or another kind of file. */
  size: bigint | null;
  /** Bytes per read: whole chunks. */
  block: number;
  /** The present bytes of a block as sorted [from, to) pairs relative to it; null: all of it. */
  presentIn: ((at: number, want: number) => Span[] | Promise<Span[]>) | null;
  /** With a present array: the offset of its first present byte at or after `at`, else the range's length. */
  nextPresent: ((at: number) => number) | null;
}


/** A file range an encoder reads itself (ChunkEncoder.encodeFilePiece), from {@link FileRangeReader.direct}: `total` bytes of `fd` from `start`. */
export interface DirectRange {
  fd: number;
  name: string;
  start: number;
  total: number;
  onRead: ((bytes: number) => void) | undefined;
}

/**
 * A block of a range: `n` bytes from its start. `spans` null: all `n` are in `buf`. Otherwise
 * only its chunk-aligned spans (all but the last end on a chunk) are in `buf`, which is null
 * when there are none; the rest of the block is whole zero chunks, never read.
 */
type Block = { buf: Buffer | null; n: number; spans: Span[] | null };

/** Reads (or maps) the file ranges of one image being written. */
export class FileRangeReader {
  /**
   * The unit file ranges are read (or mapped) and scanned in by default: {@link WRITE_BATCH},
   * or one chunk when chunks are larger, so that a block always holds whole chunks (but a
   * region's last).
   */
  private readonly blockSize: number;
  /** The unit a raw image's file ranges are read in: {@link COPY_BLOCK}, or one chunk when larger. */
  private readonly copyBlock: number;
  /** Read buffers whose writes are done. */
  private readonly freeBuffers: Buffer[] = [];
  private cachedFile: { path: string; fh: FileHandle; size: bigint | null } | null = null;

  constructor(
    private readonly records: ChunkRecords,
    private readonly out: WriteQueue,
    private readonly pageSize: number,
    private readonly chunkSize: number,
    /** The native addon's chunk scan and mmap, for raw images written by the node engine. */
    private readonly scanner: NativeMmap | null,
    /** Map regular input files (WriterOptions.mapFiles). */
    private readonly mapFiles: boolean,
  ) {
    this.blockSize = Math.max(WRITE_BATCH, chunkSize);
    this.copyBlock = Math.max(COPY_BLOCK, chunkSize);
  }

  /**
   * Copies a file range into region `rec` of a raw image (`encode`: the plain encoder): read in
   * blocks into reused buffers, or with `mapFiles` mapped when it can be ({@link copyMapped}).
   * Each block's stored chunks form one write, and a buffer is reused once that write is done.
   * The writes may go on after this resolves: the buffers are ours.
   * @throws TypeError, RangeError on a bad range; CrimgError IO_ERROR
   */
  async copy(range: FileRange, rec: RegionRecord, encode: (plain: Uint8Array) => EncodedChunk): Promise<void> {
    const r = await this.open(range, this.copyBlock);
    if (this.scanner && this.mapFiles && !r.partial && r.presentIn === null && r.start + BigInt(r.total) <= BigInt(Number.MAX_SAFE_INTEGER)) {
      const regular = r.size !== null || (range.path === undefined && fstatSync(r.fd).isFile());
      if (regular && await this.copyMapped(this.scanner, r, rec, range.onRead)) return;
    }
    const cs = this.chunkSize;
    const scanner = this.scanner;
    let chunks = 0;
    // Whole chunks of plain bytes (but a region's last): one native scan, or chunk by chunk.
    const storeBytes = (bytes: Uint8Array): number => {
      if (scanner) return this.records.storeScanned(scanner, bytes, rec);
      for (let off = 0; off < bytes.length; off += cs) this.records.store(encode(bytes.subarray(off, Math.min(bytes.length, off + cs))), rec);
      return Math.ceil(bytes.length / cs);
    };
    const storeZeros = (from: number, to: number): number => {
      const count = Math.ceil((to - from) / cs);
      this.records.storeZeros(count, rec, to - from);
      return count;
    };
    for await (const { buf, n, spans } of this.blocks(r, false)) {
      if (n > 0) {
        if (spans === null) {
          chunks += storeBytes(buf!.subarray(0, n));
        } else {
          let pos = 0;
          for (const [a, b] of spans) {
            if (a > pos) chunks += storeZeros(pos, a);
            chunks += storeBytes(buf!.subarray(a, b));
            pos = b;
          }
          if (pos < n) chunks += storeZeros(pos, n);
        }
        rec.length += BigInt(n);
        // This block's stored bytes are one write; its buffer comes back when it is done.
        void this.out.flushNow().then(() => { if (buf) this.freeBuffers.push(buf); }, () => {});
      } else if (buf) {
        this.freeBuffers.push(buf);
      }
      range.onRead?.(Number(rec.length));
      await this.out.waitForRoom();
    }
    this.records.endRegion(rec, chunks);
  }

  /**
   * A file range as pieces in fresh buffers, for an encoded image: the pieces become the
   * chunks' plain bytes, so they cannot be reused. With `reuse` (an encoder that copies each
   * chunk as it is submitted, ChunkEncoder.copiesPlain) they are in reused buffers instead,
   * each given back once the consumer asks for the block after the next (the chunk stream
   * keeps at most one chunk of a piece past it) or the range ends.
   * @throws TypeError, RangeError on a bad range; CrimgError IO_ERROR
   */
  async *pieces(range: FileRange, reuse = false): AsyncGenerator<RegionPiece> {
    const r = await this.open(range, this.blockSize);
    let done = 0;
    const held: Buffer[] = [];
    try {
      for await (const { buf, n, spans } of this.blocks(r, !reuse)) {
        if (reuse && buf !== null && held.push(buf) > 2) this.freeBuffers.push(held.shift()!);
        if (n === 0) return; // a partial range's first unreadable page
        done += n;
        range.onRead?.(done);
        if (spans === null) {
          yield buf!.subarray(0, n);
          continue;
        }
        // Absent chunks as zero runs: the chunk stream records them without bytes.
        let pos = 0;
        for (const [a, b] of spans) {
          if (a > pos) yield { zeros: a - pos };
          yield buf!.subarray(a, b);
          pos = b;
        }
        if (pos < n) yield { zeros: n - pos };
      }
    } finally {
      this.freeBuffers.push(...held);
    }
  }

  /**
   * `range` checked and opened for an encoder that reads files itself, or null when it is not
   * a plain range within a regular file's size (`partial`, `present`, `readSize`, another kind
   * of file, a size that says nothing of the contents as /proc/PID/mem's 0, or positions past
   * 2^53), which {@link pieces} then reads as before. A file that shrinks afterwards fails the
   * piece that reads past its end (ChunkStream.addFile).
   * @throws TypeError, RangeError on a bad range; CrimgError IO_ERROR when its path cannot be opened
   */
  async direct(range: FileRange): Promise<DirectRange | null> {
    if (range.partial === true || range.present !== undefined || range.readSize !== undefined) return null;
    const r = await this.open(range, this.blockSize);
    const end = r.start + BigInt(r.total);
    if (end > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const st = fstatSync(r.fd, { bigint: true });
    if (!st.isFile() || end > st.size) return null;
    return { fd: r.fd, name: r.name, start: Number(r.start), total: r.total, onRead: range.onRead };
  }

  /** Closes the file opened by path. Never throws. */
  async close(): Promise<void> {
    await this.closeCached();
  }

  /**
   * Checks `range` and opens its file (a path once for a run of regions from it).
   * @throws TypeError, RangeError; CrimgError IO_ERROR when the path cannot be opened
   */
  private async open(range: FileRange, defaultBlock: number): Promise<OpenRange> {
    let fd: number;
    let size: bigint | null = null;
    if (range.path !== undefined) {
      const f = await this.openCached(range.path);
      fd = f.fh.fd;
      size = f.size;
    } else if (typeof range.fd === 'number' && Number.isInteger(range.fd) && range.fd >= 0) {
      fd = range.fd;
    } else {
      throw new TypeError('expected a file range with a path or an fd');
    }
    const start = typeof range.position === 'bigint' ? range.position : BigInt(range.position ?? 0);
    if (start < 0n) throw new RangeError(`expected a non-negative position, got ${start}`);
    const partial = range.partial === true;
    if (partial && range.length === undefined) throw new RangeError('expected a length with a partial file range');
    let total: number;
    if (range.length !== undefined) {
      const length: unknown = range.length;
      const n = typeof length === 'bigint' && length <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(length) : length;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) {
        throw new RangeError(`expected a positive length of at most ${Number.MAX_SAFE_INTEGER} bytes (Number.MAX_SAFE_INTEGER), got ${String(length)}`);
      }
      total = n;
    } else {
      // Stat again: a cached path's size is from when it was opened, and the file may have grown.
      const fileSize = BigInt(fstatSync(fd).size);
      if (fileSize <= start) throw new RangeError(`expected data after position ${start} of a ${fileSize}-byte file`);
      total = Number(fileSize - start);
    }
    const name = range.name ?? range.path ?? `fd ${fd}`;
    if (start + BigInt(total) > 1n << 64n) throw new RangeError(`expected a file range within 2^64 bytes, got ${total} bytes at position ${start} of ${name}`);
    // Refused before any read or table memory: the chunk table could not hold the range.
    const chunks = Math.ceil(total / this.chunkSize);
    if (chunks > LIMITS.maxChunksPerRegion) {
      throw new RangeError(`expected a region of at most ${LIMITS.maxChunksPerRegion} chunks, got ${total} bytes of ${name} in ${this.chunkSize}-byte chunks: use a larger chunk size`);
    }
    checkTableRoom(this.records.count, chunks, this.chunkSize);
    const found = range.present === undefined ? null : presentFinder(range.present, total, this.pageSize);
    return {
      fd, name, start, total, partial, size, block: this.readSizeOf(range, defaultBlock),
      presentIn: found?.presentIn ?? null, nextPresent: found?.nextPresent ?? null,
    };
  }

  /**
   * The one reader of file ranges: the range in blocks, in order, {@link READ_AHEAD} reads
   * ahead of the consumer. Buffers are reused ones that the consumer gives back, or with
   * `fresh` new ones it keeps. A partial range's last block may be short (whole pages) or
   * empty. Nothing is read past the range: a guess that the next region continues in the
   * file read a whole block there, mostly wasted on small regions (200 regions of 512 MiB:
   * 531 -> 428 ms without it, with fsync).
   */
  private async *blocks(r: OpenRange, fresh: boolean): AsyncGenerator<Block> {
    const reads: { p: Promise<Block>; want: number }[] = [];
    const cs = this.chunkSize;
    const partialPage = r.partial ? this.pageSize : 0;
    const readBlock = async (at: number, want: number): Promise<Block> => {
      if (r.presentIn === null) {
        const buf = fresh ? Buffer.allocUnsafe(want) : this.takeBuffer(r.block);
        return { buf, n: await readInto(r.fd, r.name, buf, r.start + BigInt(at), want, partialPage), spans: null };
      }
      const present = await r.presentIn(at, want);
      if (present.length === 0) return { buf: null, n: want, spans: [] };
      const buf = fresh ? Buffer.allocUnsafe(want) : this.takeBuffer(r.block);
      const spans = chunkSpans(present, want, cs);
      zeroOutside(buf, spans, present);
      // Only present bytes are read; a partial range's unreadable page ends the block there.
      for (const [a, b] of present) {
        const got = await readInto(r.fd, r.name, buf, r.start + BigInt(at + a), b - a, partialPage, a);
        if (got < b - a) {
          const n = a + got;
          return { buf, n, spans: spans.filter(([s0]) => s0 < n).map(([s0, e]): Span => [s0, Math.min(e, n)]) };
        }
      }
      return { buf, n: want, spans };
    };
    let next = 0;
    // The next block: `r.block` bytes, or with a present array all the absent whole chunks up
    // to the next present byte at once (a TiB of absent pages is then one block, not 2^16).
    const nextWant = (at: number): number => {
      const want = Math.min(r.block, r.total - at);
      if (r.nextPresent === null) return want;
      const absent = Math.floor((r.nextPresent(at) - at) / cs) * cs;
      return r.nextPresent(at) >= r.total ? r.total - at : Math.max(want, absent);
    };
    const topUp = (): void => {
      while (reads.length < READ_AHEAD && next < r.total) {
        const want = nextWant(next);
        const p = readBlock(next, want);
        next += want;
        p.catch(() => {}); // handled: awaited in order below, or settled in finally
        reads.push({ p, want });
      }
    };
    try {
      topUp();
      while (reads.length > 0) {
        const { p, want } = reads.shift()!;
        const b = await p;
        // Only a partial range comes back short: the range ends with this block.
        const short = b.n < want;
        if (!short) topUp();
        yield b;
        if (short) return;
      }
    } finally {
      // A failure or an early end can leave reads in flight: let them settle (a rejected read
      // must not go unhandled, and the file must stay open under them). No write references
      // their buffers, so reused ones are free again.
      for (const s0 of await Promise.allSettled(reads.map((x) => x.p))) if (s0.status === 'fulfilled' && !fresh && s0.value.buf) this.freeBuffers.push(s0.value.buf);
    }
  }

  /**
   * The mapped path (`mapFiles`, a regular file, see {@link FileRange}): each block of
   * {@link blockSize} bytes is mapped with MAP_POPULATE, scanned in place (zero test and
   * XXH64 of every chunk), and its stored runs written straight from the mapping, which is
   * unmapped once that write is done. Hashing the next block overlaps the kernel's copy of
   * the previous ones.
   * @returns false, having done nothing, when the file cannot be mapped (the caller reads it).
   */
  private async copyMapped(n: NativeMmap, r: OpenRange, rec: RegionRecord, onRead?: (bytes: number) => void): Promise<boolean> {
    const page = n.pageSize();
    const start = Number(r.start);
    const total = r.total;
    const block = this.blockSize;
    let chunks = 0;
    for (let off = 0; off < total; off += block) {
      const want = Math.min(block, total - off);
      const at = start + off;
      const lead = at % page;
      let mapping: ArrayBuffer;
      try {
        mapping = n.mapFile(r.fd, at - lead, want + lead, 'r--', { populate: true });
      } catch (e) {
        if (off === 0) return false; // not mappable (a file system without mmap, a write-only fd): read it
        throw new CrimgError('IO_ERROR', `cannot map ${r.name} at ${at}: ${(e as Error).message}`, { cause: e, offset: at });
      }
      const release = (): void => { try { n.unmap(mapping); } catch { /* already released */ } };
      try {
        chunks += this.records.storeScanned(n, new Uint8Array(mapping, lead, want), rec);
      } catch (e) {
        release();
        throw e;
      }
      rec.length += BigInt(want);
      onRead?.(off + want);
      void this.out.flushNow().then(release, release);
      await this.out.waitForRoom();
    }
    this.records.endRegion(rec, chunks);
    return true;
  }

  /** Bytes per read of a file range: its readSize rounded up to whole chunks, else `defaultBlock`. */
  private readSizeOf(range: FileRange, defaultBlock: number): number {
    const r = range.readSize;
    if (r === undefined) return defaultBlock;
    if (!Number.isSafeInteger(r) || r <= 0 || r > MAX_READ_SIZE) throw new RangeError(`expected a read size of 1 byte to 64 MiB, got ${r}`);
    return Math.ceil(r / this.chunkSize) * this.chunkSize;
  }

  /** A reused read buffer of at least `size` bytes, or a new one. */
  private takeBuffer(size: number): Buffer {
    const b = this.freeBuffers.pop();
    if (b && b.length >= size) return b;
    return Buffer.allocUnsafe(size);
  }

  /** Opens `path` once for a run of regions read from it; the previous file is closed. */
  private async openCached(path: string): Promise<{ fh: FileHandle; size: bigint | null }> {
    if (this.cachedFile?.path === path) return this.cachedFile;
    await this.closeCached();
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new CrimgError('IO_ERROR', `cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
    }
    const st = await fh.stat();
    this.cachedFile = { path, fh, size: st.isFile() ? BigInt(st.size) : null };
    return this.cachedFile;
  }

  private async closeCached(): Promise<void> {
    const f = this.cachedFile;
    this.cachedFile = null;
    await f?.fh.close().catch(() => {});
  }
}

/**
 * Reads exactly `want` bytes at `position` into `buf` at `into`; with `partialPage` (a partial
 * range's page size), fewer when the range ends early: whole pages up to the first unreadable
 * one. @returns the bytes read
 * @throws CrimgError IO_ERROR
 */
/** The IO_ERROR of a read of `name` that failed at `at` with errno name `code`. */
function cannotRead(name: string, at: bigint | number, code: string, cause: unknown): CrimgError {
  return new CrimgError('IO_ERROR', `cannot read ${name} at ${at}: ${code}`, { cause });
}

/** The IO_ERROR of a read of `name` that found the file's end at `at`, `missing` bytes short. */
function endedEarly(name: string, missing: bigint | number, at: bigint | number, cause?: unknown): CrimgError {
  return new CrimgError('IO_ERROR', `${name} ended ${missing} bytes early at ${at}`, cause === undefined ? {} : { cause });
}

/**
 * The IO_ERROR of an encoder's failed read of a file piece that ends at `end`
 * (NativeMmap.zstdFilePiece's error, or its deflate and raw kin's, which carry the read's
 * `position`), named as the reader's own reads name theirs; any other error as it is.
 */
export function filePieceFailure(e: unknown, name: string, end: number): unknown {
  const err = e as { code?: string; syscall?: string; position?: number };
  if (typeof err?.position !== 'number') return e;
  if (err.code === 'ERR_CRIMG_EOF') return endedEarly(name, end - err.position, err.position, e);
  if (err.syscall === 'pread') return cannotRead(name, err.position, err.code ?? 'UNKNOWN', e);
  return e;
}

async function readInto(fd: number, name: string, buf: Buffer, position: bigint, want: number, partialPage = 0, into = 0): Promise<number> {
  let done = 0;
  while (done < want) {
    const at = position + BigInt(done);
    let n: number;
    try {
      n = await new Promise<number>((resolve, reject) => {
        read(fd, buf, into + done, want - done, at, (err, bytes) => (err ? reject(err) : resolve(bytes)));
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      if (partialPage && ENDS_PARTIAL.has(code)) break;
      throw cannotRead(name, at, code, e);
    }
    if (n === 0) {
      if (partialPage) break;
      throw endedEarly(name, want - done, at);
    }
    done += n;
  }
  // Whole pages only when the range ended early: a complete read keeps its part page.
  return partialPage && done < want ? done - (done % partialPage) : done;
}
