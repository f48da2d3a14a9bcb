/**
 * The random-access reader (spec/FORMAT.md sections 3, 4 and 8): trusts the trailing index as
 * the single authority, reads only the footer, header, validation block and region section to
 * open, and the chunk table on the first data access.
 */
import { xxh64, xxh64Chunks } from '../codec/checksum.js';
import { CHUNK_IN_PARENT, CHUNK_ZERO, OPTIONAL_MAPPABLE, REGION_RECORD_SIZE, REQUIRED_PARENT, OPTIONAL_SPARSE, cipherName, codecName } from '../format/constants.js';
import type { Header } from '../format/header.js';
import type { Validation } from '../format/validation.js';
import type { Footer } from '../format/footer.js';
import { ChunkTable, type ChunkRecord, type Region } from '../format/index-table.js';
import type { RegionTable } from '../format/region-table.js';
import { hex, toHex } from '../format/bytes.js';
import { CrimgError } from '../format/errors.js';
import { toBigAddress } from '../format/address.js';
import { toSource, type RandomAccessSource, type SourceInput } from './source.js';
import type { ChunkDecoder, DecodeContext, DecodedRun } from './chunk-decoder.js';
import type { HostDescription } from './host.js';
import { featureName, offeredFeatures } from './host.js';
import { openParts, readTable, type ImageParts, type OpenOptions } from './_open.js';
import { coalesceRuns } from './_runs.js';
import { verifyImage, type VerifyOptions, type VerifyReport } from './verify.js';
import { chunkStats, type ChunkStats } from './stats.js';
import { parentLinkOf, readFromParent, type ParentLink, type ParentPiece } from './_parent.js';
import { verifyChain } from './_parent-verify.js';

export type { ImageParts, OpenOptions } from './_open.js';
export type { VerifyError, VerifyOptions, VerifyReport } from './verify.js';

/** Options of {@link ImageReader.readStream}. */
export interface ReadStreamOptions {
  /** The largest piece yielded, in bytes: 1 to 2 GiB, default {@link DEFAULT_PIECE_SIZE}. */
  pieceSize?: number;
}

/** 8 MiB: a multiple of every valid page and chunk size up to 8 MiB, so pieces stay aligned. */
export const DEFAULT_PIECE_SIZE = 8 * 1024 * 1024;

/** The result of {@link ImageReader.checkCompatibility}. */
export interface CompatibilityReport {
  compatible: boolean;
  architecture?: { image: string; host: string };
  pageSize?: { image: number; host: number };
  labels: { key: string; image: string; host: string | null }[];
  /**
   * Per bitmap the host does not cover: how many bits it lacks (`count`), and the first
   * {@link MAX_LISTED_BITS} of them by number and name: a hostile 1 MiB bitmap lacks 8 million.
   */
  bitmaps: { key: string; count: number; missing: number[]; names: string[] }[];
}

/** Missing bits listed by number and name in a {@link CompatibilityReport}; the rest are counted. */
export const MAX_LISTED_BITS = 64;

/**
 * Opens an image for reading. Reads the footer, header, validation block and region section only.
 * The package's `openImage` (restore/image.ts) returns the same reader with `restore()` added.
 * @param input a path, an fd, bytes, or a {@link RandomAccessSource}. Bytes are read in place
 *   (the region and chunk tables are views of them, checked once): keep them unchanged while the
 *   image is open.
 * @throws CrimgError when the image cannot be opened (bad magic, truncated, corrupt index, wrong key...).
 * @example
 * const image = await openReader('app.img');
 * const bytes = await image.read(0x7f0000001000n, 4096);
 * await image.close();
 */
export function openReader(input: SourceInput, options: OpenOptions = {}): Promise<ImageReader> {
  return openWith(input, options, (parts) => new ImageReader(parts));
}

/**
 * Opens `input` and hands the opened parts to `make`; closes a source it opened itself when
 * opening fails. The seam through which a higher floor builds a richer image object.
 */
