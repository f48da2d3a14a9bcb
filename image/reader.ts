/**
 * The random-access reader (spec/FORMAT.md sections 3, 4 and 8): trusts the trailing index as
 * the single authority, reads only the footer, header, validation block and region section to
 * open, and the chunk table on the first data access.
 */
import { xxh64, xxh64Chunks } from '../codec/checksum.js';
import {
  CHUNK_RECORD_SIZE, CHUNK_ZERO, FOOTER_SIZE, LIMITS, OPTIONAL_MAPPABLE, OPTIONAL_SPARSE,
  REGION_RECORD_SIZE, TAG_SIZE, alignUp, cipherName, codecName,
} from '../format/constants.js';
import { decodeHeader, peekHeaderSize, type Header } from '../format/header.js';
import { decodeValidation, type Validation } from '../format/validation.js';
import { decodeFooter, type Footer } from '../format/footer.js';
import { ChunkTable, decodeRegionSection, type ChunkRecord, type Region } from '../format/index-table.js';
import { hex, toHex } from '../format/bytes.js';
import { CrimgError, isCrimgError, type CrimgErrorCode } from '../format/errors.js';
import { toBigAddress } from '../format/address.js';
import { toSource, type RandomAccessSource, type SourceInput } from './source.js';
import { createChunkDecoder, type ChunkDecoder, type DecodeContext, type DecodedRun } from './chunk-decoder.js';
import type { KeyInput } from './keying.js';
import type { HostDescription } from './host.js';
import { featureName } from './host.js';

export interface OpenOptions {
  /** Master key or passphrase for an encrypted image. */
  key?: KeyInput;
  /** 'node' (default) or 'portable' engines for decoding. */
  engine?: 'node' | 'portable';
  /** Reader-side caps on scrypt work (section 7.1). */
  scryptCaps?: { maxMemory?: number; maxP?: number };
  /** Worker threads for bulk decoding; default none on 2 cores or fewer (measured: the copies cost more than they save), else cores - 1. */
  workers?: number;
}

/** One problem found by {@link ImageReader.verify}. */
export interface VerifyError {
  code: CrimgErrorCode;
  message: string;
  region?: number;
  chunk?: number;
  address?: bigint;
  length?: number;
  offset?: number;
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

/** The result of {@link ImageReader.checkCompatibility}. */
export interface CompatibilityReport {
  compatible: boolean;
  architecture?: { image: string; host: string };
  pageSize?: { image: number; host: number };
  labels: { key: string; image: string; host: string | null }[];
  bitmaps: { key: string; missing: number[]; names: string[] }[];
}

const MAX_READ_BATCH = 16 * 1024 * 1024;

/**
 * Opens an image for reading. Reads the footer, header, validation block and region section only.
 * The package's `openImage` (restore/image.ts) returns the same reader with `restore()` added.
 * @param input a path, an fd, bytes, or a {@link RandomAccessSource}.
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
    return make(await ImageReader.openParts(source, owned, options));
  } catch (e) {
    if (owned) await source.close();
    throw e;
  }
}

/** What opening an image reads and checks; an {@link ImageReader} is built from it. */
export interface ImageParts {
  readonly source: RandomAccessSource;
  /** True when the reader opened the source itself (and closes it). */
  readonly owned: boolean;
  readonly header: Header;
  readonly headerBytes: Uint8Array;
  readonly validationBytes: Uint8Array;
  readonly validation: Validation;
  readonly footer: Footer;
  readonly regions: Region[] | null;
  readonly decoder: ChunkDecoder | null;
  readonly dataStart: number;
}

/** An open image. Methods are safe to call concurrently. */
export class ImageReader {
  private chunkTablePromise: Promise<ChunkTable> | null = null;
  readonly source: RandomAccessSource;
  private readonly owned: boolean;
  readonly header: Header;
  /** Raw header and validation bytes (they feed the AEAD's `H`). */
  readonly headerBytes: Uint8Array;
  readonly validationBytes: Uint8Array;
  readonly validation: Validation;
  readonly footer: Footer;
  private readonly regionList: Region[] | null;
  private readonly decoder: ChunkDecoder | null;
  readonly dataStart: number;

