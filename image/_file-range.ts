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
import type { RegionRecord } from '../format/index-table.js';
import type { NativeMmap } from '../native-mmap/index.js';
import type { EncodedChunk } from './chunk-encoder.js';
import type { ChunkRecords } from './_chunk-records.js';
import { WRITE_BATCH, type WriteQueue } from './_write-queue.js';

/**
 * A byte range of a file to copy into a region. The writer reads it itself into a few reused
 * buffers, with no fresh memory per read (first-touching new pages costs more than the copy):
 * for an image without codec and cipher its chunks are tested, hashed and written from those
 * buffers, which then hold a private copy, so a file that changes meanwhile (a live process's
 * tmpfs segment) still yields chunks that match their checksums. With a codec or cipher every
 * read takes a fresh buffer instead: its bytes become the chunks' plain bytes, held until they
 * are encoded.
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
}

type Block = { buf: Buffer; n: number };

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
    if (this.scanner && this.mapFiles && !r.partial && r.start + BigInt(r.total) <= BigInt(Number.MAX_SAFE_INTEGER)) {
      const regular = r.size !== null || (range.path === undefined && fstatSync(r.fd).isFile());
      if (regular && await this.copyMapped(this.scanner, r, rec, range.onRead)) return;
    }
    const cs = this.chunkSize;
    const scanner = this.scanner;
    let chunks = 0;
    for await (const { buf, n } of this.blocks(r, false)) {
      if (n > 0) {
        if (scanner) {
          chunks += this.records.storeScanned(scanner, buf.subarray(0, n), rec);
        } else {
          for (let off = 0; off < n; off += cs) {
            this.records.store(encode(buf.subarray(off, Math.min(n, off + cs))), rec);
            chunks++;
          }
        }
        rec.length += BigInt(n);
        // This block's stored bytes are one write; its buffer comes back when it is done.
        void this.out.flushNow().then(() => this.freeBuffers.push(buf), () => {});
      } else {
        this.freeBuffers.push(buf);
      }
      range.onRead?.(Number(rec.length));
      await this.out.waitForRoom();
    }
    this.records.endRegion(rec, chunks);
  }

  /**
   * A file range as pieces in fresh buffers, for an encoded image: the pieces become the
   * chunks' plain bytes, so they cannot be reused.
   * @throws TypeError, RangeError on a bad range; CrimgError IO_ERROR
   */
  async *pieces(range: FileRange): AsyncGenerator<Uint8Array> {
    const r = await this.open(range, this.blockSize);
    let done = 0;
    for await (const { buf, n } of this.blocks(r, true)) {
      if (n === 0) return; // a partial range's first unreadable page
      done += n;
      range.onRead?.(done);
      yield buf.subarray(0, n);
    }
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
      if (!Number.isSafeInteger(range.length) || range.length <= 0) throw new RangeError(`expected a positive length, got ${range.length}`);
      total = range.length;
    } else {
      // Stat again: a cached path's size is from when it was opened, and the file may have grown.
      const fileSize = BigInt(fstatSync(fd).size);
      if (fileSize <= start) throw new RangeError(`expected data after position ${start} of a ${fileSize}-byte file`);
      total = Number(fileSize - start);
    }
    const name = range.name ?? range.path ?? `fd ${fd}`;
    return { fd, name, start, total, partial, size, block: this.readSizeOf(range, defaultBlock) };
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
    const reads: Promise<Block>[] = [];
    const count = Math.ceil(r.total / r.block);
    const wantOf = (i: number): number => Math.min(r.block, r.total - i * r.block);
    const readBlock = (i: number): Promise<Block> => {
      const want = wantOf(i);
      const buf = fresh ? Buffer.allocUnsafe(want) : this.takeBuffer(r.block);
      return readInto(r.fd, r.name, buf, r.start + BigInt(i * r.block), want, r.partial ? this.pageSize : 0);
    };
    let next = 0;
    const topUp = (): void => {
      while (reads.length < READ_AHEAD && next < count) {
        const p = readBlock(next++);
        p.catch(() => {}); // handled: awaited in order below, or settled in finally
        reads.push(p);
      }
    };
    try {
      topUp();
      for (let i = 0; i < count; i++) {
        const b = await reads.shift()!;
        // Only a partial range comes back short: the range ends with this block.
        const short = b.n < wantOf(i);
        if (!short) topUp();
        yield b;
        if (short) return;
      }
    } finally {
      // A failure or an early end can leave reads in flight: let them settle (a rejected read
      // must not go unhandled, and the file must stay open under them). No write references
      // their buffers, so reused ones are free again.
      for (const s of await Promise.allSettled(reads)) if (s.status === 'fulfilled' && !fresh) this.freeBuffers.push(s.value.buf);
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
 * Reads exactly `want` bytes at `position` into `buf`; with `partialPage` (a partial range's
 * page size), fewer when the range ends early: whole pages up to the first unreadable one.
 * @throws CrimgError IO_ERROR
 */
async function readInto(fd: number, name: string, buf: Buffer, position: bigint, want: number, partialPage = 0): Promise<Block> {
  let done = 0;
  while (done < want) {
    const at = position + BigInt(done);
    let n: number;
    try {
      n = await new Promise<number>((resolve, reject) => {
        read(fd, buf, done, want - done, at, (err, bytes) => (err ? reject(err) : resolve(bytes)));
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      if (partialPage && ENDS_PARTIAL.has(code)) break;
      throw new CrimgError('IO_ERROR', `cannot read ${name} at ${at}: ${code}`, { cause: e });
    }
    if (n === 0) {
      if (partialPage) break;
      throw new CrimgError('IO_ERROR', `${name} ended ${want - done} bytes early at ${at}`);
    }
    done += n;
  }
  // Whole pages only when the range ended early: a complete read keeps its part page.
  return { buf, n: partialPage && done < want ? done - (done % partialPage) : done };
}