export async function openWith<T>(input: SourceInput, options: OpenOptions, make: (parts: ImageParts) => T): Promise<T> {
  const source = await toSource(input);
  const owned = typeof input === 'string';
  try {
    const parts = await openParts(source, owned, options);
    return make(typeof input === 'string' ? { ...parts, path: input } : parts);
  } catch (e) {
    if (owned) await source.close();
    throw e;
  }
}

/**
 * An open image. Methods are safe to call concurrently. After {@link close}, every method that
 * reads the file or decodes throws CrimgError INVALID_ARGUMENT (what was read at open, the
 * header, validation block and regions, stays readable).
 */
export class ImageReader {
  private chunkTablePromise: Promise<ChunkTable> | null = null;
  private closed = false;
  readonly source: RandomAccessSource;
  private readonly owned: boolean;
  readonly header: Header;
  /** Raw header and validation bytes (they feed the AEAD's `H`). */
  readonly headerBytes: Uint8Array;
  readonly validationBytes: Uint8Array;
  readonly validation: Validation;
  readonly footer: Footer;
  private readonly regionTable: RegionTable | null;
  private readonly decoder: ChunkDecoder | null;
  private readonly release: () => void;
  readonly dataStart: number;
  /** A child's parent (section 8.3), opened on first use; null for a standalone image. */
  private readonly parentLink: ParentLink<ImageReader> | null;

  /** Built by {@link openReader} or {@link openWith} from what they read. */
  constructor(parts: ImageParts) {
    this.source = parts.source;
    this.owned = parts.owned;
    this.header = parts.header;
    this.headerBytes = parts.headerBytes;
    this.validationBytes = parts.validationBytes;
    this.validation = parts.validation;
    this.footer = parts.footer;
    this.regionTable = parts.regionTable;
    this.decoder = parts.decoder;
    this.release = parts.release;
    this.dataStart = parts.dataStart;
    this.parentLink = parentLinkOf(parts, (input, options) => openReader(input, options));
  }

  /** True for a child image (required feature PARENT, section 8.3): some chunks are its parent's. */
  get isChild(): boolean { return (this.header.requiredFeatures & REQUIRED_PARENT) !== 0n; }

  /**
   * The parent of a child image, opened and checked on the first call (image id and index hash,
   * section 8.3) and kept until this image closes; null for a standalone image.
   * @throws CrimgError PARENT_REQUIRED, PARENT_MISMATCH, or the parent's own error
   */
  async parent(): Promise<ImageReader | null> {
    if (this.closed) throw closedError('parent');
    return this.parentLink === null ? null : this.parentLink.get();
  }

  /** Where a child's parent is looked for (the given source or the hint); undefined for a standalone image. */
  get parentLocation(): string | undefined { return this.parentLink?.location; }

  /** Format version as "major.minor". */
  get version(): string {
    return `${this.header.major}.${this.header.minor}`;
  }

  get pageSize(): number { return this.header.pageSize; }
  get chunkSize(): number { return this.header.chunkSize; }
  get imageId(): string { return toHex(this.header.imageId); }
  get compression(): string {
    return this.header.codec === 0 ? 'none' : `${codecName(this.header.codec)}:${this.header.codecLevel}`;
  }
  get encryption(): string { return cipherName(this.header.cipher); }
  /** True when raw runs may be mapped straight from the file (optional feature MAPPABLE). */
  get mappable(): boolean { return (this.header.optionalFeatures & OPTIONAL_MAPPABLE) !== 0n; }
  /** True when each region's bytes lie at one file range, zero chunks as holes (optional feature SPARSE). */
  get sparse(): boolean { return (this.header.optionalFeatures & OPTIONAL_SPARSE) !== 0n; }
  /** True when the index is encrypted and no key was given. */
  get indexLocked(): boolean { return this.regionTable === null; }
  get fileSize(): number { return this.source.size; }
  get chunkCount(): number { return Number(this.footer.chunkCount); }