  /** Built by {@link openReader} or {@link openWith} from what they read. */
  constructor(parts: ImageParts) {
    this.source = parts.source;
    this.owned = parts.owned;
    this.header = parts.header;
    this.headerBytes = parts.headerBytes;
    this.validationBytes = parts.validationBytes;
    this.validation = parts.validation;
    this.footer = parts.footer;
    this.regionList = parts.regions;
    this.decoder = parts.decoder;
    this.dataStart = parts.dataStart;
  }

  /** Reads and checks what an open image needs (sections 3, 4, 8.2, 8.1). */
  static async openParts(source: RandomAccessSource, owned: boolean, options: OpenOptions): Promise<ImageParts> {
    const size = source.size;
    const first = await source.read(0, Math.min(16, size));
    if (size < 16) {
      peekHeaderSize(padTo16(first)); // bad magic beats truncation
      throw new CrimgError('TRUNCATED', `the file is ${size} bytes, shorter than a header`, { offset: size });
    }
    const headerSize = peekHeaderSize(first);
    if (size < headerSize) throw new CrimgError('TRUNCATED', `the file is ${size} bytes, shorter than its ${headerSize}-byte header`, { offset: size });
    const headerBytes = await source.read(0, headerSize);
    const header = decodeHeader(headerBytes, xxh64);
    const vStart = headerSize;
    const vEnd = vStart + header.validationSize;
    if (vEnd + FOOTER_SIZE > size) {
      throw new CrimgError('TRUNCATED', `the file is ${size} bytes; its validation block alone ends at ${vEnd}`, { offset: size, hint: 'the image is incomplete; copy it again' });
    }
    const validationBytes = await source.read(vStart, header.validationSize);
    const validation = decodeValidation(validationBytes, vStart, xxh64);
    const footerBase = size - FOOTER_SIZE;
    const footerBytes = await source.read(footerBase, FOOTER_SIZE);
    let footer: Footer;
    try {
      footer = decodeFooter(footerBytes, footerBase, xxh64);
    } catch (e) {
      if (isCrimgError(e, 'BAD_MAGIC')) {
        // A valid header with no footer: the file was cut short (or is still being written).
        throw new CrimgError('TRUNCATED', 'the footer is missing: the image is truncated or was not finished', {
          offset: size, hint: 'an interrupted write leaves NAME.tmp, never NAME; copy the image again completely',
        });
      }
      throw e;
    }
    const dataStart = alignUp(headerSize + header.validationSize, header.pageSize);
    checkFooter(footer, header, size, dataStart);
    const decoder = header.cipher !== 0 || header.codec !== 0
      ? await createChunkDecoder({ header, headerBytes, validationBytes, key: options.key, engine: options.engine ?? 'node', scryptCaps: options.scryptCaps, workers: options.workers })
      : null;
    let regions: Region[] | null = null;
    if (header.cipher === 0 || decoder?.hasKey) {
      const off = Number(footer.regionSectionOffset);
      const len = Number(footer.regionSectionLength);
      const stored = await source.read(off, len);
      if (xxh64(stored) !== footer.regionSectionChecksum) {
        throw new CrimgError('CORRUPT_INDEX', 'region section checksum mismatch', { offset: off, hint: 'the index is damaged; restore the image from a good copy' });
      }
      const plain = decoder ? decoder.openIndex(2, BigInt(footer.regionCount), stored, off) : stored;
      regions = decodeRegionSection(plain, {
        regionCount: footer.regionCount, stringTableLength: footer.stringTableLength,
        chunkCount: Number(footer.chunkCount), chunkSize: header.chunkSize, pageSize: header.pageSize, base: off,
      });
    }
    return { source, owned, header, headerBytes, validationBytes, validation, footer, regions, decoder, dataStart };
  }

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
  get indexLocked(): boolean { return this.regionList === null; }
  get fileSize(): number { return this.source.size; }
  get chunkCount(): number { return Number(this.footer.chunkCount); }

