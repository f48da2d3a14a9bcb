/**
 * Random-access sources: where a reader's bytes come from. The interface is the seam that
 * lets files, buffers and remote objects (image/remote/: HTTP range requests, S3) be read the
 * same way (cf. yauzl's RandomAccessReader). Offsets are Numbers: files beyond 2^53 bytes are out of scope.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants, fstatSync, readSync } from 'node:fs';
import { CrimgError } from '../format/errors.js';

/** A readable byte range of known size. */
export interface RandomAccessSource {
  /** Total length in bytes. */
  readonly size: number;
  /** Exactly `length` bytes at `offset`; throws CrimgError TRUNCATED if they are not there. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: fills all of `target` with the bytes at `offset` (same errors as read()), so a
   * long scan such as verify() can reuse a few buffers instead of allocating one per read.
   */
  readInto?(target: Uint8Array, offset: number): Promise<void>;
  /** A file descriptor when backed by a local file (lets restore map it). */
  readonly fd?: number;
  /** A name for messages (a path, "buffer", a URL). */
  readonly name: string;
  /** Releases what the source opened (not an fd the caller passed in). */
  close(): Promise<void>;
}

function checkRange(src: RandomAccessSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`expected a non-negative integer offset, got ${offset}`);
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`expected a non-negative integer length, got ${length}`);
  if (offset + length > src.size) {
    throw new CrimgError('TRUNCATED', `${src.name}: needs bytes [${offset}, ${offset + length}) but the file ends at ${src.size}`, {
      offset, hint: 'the image is incomplete; copy it again',
    });
  }
}

/** A source over bytes in memory. */
export class BufferSource implements RandomAccessSource {
  readonly size: number;
  readonly name = 'buffer';
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.length;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    return this.bytes.subarray(offset, offset + length);
  }
  async close(): Promise<void> {}
}

/** A source over a local file, by path or by an fd the caller owns. */
export class FileSource implements RandomAccessSource {
  private closed = false;

  private constructor(
    readonly fd: number,
    readonly size: number,
    readonly name: string,
    private readonly handle: FileHandle | null,
  ) {}

  /** Opens `path` read-only. @throws CrimgError IO_ERROR */
  static async open(path: string): Promise<FileSource> {
    let handle: FileHandle;
    try {
      // O_NONBLOCK: opening a FIFO (a parent hint may name one) would otherwise wait for a
      // writer for ever; on a regular file it changes nothing.
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      throw new CrimgError('IO_ERROR', `cannot open ${path}: ${code}`, { cause: e });
    }
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      throw new CrimgError('IO_ERROR', `${path} is not a regular file`);
    }
    return new FileSource(handle.fd, st.size, path, handle);
  }

  /** Wraps an open fd; the caller keeps ownership (close() does not close it). */
  static fromFd(fd: number, name = `fd ${fd}`): FileSource {
    const st = fstatSync(fd);
    return new FileSource(fd, st.size, name, null);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(buf, offset);
    return buf;
  }

  /** @throws CrimgError INVALID_ARGUMENT after {@link close} (not a bare EBADF, nor a read of an fd number reused since). */
  async readInto(target: Uint8Array, offset: number): Promise<void> {
    if (this.closed) {
      throw new CrimgError('INVALID_ARGUMENT', `${this.name}: read after the source was closed`, { hint: 'open the image again; finish reads before closing' });
    }
    const length = target.byteLength;
    checkRange(this, offset, length);
    let done = 0;
    while (done < length) {
      let n: number;
      if (this.handle) {
        n = (await this.handle.read(target, done, length - done, offset + done)).bytesRead;
      } else {
        n = readSync(this.fd, target, done, length - done, offset + done);
      }
      if (n === 0) {
        throw new CrimgError('TRUNCATED', `${this.name}: the file ended at ${offset + done} while reading [${offset}, ${offset + length})`, { offset: offset + done });
      }
      done += n;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle?.close();
  }
}

/** What `openImage` accepts: a path, an fd, bytes, or any source. */
export type SourceInput = string | number | Uint8Array | RandomAccessSource;

/**
 * Turns a {@link SourceInput} into a source: a path, or an `http(s)://` or `s3://` URL
 * (image/remote/source.ts), is opened here (closing the source closes it, and is the caller's to do); an fd is wrapped and stays the caller's (close() leaves it
 * open); bytes are wrapped; a source is returned as it is.
 * @throws TypeError for any other input; CrimgError IO_ERROR when a path cannot be opened
 */
export async function toSource(input: SourceInput): Promise<RandomAccessSource> {
  // A URL is a remote image (image/remote/): loaded only when one is opened.
  if (typeof input === 'string' && /^(https?|s3):\/\//i.test(input)) return (await import('./remote/source.js')).RemoteSource.open(input);
  if (typeof input === 'string') return FileSource.open(input);
  if (typeof input === 'number') return FileSource.fromFd(input);
  if (input instanceof Uint8Array) return new BufferSource(input);
  if (input && typeof input === 'object' && typeof input.read === 'function' && typeof input.size === 'number') return input;
  throw new TypeError(`expected a path, an fd, a Uint8Array or a RandomAccessSource, got ${typeof input}`);
}
