/**
 * The streaming image writer (spec/FORMAT.md sections 3 to 8): header and validation block
 * first, then each region's chunks as they arrive, then the index and the footer. One pass,
 * memory bounded by the chunks in flight, one write batch, and the index.
 *
 * Crash safety: bytes go to a temporary file beside `NAME` (`.NAME.<random>.crimg-tmp`,
 * created exclusively without following symlinks, mode 0600 unless `mode` says otherwise;
 * image/_output-file.ts); `finish()` fsyncs it, renames it to `NAME` and fsyncs the directory,
 * so `NAME` is either absent, the previous file, or a complete image. A failed call, abort(),
 * SIGINT, SIGTERM, SIGHUP and process exit remove the temporary file (image/_interrupt.ts).
 *
 * Its parts: `_chunk-stream.ts` cuts region bytes into chunks for the encoder,
 * `_file-range.ts` reads or maps file ranges, `_chunk-records.ts` builds the chunk table and
 * places chunks (compact or sparse), `_write-queue.ts` writes, fsyncs and renames.
 */
import { randomBytes } from 'node:crypto';
import { xxh64 } from '../codec/checksum.js';
import {
  CIPHERS, CODECS, DEFAULT_CHUNK_SIZE, KIND_GAP, LIMITS, OPTIONAL_MAPPABLE, OPTIONAL_SPARSE, REQUIRED_PARENT, alignUp, isPowerOfTwo, parseKind, parseProt,
  type CipherName, type RegionKind,
  ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL,
} from '../format/constants.js';
import { encodeHeader, impliedRequired, type HeaderFields } from '../format/header.js';
import { encodeValidation, type ValidationInput } from '../format/validation.js';
import { HOT_LIST_RECORD, OPTIONAL_HOT_LIST } from './optimize-hot-list.js';
import { encodeRegionSection, regionFlagFields, type RegionRecord } from '../format/index-table.js';
import { encodeFooter } from '../format/footer.js';
import { hex } from '../format/bytes.js';
import { toBigAddress } from '../format/address.js';
import { createChunkEncoder, type ChunkEncoder } from './chunk-encoder.js';
import type { KeyInput } from './keying.js';
import { nativeAddon, type NativeMmap } from '../native-mmap/index.js';
import { WriteQueue } from './_write-queue.js';
import { ChunkRecords } from './_chunk-records.js';
import { ChunkStream, type RegionBytes } from './_chunk-stream.js';
import { FileRangeReader, type FileRange } from './_file-range.js';
import { ParentDiffEncoder, openParentForWriting, type ParentForWriting } from './_parent-writer.js';
import type { ParentInput } from './_parent.js';

export type { ParentRun, RegionBytes, RegionPiece, ZeroRun } from './_chunk-stream.js';
export type { FileRange, PresentRange } from './_file-range.js';
/** Bytes of a region: held or streamed by the caller ({@link RegionBytes}), or a file range the writer reads. */
export type RegionData = RegionBytes | FileRange;

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
  /** Compression: "none" (default), "deflate" or "deflate:LEVEL" (1-9, default 1), "zstd" or "zstd:LEVEL" (1-19, default 1; native addon). */
  compress?: string;
  /** Cipher suite; requires `key` or `passphrase`. */
  encrypt?: CipherName;
  /** 32-byte master key, or a passphrase (scrypt). */
  key?: KeyInput;
  /** scrypt cost for a passphrase: log2 N (default 17), r (8), p (1). */
  scrypt?: { log2N?: number; r?: number; p?: number };
  /** 'node' (default, node:zlib and node:crypto) or 'portable' (fflate and @noble/ciphers). */
  engine?: 'node' | 'portable';
  /**
   * Worker threads that encode and seal the chunks of an encoded or encrypted image; 0 encodes
   * them on the calling thread. Default: with the node engine no workers (deflate runs on
   * libuv's thread pool and sealing on the calling thread, which costs less than a worker's
   * messages); with the portable engine one per core beyond the calling thread's, at most 8,
   * and none on 2 cores or fewer (image/_workers.ts says why). Ignored without codec and cipher.
   */
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
   * Permission bits of the image file, 0 to 0o777. Default 0o600, owner only: memory images
   * hold secrets. Set with fchmod after the file is created, so the umask does not change it.
   */
  mode?: number;
  /**
   * Remove the temporary file when the process gets SIGINT, SIGTERM or SIGHUP or exits before
   * finish() (default true). Unless another listener handles the signal, the process then dies
   * of it as it would have; a host that handles it keeps control and this writer's next call
   * fails (image/_interrupt.ts).
   */
  cleanupOnSignal?: boolean;
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
   * native addon; default false: reading measured as fast for one region and faster for many,
   * and safe against a file that changes meanwhile). See {@link FileRange}.
   */
  mapFiles?: boolean;
  /**
   * Write a child image of this parent (spec/FORMAT.md section 8.3): a path, fd, bytes or
   * source, or `{ source, key, parent }` (the parent's key, default `key`; its own parent,
   * default its location hint). Only chunks whose plain bytes differ from the parent's chunk at
   * the same address are stored; the others are IN_PARENT records. Page size and chunk size
   * default to the parent's and must equal them; the child is never MAPPABLE (a restore copies
   * it, or maps its flattened image); `layout: 'sparse'` is refused. Codec, cipher and key may
   * differ from the parent's. Reading the child needs the parent, checked by image id and index hash.
   */
  parent?: ParentInput;
  /**
   * The parent's location hint recorded in the child (informational; a reader looks for the
   * parent there, relative to the child's directory). Default: the parent's path relative to
   * the child's directory when the parent was given by path, else none.
   */
  parentHint?: string;
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
  /** The mapping was shared (MAP_SHARED, `s` in /proc/PID/maps): region flag SHARED (section 8.1). Default false. */
  shared?: boolean;
  /**
   * Offset in its file of the region's first byte (a file mapping's offset: a multiple of the
   * page size): region flag FILE_OFFSET (section 8.1). One past 2^32 pages is left out (the
   * returned record has none). Default none.
   */
  fileOffset?: bigint | number;
  /**
   * A child image's (option `parent`) regions only: false stores the chunks given as bytes
   * without comparing them with the parent's, for a caller that knows they changed and gives the
   * unchanged ones as `{ sameAsParent }` runs (ParentRun): then no byte of the parent is read.
   * Default true.
   */
  compareWithParent?: boolean;
}

