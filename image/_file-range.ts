/**
 * File ranges as region data: the image writer reads them itself, into reused buffers for a
 * raw image (or maps a regular file, see {@link FileRange}), into fresh ones for an encoded
 * image, whose chunks keep their plain bytes until they are encoded.
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
 * A byte range of a file to copy into a region. The writer reads it itself, with no fresh
 * memory per read (first-touching new pages costs more than the copy). For an image without
 * codec and cipher, a range of a regular file is mapped (4 MiB at a time, MAP_POPULATE) when
 * the native addon is built: chunks are tested and hashed in place and written from the
 * mapping, one copy per stored byte, which is what lets a raw image be written at `cat` speed.
 * The file must then stay as it is until addRegion resolves: as with any mmap reader a
 * truncation under the writer is a SIGBUS, and a concurrent write can make a stored chunk
 * differ from the checksum taken of it a moment before (verify() then reports CORRUPT_CHUNK).
 * For a file that may change (a live process's tmpfs segment), pass `mapFiles: false`: the
 * writer then reads into its own buffers and hashes and writes the same private copy.
 * `engine: 'portable'` or CRIMG_NO_NATIVE=1 do too. Other files (/proc/PID/mem, pipes,
 * devices) are read into a few reused buffers. With a codec or cipher every read takes a fresh
 * buffer instead: its bytes become the chunks' plain bytes, held until they are encoded.
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
/** Largest FileRange.readSize: with reads ahead and writes in flight, ~6 such buffers exist. */
const MAX_READ_SIZE = 64 * 1024 * 1024;
/** Errors that end a partial file range (an unreadable page of /proc/PID/mem) instead of failing it. */
const ENDS_PARTIAL = new Set(['EIO', 'EFAULT', 'ENOMEM']);

type Block = { buf: Buffer; n: number };