  /**
   * The region table, sorted by address: one object per region, made on first access and kept
   * (about 250 bytes each: 2^20 regions are about 256 MiB). To visit regions without holding
   * them all, use {@link regionCount} and {@link region}.
   * @throws CrimgError KEY_REQUIRED when the image is encrypted and no key was given;
   *   INVALID_ARGUMENT on the first access after close().
   */
  get regions(): readonly Region[] {
    return this.openTable('regions').all();
  }

  /**
   * The region table; after close() only when `regions` was made before (close() frees the
   * section's bytes).
   */
  private openTable(what: string): RegionTable {
    if (this.regionTable === null) throw keyRequired();
    if (this.closed && !this.regionTable.materialized) throw closedError(what);
    return this.regionTable;
  }

  /**
   * The number of regions (gaps included), without making any region object.
   * @throws CrimgError KEY_REQUIRED when the image is encrypted and no key was given.
   */
  get regionCount(): number {
    if (this.regionTable === null) throw keyRequired();
    return this.regionTable.count;
  }

  /**
   * Region `index` (0 to {@link regionCount} - 1), made from the region section in place: the
   * same fields as `regions[index]`, without making the others.
   * @throws CrimgError KEY_REQUIRED when the image is encrypted and no key was given; RangeError
   *   for a number out of range.
   */
  region(index: number): Region {
    return this.openTable('region').get(index);
  }

  /** The chunk table, loaded and checked on first use. */
  chunkTable(): Promise<ChunkTable> {
    if (this.closed) return Promise.reject(closedError('chunkTable'));
    if (this.regionTable === null) return Promise.reject(keyRequired());
    this.chunkTablePromise ??= this.loadChunkTable();
    return this.chunkTablePromise;
  }

  /** `stored`, the chunk table as stored and read by the caller (a parent's, hashed: 8.3), as this image's. */
  adoptChunkTable(stored: Uint8Array): Promise<ChunkTable> {
    if (this.closed) return Promise.reject(closedError('chunkTable'));
    if (this.regionTable === null) return Promise.reject(keyRequired());
    this.chunkTablePromise = this.loadChunkTable(stored);
    return this.chunkTablePromise;
  }

  private async loadChunkTable(given?: Uint8Array): Promise<ChunkTable> {
    const off = Number(this.footer.chunkTableOffset);
    const stored = given ?? await readTable(this.source, off, Number(this.footer.chunkTableLength));
    if (this.closed) throw closedError('chunkTable'); // closed while reading: the section may be released
    if (xxh64(stored) !== this.footer.chunkTableChecksum) {
      throw new CrimgError('CORRUPT_INDEX', 'chunk table checksum mismatch', { offset: off, hint: 'the index is damaged; restore the image from a good copy' });
    }
    const plain = this.decoder ? this.decoder.openIndex(1, this.footer.chunkCount, stored, off) : stored;
    // Section 8.1: the regions' totals against the records, when the table is read (stage read).
    // No chunk at all: every region is a gap, whose totals (0) were checked at open; the
    // records of a large section are not read again for nothing.
    if (this.footer.chunkCount > 0n) this.regionTable!.checkTotals(plain);
    return new ChunkTable(plain, {
      dataStart: this.dataStart, dataEnd: off, pageSize: this.header.pageSize, mappable: this.mappable,
      hasCodec: this.header.codec !== 0, hasCipher: this.header.cipher !== 0, hasParent: this.isChild, base: off,
    });
  }

  /**
   * The region holding `address`, or undefined: binary search over the region section in
   * place (no region object but the one returned). Gaps count as regions.
   */
  regionAt(address: bigint | number): Region | undefined {
    const a = toBigAddress(address);
    const table = this.openTable('regionAt');
    if (table.materialized) return binarySearch(table.all(), a);
    const i = table.indexAt(a);
    return i < 0 ? undefined : table.get(i);
  }

  /** Plain length of chunk `j` of region `r`. */
  plainLength(r: Region, j: number): number {
    const cs = BigInt(this.header.chunkSize);
    const start = BigInt(j) * cs;
    const end = start + cs < r.length ? start + cs : r.length;
    return Number(end - start);
  }