export interface GapOptions {
  address: bigint | number;
  length: bigint | number;
  name?: string;
  /** As {@link RegionOptions.shared}, for a file mapping left as a gap. */
  shared?: boolean;
  /** As {@link RegionOptions.fileOffset}, for a file mapping left as a gap. */
  fileOffset?: bigint | number;
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
  /** Chunks recorded IN_PARENT (a child image, section 8.3); 0 for a standalone image. */
  inParentChunks: number;
}

/**
 * Writes one image in a single streaming pass.
 * @example
 * const w = await ImageWriter.create('app.img', { validation: { architecture: 'x86_64' } });
 * await w.addRegion({ address: 0x7f0000000000n, data: heapBytes, kind: 'heap', name: 'java heap' });
 * await w.finish();
 */
export class ImageWriter {
  private readonly records: RegionRecord[] = [];
  private readonly chunks: ChunkRecords;
  private readonly stream: ChunkStream;
  private readonly files: FileRangeReader;
  private prevEnd = 0n;
  private busy = false;
  private state: 'open' | 'finished' | 'aborted' = 'open';

  private constructor(
    readonly path: string,
    private readonly out: WriteQueue,
    private readonly header: Uint8Array,
    private readonly pageSize: number,
    /** The image's chunk size (a child's is its parent's). */
    readonly chunkSize: number,
    mappable: boolean,
    private readonly encoder: ChunkEncoder,
    private readonly doFsync: boolean,
    /** Sparse layout: zero chunks are holes (section 5.2). */
    sparse: boolean,
    /** The native addon's chunk scan, for raw images written by the node engine (the tests check which path was taken). */
    private readonly scanner: NativeMmap | null,
    /** Map regular input files (WriterOptions.mapFiles). */
    mapFiles: boolean,
  ) {
    this.chunks = new ChunkRecords(out, pageSize, chunkSize, mappable, sparse);
    this.stream = new ChunkStream(encoder, this.chunks, out, chunkSize, scanner,
      encoder instanceof ParentDiffEncoder ? (a, n, last) => encoder.parentKinds(a, n, last) : null);
    this.files = new FileRangeReader(this.chunks, out, pageSize, chunkSize, scanner, mapFiles);
  }

  /**
   * Creates the temporary file of `path` and writes the header and validation block.
   * @throws RangeError/TypeError on bad options; CrimgError IO_ERROR when the file cannot be created.
   */
  static async create(path: string, options: WriterOptions = {}): Promise<ImageWriter> {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError(`expected an output path, got ${typeof path}`);
    if (options.parent === undefined) return ImageWriter.make(path, options, null);
    if (options.layout === 'sparse') throw new RangeError("expected layout 'compact' for a child image: its chunks are read through the parent, never mapped");
    const parent = await openParentForWriting(options.parent, path, options.key, options.engine, options.parentHint);
    try {
      const ps = parent.reader.pageSize;
      const cs = parent.reader.chunkSize;
      if ((options.pageSize ?? ps) !== ps || (options.chunkSize ?? cs) !== cs) {
        throw new RangeError(`expected the parent's page size ${ps} and chunk size ${cs} for a child image, got ${options.pageSize ?? ps} and ${options.chunkSize ?? cs}`);
      }
      return await ImageWriter.make(path, { ...options, pageSize: ps, chunkSize: cs }, parent);
    } catch (e) {
      await parent.reader.close();
      throw e;
    }
  }