/** Reads (or maps) the file ranges of one image being written. */
export class FileRangeReader {
  /**
   * The unit file ranges are read (or mapped) and scanned in by default: {@link WRITE_BATCH},
   * or one chunk when chunks are larger, so that a block always holds whole chunks (but a
   * region's last).
   */
  private readonly blockSize: number;
  /** Read buffers whose writes are done. */
  private readonly freeBuffers: Buffer[] = [];
  private cachedFile: { path: string; fh: FileHandle; size: bigint | null } | null = null;
  private prefetch: { key: string; position: bigint; want: number; read: Promise<Block> } | null = null;

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
  }

  /**
   * Copies a file range into region `rec` of a raw image (`encode`: the plain encoder): blocks of {@link readSizeOf} bytes (a multiple of
   * every chunk size) are read into reused buffers, {@link READ_AHEAD} reads ahead; each
   * block's stored chunks form one write, and a buffer is reused once the write that
   * references it is done.
   */
  async copy(range: FileRange, rec: RegionRecord, encode: (plain: Uint8Array) => EncodedChunk): Promise<void> {
    const reads: Promise<{ buf: Buffer; n: number }>[] = [];
    let fd: number;
    let key: string;
    let size: bigint | null = null; // known for regular files: lets the next region's read start early
    if (range.path !== undefined) {
      const f = await this.openCached(range.path);
      fd = f.fh.fd;
      size = f.size;
      key = `path:${range.path}`;
    } else if (typeof range.fd === 'number' && Number.isInteger(range.fd) && range.fd >= 0) {
      fd = range.fd;
      key = `fd:${fd}`;
    } else {
      throw new TypeError('expected a file range with a path or an fd');
    }
    try {
      const start = typeof range.position === 'bigint' ? range.position : BigInt(range.position ?? 0);
      if (start < 0n) throw new RangeError(`expected a non-negative position, got ${start}`);
      const partial = checkRangeLength(range);
      let total: number;
      if (range.length !== undefined) {
        total = range.length;
      } else {
        size ??= BigInt(fstatSync(fd).size);
        if (size <= start) throw new RangeError(`expected data after position ${start} of a ${size}-byte file`);
        total = Number(size - start);
      }
      const block = this.readSizeOf(range);
      const name = range.name ?? range.path ?? `fd ${fd}`;
      await this.dropPrefetch(key, start);
      if (this.scanner && this.mapFiles && !partial && start + BigInt(total) <= BigInt(Number.MAX_SAFE_INTEGER)) {
        const regular = range.path !== undefined ? size !== null : fstatSync(fd).isFile();
        if (regular && await this.copyMapped(this.scanner, { fd, name, start, total }, rec, range.onRead)) return;
      }
      const readAt = (position: bigint, want: number): Promise<{ buf: Buffer; n: number }> =>
        readInto(fd, name, this.takeBuffer(block), position, want, partial ? this.pageSize : 0);
      const readBlock = (i: number): Promise<{ buf: Buffer; n: number }> => {
        const position = start + BigInt(i * block);
        const want = Math.min(block, total - i * block);
        // The previous region's last step read ahead here when the regions follow each other in the file.
        const p = this.prefetch;
        if (i === 0 && p && !partial && p.key === key && p.position === position && p.want >= want) {
          this.prefetch = null;
          return p.read.then((r) => ({ buf: r.buf, n: want }));
        }
        return readAt(position, want);
      };
      const blocks = Math.ceil(total / block);
      const cs = this.chunkSize;
      const scanner = this.scanner;
      let chunkIndex = 0;
      // Reads run READ_AHEAD blocks ahead of hashing, on libuv's thread pool beside the writes.
      let nextRead = 0;
      const topUp = (): void => {
        while (reads.length < READ_AHEAD && nextRead < blocks) {
          const r = readBlock(nextRead++);
          r.catch(() => {}); // handled: awaited in order below, or settled in finally
          reads.push(r);
        }
      };
      topUp();
      for (let i = 0; i < blocks; i++) {
        const { buf, n } = await reads.shift()!;
        // Only a partial range comes back short: the region ends with this block.
        const short = n < Math.min(block, total - i * block);
        if (!short) topUp();
        if (n > 0) {
          if (scanner) {
            chunkIndex += this.records.storeScanned(scanner, buf.subarray(0, n), rec);
          } else {
            for (let off = 0; off < n; off += cs) {
              this.records.store(encode(buf.subarray(off, Math.min(n, off + cs))), rec);
              chunkIndex++;
            }
          }
          rec.length += BigInt(n);
          // This block's stored bytes are one write; its buffer comes back when it is done.
          const written = this.out.flushNow();
          void written.then(() => this.freeBuffers.push(buf), () => {});
        } else {
          this.freeBuffers.push(buf);
        }
        range.onRead?.(Number(rec.length));
        if (short) break;
        await this.out.waitForRoom();
      }
      this.records.endRegion(rec, chunkIndex);
      // Guess that the next region continues in the same file (a dump cut into regions):
      // start its first read now, so it overlaps this region's writes.
      const end = start + BigInt(total);
      // Only for a path: its handle is ours, so no one can close or reuse it under the read.
      if (range.path !== undefined && size !== null && !partial && end < size) {
        const want = Number(size - end < BigInt(block) ? size - end : BigInt(block));
        const read = readAt(end, want);
        read.catch(() => {}); // a failed guess costs nothing: the region that wants it reads again
        this.prefetch = { key, position: end, want, read };
      }
      // The read buffers are ours, so the writes may go on after this region: no drain here.
    } finally {
      // A failure or an early end (partial) can leave reads in flight: let them settle (a
      // rejected read must not go unhandled, and the file must stay open under them). No write
      // references their buffers, so they are free again.
      for (const r of await Promise.allSettled(reads)) if (r.status === 'fulfilled') this.freeBuffers.push(r.value.buf);
    }
  }

  /**
   * A file range as pieces in fresh buffers, for an encoded image: the pieces become the
   * chunks' plain bytes, so they cannot be reused.
   */
  pieces(range: FileRange): AsyncGenerator<Uint8Array> {
    return fileRangePieces(range, this.pageSize, this.readSizeOf(range));
  }

  /** Settles a read ahead and closes the file opened by path. Never throws. */
  async close(): Promise<void> {
    await this.dropPrefetch('', -1n);
    await this.closeCached();
  }

  /**
   * The native path for a regular file (see {@link FileRange}): each block of
   * {@link blockSize} bytes is mapped with MAP_POPULATE, scanned in place (zero test and
   * XXH64 of every chunk), and its stored runs written straight from the mapping, which is
   * unmapped once that write is done. Hashing the next block overlaps the kernel's copy of
   * the previous ones.
   * @returns false, having done nothing, when the file cannot be mapped (the caller reads it).
   */
  private async copyMapped(n: NativeMmap, r: { fd: number; name: string; start: bigint; total: number }, rec: RegionRecord, onRead?: (bytes: number) => void): Promise<boolean> {
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

  /** Bytes per read of a file range: its readSize rounded up to whole chunks, else {@link blockSize}. */
  private readSizeOf(range: FileRange): number {
    const r = range.readSize;
    if (r === undefined) return this.blockSize;
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
    await this.dropPrefetch('', -1n);
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

  /** Settles a read ahead that the next region did not take (its buffer goes back to the pool). */
  private async dropPrefetch(key: string, position: bigint): Promise<void> {
    const p = this.prefetch;
    if (!p || (p.key === key && p.position === position)) return;
    this.prefetch = null;
    const r = await p.read.catch(() => null);
    if (r) this.freeBuffers.push(r.buf);
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

/**
 * Checks a file range's `length` (a positive safe integer when given; required when partial),
 * for both write paths alike.
 * @returns whether the range is partial.
 * @throws RangeError
 */
function checkRangeLength(range: FileRange): boolean {
  const partial = range.partial === true;
  if (partial && range.length === undefined) throw new RangeError('expected a length with a partial file range');
  if (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length <= 0)) throw new RangeError(`expected a positive length, got ${range.length}`);
  return partial;
}

/**
 * A file range as pieces in fresh buffers (for the encoding path: the pieces become the
 * chunks' plain bytes, so they cannot be reused), one read ahead of the consumer.
 */
async function* fileRangePieces(range: FileRange, pageSize: number, readSize: number): AsyncGenerator<Uint8Array> {
  const name = range.name ?? range.path ?? `fd ${range.fd}`;
  const partial = checkRangeLength(range);
  const ioError = (e: unknown, verb: string, where = ''): CrimgError =>
    new CrimgError('IO_ERROR', `cannot ${verb} ${name}${where}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  let fh: FileHandle | null = null;
  if (range.path !== undefined) {
    try { fh = await open(range.path, 'r'); } catch (e) { throw ioError(e, 'open'); }
  } else if (typeof range.fd !== 'number' || !Number.isInteger(range.fd) || range.fd < 0) {
    throw new TypeError('expected a file range with a path or an fd');
  }
  const fd = fh ? fh.fd : range.fd!;
  let ahead: Promise<Uint8Array> | null = null;
  try {
    let pos = typeof range.position === 'bigint' ? range.position : BigInt(range.position ?? 0);
    let left = range.length ?? Number(BigInt(fstatSync(fd).size) - pos);
    let done = 0;
    // A partial range's piece holds whole pages up to the first unreadable one (see readInto).
    const readPiece = (at: bigint, want: number): Promise<Uint8Array> => {
      if (partial) return readInto(fd, name, Buffer.allocUnsafe(want), at, want, pageSize).then(({ buf, n }) => buf.subarray(0, n));
      const buf = Buffer.allocUnsafe(want);
      return new Promise<number>((resolve, reject) => read(fd, buf, 0, want, at, (e, k) => (e ? reject(e) : resolve(k))))
        .then((n) => {
          if (n === 0) throw new CrimgError('IO_ERROR', `${name} ended ${left} bytes early at ${at}`);
          return buf.subarray(0, n);
        }, (e: unknown) => { throw ioError(e, 'read', ` at ${at}`); });
    };
    while (left > 0) {
      const want = Math.min(left, readSize);
      const piece = await (ahead ?? readPiece(pos, want));
      ahead = null;
      if (piece.length === 0) return; // a partial range's first unreadable page
      pos += BigInt(piece.length);
      left -= piece.length;
      done += piece.length;
      range.onRead?.(done);
      if (partial && piece.length < want) {
        yield piece;
        return;
      }
      if (left > 0) {
        ahead = readPiece(pos, Math.min(left, readSize));
        ahead.catch(() => {}); // awaited on the next turn, or settled in finally
      }
      yield piece;
    }
  } finally {
    if (ahead) await ahead.catch(() => {});
    await fh?.close();
  }
}
