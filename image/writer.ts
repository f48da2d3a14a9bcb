/**
 * The streaming image writer (spec/FORMAT.md sections 3 to 8): header and validation block
 * first, then each region's chunks as they arrive, then the index and the footer. One pass,
 * memory bounded by the chunks in flight, one write batch, and the index.
 *
 * Crash safety: bytes go to `NAME.tmp`; `finish()` fsyncs it, renames it to `NAME` and fsyncs
 * the directory, so `NAME` is either absent, the previous file, or a complete image.
 */
import { randomBytes } from 'node:crypto';
import { lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { openSync, fsyncSync, closeSync, fstatSync, read, constants as fsConstants } from 'node:fs';
import { dirname } from 'node:path';
import { xxh64 } from '../codec/checksum.js';
import {
  CHUNK_RAW, CHUNK_RECORD_SIZE, CHUNK_ZERO, CIPHERS, CODECS, DEFAULT_CHUNK_SIZE, KIND_GAP, LIMITS, OPTIONAL_MAPPABLE, OPTIONAL_SPARSE, alignUp, isPowerOfTwo, parseKind, parseProt,
  type CipherName, type RegionKind,
} from '../format/constants.js';
import { encodeHeader, type HeaderFields } from '../format/header.js';
import { encodeValidation, type ValidationInput } from '../format/validation.js';
import { encodeRegionSection, writeChunkRecord, type RegionRecord } from '../format/index-table.js';
import { encodeFooter } from '../format/footer.js';
import { hex } from '../format/bytes.js';
import { CrimgError } from '../format/errors.js';
import { toBigAddress } from '../format/address.js';
import { createChunkEncoder, type ChunkEncoder, type EncodedChunk } from './chunk-encoder.js';
import type { KeyInput } from './keying.js';
import { native, type NativeMmap } from '../native-mmap/index.js';

/** Bytes of a region: all at once, or streamed with a length not known in advance. */
/**
 * Region bytes held or streamed by the caller. The writer keeps views of them (raw chunks are
 * written from the caller's memory): a Uint8Array may be reused once addRegion resolves, and
 * the pieces of an iterable must not change until then (Node's streams never reuse a chunk;
 * a generator that refills one buffer must yield copies).
 */
export type RegionBytes = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
export type RegionData = RegionBytes | FileRange;

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

export interface WriterOptions {
  /** Page size of the captured process. Default 4096. */
  pageSize?: number;
  /**
   * Chunk size: a power of two, multiple of the page size. Default: the page size for an image
   * without codec and cipher (zero-page elision is then exact, and there is no compression to
   * lose), else {@link DEFAULT_CHUNK_SIZE} (spec/FORMAT.md section 11).
   */
  chunkSize?: number;
  /** Restore constraints and identity (section 4). */
  validation?: ValidationInput;
  /** Compression: "none" (default), "deflate" or "deflate:LEVEL" (1-9, default 1). */
  compress?: string;
  /** Cipher suite; requires `key` or `passphrase`. */
  encrypt?: CipherName;
  /** 32-byte master key, or a passphrase (scrypt). */
  key?: KeyInput;
  /** scrypt cost for a passphrase: log2 N (default 17), r (8), p (1). */
  scrypt?: { log2N?: number; r?: number; p?: number };
  /** 'node' (default, node:zlib and node:crypto) or 'portable' (fflate and @noble/ciphers). */
  engine?: 'node' | 'portable';
  /** Worker threads for encoding; default one per core for encoded or encrypted images, 0 = inline. */
  workers?: number;
  /** Fixed image id (deterministic test vectors only; ids must be unique). */
  imageId?: Uint8Array;
  /** Fixed salt (deterministic test vectors only). */
  salt?: Uint8Array;
  /** Creation time, ms since the epoch. Default now. */
  created?: number | bigint;
  /** fsync before rename (default true). */
  fsync?: boolean;
  /**
   * 'compact' (default): stored chunks back to back, zero chunks take no file space.
   * 'sparse' (no codec or cipher only): every region's bytes lie at one file range, chunk j at
   * the range's start + j * chunk size, zero chunks left as holes (no disk blocks on file
   * systems with holes; the file's apparent size counts them). A restore then maps each
   * region with one mmap whatever its zero runs (spec/FORMAT.md section 5.2, SPARSE).
   */
  layout?: 'compact' | 'sparse';
  /**
   * Map regular files of file-range regions instead of reading them (raw images with the
   * native addon; default true). See {@link FileRange} for when to turn it off.
   */
  mapFiles?: boolean;
}

export interface RegionOptions {
  /** Address of the first byte: bigint, or a Number when exact. Page-aligned. */
  address: bigint | number;
  data: RegionData;
  /** "rw-" style protection; default "rw-". */
  prot?: string;
  /** Region kind name, or a kind byte (kinds unknown to this version are kept as they are); default "anonymous". */
  kind?: Exclude<RegionKind, 'gap'> | number;
  name?: string;
}

export interface GapOptions {
  address: bigint | number;
  length: bigint | number;
  name?: string;
}

/** What `finish()` reports. */
export interface WriteSummary {
  path: string;
  fileSize: number;
  regions: number;
  chunks: number;
  zeroChunks: number;
  storedBytes: number;
  plainBytes: number;
}

const WRITE_BATCH = 4 * 1024 * 1024;
const WRITES_IN_FLIGHT = 4;
const READ_AHEAD = 2;
/** Largest FileRange.readSize: with reads ahead and writes in flight, ~6 such buffers exist. */
const MAX_READ_SIZE = 64 * 1024 * 1024;
const ZERO_PAD = new Uint8Array(LIMITS.maxPageSize);

/**
 * Writes one image in a single streaming pass.
 * @example
 * const w = await ImageWriter.create('app.img', { validation: { architecture: 'x86_64' } });
 * await w.addRegion({ address: 0x7f0000000000n, data: heapBytes, kind: 'heap', name: 'java heap' });
 * await w.finish();
 */
export class ImageWriter {
  private readonly records: RegionRecord[] = [];
  private chunkTable = new Uint8Array(CHUNK_RECORD_SIZE * 1024);
  private chunkCount = 0;
  private pos: number;
  private batch: Uint8Array[] = [];
  private batchStart: number;
  private batchBytes = 0;
  /** Chunks submitted to the encoder and not yet stored, oldest first, across regions. */
  private inflight: { p: Promise<EncodedChunk>; rec: RegionRecord }[] = [];
  /** Contiguous byte runs of the batch before holes (sparse layout), written with it. */
  private segments: { at: number; bufs: Uint8Array[] }[] = [];
  /** Per-block scan results of the native path (chunk sums and zero flags). */
  private scanSums: BigUint64Array | null = null;
  private scanZero: Uint8Array | null = null;
  /** The chunk table as 32-bit words, for the native path's records. */
  private tableWords: Uint32Array | null = null;
  private pendingWrites: Promise<void>[] = [];
  /** Read buffers of file-range regions whose writes are done. */
  private freeBuffers: Buffer[] = [];
  /** The addon's writeBack when the image is fsynced at the end, else null. */
  private readonly writeBack: ((fd: number, offset: number, length: number, done: () => void) => void) | null;
  /** writeBack jobs not yet done (the file stays open until they are), and who waits for them. */
  private writeBacksInFlight = 0;
  private writeBacksDone: (() => void) | null = null;
  private cachedFile: { path: string; fh: FileHandle; size: bigint | null } | null = null;
  private prefetch: { key: string; position: bigint; want: number; read: Promise<{ buf: Buffer; n: number }> } | null = null;
  private prevEnd = 0n;
  private busy = false;
  private state: 'open' | 'finished' | 'aborted' = 'open';
  private zeroChunks = 0;
  private storedBytes = 0;
  private plainBytes = 0;

  private constructor(
    readonly path: string,
    private readonly tmpPath: string,
    private readonly fh: FileHandle,
    private readonly header: Uint8Array,
    private readonly pageSize: number,
    private readonly chunkSize: number,
    private readonly mappable: boolean,
    private readonly encoder: ChunkEncoder,
    private readonly doFsync: boolean,
    dataStart: number,
    /** Sparse layout: zero chunks are holes (section 5.2). */
    private readonly sparse: boolean,
    /** The native addon's chunk scan, for raw images written by the node engine. */
    private readonly scanner: NativeMmap | null,
    /** Map regular input files (WriterOptions.mapFiles). */
    private readonly mapFiles: boolean,
  ) {
    this.pos = dataStart;
    this.batchStart = dataStart;
    this.writeBack = doFsync && native && typeof native.writeBack === 'function' ? native.writeBack.bind(native) : null;
  }

  /**
   * Creates `path.tmp` and writes the header and validation block.
   * @throws RangeError/TypeError on bad options; CrimgError IO_ERROR when the file cannot be created.
   */
  static async create(path: string, options: WriterOptions = {}): Promise<ImageWriter> {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError(`expected an output path, got ${typeof path}`);
    const pageSize = options.pageSize ?? 4096;
    if (!isPowerOfTwo(pageSize) || pageSize < LIMITS.minPageSize || pageSize > LIMITS.maxPageSize) {
      throw new RangeError(`expected a page size that is a power of two in ${LIMITS.minPageSize}..${LIMITS.maxPageSize}, got ${pageSize}`);
    }
    const { codec, level } = parseCompress(options.compress ?? 'none');
    const cipher = options.encrypt === undefined || options.encrypt === 'none' ? 0 : CIPHERS[options.encrypt];
    if (cipher === undefined) throw new RangeError(`expected a cipher (aes-256-gcm, chacha20-poly1305), got ${JSON.stringify(options.encrypt)}`);
    const chunkSize = options.chunkSize ?? defaultChunkSize(pageSize, codec === 0 && cipher === 0);
    if (!isPowerOfTwo(chunkSize) || chunkSize < pageSize || chunkSize > LIMITS.maxChunkSize) {
      throw new RangeError(`expected a chunk size that is a power of two from the page size ${pageSize} to ${LIMITS.maxChunkSize}, got ${chunkSize}`);
    }
    if (cipher !== 0 && options.key === undefined) throw new TypeError('expected a key or passphrase with encrypt');
    const imageId = options.imageId ?? randomBytes(16);
    if (!(imageId instanceof Uint8Array) || imageId.length !== 16) throw new RangeError('expected a 16-byte image id');
    const validation = encodeValidation({ pageSize, ...options.validation }, xxh64);
    const mappable = codec === 0 && cipher === 0;
    const layout = options.layout ?? 'compact';
    if (layout !== 'compact' && layout !== 'sparse') throw new RangeError(`expected layout 'compact' or 'sparse', got ${JSON.stringify(layout)}`);
    const sparse = layout === 'sparse';
    if (sparse && !mappable) throw new RangeError("expected layout 'sparse' only without compression and encryption: encoded chunks cannot be mapped");
    const engine = options.engine ?? 'node';
    const fields: HeaderFields = {
      optionalFeatures: mappable ? OPTIONAL_MAPPABLE | (sparse ? OPTIONAL_SPARSE : 0n) : 0n,
      pageSize, chunkSize, imageId,
      created: BigInt(options.created ?? Date.now()),
      validationSize: validation.length,
      codec, codecLevel: level, cipher,
      kdf: 0, scryptLog2N: 0, scryptR: 0, scryptP: 0,
      salt: new Uint8Array(16), keyCheck: new Uint8Array(16),
    };
    const encoder = await createChunkEncoder({
      fields, validation, key: options.key, scrypt: options.scrypt, salt: options.salt,
      engine, workers: options.workers,
    });
    const scanner = mappable && engine === 'node' ? loadScanner() : null;
    // The encoder fills the KDF, salt and key check fields before the header is encoded.
    const header = encodeHeader(fields, xxh64);
    encoder.bindHeader(header, validation);
    const tmpPath = `${path}.tmp`;
    let fh: FileHandle;
    try {
      fh = await open(tmpPath, 'w');
    } catch (e) {
      await encoder.close();
      throw new CrimgError('IO_ERROR', `cannot create ${tmpPath}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
    }
    const dataStart = alignUp(header.length + validation.length, pageSize);
    const w = new ImageWriter(path, tmpPath, fh, header, pageSize, chunkSize, mappable, encoder, options.fsync ?? true, dataStart, sparse, scanner, options.mapFiles ?? true);
    await w.writeAt(header, 0);
    await w.writeAt(validation, header.length);
    return w;
  }

  /**
   * Appends a region. Regions must come in ascending address order without overlap.
   * With a codec or cipher, a file range's last chunks may still be encoding when this
   * resolves (they overlap the next region's): the record's storedBytes and zeroChunks are
   * final when finish() resolves; its address, length and chunk count now.
   * @returns the region's record; for a partial file range whose first page cannot be read, a
   *   record of length 0 that is not part of the image (see {@link FileRange.partial}).
   * @throws RangeError when the region is out of order, unaligned or empty.
   */
  addRegion(r: RegionOptions): Promise<RegionRecord> {
    return this.guarded(async () => {
      const address = toBigAddress(r.address, 'address');
      this.checkStart(address);
      const protBits = parseProt(r.prot ?? 'rw-');
      const kindId = typeof r.kind === 'number' ? checkKindByte(r.kind) : parseKind(r.kind ?? 'anonymous');
      if (kindId === KIND_GAP) throw new RangeError('expected a data region kind, got "gap": use addGap');
      const name = r.name ?? '';
      checkName(name);
      const regionNumber = this.records.length;
      // Chunks of earlier regions may still be encoding (see streamChunks): they come first.
      const firstChunk = this.chunkCount + this.inflight.length;
      const rec: RegionRecord = { address, length: 0n, firstChunk, chunkCount: 0, storedBytes: 0n, zeroChunks: 0, protBits, kindId, name };
      if (isFileRange(r.data) && this.encoder.encodeSync) await this.copyFileRange(r.data, rec);
      else if (isFileRange(r.data)) await this.streamChunks(fileRangePieces(r.data, this.pageSize, this.readSizeOf(r.data)), rec, regionNumber, true);
      else await this.streamChunks(r.data as RegionBytes, rec, regionNumber, false);
      // Nothing readable: nothing was queued or recorded (a region always ends page-aligned),
      // so the image goes on as if this call had not been made.
      if (rec.length === 0n && isFileRange(r.data) && r.data.partial === true) return rec;
      if (rec.length === 0n) throw new RangeError(`expected region data at ${hex(address)}, got 0 bytes`);
      if (address + rec.length > 1n << 64n) throw new RangeError(`region at ${hex(address)} of ${rec.length} bytes runs past the 64-bit address space`);
      this.records.push(rec);
      this.prevEnd = address + rec.length;
      return rec;
    });
  }

  /** Appends a gap: a reserved address range with no access and no data (section 8.1). */
  addGap(g: GapOptions): Promise<RegionRecord> {
    return this.guarded(async () => {
      const address = toBigAddress(g.address, 'address');
      const length = toBigAddress(g.length, 'length');
      this.checkStart(address);
      if (length === 0n || length % BigInt(this.pageSize) !== 0n) {
        throw new RangeError(`expected a gap length that is a positive multiple of the page size ${this.pageSize}, got ${length}`);
      }
      if (address + length > 1n << 64n) throw new RangeError(`gap at ${hex(address)} runs past the 64-bit address space`);
      const name = g.name ?? '';
      checkName(name);
      const rec: RegionRecord = { address, length, firstChunk: this.chunkCount + this.inflight.length, chunkCount: 0, storedBytes: 0n, zeroChunks: 0, protBits: 0, kindId: KIND_GAP, name };
      this.records.push(rec);
      this.prevEnd = address + length;
      return rec;
    });
  }

  /**
   * Writes the index and the footer, fsyncs, and renames `NAME.tmp` to `NAME`.
   * @throws RangeError when there are no regions.
   */
  finish(): Promise<WriteSummary> {
    return this.guarded(async () => {
      if (this.records.length === 0) throw new RangeError('expected at least one region before finish()');
      if (this.records.length > LIMITS.maxRegions) throw new RangeError(`expected at most ${LIMITS.maxRegions} regions, got ${this.records.length}`);
      await this.drainInflight();
      await this.flush();
      await this.drainWrites();
      await this.dropPrefetch('', -1n);
      await this.closeCached();
      const chunkTableOffset = alignUp(this.pos, 8);
      const chunkPlain = this.chunkTable.subarray(0, this.chunkCount * CHUNK_RECORD_SIZE);
      const chunkStored = this.encoder.sealIndex(1, BigInt(this.chunkCount), chunkPlain);
      const region = encodeRegionSection(this.records);
      if (region.stringTableLength > LIMITS.maxStringTable) throw new RangeError(`expected region names of at most ${LIMITS.maxStringTable} bytes in all`);
      const regionStored = this.encoder.sealIndex(2, BigInt(this.records.length), region.bytes);
      const regionOffset = chunkTableOffset + chunkStored.length;
      const footer = encodeFooter({
        imageId: this.header.subarray(40, 56),
        chunkTableOffset: BigInt(chunkTableOffset),
        chunkCount: BigInt(this.chunkCount),
        chunkTableLength: BigInt(chunkStored.length),
        regionSectionOffset: BigInt(regionOffset),
        regionCount: this.records.length,
        stringTableLength: region.stringTableLength,
        regionSectionLength: BigInt(regionStored.length),
        chunkTableChecksum: xxh64(chunkStored),
        regionSectionChecksum: xxh64(regionStored),
      }, xxh64);
      const pad = new Uint8Array(chunkTableOffset - this.pos);
      const tail = Buffer.concat([pad, chunkStored, regionStored, footer]);
      await this.writeAt(tail, this.pos);
      const fileSize = this.pos + tail.length;
      await this.settleWriteBacks();
      if (this.doFsync) await this.fh.sync();
      await this.fh.close();
      // Replacing an image frees the old one inside rename() (ext4: ~50 ms per 160 MiB, as
      // long as the capture itself) unless someone still has it open: hold it open across the
      // rename and let the last close free it on libuv's pool after this call returns.
      const previous = await holdPrevious(this.path);
      try {
        await rename(this.tmpPath, this.path);
      } finally {
        void previous?.close().catch(() => {});
      }
      if (this.doFsync) fsyncDir(dirname(this.path));
      this.state = 'finished';
      await this.encoder.close();
      return {
        path: this.path, fileSize, regions: this.records.length, chunks: this.chunkCount,
        zeroChunks: this.zeroChunks, storedBytes: this.storedBytes, plainBytes: this.plainBytes,
      };
    });
  }

  /** Abandons the image: closes and removes `NAME.tmp`. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await Promise.allSettled(this.pendingWrites);
    await this.settleWriteBacks();
    await this.dropPrefetch('', -1n).catch(() => {});
    await this.closeCached();
    await this.fh.close().catch(() => {});
    await unlink(this.tmpPath).catch(() => {});
    await this.encoder.close().catch(() => {});
  }

  /** Runs one public call: one at a time, on an open writer; any failure abandons the image. */
  private async guarded<T>(call: () => Promise<T>): Promise<T> {
    if (this.state !== 'open') throw new TypeError(`expected an open writer, got one that is ${this.state}`);
    if (this.busy) throw new TypeError('expected one call at a time: await the previous addRegion/addGap/finish');
    this.busy = true;
    try {
      return await call();
    } catch (e) {
      await this.abort();
      throw e;
    } finally {
      this.busy = false;
    }
  }

  private checkStart(address: bigint): void {
    if (address % BigInt(this.pageSize) !== 0n) throw new RangeError(`expected a page-aligned address (page size ${this.pageSize}), got ${hex(address)}`);
    if (address < this.prevEnd) {
      throw new RangeError(`expected regions in ascending address order without overlap: ${hex(address)} is below the end of the previous region ${hex(this.prevEnd)}`);
    }
  }

  /**
   * Copies a file range into the region: blocks of {@link readSizeOf} bytes (a multiple of
   * every chunk size) are read into reused buffers, {@link READ_AHEAD} reads ahead; each
   * block's stored chunks form one write, and a buffer is reused once the write that
   * references it is done.
   */
  private async copyFileRange(range: FileRange, rec: RegionRecord): Promise<void> {
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
        if (regular && await this.copyMapped(this.scanner, fd, name, Number(start), total, rec, range.onRead)) return;
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
      const encode = this.encoder.encodeSync!.bind(this.encoder);
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
            chunkIndex += this.storeScanned(scanner, buf.subarray(0, n), rec);
          } else {
            for (let off = 0; off < n; off += cs) {
              this.store(encode(buf.subarray(off, Math.min(n, off + cs))), rec);
              chunkIndex++;
            }
          }
          rec.length += BigInt(n);
          // This block's stored bytes are one write; its buffer comes back when it is done.
          const written = this.flushNow();
          void written.then(() => this.freeBuffers.push(buf), () => {});
        } else {
          this.freeBuffers.push(buf);
        }
        range.onRead?.(Number(rec.length));
        if (short) break;
        while (this.pendingWrites.length >= WRITES_IN_FLIGHT) await this.pendingWrites.shift();
      }
      if (chunkIndex > LIMITS.maxChunksPerRegion) throw new RangeError(`expected at most ${LIMITS.maxChunksPerRegion} chunks per region`);
      rec.chunkCount = chunkIndex;
      this.endRegion();
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
   * The native path for a regular file (see {@link FileRange}): each block of
   * {@link blockSize} bytes is mapped with MAP_POPULATE, scanned in place (zero test and
   * XXH64 of every chunk), and its stored runs written straight from the mapping, which is
   * unmapped once that write is done. Hashing the next block overlaps the kernel's copy of
   * the previous ones (up to {@link WRITES_IN_FLIGHT}).
   * @returns false, having done nothing, when the file cannot be mapped (the caller reads it).
   */
  private async copyMapped(n: NativeMmap, fd: number, name: string, start: number, total: number, rec: RegionRecord, onRead?: (bytes: number) => void): Promise<boolean> {
    const page = n.pageSize();
    let chunkIndex = 0;
    const block = this.blockSize;
    for (let off = 0; off < total; off += block) {
      const want = Math.min(block, total - off);
      const at = start + off;
      const lead = at % page;
      let mapping: ArrayBuffer;
      try {
        mapping = n.mapFile(fd, at - lead, want + lead, 'r--', { populate: true });
      } catch (e) {
        if (off === 0) return false; // not mappable (a file system without mmap, a write-only fd): read it
        throw new CrimgError('IO_ERROR', `cannot map ${name} at ${at}: ${(e as Error).message}`, { cause: e, offset: at });
      }
      const release = (): void => { try { n.unmap(mapping); } catch { /* already released */ } };
      try {
        chunkIndex += this.storeScanned(n, new Uint8Array(mapping, lead, want), rec);
      } catch (e) {
        release();
        throw e;
      }
      rec.length += BigInt(want);
      onRead?.(off + want);
      void this.flushNow().then(release, release);
      while (this.pendingWrites.length >= WRITES_IN_FLIGHT) await this.pendingWrites.shift();
    }
    if (chunkIndex > LIMITS.maxChunksPerRegion) throw new RangeError(`expected at most ${LIMITS.maxChunksPerRegion} chunks per region`);
    rec.chunkCount = chunkIndex;
    this.endRegion();
    return true;
  }

  /**
   * Records the chunks of `bytes` (whole chunks but for a region's last) from one native scan
   * and queues their stored runs as views of `bytes`, one per run of stored chunks.
   * The same records and bytes as {@link store} of the plain encoder, chunk by chunk.
   * @returns the number of chunks.
   */
  private storeScanned(n: NativeMmap, bytes: Uint8Array, rec: RegionRecord): number {
    const cs = this.chunkSize;
    const chunks = Math.ceil(bytes.length / cs);
    if (this.scanSums === null || this.scanSums.length < chunks) {
      this.scanSums = new BigUint64Array(Math.max(chunks, this.blockSize / cs));
      this.scanZero = new Uint8Array(this.scanSums.length);
    }
    const sums = this.scanSums;
    const zero = this.scanZero!;
    n.scanChunks(bytes, cs, sums, zero);
    // The sums as 32-bit words: copied into the records with no BigInt per chunk.
    const sumWords = new Uint32Array(sums.buffer, sums.byteOffset, sums.length * 2);
    this.reserveRecords(chunks);
    const words = this.tableWords!;
    let stored = 0;
    let zeros = 0;
    let runStart = -1;
    let runPos = 0; // file offset of the run's first chunk
    for (let k = 0; k <= chunks; k++) {
      if (k < chunks && zero[k] === 0) {
        if (runStart < 0) {
          runStart = k;
          runPos = this.pos;
        }
        const plain = Math.min(cs, bytes.length - k * cs);
        const offset = runPos + (k - runStart) * cs;
        const w = this.chunkCount++ * 6;
        words[w] = offset >>> 0;
        words[w + 1] = Math.floor(offset / 0x100000000);
        words[w + 2] = plain;
        words[w + 3] = CHUNK_RAW; // flags u16, reserved u16 zero
        words[w + 4] = sumWords[2 * k]!;
        words[w + 5] = sumWords[2 * k + 1]!;
        stored += plain;
        continue;
      }
      if (runStart >= 0) {
        this.queue(bytes.subarray(runStart * cs, Math.min(bytes.length, k * cs)));
        runStart = -1;
      }
      if (k === chunks) break;
      const w = this.chunkCount++ * 6;
      words.fill(0, w, w + 6);
      words[w + 3] = CHUNK_ZERO;
      zeros++;
      if (this.sparse) this.skip(Math.min(cs, bytes.length - k * cs));
    }
    rec.storedBytes += BigInt(stored);
    rec.zeroChunks += zeros;
    this.storedBytes += stored;
    this.zeroChunks += zeros;
    this.plainBytes += bytes.length;
    return chunks;
  }

  /** Section 5.2: in a MAPPABLE image the next region's first chunk starts on a page boundary. */
  private endRegion(): void {
    if (!this.mappable || this.pos % this.pageSize === 0) return;
    const pad = alignUp(this.pos, this.pageSize) - this.pos;
    if (this.sparse) this.skip(pad); else this.queue(ZERO_PAD.subarray(0, pad));
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

  /** Settles a read-ahead that the next region did not take (its buffer goes back to the pool). */
  private async dropPrefetch(key: string, position: bigint): Promise<void> {
    const p = this.prefetch;
    if (!p || (p.key === key && p.position === position)) return;
    this.prefetch = null;
    const r = await p.read.catch(() => null);
    if (r) this.freeBuffers.push(r.buf);
  }

  /**
   * Cuts the data into chunks; keeps one full chunk back until it knows whether it is the last
   * (the `last` flag of the AEAD's associated data, section 7.3). Without codec and cipher the
   * chunks are encoded synchronously (a memcmp and a hash), with no promise per chunk.
   */
  private async streamChunks(data: RegionBytes, rec: RegionRecord, regionNumber: number, owned: boolean): Promise<void> {
    const cs = this.chunkSize;
    const inflight = this.inflight;
    const maxInflight = Math.max(4, this.encoder.parallelism * 16);
    const syncEncode = this.encoder.encodeSync?.bind(this.encoder);
    let chunkIndex = 0;
    // Returns a promise only when the caller must wait (a full write window or in-flight queue).
    const submit = (plain: Uint8Array, last: boolean): Promise<void> | undefined => {
      if (syncEncode) {
        this.store(syncEncode(plain), rec);
        chunkIndex++;
        return this.batchBytes >= WRITE_BATCH ? this.flush() : undefined;
      }
      const number = this.chunkCount + inflight.length;
      const address = rec.address + BigInt(chunkIndex) * BigInt(cs);
      const p = this.encoder.encode(plain, { chunkNumber: number, regionNumber, address, last });
      p.catch(() => {}); // handled: awaited in order below, by the next region, or by finish()
      inflight.push({ p, rec });
      chunkIndex++;
      if (inflight.length < maxInflight) return undefined;
      const oldest = inflight.shift()!;
      return oldest.p.then((c) => {
        this.store(c, oldest.rec);
        return this.batchBytes >= WRITE_BATCH ? this.flush() : undefined;
      });
    };
    // Pieces not yet cut into chunks.
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const take = (n: number): Uint8Array => {
      const first = pending[0]!;
      if (first.length >= n) {
        const out = first.subarray(0, n);
        if (first.length === n) pending.shift(); else pending[0] = first.subarray(n);
        pendingBytes -= n;
        return out;
      }
      const out = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        const p = pending[0]!;
        const k = Math.min(p.length, n - off);
        out.set(p.subarray(0, k), off);
        off += k;
        if (k === p.length) pending.shift(); else pending[0] = p.subarray(k);
      }
      pendingBytes -= n;
      return out;
    };
    const pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array> = data instanceof Uint8Array ? [data] : data;
    if (pieces === null || typeof pieces !== 'object' || (!(Symbol.asyncIterator in pieces) && !(Symbol.iterator in pieces))) {
      throw new TypeError(`expected region data as a Uint8Array, an (async) iterable of Uint8Array or a Readable, got ${typeof data}`);
    }
    for await (const piece of pieces as AsyncIterable<Uint8Array>) {
      if (!(piece instanceof Uint8Array)) throw new TypeError(`expected region data pieces as Uint8Array, got ${typeof piece}`);
      if (piece.length === 0) continue;
      pending.push(piece);
      pendingBytes += piece.length;
      rec.length += BigInt(piece.length);
      while (pendingBytes > cs) {
        if (syncEncode && this.scanner && pending.length === 1) {
          // Raw image, whole chunks in one piece: one native scan for all of them, their runs
          // queued as views of the piece (the bytes and records of the chunk-by-chunk path).
          chunkIndex += this.storeScanned(this.scanner, take(Math.floor((pendingBytes - 1) / cs) * cs), rec);
          if (this.batchBytes >= WRITE_BATCH) await this.flush();
          continue;
        }
        const wait = submit(take(cs), false);
        if (wait) await wait;
      }
    }
    if (pendingBytes > 0) await submit(take(pendingBytes), true);
    pending = [];
    if (chunkIndex > LIMITS.maxChunksPerRegion) throw new RangeError(`expected at most ${LIMITS.maxChunksPerRegion} chunks per region`);
    rec.chunkCount = chunkIndex;
    // The writer's own pieces (a file range read into fresh buffers) need not be written
    // before this resolves: the next region's chunks join the same queue behind these, so the
    // encoder's pool never drains at a region boundary (200 regions cost ~0.5 s of idle pool
    // per 512 MiB before). Chunks stored raw from the caller's memory must be written first.
    if (owned && !syncEncode) return;
    await this.drainInflight();
    this.endRegion();
    // Raw chunks are views of the caller's bytes: every write that reads them ends before
    // addRegion resolves, so the caller may reuse its buffers afterwards.
    await this.flush();
    await this.drainWrites();
  }

  /** Stores every chunk still encoding, in order (earlier regions' first). */
  private async drainInflight(): Promise<void> {
    while (this.inflight.length) {
      const e = this.inflight.shift()!;
      this.store(await e.p, e.rec);
      if (this.batchBytes >= WRITE_BATCH) await this.flush();
    }
  }

  /** Records one encoded chunk and queues its bytes. */
  private store(c: EncodedChunk, rec: RegionRecord): void {
    this.plainBytes += c.plainLength;
    if (c.stored.length === 0) {
      this.record(0, 0, c.flags, 0n);
      rec.zeroChunks++;
      this.zeroChunks++;
      if (this.sparse) this.skip(c.plainLength);
      return;
    }
    this.record(this.pos, c.stored.length, c.flags, c.checksum);
    rec.storedBytes += BigInt(c.stored.length);
    this.storedBytes += c.stored.length;
    this.queue(c.stored);
  }

  /** Appends the next chunk record. */
  private record(offset: number, storedLength: number, flags: number, checksum: bigint): void {
    this.reserveRecords(1);
    writeChunkRecord(this.chunkTable, this.chunkCount++, { offset, storedLength, flags, checksum });
  }

  /**
   * Makes room for `n` more chunk records; {@link tableWords} views the table as 32-bit words
   * (the records are 24 bytes, so 6 words each, little-endian on the hosts the native path runs).
   */
  private reserveRecords(n: number): void {
    const need = (this.chunkCount + n) * CHUNK_RECORD_SIZE;
    if (need > this.chunkTable.length) {
      let size = this.chunkTable.length * 2;
      while (size < need) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.chunkTable);
      this.chunkTable = grown;
      this.tableWords = null;
    }
    this.tableWords ??= new Uint32Array(this.chunkTable.buffer, this.chunkTable.byteOffset, this.chunkTable.length >> 2);
  }

  private queue(bytes: Uint8Array): void {
    this.batch.push(bytes);
    this.batchBytes += bytes.length;
    this.pos += bytes.length;
  }

  /**
   * The unit file ranges are read (or mapped) and scanned in: {@link WRITE_BATCH}, or one chunk
   * when chunks are larger, so that a block always holds whole chunks (but a region's last).
   */
  private get blockSize(): number {
    return Math.max(WRITE_BATCH, this.chunkSize);
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

  /** Leaves `n` bytes unwritten (a hole of the sparse layout): the batch so far becomes a segment. */
  private skip(n: number): void {
    if (this.batch.length > 0) {
      this.segments.push({ at: this.batchStart, bufs: this.batch });
      this.batch = [];
    }
    this.pos += n;
    this.batchStart = this.pos;
  }

  /**
   * Starts writing the batch. Up to {@link WRITES_IN_FLIGHT} batches are written at once
   * (positional writes, so order does not matter), so hashing the next batch overlaps the
   * kernel's copy of the previous ones.
   */
  private async flush(): Promise<void> {
    while (this.pendingWrites.length >= WRITES_IN_FLIGHT) await this.pendingWrites.shift();
    void this.flushNow();
  }

  /** Starts writing the current batch now (whatever its size) and returns that write. */
  private flushNow(): Promise<void> {
    if (this.batch.length > 0) this.segments.push({ at: this.batchStart, bufs: this.batch });
    this.batch = [];
    this.batchStart = this.pos;
    this.batchBytes = 0;
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
    this.pendingWrites.push(p);
    return p;
  }

  private async drainWrites(): Promise<void> {
    while (this.pendingWrites.length) await this.pendingWrites.shift();
  }

  private async writevAt(bufs: Uint8Array[], at: number): Promise<void> {
    let off = at;
    let i = 0;
    let skip = 0; // bytes of bufs[i] already written
    try {
      while (i < bufs.length) {
        const part: Uint8Array[] = [];
        for (let j = i; j < bufs.length && part.length < 1024; j++) part.push(j === i ? bufs[j]!.subarray(skip) : bufs[j]!); // IOV_MAX
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
      this.writeBack!(this.fh.fd, from, end - from, () => {
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

  private async writeAt(bytes: Uint8Array, at: number): Promise<void> {
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
}

/**
 * The regular file at `path`, open, or null (none, not a regular file, not readable): only
 * ever a file a rename is about to replace, held so that freeing it happens at our close.
 * Never a FIFO or device (opening those can block or have effects), never through a symlink.
 */
async function holdPrevious(path: string): Promise<FileHandle | null> {
  const st = await lstat(path).catch(() => null);
  if (!st?.isFile()) return null;
  return open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK).catch(() => null);
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

/** Errors that end a partial file range (an unreadable page of /proc/PID/mem) instead of failing it. */
const ENDS_PARTIAL = new Set(['EIO', 'EFAULT', 'ENOMEM']);

/**
 * Reads exactly `want` bytes at `position` into `buf`; with `partialPage` (a partial range's
 * page size), fewer when the range ends early: whole pages up to the first unreadable one.
 * @throws CrimgError IO_ERROR
 */
async function readInto(fd: number, name: string, buf: Buffer, position: bigint, want: number, partialPage = 0): Promise<{ buf: Buffer; n: number }> {
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

/**
 * The default chunk size (spec/FORMAT.md section 11): the page size for a raw image, whose
 * zero-page elision is then exact; 16 KiB ({@link DEFAULT_CHUNK_SIZE}) when chunks are encoded
 * or sealed, where it compresses within a point of larger chunks.
 */
export function defaultChunkSize(pageSize: number, raw: boolean): number {
  return raw ? pageSize : Math.max(DEFAULT_CHUNK_SIZE, pageSize);
}

/** The native addon when it is built and has the chunk scan; null otherwise (the JS path). */
function loadScanner(): NativeMmap | null {
  // The native path writes records as little-endian 32-bit words (so do Linux's x86-64 and aarch64).
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) return null;
  return native && typeof native.scanChunks === 'function' ? native : null;
}

function isFileRange(d: RegionData): d is FileRange {
  return typeof d === 'object' && d !== null && !(d instanceof Uint8Array) && !(Symbol.asyncIterator in d) && !(Symbol.iterator in d)
    && ('fd' in d || 'path' in d);
}

function checkKindByte(k: number): number {
  if (!Number.isInteger(k) || k < 0 || k > 255) throw new RangeError(`expected a kind byte 0..255, got ${k}`);
  return k;
}

function checkName(name: string): void {
  if (typeof name !== 'string') throw new TypeError(`expected a region name string, got ${typeof name}`);
  if (Buffer.byteLength(name) > LIMITS.maxNameLength) throw new RangeError(`expected a region name of at most ${LIMITS.maxNameLength} bytes`);
}

/** Parses "none", "deflate", "deflate:LEVEL". */
export function parseCompress(text: string): { codec: number; level: number } {
  const m = /^(none|deflate|zstd)(?::(\d+))?$/.exec(text);
  if (!m) throw new RangeError(`expected compression none, deflate or deflate:LEVEL, got ${JSON.stringify(text)}`);
  if (m[1] === 'none') {
    if (m[2] !== undefined) throw new RangeError('expected no level with compression none');
    return { codec: CODECS.none, level: 0 };
  }
  if (m[1] === 'zstd') {
    // Codec id 2 is reserved; Node 20 has no zstd encoder (spec/FORMAT.md section 6.1).
    throw new RangeError('expected compression none or deflate[:LEVEL], got zstd: codec id 2 is reserved, and Node 20 has no zstd encoder (spec/FORMAT.md section 6.1)');
  }
  const level = m[2] === undefined ? 1 : Number(m[2]);
  if (level < 1 || level > 9) throw new RangeError(`expected a deflate level 1..9, got ${level}`);
  return { codec: CODECS.deflate, level };
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}