  private static async make(path: string, options: WriterOptions, parent: ParentForWriting | null): Promise<ImageWriter> {
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
    const validation = encodeValidation({ pageSize, ...options.validation, ...(parent ? { parent: parent.record } : {}) }, xxh64);
    // A child's chunks are not all in its file: never MAPPABLE (section 8.3).
    const mappable = codec === 0 && cipher === 0 && parent === null;
    const layout = options.layout ?? 'compact';
    if (layout !== 'compact' && layout !== 'sparse') throw new RangeError(`expected layout 'compact' or 'sparse', got ${JSON.stringify(layout)}`);
    const sparse = layout === 'sparse';
    if (sparse && !mappable) throw new RangeError("expected layout 'sparse' only without compression and encryption: encoded chunks cannot be mapped");
    const engine = options.engine ?? 'node';
    const fields: HeaderFields = {
      optionalFeatures: (mappable ? OPTIONAL_MAPPABLE | (sparse ? OPTIONAL_SPARSE : 0n) : 0n) | (options.validation?.skipped?.some((r) => r.type === HOT_LIST_RECORD) ? OPTIONAL_HOT_LIST : 0n),
      requiredFeatures: impliedRequired(codec, cipher) | (parent ? REQUIRED_PARENT : 0n),
      pageSize, chunkSize, imageId,
      created: BigInt(options.created ?? Date.now()),
      validationSize: validation.length,
      codec, codecLevel: level, cipher,
      kdf: 0, scryptLog2N: 0, scryptR: 0, scryptP: 0,
      salt: new Uint8Array(16), keyCheck: new Uint8Array(16),
    };
    const own = await createChunkEncoder({
      fields, validation, key: options.key, scrypt: options.scrypt, salt: options.salt,
      engine, workers: options.workers,
    });
    const encoder: ChunkEncoder = parent ? new ParentDiffEncoder(own, parent.reader) : own;
    const scanner = mappable && engine === 'node' ? loadScanner() : null;
    // The encoder fills the KDF, salt and key check fields before the header is encoded.
    const header = encodeHeader(fields, xxh64);
    encoder.bindHeader(header, validation);
    const doFsync = options.fsync ?? true;
    const addon = doFsync ? nativeAddon() : null;
    const writeBack = addon ? addon.writeBack.bind(addon) : null;
    const dataStart = alignUp(header.length + validation.length, pageSize);
    let out: WriteQueue;
    try {
      out = await WriteQueue.create(path, pageSize, dataStart, writeBack, { mode: options.mode, cleanupOnSignal: options.cleanupOnSignal });
    } catch (e) {
      await encoder.close();
      throw e;
    }
    const w = new ImageWriter(path, out, header, pageSize, chunkSize, mappable, encoder, doFsync, sparse, scanner, options.mapFiles ?? false);
    await out.writeAt(header, 0);
    await out.writeAt(validation, header.length);
    return w;
  }

