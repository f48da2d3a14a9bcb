/**
 * Region bytes from the caller, cut into chunks (spec/FORMAT.md section 5) and sent through the
 * chunk encoder; encoded chunks are stored in chunk order, across regions, as they come back.
 */
import { availableParallelism } from 'node:os';
import type { RegionRecord } from '../format/index-table.js';
import type { NativeMmap } from '../native-mmap/index.js';
import { PIECE_MAX, type ChunkEncoder, type EncodedChunk, type EncodedPiece } from './chunk-encoder.js';
import { checkTableRoom, type ChunkRecords } from './_chunk-records.js';
import type { WriteQueue } from './_write-queue.js';
import { filePieceFailure, type DirectRange } from './_file-range.js';

/**
 * A run of zero bytes given by its length instead of its bytes: `{ zeros: 1 << 40 }` is a TiB
 * of zeros at this point of the region. Whole chunks it covers become ZERO chunk records (holes
 * in the sparse layout) with no bytes allocated, hashed or scanned; only the chunks at its edges
 * that it shares with bytes (or that end the region short) are built in memory, one chunk at
 * most at a time. The image is byte for byte the one the same zeros given as bytes make.
 * `zeros`: a non-negative safe integer.
 */
export interface ZeroRun {
  readonly zeros: number;
}

/**
 * A child image's bytes that equal its parent's at the same addresses (spec/FORMAT.md section
 * 8.3), given by their length instead of their bytes: what a caller that tracks writes knows
 * without reading or comparing (capture's pre-copy with `since`). Their chunks become IN_PARENT
 * records (ZERO where the parent's chunk is ZERO) with no bytes read, compared or decoded: the
 * caller vouches for them, as the spec requires of a writer. The run starts on a chunk boundary
 * of the region and covers whole chunks, or ends the region (its last chunk then as long as the
 * parent's); the parent must have a chunk at each of its chunks' addresses with the same plain
 * length (RangeError otherwise). Only with the writer's `parent`. `sameAsParent`: a
 * non-negative safe integer.
 */
export interface ParentRun {
  readonly sameAsParent: number;
}

/** One piece of streamed region data: bytes, a run of zeros given by its length, or of the parent's bytes. */
export type RegionPiece = Uint8Array | ZeroRun | ParentRun;

/**
 * For each of `count` chunks from `address` (whole chunks, the last `lastLength` long): 1 where
 * the parent's chunk is ZERO, 0 where the child's record is IN_PARENT.
 * @throws RangeError where the parent has no chunk there of that plain length
 */
export type ParentKinds = (address: bigint, count: number, lastLength: number) => Promise<Uint8Array>;

/**
 * Region bytes held or streamed by the caller: all at once, or pieces with a length not known
 * in advance, bytes or runs of zeros ({@link ZeroRun}). The writer keeps views of the bytes
 * (raw chunks are written from the caller's memory): a Uint8Array may be reused once addRegion
 * resolves, and the pieces of an iterable must not change until then (Node's streams never
 * reuse a chunk; a generator that refills one buffer must yield copies).
 */
export type RegionBytes = Uint8Array | AsyncIterable<RegionPiece> | Iterable<RegionPiece>;

/**
 * A chunk on its way through the encoder, a piece of `chunks` chunks (`plain` bytes) encoded in
 * one call, or a run of `zeros` chunks recorded after them: ZERO records, or IN_PARENT ones
 * (`inParent`), `plain` bytes in all.
 */
type Inflight =
  | { kind: 'chunk'; p: Promise<EncodedChunk>; rec: RegionRecord }
  | { kind: 'piece'; p: Promise<EncodedPiece>; chunks: number; plain: number; rec: RegionRecord }
  | { kind: 'zeros'; zeros: number; plain: number; inParent: boolean; rec: RegionRecord };

/**
 * Bytes of a piece for ChunkEncoder.encodePiece (whole chunks: one chunk when chunks are
 * larger): one native job, big enough that the main thread's share (a copy and a promise) is
 * small against compressing it, small enough that {@link PIECES_IN_FLIGHT} of them keep every
 * core busy within a 4 MiB read block.
 */
