/**
 * The image writer's output: stored bytes are queued at the next file offset and written in
 * batches of positional writes, several at once; holes of the sparse layout are offsets
 * skipped. The bytes go to a temporary file beside `NAME` (image/_output-file.ts: created
 * exclusively, owner-only by default, removed on interruption), and {@link WriteQueue.commit}
 * fsyncs it, renames it to `NAME` and fsyncs the directory, so `NAME` is either absent, the
 * previous file, or a complete image, whenever the machine stops.
 */
import { CrimgError } from '../format/errors.js';
import { OutputFile, type OutputFileOptions } from './_output-file.js';

/** Queued bytes that make a batch worth writing. */
export const WRITE_BATCH = 4 * 1024 * 1024;
/** Batches written at once (positional writes, so order does not matter). */
const WRITES_IN_FLIGHT = 4;
/** Largest number of buffers in one writev (Linux's IOV_MAX). */
const IOV_MAX = 1024;

/** The addon's writeBack: starts the disk writes of a byte range, calls `done` when they are queued. */
export type WriteBack = (fd: number, offset: number, length: number, done: () => void) => void;

/** Where the bytes go: a file's handle, or an upload's (image/remote/output.ts, no fd). */
interface Sink {
  readonly fd: number | null;
  write(bytes: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  writev(bufs: Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
}

/** A temporary output file, or a multipart upload for `s3://` (written in file order). */
interface Output {
  readonly fh: Sink;
  readonly tmpPath: string;
  commit(options: { fsync?: boolean }): Promise<void>;
  abort(): Promise<void>;
}

/** One image file being written: the queue of stored bytes, the writes in flight, the commit. */
export class WriteQueue {
  /** File offset of the next queued byte. */
  pos: number;
  private batch: Uint8Array[] = [];
  private batchStart: number;
  private batchBytes = 0;
  /** Contiguous byte runs of the batch before holes (sparse layout), written with it. */
  private segments: { at: number; bufs: Uint8Array[] }[] = [];
  private pendingWrites: Promise<void>[] = [];
  /** Called when the write that takes the bytes queued since the last flushNow is done ({@link afterWrite}). */
  private written: (() => void)[] = [];
  /** Settles once every write started so far has settled. */
  private allWritten: Promise<unknown> = Promise.resolve();
  /** writeBack jobs not yet done (the file stays open until they are), and who waits for them. */
  private writeBacksInFlight = 0;
  private writeBacksDone: (() => void) | null = null;

  private readonly fh: Sink;
  /** Largest number of buffers in one writev: an upload takes all at once, so its writes stay in order. */
  private readonly iovMax: number;

  private constructor(
    private readonly file: Output,
    private readonly pageSize: number,
    start: number,
    /** Set when the image is fsynced at the end (see {@link startWriteBack}). */
    private readonly writeBack: WriteBack | null,
  ) {
    this.fh = file.fh;
    this.iovMax = file.fh.fd === null ? Infinity : IOV_MAX;
    this.pos = start;
    this.batchStart = start;
  }

  /**
   * Creates the temporary file of `path` ({@link OutputFile}); queued bytes start at offset `start`.
   * @throws CrimgError IO_ERROR when the file cannot be created; RangeError on a bad mode
   */
  static async create(path: string, pageSize: number, start: number, writeBack: WriteBack | null, options: OutputFileOptions = {}): Promise<WriteQueue> {
    if (/^s3:\/\//i.test(path)) {
      const { S3Upload } = await import('./remote/output.js');
      return new WriteQueue(await S3Upload.create(path), pageSize, start, null);
    }
    return new WriteQueue(await OutputFile.create(path, options), pageSize, start, writeBack);
  }

  /** The temporary file's name. */
  get tmpPath(): string {
    return this.file.tmpPath;
  }

  /** Queues `bytes` at {@link pos}; they must not change until the write that takes them is done. */
  queue(bytes: Uint8Array): void {
    this.batch.push(bytes);
    this.batchBytes += bytes.length;
    this.pos += bytes.length;
  }

  /**
   * Calls `fn` once every byte queued so far is written, or its write failed (a piece's
   * buffer is then free for reuse). Not called when the image is abandoned before the bytes
   * are flushed.
   */
  afterWrite(fn: () => void): void {
    if (this.batch.length > 0 || this.segments.length > 0) this.written.push(fn);
    else void this.allWritten.then(fn);
  }

  /** Leaves `n` bytes unwritten (a hole of the sparse layout): the batch so far becomes a segment. */
  skip(n: number): void {
    if (this.batch.length > 0) {
      this.segments.push({ at: this.batchStart, bufs: this.batch });
      this.batch = [];
    }
    this.pos += n;
    this.batchStart = this.pos;
  }

  /** Whether the batch holds {@link WRITE_BATCH} bytes or more. */
  get full(): boolean {
    return this.batchBytes >= WRITE_BATCH;
  }

  /**
   * Starts writing the batch once fewer than {@link WRITES_IN_FLIGHT} writes are in flight, so
   * that hashing the next batch overlaps the kernel's copy of the previous ones.
   */
  async flush(): Promise<void> {
    await this.waitForRoom();
    void this.flushNow();
  }

  /** Waits until fewer than {@link WRITES_IN_FLIGHT} writes are in flight. */
  async waitForRoom(): Promise<void> {
    while (this.pendingWrites.length >= WRITES_IN_FLIGHT) await this.pendingWrites.shift();
  }

  /** Starts writing the current batch now (whatever its size) and returns that write. */
  flushNow(): Promise<void> {
    if (this.batch.length > 0) this.segments.push({ at: this.batchStart, bufs: this.batch });
    this.batch = [];
    this.batchStart = this.pos;
    this.batchBytes = 0;
    const written = this.written;
    this.written = [];
    if (this.segments.length === 0) return Promise.resolve();
    const segments = this.segments;
    this.segments = [];
    // All segments settle before the write counts as done (a mapping behind them is released
    // then); the first failure is the write's.
    const p = segments.length === 1
      ? this.writevAt(segments[0]!.bufs, segments[0]!.at)
      : Promise.allSettled(segments.map((g) => this.writevAt(g.bufs, g.at))).then((all) => {
        const failed = all.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      });
    p.catch(() => {}); // handled: the next flush or finish awaits it and sees the error
    this.allWritten = Promise.allSettled([this.allWritten, p]).then(() => {}); // no chain of results kept
    if (written.length > 0) void this.allWritten.then(() => { for (const fn of written) fn(); });
    this.pendingWrites.push(p);
    return p;
  }

  /** Waits for every write started so far. @throws CrimgError IO_ERROR of the first that failed */
  async drain(): Promise<void> {
    while (this.pendingWrites.length) await this.pendingWrites.shift();
  }

  /** Writes all of `bytes` at `at`, outside the queue (header, validation block, index). */
  async writeAt(bytes: Uint8Array, at: number): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.length) {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, at + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw new CrimgError('IO_ERROR', `cannot write ${this.tmpPath}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e, offset: at + done });
    }
  }

  /**
   * Makes the written file its final name: fsyncs it (with `fsync`), closes it, renames it and
   * fsyncs the directory ({@link OutputFile.commit}). Call after {@link drain}.
   * @throws CrimgError IO_ERROR (the temporary file is then removed)
   */
  async commit(fsync: boolean): Promise<void> {
    await this.settleWriteBacks();
    await this.file.commit({ fsync });
  }

  /** Waits for the writes and writeBack jobs in flight, whether they fail or not. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.pendingWrites);
    await this.settleWriteBacks();
  }

  /** Closes and removes the temporary file (after {@link settle}); never throws. */
  async discard(): Promise<void> {
    await this.file.abort();
  }

  private async writevAt(bufs: Uint8Array[], at: number): Promise<void> {
    let off = at;
    let i = 0;
    let skip = 0; // bytes of bufs[i] already written
    try {
      while (i < bufs.length) {
        const part: Uint8Array[] = [];
        for (let j = i; j < bufs.length && part.length < this.iovMax; j++) part.push(j === i ? bufs[j]!.subarray(skip) : bufs[j]!);
        const { bytesWritten } = await this.fh.writev(part, off);
        off += bytesWritten;
        let n = bytesWritten + skip;
        while (i < bufs.length && n >= bufs[i]!.length) { n -= bufs[i]!.length; i++; }
        skip = n;
      }
      if (this.writeBack) this.startWriteBack(at, off);
    } catch (e) {
      throw new CrimgError('IO_ERROR', `cannot write ${this.tmpPath}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e, offset: off });
    }
  }

  /**
   * An image that will be fsynced starts the disk writes of what it has written, behind the
   * page cache, so that they overlap the rest of the capture or copy and the final fsync finds
   * little left (a 160 MiB capture: fsync ~80 -> ~10 ms, bench/capture). Up to the last whole
   * page only: the next write may still fill a part page, which would then go to disk twice.
   * A hint: nothing it does can fail the image.
   */
  private startWriteBack(from: number, to: number): void {
    const end = to - (to % this.pageSize);
    if (end <= from) return;
    try {
      this.writeBack!(this.fh.fd!, from, end - from, () => {
        if (--this.writeBacksInFlight === 0 && this.writeBacksDone) this.writeBacksDone();
      });
      this.writeBacksInFlight++;
    } catch {
      // Never: the arguments are checked above. A hint is not worth failing the image for.
    }
  }

  /** Waits for every writeBack job, so that none runs on the file after it is closed. */
  private async settleWriteBacks(): Promise<void> {
    if (this.writeBacksInFlight === 0) return;
    await new Promise<void>((resolve) => { this.writeBacksDone = resolve; });
    this.writeBacksDone = null;
  }
}