  /**
   * Exactly the `length` bytes at `address`: zeros for elided chunks, touching only the chunks
   * needed. A read may span adjacent regions.
   * @throws CrimgError NOT_MAPPED for unmapped addresses or gaps; CORRUPT_CHUNK, AUTH_FAILED on damage.
   */
  async read(address: bigint | number, length: number): Promise<Buffer> {
    if (this.closed) throw closedError('read');
    const start = toBigAddress(address);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`expected a non-negative integer length, got ${length}`);
    if (length > 2 ** 31) throw new RangeError(`expected a read of at most 2 GiB, got ${length}; use readStream or several reads`);
    // Every byte is written by readInto (decoded bytes or zero fill), so no zeroing pass.
    const out = Buffer.allocUnsafe(length);
    await this.readInto(start, out);
    return out;
  }

  /**
   * The `length` bytes at `address` as consecutive pieces of at most `pieceSize` bytes (all but
   * the last exactly `pieceSize`), reading one piece ahead of the consumer: memory stays at two
   * pieces whatever the length. A range may span adjacent regions, as in {@link read}.
   * @throws RangeError at the call for a bad address, length or piece size; CrimgError
   *   NOT_MAPPED, CORRUPT_CHUNK, AUTH_FAILED while iterating, as read() does.
   * @example
   * for await (const piece of image.readStream(region.address, region.length)) await out.write(piece);
   */
  readStream(address: bigint | number, length: bigint | number, options: ReadStreamOptions = {}): AsyncGenerator<Buffer> {
    if (this.closed) throw closedError('readStream');
    const start = toBigAddress(address);
    const end = start + toBigAddress(length, 'length');
    const piece = options.pieceSize ?? DEFAULT_PIECE_SIZE;
    if (!Number.isSafeInteger(piece) || piece < 1 || piece > 2 ** 31) {
      throw new RangeError(`expected pieceSize as an integer from 1 to 2^31, got ${piece}`);
    }
    return readPieces(this, start, end, piece);
  }

  /**
   * Fills `out` with the bytes at `address` (see {@link read}). With `zeroFilled`, the caller
   * promises `out` already holds zeros (fresh anonymous memory): zero chunks are not written,
   * so their pages are never touched.
   */
  async readInto(address: bigint, out: Uint8Array, options: { zeroFilled?: boolean } = {}): Promise<void> {
    if (this.closed) throw closedError('readInto');
    const table = await this.chunkTable();
    const cs = BigInt(this.header.chunkSize);
    const end = address + BigInt(out.length);
    let cur = address;
    // Plan: which chunk covers which part of `out`.
    const plan: { rec: ChunkRecord; region: Region; j: number; number: number; from: number; to: number; dst: number }[] = [];
    while (cur < end) {
      const r = this.regionAt(cur);
      if (!r || r.isGap) {
        throw new CrimgError('NOT_MAPPED', `address ${hex(cur)} is ${r ? `in gap ${r.index}${r.name ? ` (${r.name})` : ''}, which holds no data` : 'not in any region of the image'}`, {
          address: cur, hint: 'list the regions with `crimg inspect`',
        });
      }
      const rEnd = r.address + r.length < end ? r.address + r.length : end;
      while (cur < rEnd) {
        const rel = cur - r.address;
        const j = Number(rel / cs);
        const chunkStart = BigInt(j) * cs;
        const plainLen = this.plainLength(r, j);
        const from = Number(rel - chunkStart);
        const chunkEnd = r.address + chunkStart + BigInt(plainLen);
        const stop = chunkEnd < rEnd ? chunkEnd : rEnd;
        const to = from + Number(stop - cur);
        const number = r.firstChunk + j;
        const rec = table.get(number, plainLen);
        plan.push({ rec, region: r, j, number, from, to, dst: Number(cur - address) });
        cur = stop;
      }
    }
    // Execute: coalesce file reads of neighbouring stored chunks into runs, read one run ahead
    // of decoding the current one, decode each run as a batch.
    // Zero chunks are filled here and hold no bytes in the file, so the stored chunks around
    // them are still neighbours: runs continue across them.
    const stored: typeof plan = [];
    const inParent: ParentPiece[] = [];
    for (const p of plan) {
      if (p.rec.flags & CHUNK_IN_PARENT) {
        inParent.push({ chunk: p.region.address + BigInt(p.j) * cs, plain: this.plainLength(p.region, p.j), number: p.number, region: p.region.index, from: p.from, length: p.to - p.from, dst: p.dst });
      } else if (p.rec.flags & CHUNK_ZERO) {
        if (!options.zeroFilled) out.fill(0, p.dst, p.dst + (p.to - p.from));
      } else {
        stored.push(p);
      }
    }
    const runs = coalesceRuns(stored);
    const readRun = (n: number): Promise<Uint8Array> | null => (n < runs.length ? this.source.read(runs[n]!.offset, runs[n]!.length) : null);
    let ahead = readRun(0);
    ahead?.catch(() => {});
    for (let n = 0; n < runs.length; n++) {
      const run = runs[n]!;
      const bytes = await ahead!;
      ahead = readRun(n + 1);
      ahead?.catch(() => {}); // awaited (and thrown) on the next turn
      const batch = run.items;
      const decoded = await this.decodeRun(batch, bytes, run.offset);
      batch.forEach((b, m) => out.set(decoded.plains[m]!.subarray(b.from, b.to), b.dst));
      decoded.release();
    }
    // Section 8.3: the parent's bytes at the same addresses, from a parent checked first.
    if (inParent.length > 0) await readFromParent((await this.parent())!, inParent, out, options);
  }

  /**
   * Decodes chunks stored back to back in `bytes` (read from file offset `base`): on the
   * decoder's workers for encoded or encrypted images, checksums inline for plain ones.
   */
  async decodeRun(items: readonly { region: Region; j: number; number: number; rec: ChunkRecord }[], bytes: Uint8Array, base: number): Promise<DecodedRun> {
    if (this.closed) throw closedError('decodeRun');
    // A plain Uint8Array view: subarrays of a Buffer are Buffers, several times dearer to make.
    const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const slice = (rec: ChunkRecord): Uint8Array => u8.subarray(rec.offset - base, rec.offset - base + rec.storedLength);
    if (!this.decoder) {
      // Raw chunks: checksums inline, no promise per chunk (thousands per run at 4 KiB); one
      // native call when the run is whole chunks back to back (a region's last may be short).
      const cs = this.header.chunkSize;
      let uniform = items.length > 1;
      for (let k = 0; uniform && k < items.length; k++) {
        const rec = items[k]!.rec;
        uniform = rec.offset - base === k * cs && (rec.storedLength === cs || k === items.length - 1);
      }
      if (uniform) {
        const sums = new BigUint64Array(items.length);
        xxh64Chunks(u8.subarray(0, (items.length - 1) * cs + items[items.length - 1]!.rec.storedLength), cs, sums);
        const plains = items.map((it, k) => {
          if (sums[k] !== it.rec.checksum) throw this.checksumMismatch(it.region, it.j, it.number, it.rec);
          return u8.subarray(k * cs, k * cs + it.rec.storedLength);
        });
        return { plains, release: () => {} };
      }
      const plains = items.map((it) => {
        const stored = slice(it.rec);
        if (xxh64(stored) !== it.rec.checksum) throw this.checksumMismatch(it.region, it.j, it.number, it.rec);
        return stored;
      });
      return { plains, release: () => {} };
    }
    return this.decoder.decodeMany(bytes, items.map((it) => ({
      ctx: this.decodeContext(it.region, it.j, it.number, it.rec), start: it.rec.offset - base, length: it.rec.storedLength,
    })));
  }

  private decodeContext(region: Region, j: number, number: number, rec: ChunkRecord): DecodeContext {
    return {
      rec, plainLength: this.plainLength(region, j), chunkNumber: number, regionNumber: region.index,
      address: region.address + BigInt(j) * BigInt(this.header.chunkSize), last: j === region.chunkCount - 1,
    };
  }

  /**
   * `Kd` and `H` of an encrypted image opened with its key, for the native batch decoder
   * (image/_native-batch.ts); null without cipher or key. Never logged or shown.
   */
  chunkKeys(): { dataKey: Uint8Array; headerHash: Uint8Array } | null {
    return this.decoder?.chunkKeys() ?? null;
  }

  /** Decodes one chunk's stored bytes, checking its checksum (and tag). */
  async decodeChunk(region: Region, j: number, number: number, rec: ChunkRecord, stored: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw closedError('decodeChunk');
    if (this.decoder) return this.decoder.decode(stored, this.decodeContext(region, j, number, rec));
    if (xxh64(stored) !== rec.checksum) throw this.checksumMismatch(region, j, number, rec);
    return stored;
  }

  private checksumMismatch(region: Region, j: number, number: number, rec: ChunkRecord): CrimgError {
    const address = region.address + BigInt(j) * BigInt(this.header.chunkSize);
    return new CrimgError('CORRUPT_CHUNK', `chunk ${number} (region ${region.index}, address ${hex(address)}) checksum mismatch`, {
      offset: rec.offset, chunk: number, region: region.index, address, hint: 'this part of the image is damaged; restore it from a good copy',
    });
  }

  /**
   * Checks every checksum (and authentication tag) and the index's internal consistency.
   * Lists every bad chunk; throws only when the image cannot be read at all.
   */
  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    if (this.closed) return Promise.reject(closedError('verify'));
    if (this.parentLink === null) return verifyImage(this, options);
    return verifyImage(this, options).then((own) => verifyChain(this, own, options));
  }

  /**
   * Bytes mapped, stored and zero, and chunk counts by stored form, per data region, per kind
   * and in total (reads the chunk table, not the data): see {@link chunkStats}.
   * @throws CrimgError KEY_REQUIRED without a key for an encrypted image; CORRUPT_INDEX.
   */
  chunkStats(): Promise<ChunkStats> {
    if (this.closed) return Promise.reject(closedError('chunkStats'));
    return chunkStats(this);
  }

  /**
   * Compares the image's restore constraints with a host (section 4).
   * @param host usually `describeHost()`.
   */
  checkCompatibility(host: HostDescription): CompatibilityReport {
    const v = this.validation;
    const report: CompatibilityReport = { compatible: true, labels: [], bitmaps: [] };
    if (v.architecture !== undefined && v.architecture !== host.architecture) {
      report.architecture = { image: v.architecture, host: host.architecture };
      report.compatible = false;
    }
    const imagePage = v.pageSize ?? this.header.pageSize;
    if (imagePage !== host.pageSize) {
      report.pageSize = { image: imagePage, host: host.pageSize };
      report.compatible = false;
    }
    for (const [key, value] of Object.entries(v.labels)) {
      const h = Object.hasOwn(host.labels, key) ? host.labels[key] : undefined;
      if (h !== value) {
        report.labels.push({ key, image: value, host: h ?? null });
        report.compatible = false;
      }
    }
    for (const [key, bits] of Object.entries(v.bitmaps)) {
      const given = (Object.hasOwn(host.bitmaps, key) ? host.bitmaps[key] : undefined) ?? new Uint8Array(0);
      // cpu.features: also the bits older images set for this host's flags (see offeredFeatures).
      const hostBits = key === 'cpu.features' ? offeredFeatures(given, host.architecture) : given;
      const { count, missing } = lackingBits(bits, hostBits);
      if (count) {
        report.bitmaps.push({ key, count, missing, names: missing.map((i) => (key === 'cpu.features' ? featureName(i) : `bit ${i}`)) });
        report.compatible = false;
      }
    }
    return report;
  }

  /**
   * Throws INCOMPATIBLE naming what differs, when the host does not meet the constraints.
   */
  assertCompatible(host: HostDescription): void {
    const r = this.checkCompatibility(host);
    if (r.compatible) return;
    const parts: string[] = [];
    if (r.architecture) parts.push(`architecture ${r.architecture.image} (host ${r.architecture.host})`);
    if (r.pageSize) parts.push(`page size ${r.pageSize.image} (host ${r.pageSize.host})`);
    for (const l of r.labels) parts.push(`label ${l.key}=${l.image} (host ${l.host ?? 'unset'})`);
    for (const b of r.bitmaps) parts.push(`${b.key} lacks ${b.names.join(' ')}${b.count > b.names.length ? ` and ${b.count - b.names.length} more bits` : ''}`);
    throw new CrimgError('INCOMPATIBLE', `the host does not meet the image's restore constraints: ${parts.join('; ')}`, {
      hint: 'restore on a host like the one that made the image',
    });
  }

  /** True once {@link close} was called. */
  get isClosed(): boolean { return this.closed; }

  /**
   * Throws CrimgError INVALID_ARGUMENT when the image was closed: for a layer above (restore)
   * that uses the source or decoder directly.
   */
  assertOpen(what: string): void {
    if (this.closed) throw closedError(what);
  }

  /**
   * Releases the source (when openImage opened it) and the decoder's workers. Calling it again
   * does nothing; any read or decode afterwards throws CrimgError INVALID_ARGUMENT.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.parentLink?.close();
    this.release();
    await this.decoder?.close();
    if (this.owned) await this.source.close();
  }
}

/**
 * The bits of `bits` that `hostBits` lacks: how many, and the first {@link MAX_LISTED_BITS}.
 * Byte by byte in tight loops, counted by popcount: a hostile 1 MiB bitmap of set bits (8
 * million lacking) costs milliseconds, not a step per bit.
 */