const PIECE_BYTES = Math.min(1024 * 1024, PIECE_MAX);
/**
 * Pieces encoding at once: one per core and one more queued, but at most one fewer running
 * than libuv's pool has threads (4 unless UV_THREADPOOL_SIZE says otherwise), whose last one
 * serves the image's writes. 3 on 2 cores, which measured best against 2 and 4.
 */
const PIECES_IN_FLIGHT = Math.min(availableParallelism(), Math.max(1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1)) + 1;

/** The chunks of one image being written that pass through its encoder. */
export class ChunkStream {
  /** Chunks submitted to the encoder and not yet stored, oldest first, across regions. */
  private readonly inflight: Inflight[] = [];
  /** Chunks in {@link inflight} (a zero run entry counts its chunks). */
  private inflightChunks = 0;
  /** Pieces in {@link inflight}. */
  private inflightPieces = 0;
  /** Set by {@link settle}: the image is being abandoned, so no file piece starts any more. */
  private abandoned = false;
  /** One chunk of zeros, never written to: the bytes of a zero run's partial chunks. */
  private zeroChunk: Uint8Array | null = null;

  constructor(
    private readonly encoder: ChunkEncoder,
    private readonly records: ChunkRecords,
    private readonly out: WriteQueue,
    private readonly chunkSize: number,
    /** The native addon's chunk scan, for raw images written by the node engine. */
    private readonly scanner: NativeMmap | null,
    /** A child image's parent lookups ({@link ParentRun}); null without a parent. */
    private readonly parentKinds: ParentKinds | null = null,
  ) {}

  /** Entries {@link inflight} holds before a new one waits for the oldest to be stored. */
  private get maxInflight(): number {
    return Math.max(4, this.encoder.parallelism * 16);
  }

  /** The number the next region's first chunk gets: chunks of earlier regions may still be encoding. */
  get nextChunk(): number {
    return this.records.count + this.inflightChunks;
  }