  /**
   * The region table, sorted by address.
   * @throws CrimgError KEY_REQUIRED when the image is encrypted and no key was given.
   */
  get regions(): readonly Region[] {
    if (this.regionList === null) throw keyRequired();
    return this.regionList;
  }

  /** The chunk table, loaded and checked on first use. */
  chunkTable(): Promise<ChunkTable> {
    if (this.regionList === null) return Promise.reject(keyRequired());
    this.chunkTablePromise ??= this.loadChunkTable();
    return this.chunkTablePromise;
  }

  private async loadChunkTable(): Promise<ChunkTable> {
    const off = Number(this.footer.chunkTableOffset);
    const stored = await this.source.read(off, Number(this.footer.chunkTableLength));
    if (xxh64(stored) !== this.footer.chunkTableChecksum) {
      throw new CrimgError('CORRUPT_INDEX', 'chunk table checksum mismatch', { offset: off, hint: 'the index is damaged; restore the image from a good copy' });
    }
    const plain = this.decoder ? this.decoder.openIndex(1, this.footer.chunkCount, stored, off) : stored;
    return new ChunkTable(plain, {
      dataStart: this.dataStart, dataEnd: off, pageSize: this.header.pageSize, mappable: this.mappable,
      hasCodec: this.header.codec !== 0, hasCipher: this.header.cipher !== 0, base: off,
    });
  }

  /** The region holding `address`, or undefined (binary search). Gaps count as regions. */
  regionAt(address: bigint | number): Region | undefined {
    const a = toBigAddress(address);
    const rs = this.regions;
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
    const start = toBigAddress(address);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`expected a non-negative integer length, got ${length}`);
    if (length > 2 ** 31) throw new RangeError(`expected a read of at most 2 GiB, got ${length}; use readStream or several reads`);
    // Every byte is written by readInto (decoded bytes or zero fill), so no zeroing pass.
    const out = Buffer.allocUnsafe(length);
    await this.readInto(start, out);
    return out;
  }

  /**
   * Fills `out` with the bytes at `address` (see {@link read}). With `zeroFilled`, the caller
   * promises `out` already holds zeros (fresh anonymous memory): zero chunks are not written,
   * so their pages are never touched.
   */
  async readInto(address: bigint, out: Uint8Array, options: { zeroFilled?: boolean } = {}): Promise<void> {
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
    for (const p of plan) {
      if (p.rec.flags & CHUNK_ZERO) {
        if (!options.zeroFilled) out.fill(0, p.dst, p.dst + (p.to - p.from));
      } else {
        stored.push(p);
      }
    }
    const runs: { items: typeof plan; offset: number; length: number }[] = [];
    let i = 0;
    while (i < stored.length) {
      const p = stored[i]!;
      let k = i + 1;
      let runEnd = p.rec.offset + p.rec.storedLength;
      while (k < stored.length) {
        const q = stored[k]!.rec;
        if (q.offset !== runEnd || runEnd + q.storedLength - p.rec.offset > MAX_READ_BATCH) break;
        runEnd += q.storedLength;
        k++;
      }
      runs.push({ items: stored.slice(i, k), offset: p.rec.offset, length: runEnd - p.rec.offset });
      i = k;
    }
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
  }