  /** The image id of a child's parent (option `parent`); null for a standalone image. */
  get parentImageId(): Uint8Array | null {
    return this.encoder instanceof ParentDiffEncoder ? this.encoder.parentImageId : null;
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
      // Chunks of earlier regions may still be encoding (see ChunkStream.add): they come first.
      const firstChunk = this.stream.nextChunk;
      const rec: RegionRecord = { address, length: 0n, firstChunk, chunkCount: 0, storedBytes: 0n, zeroChunks: 0, protBits, kindId, name, ...regionFlagFields(r, this.pageSize) };
      const encodeSync = this.encoder.encodeSync?.bind(this.encoder);
      const direct = isFileRange(r.data) && !encodeSync && this.encoder.encodeFilePiece ? await this.files.direct(r.data) : null;
      if (isFileRange(r.data) && encodeSync) await this.files.copy(r.data, rec, encodeSync);
      else if (direct) await this.stream.addFile(direct, rec, regionNumber);
      else if (isFileRange(r.data)) await this.stream.add(this.files.pieces(r.data, this.encoder.copiesPlain === true), rec, regionNumber, true, r.compareWithParent !== false);
      else await this.stream.add(r.data as RegionBytes, rec, regionNumber, false, r.compareWithParent !== false);
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
      const rec: RegionRecord = { address, length, firstChunk: this.stream.nextChunk, chunkCount: 0, storedBytes: 0n, zeroChunks: 0, protBits: 0, kindId: KIND_GAP, name, ...regionFlagFields(g, this.pageSize) };
      this.records.push(rec);
      this.prevEnd = address + length;
      return rec;
    });
  }

  /**
   * Writes the index and the footer, fsyncs, and renames the temporary file to `NAME`.
   * @throws RangeError when there are no regions.
   */
  finish(): Promise<WriteSummary> {
    return this.guarded(async () => {
      if (this.records.length === 0) throw new RangeError('expected at least one region before finish()');
      if (this.records.length > LIMITS.maxRegions) throw new RangeError(`expected at most ${LIMITS.maxRegions} regions, got ${this.records.length}`);
      const chunks = this.chunks;
      const out = this.out;
      await this.stream.drain();
      await out.flush();
      await out.drain();
      await this.files.close();
      const chunkTableOffset = alignUp(out.pos, 8);
      const chunkStored = this.encoder.sealIndex(1, BigInt(chunks.count), chunks.bytes);
      const region = encodeRegionSection(this.records, this.pageSize);
      if (region.stringTableLength > LIMITS.maxStringTable) throw new RangeError(`expected region names of at most ${LIMITS.maxStringTable} bytes in all`);
      const regionStored = this.encoder.sealIndex(2, BigInt(this.records.length), region.bytes);
      const regionOffset = chunkTableOffset + chunkStored.length;
      const footer = encodeFooter({
        imageId: this.header.subarray(40, 56),
        chunkTableOffset: BigInt(chunkTableOffset),
        chunkCount: BigInt(chunks.count),
        chunkTableLength: BigInt(chunkStored.length),
        regionSectionOffset: BigInt(regionOffset),
        regionCount: this.records.length,
        stringTableLength: region.stringTableLength,
        regionSectionLength: BigInt(regionStored.length),
        chunkTableChecksum: xxh64(chunkStored),
        regionSectionChecksum: xxh64(regionStored),
      }, xxh64);
      const pad = new Uint8Array(chunkTableOffset - out.pos);
      const tail = Buffer.concat([pad, chunkStored, regionStored, footer]);
      await out.writeAt(tail, out.pos);
      const fileSize = out.pos + tail.length;
      await out.commit(this.doFsync);
      this.state = 'finished';
      await this.encoder.close();
      return {
        path: this.path, fileSize, regions: this.records.length, chunks: chunks.count,
        zeroChunks: chunks.zeroChunks, storedBytes: chunks.storedBytes, plainBytes: chunks.plainBytes,
        inParentChunks: this.encoder instanceof ParentDiffEncoder ? this.encoder.inParent : 0,
      };
    });
  }

  /** Abandons the image: closes and removes its temporary file (never `NAME`). Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.out.settle();
    await this.stream.settle(); // pieces reading a caller's fd or a file about to be closed
    await this.files.close();
    await this.out.discard();
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
}

/**
 * The default chunk size (spec/FORMAT.md section 11): the page size for a raw image, whose
 * zero-page elision is then exact; 16 KiB ({@link DEFAULT_CHUNK_SIZE}) when chunks are encoded
 * or sealed, where it compresses within a point of larger chunks.
 */
export function defaultChunkSize(pageSize: number, raw: boolean): number {
  return raw ? pageSize : Math.max(DEFAULT_CHUNK_SIZE, pageSize);
}

/** The native addon when it is available; null otherwise (the JS path). */
function loadScanner(): NativeMmap | null {
  // The native path writes records as little-endian 32-bit words (so do Linux's x86-64 and aarch64).
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) return null;
  return nativeAddon();
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

/** Parses "none", "deflate", "deflate:LEVEL" (1-9, default 1), "zstd", "zstd:LEVEL" (1-19, default 1). */
export function parseCompress(text: string): { codec: number; level: number } {
  const m = /^(none|deflate|zstd)(?::(\d+))?$/.exec(text);
  if (!m) throw new RangeError(`expected compression none, deflate[:LEVEL] or zstd[:LEVEL], got ${JSON.stringify(text)}`);
  if (m[1] === 'none') {
    if (m[2] !== undefined) throw new RangeError('expected no level with compression none');
    return { codec: CODECS.none, level: 0 };
  }
  if (m[1] === 'zstd') {
    // Codec id 2 (spec/FORMAT.md section 6.2), written by the native addon (codec/zstd.ts).
    const zl = m[2] === undefined ? 1 : Number(m[2]);
    if (zl < ZSTD_MIN_LEVEL || zl > ZSTD_MAX_LEVEL) throw new RangeError(`expected a zstd level ${ZSTD_MIN_LEVEL}..${ZSTD_MAX_LEVEL}, got ${zl}`);
    return { codec: CODECS.zstd, level: zl };
  }
  const level = m[2] === undefined ? 1 : Number(m[2]);
  if (level < 1 || level > 9) throw new RangeError(`expected a deflate level 1..9, got ${level}`);
  return { codec: CODECS.deflate, level };
}