  /**
   * Cuts `data` into the chunks of region `rec`; keeps one full chunk back until it knows
   * whether it is the last (the `last` flag of the AEAD's associated data, section 7.3).
   * Without codec and cipher the chunks are encoded synchronously (a memcmp and a hash), with
   * no promise per chunk. `owned`: the pieces are the writer's own (a file range read into
   * fresh buffers), so their chunks may still be encoding when this resolves. `compare` false: a
   * child's chunks are stored without comparing them with its parent's (ChunkContext.changed).
   * @throws TypeError when `data` is not region bytes; RangeError beyond the chunk limit
   */
  async add(data: RegionBytes, rec: RegionRecord, regionNumber: number, owned: boolean, compare = true): Promise<void> {
    const cs = this.chunkSize;
    const out = this.out;
    const inflight = this.inflight;
    const maxInflight = this.maxInflight;
    const syncEncode = this.encoder.encodeSync?.bind(this.encoder);
    const encodePiece = this.encoder.encodePiece?.bind(this.encoder);
    const pieceChunks = Math.max(1, Math.floor(PIECE_BYTES / cs));
    let chunkIndex = 0;
    // Returns a promise only when the caller must wait (a full write window or in-flight queue).
    const submit = (plain: Uint8Array, last: boolean): Promise<void> | undefined => {
      if (syncEncode) {
        this.records.store(syncEncode(plain), rec);
        chunkIndex++;
        return out.full ? out.flush() : undefined;
      }
      const number = this.nextChunk;
      const address = rec.address + BigInt(chunkIndex) * BigInt(cs);
      const p = this.encoder.encode(plain, { chunkNumber: number, regionNumber, address, last, ...(!compare && { changed: true }) });
      p.catch(() => {}); // handled: awaited in order below, by the next region, or by finish()
      inflight.push({ kind: 'chunk', p, rec });
      this.inflightChunks++;
      chunkIndex++;
      if (inflight.length < maxInflight) return undefined;
      return this.storeOldest();
    };
    // Whole chunks in one call (ChunkEncoder.encodePiece), stored in order with the others.
    const submitPiece = (bytes: Uint8Array): Promise<void> | undefined => {
      const count = Math.ceil(bytes.length / cs);
      checkTableRoom(this.nextChunk, count, cs);
      // Never the region's last chunk: at least a byte stays pending for submit(..., true).
      const p = encodePiece!(bytes, { chunkNumber: this.nextChunk, regionNumber, address: rec.address + BigInt(chunkIndex) * BigInt(cs), last: false });
      chunkIndex += count;
      return this.queuePiece(p, count, bytes.length, rec);
    };
    // Records `count` zero chunks (IN_PARENT ones with `inParent`) of `plain` bytes: behind the
    // chunks still encoding, in chunk order.
    const zeroChunks = (count: number, plain = count * cs, inParent = false): Promise<void> | undefined => {
      chunkIndex += count;
      if (inflight.length === 0) {
        if (inParent) this.records.storeInParent(count, plain); else this.records.storeZeros(count, rec, plain);
        return out.full ? out.flush() : undefined;
      }
      checkTableRoom(this.nextChunk, count, cs);
      inflight.push({ kind: 'zeros', zeros: count, plain, inParent, rec });
      this.inflightChunks += count;
      return inflight.length < maxInflight ? undefined : this.storeOldest();
    };
    // Pieces not yet cut into chunks.
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const take = (n: number): Uint8Array => {
      const first = pending[0]!;
      if (first.length >= n) {
        const piece = first.subarray(0, n);
        if (first.length === n) pending.shift(); else pending[0] = first.subarray(n);
        pendingBytes -= n;
        return piece;
      }
      const joined = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        const p = pending[0]!;
        const k = Math.min(p.length, n - off);
        joined.set(p.subarray(0, k), off);
        off += k;
        if (k === p.length) pending.shift(); else pending[0] = p.subarray(k);
      }
      pendingBytes -= n;
      return joined;
    };
    const pieces: AsyncIterable<RegionPiece> | Iterable<RegionPiece> = data instanceof Uint8Array ? [data] : data;
    if (pieces === null || typeof pieces !== 'object' || (!(Symbol.asyncIterator in pieces) && !(Symbol.iterator in pieces))) {
      throw new TypeError(`expected region data as a Uint8Array, an (async) iterable of Uint8Array or a Readable, got ${typeof data}`);
    }
    // Set by a parent run that ended inside a chunk: it must have been the region's last bytes.
    let endedShort = -1n;
    for await (const piece of pieces as AsyncIterable<RegionPiece>) {
      if (endedShort >= 0n && (piece instanceof Uint8Array ? piece.length > 0 : pieceLength(piece) > 0)) {
        throw new RangeError(`expected a { sameAsParent } run that ends inside a chunk to end the region, got more bytes after byte ${endedShort} of it`);
      }
      if (!(piece instanceof Uint8Array) && typeof piece === 'object' && piece !== null && 'sameAsParent' in piece) {
        const n = pieceLength(piece);
        if (n === 0) continue;
        if (this.parentKinds === null) throw new TypeError('expected { sameAsParent } pieces only in a child image (the writer\'s option parent)');
        // A whole chunk held back in case it was the region's last: it is not.
        if (pendingBytes === cs) {
          const wait = submit(take(cs), false);
          if (wait) await wait;
        }
        if (pendingBytes !== 0) throw new RangeError(`expected a { sameAsParent } run to start on a chunk boundary (${cs} bytes) of the region, got one at byte ${rec.length}`);
        const tail = n % cs;
        const count = Math.ceil(n / cs);
        checkTableRoom(this.nextChunk, count, cs);
        const kinds = await this.parentKinds(rec.address + BigInt(chunkIndex) * BigInt(cs), count, tail === 0 ? cs : tail);
        rec.length += BigInt(n);
        for (let k = 0; k < count;) {
          let m = k + 1;
          while (m < count && kinds[m] === kinds[k]) m++;
          const wait = zeroChunks(m - k, (m - k) * cs - (m === count && tail !== 0 ? cs - tail : 0), kinds[k] === 0);
          if (wait) await wait;
          k = m;
        }
        if (tail !== 0) endedShort = rec.length;
        continue;
      }
      if (!(piece instanceof Uint8Array)) {
        let n = zeroRunLength(piece);
        if (n === 0) continue;
        rec.length += BigInt(n);
        // Here pendingBytes <= cs: the chunk being gathered takes zeros up to its end.
        if (pendingBytes > 0) {
          const fill = Math.min(n, cs - pendingBytes);
          if (fill > 0) {
            pending.push(this.zeros(fill));
            pendingBytes += fill;
            n -= fill;
          }
          if (n === 0) continue; // it may still be the region's last chunk
          const wait = submit(take(cs), false);
          if (wait) await wait;
        }
        const whole = Math.floor(n / cs);
        if (whole > 0) {
          const wait = zeroChunks(whole);
          if (wait) await wait;
        }
        // The rest starts the next chunk (a zero chunk's `last` flag is never sealed, section 7.3).
        const tail = n - whole * cs;
        if (tail > 0) {
          pending.push(this.zeros(tail));
          pendingBytes = tail;
        }
        continue;
      }
      if (piece.length === 0) continue;
      pending.push(piece);
      pendingBytes += piece.length;
      rec.length += BigInt(piece.length);
      while (pendingBytes > cs) {
        if (syncEncode && this.scanner && pending.length === 1) {
          // Raw image, whole chunks in one piece: one native scan for all of them, their runs
          // queued as views of the piece (the bytes and records of the chunk-by-chunk path).
          chunkIndex += this.records.storeScanned(this.scanner, take(Math.floor((pendingBytes - 1) / cs) * cs), rec);
          if (out.full) await out.flush();
          continue;
        }
        if (encodePiece && pending.length === 1) {
          const wait = submitPiece(take(Math.min(Math.floor((pendingBytes - 1) / cs), pieceChunks) * cs));
          if (wait) await wait;
          continue;
        }
        const wait = submit(take(cs), false);
        if (wait) await wait;
      }
    }
    if (pendingBytes > 0) await submit(take(pendingBytes), true);
    pending = [];
    // Only a raw image pads its regions, and its chunks never wait in `inflight`: padding now
    // comes after every chunk of the region.
    this.records.endRegion(rec, chunkIndex);
    // The writer's own pieces (a file range read into fresh buffers) need not be written
    // before this resolves: the next region's chunks join the same queue behind these, so the
    // encoder's pool never drains at a region boundary (200 regions cost ~0.5 s of idle pool
    // per 512 MiB before). Chunks stored raw from the caller's memory must be written first.
    if (owned && !syncEncode) return;
    await this.drain();
    // Raw chunks are views of the caller's bytes: every write that reads them ends before
    // addRegion resolves, so the caller may reuse its buffers afterwards.
    await out.flush();
    await out.drain();
  }

  /**
   * The chunks of a file range `d` into region `rec`, read and encoded by the encoder's
   * encodeFilePiece in pieces (no read, copy or promise per chunk on this thread). As with
   * {@link add} of the writer's own pieces, the last pieces may still be encoding when this
   * resolves; but every read of the file is done by then (the caller may change or close it),
   * and `d.onRead` has been told of each, in order. On failure, the writer's abort settles the
   * pieces still reading ({@link settle}) before it closes the file.
   * @throws CrimgError IO_ERROR when a read fails or the file ends early
   */
  async addFile(d: DirectRange, rec: RegionRecord, regionNumber: number): Promise<void> {
    const cs = this.chunkSize;
    const span = Math.max(1, Math.floor(PIECE_BYTES / cs)) * cs;
    // Every read, in order, each followed by its progress call: settles once all are done,
    // rejects with the first failure.
    let reading: Promise<void> = Promise.resolve();
    let chunks = 0;
    for (let at = 0; at < d.total; at += span) {
      // abort() while this runs: its files are about to close, so no read may start.
      if (this.abandoned) throw new TypeError('expected an open writer, got one that was aborted while adding a region');
      const n = Math.min(span, d.total - at);
      const count = Math.ceil(n / cs);
      checkTableRoom(this.nextChunk, count, cs);
      const position = d.start + at;
      let readDone!: () => void;
      const read = new Promise<void>((resolve) => { readDone = resolve; });
      const at0 = { chunkNumber: this.nextChunk, regionNumber, address: rec.address + BigInt(chunks) * BigInt(cs), last: at + n === d.total };
      const p = this.encoder.encodeFilePiece!(d.fd, position, n, readDone, at0).catch((e: unknown) => { throw filePieceFailure(e, d.name, position + n); });
      // A piece that settles without calling readDone failed: its read, or what followed it.
      const settled = Promise.race([read, p.then(() => {})]);
      settled.catch(() => {});
      const readBytes = at + n;
      reading = reading.then(() => settled).then(d.onRead && (() => d.onRead!(readBytes)));
      reading.catch(() => {});
      chunks += count;
      rec.length += BigInt(n);
      await this.queuePiece(p, count, n, rec);
    }
    this.records.endRegion(rec, chunks);
    await reading;
  }

  /**
   * Queues piece `p` (`chunks` chunks, `plain` bytes of `rec`) behind the chunks in flight; a
   * promise when the caller must wait: {@link PIECES_IN_FLIGHT} pieces, or a full queue.
   */
  private queuePiece(p: Promise<EncodedPiece>, chunks: number, plain: number, rec: RegionRecord): Promise<void> | undefined {
    p.catch(() => {}); // handled as a chunk's is: awaited in order by storeOldest
    this.inflight.push({ kind: 'piece', p, chunks, plain, rec });
    this.inflightChunks += chunks;
    this.inflightPieces++;
    const full = (): boolean => this.inflightPieces >= PIECES_IN_FLIGHT || this.inflight.length >= this.maxInflight;
    if (!full()) return undefined;
    return (async () => {
      while (full()) await this.storeOldest();
    })();
  }

  /** Waits until every chunk and piece in flight has settled, storing none (an image being abandoned). */
  async settle(): Promise<void> {
    this.abandoned = true;
    await Promise.allSettled(this.inflight.map((e) => (e.kind === 'zeros' ? null : e.p)));
  }

  /** Stores every chunk still encoding, in order (earlier regions' first). */
  async drain(): Promise<void> {
    while (this.inflight.length) await this.storeOldest();
  }

  /** Stores the oldest entry of {@link inflight} once it is encoded (a zero run at once). */
  private async storeOldest(): Promise<void> {
    const e = this.inflight[0]!;
    if (e.kind === 'zeros') {
      this.inflight.shift();
      this.inflightChunks -= e.zeros;
      if (e.inParent) this.records.storeInParent(e.zeros, e.plain); else this.records.storeZeros(e.zeros, e.rec, e.plain);
    } else if (e.kind === 'piece') {
      const piece = await e.p;
      this.inflight.shift();
      this.inflightChunks -= e.chunks;
      this.inflightPieces--;
      this.records.storePiece(piece, e.rec, e.plain);
    } else {
      const c = await e.p;
      this.inflight.shift();
      this.inflightChunks--;
      this.records.store(c, e.rec);
    }
    if (this.out.full) await this.out.flush();
  }

  /** `n` zero bytes (at most a chunk), views of one shared chunk of zeros that nothing writes to. */
  private zeros(n: number): Uint8Array {
    this.zeroChunk ??= new Uint8Array(this.chunkSize);
    return this.zeroChunk.subarray(0, n);
  }
}

/** The length of a {@link ZeroRun} or {@link ParentRun} piece (checked). */
function pieceLength(piece: unknown): number {
  if (typeof piece === 'object' && piece !== null && 'sameAsParent' in piece) {
    const n = (piece as ParentRun).sameAsParent;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RangeError(`expected a { sameAsParent } run of a non-negative safe integer of bytes, got ${String(n)}`);
    return n;
  }
  return zeroRunLength(piece);
}

/**
 * The length of a {@link ZeroRun} piece.
 * @throws TypeError when `piece` is neither bytes nor a zero run; RangeError on a bad length
 */
function zeroRunLength(piece: unknown): number {
  const n = typeof piece === 'object' && piece !== null && 'zeros' in piece ? (piece as ZeroRun).zeros : undefined;
  if (n === undefined) throw new TypeError(`expected region data pieces as Uint8Array, { zeros: number } or { sameAsParent: number }, got ${piece === null ? 'null' : typeof piece}`);
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RangeError(`expected a zero run of a non-negative safe integer of bytes, got ${String(n)}`);
  return n;
}