  /**
   * Decodes chunks stored back to back in `bytes` (read from file offset `base`): on the
   * decoder's workers for encoded or encrypted images, checksums inline for plain ones.
   */
  async decodeRun(items: readonly { region: Region; j: number; number: number; rec: ChunkRecord }[], bytes: Uint8Array, base: number): Promise<DecodedRun> {
    // A plain Uint8Array view: subarrays of a Buffer are Buffers, several times dearer to make.
    const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const slice = (rec: ChunkRecord): Uint8Array => u8.subarray(rec.offset - base, rec.offset - base + rec.storedLength);
    if (!this.decoder) {
      // Raw chunks: checksums inline, no promise per chunk (thousands per run at 4 KiB); one
      // native call when the run is whole chunks back to back (a region's last may be short).
      const cs = this.header.chunkSize;
      let uniform = xxh64Chunks !== null && items.length > 1;
      for (let k = 0; uniform && k < items.length; k++) {
        const rec = items[k]!.rec;
        uniform = rec.offset - base === k * cs && (rec.storedLength === cs || k === items.length - 1);
      }
      if (uniform) {
        const sums = new BigUint64Array(items.length);
        xxh64Chunks!(u8.subarray(0, (items.length - 1) * cs + items[items.length - 1]!.rec.storedLength), cs, sums);
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

  /** Decodes one chunk's stored bytes, checking its checksum (and tag). */
  async decodeChunk(region: Region, j: number, number: number, rec: ChunkRecord, stored: Uint8Array): Promise<Uint8Array> {
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
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    const errors: VerifyError[] = [];
    const maxErrors = options.maxErrors ?? 1000;
    const push = (e: VerifyError): void => { if (errors.length < maxErrors) errors.push(e); };
    const table = await this.chunkTable();
    const total = table.count;
    let checked = 0;
    let bytes = 0;
    let lastEnd = this.dataStart;
    // Bytes no structure covers (alignment padding) must be zero: then every byte of the
    // file is checked by something, and verify notices any change.
    const padding: [number, number][] = [[this.header.headerSize + this.header.validationSize, this.dataStart]];
    const regions = this.regions;
    const batches: { r: Region; items: { j: number; number: number; rec: ChunkRecord }[]; offset: number; length: number }[] = [];
    const sparse = this.sparse;
    const cs = this.header.chunkSize;
    let spanEnd = this.dataStart; // SPARSE: where the previous region's span ends
    for (const r of regions) {
      let stored = 0n;
      let zeros = 0;
      let span = -1; // SPARSE: the file offset of this region's chunk 0
      // Collect this region's valid records, then read them in coalesced batches.
      const items: { j: number; number: number; rec: ChunkRecord }[] = [];
      for (let j = 0; j < r.chunkCount; j++) {
        const number = r.firstChunk + j;
        let rec: ChunkRecord;
        try {
          rec = table.get(number, this.plainLength(r, j));
        } catch (e) {
          push(toVerifyError(e, r, number));
          continue;
        }
        if (rec.flags & CHUNK_ZERO) { zeros++; checked++; continue; }
        stored += BigInt(rec.storedLength);
        if (sparse) {
          // Section 5.2, SPARSE: chunk j at span + j * chunk size, spans in order, inside the data area.
          const at = rec.offset - j * cs;
          if (span < 0) {
            span = at;
            const end = at + Math.ceil(Number(r.length) / this.header.pageSize) * this.header.pageSize;
            if (at < spanEnd || end > Number(this.footer.chunkTableOffset)) {
              push({ code: 'CORRUPT_INDEX', message: `region ${r.index}'s span [${at}, ${end}) of a SPARSE image overlaps the bytes before it (which end at ${spanEnd}) or the index`, region: r.index, chunk: number, offset: rec.offset });
            }
            spanEnd = Math.max(spanEnd, end);
          } else if (at !== span) {
            push({ code: 'CORRUPT_INDEX', message: `chunk ${number} at offset ${rec.offset} is not at its place ${span + j * cs} in region ${r.index}'s span of a SPARSE image`, region: r.index, chunk: number, offset: rec.offset });
          }
        }
        if (rec.offset < lastEnd) {
          push({ code: 'CORRUPT_INDEX', message: `chunk ${number} at offset ${rec.offset} overlaps the bytes before it (which end at ${lastEnd})`, region: r.index, chunk: number, offset: rec.offset });
        } else if (rec.offset > lastEnd) {
          padding.push([lastEnd, rec.offset]);
        }
        lastEnd = Math.max(lastEnd, rec.offset + rec.storedLength);
        items.push({ j, number, rec });
      }
      if (stored !== r.storedBytes) push({ code: 'CORRUPT_INDEX', message: `region ${r.index} records ${r.storedBytes} stored bytes, its chunks hold ${stored}`, region: r.index });
      if (zeros !== r.zeroChunks) push({ code: 'CORRUPT_INDEX', message: `region ${r.index} records ${r.zeroChunks} zero chunks, its chunks have ${zeros}`, region: r.index });
      let i = 0;
      while (i < items.length) {
        const first = items[i]!.rec;
        let k = i + 1;
        let end = first.offset + first.storedLength;
        while (k < items.length && items[k]!.rec.offset === end && end + items[k]!.rec.storedLength - first.offset <= MAX_READ_BATCH) {
          end += items[k]!.rec.storedLength;
          k++;
        }
        batches.push({ r, items: items.slice(i, k), offset: first.offset, length: end - first.offset });
        i = k;
      }
    }
    // Read one batch ahead of checking the current one, so I/O and hashing overlap: into two
    // buffers used in turn when the source can fill a buffer (a fresh one per batch made the
    // garbage collector a quarter of verify's time), else by read().
    let largest = 0;
    for (const b of batches) if (b.length > largest) largest = b.length; // no spread: batches may number millions
    const spare = this.source.readInto ? [0, 1].map(() => new Uint8Array(largest)) : null;
    const readBatch = (n: number): Promise<Uint8Array | { error: unknown }> => {
      if (n >= batches.length) return Promise.resolve(new Uint8Array(0));
      const { offset, length } = batches[n]!;
      const read = spare
        ? (async (): Promise<Uint8Array> => { const into = spare[n % 2]!.subarray(0, length); await this.source.readInto!(into, offset); return into; })()
        : this.source.read(offset, length);
      return read.catch((error: unknown) => ({ error }));
    };
    let ahead = readBatch(0);
    for (let n = 0; n < batches.length; n++) {
      const { r, items, offset } = batches[n]!;
      const got = await ahead;
      ahead = readBatch(n + 1);
      if (!(got instanceof Uint8Array)) {
        for (const it of items) push(toVerifyError(got.error, r, it.number, it.rec, this));
      } else {
        const run = items.map((it) => ({ region: r, j: it.j, number: it.number, rec: it.rec }));
        const ok = await this.decodeRun(run, got, offset).then((d) => { d.release(); return true; }, () => false);
        if (ok) {
          for (const it of items) bytes += this.plainLength(r, it.j);
        } else {
          // Something in the batch is bad: check chunk by chunk to list each bad one.
          for (const it of items) {
            try {
              await this.decodeChunk(r, it.j, it.number, it.rec, got.subarray(it.rec.offset - offset, it.rec.offset - offset + it.rec.storedLength));
              bytes += this.plainLength(r, it.j);
            } catch (e) {
              push(toVerifyError(e, r, it.number, it.rec, this));
            }
          }
        }
      }
      checked += items.length;
      options.onProgress?.(checked, total);
    }
    padding.push([lastEnd, Number(this.footer.chunkTableOffset)]);
    for (const [from, to] of padding) {
      for (let at = from; at < to; at += MAX_READ_BATCH) {
        const n = Math.min(MAX_READ_BATCH, to - at);
        const b = await this.source.read(at, n);
        const bad = b.findIndex((x) => x !== 0);
        if (bad >= 0) {
          push({ code: 'CORRUPT_INDEX', message: `byte at offset ${at + bad} lies outside every chunk and is not zero padding`, offset: at + bad });
          break;
        }
      }
    }
    return { ok: errors.length === 0, chunksChecked: checked, bytesChecked: bytes, errors };
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
      const hostBits = (Object.hasOwn(host.bitmaps, key) ? host.bitmaps[key] : undefined) ?? new Uint8Array(0);
      const missing: number[] = [];
      for (let i = 0; i < bits.length * 8; i++) {
        const want = (bits[i >> 3]! >> (i & 7)) & 1;
        const have = ((hostBits[i >> 3] ?? 0) >> (i & 7)) & 1;
        if (want && !have) missing.push(i);
      }
      if (missing.length) {
        report.bitmaps.push({ key, missing, names: missing.map((i) => (key === 'cpu.features' ? featureName(i) : `bit ${i}`)) });
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
    for (const b of r.bitmaps) parts.push(`${b.key} lacks ${b.names.join(' ')}`);
    throw new CrimgError('INCOMPATIBLE', `the host does not meet the image's restore constraints: ${parts.join('; ')}`, {
      hint: 'restore on a host like the one that made the image',
    });
  }

  /** Releases the source (when openImage opened it) and the decoder's workers. */
  async close(): Promise<void> {
    await this.decoder?.close();
    if (this.owned) await this.source.close();
  }
}

function keyRequired(): CrimgError {
  return new CrimgError('KEY_REQUIRED', 'the image index is encrypted and no key was given', {
    hint: 'pass a key (--key-file, --key-env or --passphrase-file)',
  });
}

function padTo16(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out.set(b);
  return out;
}

function toVerifyError(e: unknown, r: Region, chunk: number, rec?: ChunkRecord, image?: ImageReader): VerifyError {
  if (!isCrimgError(e)) throw e;
  const err: VerifyError = { code: e.code, message: e.message, region: r.index, chunk };
  if (image) {
    const j = chunk - r.firstChunk;
    err.address = r.address + BigInt(j) * BigInt(image.chunkSize);
    err.length = image.plainLength(r, j);
  }
  if (rec) err.offset = rec.offset;
  else if (e.offset !== undefined) err.offset = e.offset;
  return err;
}

/** Section 8.2: the footer's geometry against the file length and limits. */
function checkFooter(f: Footer, h: Header, size: number, dataStart: number): void {
  const footerBase = size - FOOTER_SIZE;
  const corrupt = (why: string, at: number): never => {
    throw new CrimgError('CORRUPT_INDEX', `footer ${why}`, { offset: footerBase + at, hint: 'the index is damaged; restore the image from a good copy' });
  };
  if (toHex(f.imageId) !== toHex(h.imageId)) corrupt('image id differs from the header\'s: the file mixes two images', 0);
  const t = BigInt(h.cipher !== 0 ? TAG_SIZE : 0);
  const end = BigInt(footerBase);
  // Counts first: a hostile count is a limit problem, whatever the lengths beside it say.
  if (f.regionCount > LIMITS.maxRegions) {
    throw new CrimgError('LIMIT_EXCEEDED', `footer claims ${f.regionCount} regions (limit ${LIMITS.maxRegions})`, { offset: footerBase + 48 });
  }
  if (f.stringTableLength > LIMITS.maxStringTable) {
    throw new CrimgError('LIMIT_EXCEEDED', `footer claims a ${f.stringTableLength}-byte string table (limit ${LIMITS.maxStringTable})`, { offset: footerBase + 52 });
  }
  if (f.chunkCount * BigInt(CHUNK_RECORD_SIZE) > BigInt(size)) {
    throw new CrimgError('LIMIT_EXCEEDED', `footer claims ${f.chunkCount} chunks, more records than the ${size}-byte file can hold`, { offset: footerBase + 24 });
  }
  if (f.chunkTableOffset > end || f.chunkTableOffset + f.chunkTableLength > end || f.regionSectionOffset + f.regionSectionLength > end) {
    throw new CrimgError('TRUNCATED', `the index reaches past the footer at ${footerBase}: the file is shorter than its index says`, { offset: footerBase + 16 });
  }
  if (f.chunkTableOffset < BigInt(dataStart) || f.chunkTableOffset % 8n !== 0n) corrupt(`chunk table offset ${f.chunkTableOffset} is before the data area or unaligned`, 16);
  if (f.chunkTableLength !== f.chunkCount * BigInt(CHUNK_RECORD_SIZE) + t) corrupt(`chunk table length ${f.chunkTableLength} does not fit ${f.chunkCount} records`, 32);
  if (f.regionSectionOffset !== f.chunkTableOffset + f.chunkTableLength) corrupt('region section does not follow the chunk table', 40);
  if (f.regionSectionLength !== BigInt(f.regionCount * REGION_RECORD_SIZE + f.stringTableLength) + t) corrupt(`region section length ${f.regionSectionLength} does not fit ${f.regionCount} regions`, 56);
  if (f.regionSectionOffset + f.regionSectionLength !== end) corrupt('region section does not end at the footer', 56);
  if (f.regionCount === 0) corrupt('lists no regions', 48);
}