function lackingBits(bits: Uint8Array, hostBits: Uint8Array): { count: number; missing: number[] } {
  const missing: number[] = [];
  let count = 0;
  const n = bits.length;
  const shared = Math.min(n, hostBits.length); // no read past hostBits' end (slow in V8)
  for (let b = 0; b < n; b++) {
    const lack = b < shared ? bits[b]! & ~hostBits[b]! & 0xff : bits[b]!;
    if (lack === 0) continue;
    const c = lack - ((lack >> 1) & 0x55);
    const d = (c & 0x33) + ((c >> 2) & 0x33);
    count += (d + (d >> 4)) & 0x0f;
    if (missing.length < MAX_LISTED_BITS) for (let k = 0; k < 8; k++) if ((lack >> k) & 1 && missing.length < MAX_LISTED_BITS) missing.push(b * 8 + k);
  }
  return { count, missing };
}

/** The region of sorted `rs` holding `a`. */
function binarySearch(rs: readonly Region[], a: bigint): Region | undefined {
  let lo = 0;
  let hi = rs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = rs[mid]!;
    if (a < r.address) hi = mid - 1;
    else if (a >= r.address + r.length) lo = mid + 1;
    else return r;
  }
  return undefined;
}

function closedError(what: string): CrimgError {
  return new CrimgError('INVALID_ARGUMENT', `${what}() on a closed image`, {
    hint: 'open the image again (close() releases its file and workers); finish reads before closing',
  });
}

function keyRequired(): CrimgError {
  return new CrimgError('KEY_REQUIRED', 'the image index is encrypted and no key was given', {
    hint: 'pass a key (--key-file, --key-env or --passphrase-file)',
  });
}

/** The pieces of `[start, end)`: piece n + 1 is read while the consumer holds piece n. */
async function* readPieces(image: ImageReader, start: bigint, end: bigint, piece: number): AsyncGenerator<Buffer> {
  const size = BigInt(piece);
  const readAt = (at: bigint): Promise<Buffer> | null => {
    if (at >= end) return null;
    const read = image.read(at, end - at < size ? Number(end - at) : piece);
    read.catch(() => {}); // awaited (and thrown) on its turn
    return read;
  };
  let at = start;
  let ahead = readAt(at);
  try {
    while (ahead) {
      const bytes = await ahead;
      at += BigInt(bytes.length);
      ahead = readAt(at);
      yield bytes;
    }
  } finally {
    // A consumer that stops early: let the read ahead finish before the image may be closed.
    await ahead?.catch(() => {});
  }
}
