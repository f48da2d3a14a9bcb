/**
 * Region bytes from the caller, cut into chunks (spec/FORMAT.md section 5) and sent through the
 * chunk encoder; encoded chunks are stored in chunk order, across regions, as they come back.
 */
import type { RegionRecord } from '../format/index-table.js';
import type { NativeMmap } from '../native-mmap/index.js';
import type { ChunkEncoder, EncodedChunk } from './chunk-encoder.js';
import type { ChunkRecords } from './_chunk-records.js';
import type { WriteQueue } from './_write-queue.js';

/**
 * Region bytes held or streamed by the caller: all at once, or pieces with a length not known
 * in advance. The writer keeps views of them (raw chunks are written from the caller's
 * memory): a Uint8Array may be reused once addRegion resolves, and the pieces of an iterable
 * must not change until then (Node's streams never reuse a chunk; a generator that refills one
 * buffer must yield copies).
 */
export type RegionBytes = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** The chunks of one image being written that pass through its encoder. */
export class ChunkStream {
  /** Chunks submitted to the encoder and not yet stored, oldest first, across regions. */
  private readonly inflight: { p: Promise<EncodedChunk>; rec: RegionRecord }[] = [];

  constructor(
    private readonly encoder: ChunkEncoder,
    private readonly records: ChunkRecords,
    private readonly out: WriteQueue,
    private readonly chunkSize: number,
    /** The native addon's chunk scan, for raw images written by the node engine. */
    private readonly scanner: NativeMmap | null,
  ) {}

  /** The number the next region's first chunk gets: chunks of earlier regions may still be encoding. */
  get nextChunk(): number {
    return this.records.count + this.inflight.length;
  }

  /**
   * Cuts `data` into the chunks of region `rec`; keeps one full chunk back until it knows
   * whether it is the last (the `last` flag of the AEAD's associated data, section 7.3).
   * Without codec and cipher the chunks are encoded synchronously (a memcmp and a hash), with
   * no promise per chunk. `owned`: the pieces are the writer's own (a file range read into
   * fresh buffers), so their chunks may still be encoding when this resolves.
   * @throws TypeError when `data` is not region bytes; RangeError beyond the chunk limit
   */
  async add(data: RegionBytes, rec: RegionRecord, regionNumber: number, owned: boolean): Promise<void> {
    const cs = this.chunkSize;
    const out = this.out;
    const inflight = this.inflight;
    const maxInflight = Math.max(4, this.encoder.parallelism * 16);
    const syncEncode = this.encoder.encodeSync?.bind(this.encoder);
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
      const p = this.encoder.encode(plain, { chunkNumber: number, regionNumber, address, last });
      p.catch(() => {}); // handled: awaited in order below, by the next region, or by finish()
      inflight.push({ p, rec });
      chunkIndex++;
      if (inflight.length < maxInflight) return undefined;
      const oldest = inflight.shift()!;
      return oldest.p.then((c) => {
        this.records.store(c, oldest.rec);
        return out.full ? out.flush() : undefined;
      });
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
          chunkIndex += this.records.storeScanned(this.scanner, take(Math.floor((pendingBytes - 1) / cs) * cs), rec);
          if (out.full) await out.flush();
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

  /** Stores every chunk still encoding, in order (earlier regions' first). */
  async drain(): Promise<void> {
    while (this.inflight.length) {
      const e = this.inflight.shift()!;
      this.records.store(await e.p, e.rec);
      if (this.out.full) await this.out.flush();
    }
  }
}
