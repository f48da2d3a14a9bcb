/**
 * The native batch decoder's JS side (native-mmap decodeBatch, src/batch_decode.h): one call
 * reads and decodes a whole set of chunks on native threads, every core by default, straight into
 * placed memory (copy-mode restore, restore/_copy.ts) or into scratch that is dropped (verify,
 * verify.ts). No JavaScript runs per chunk while it works.
 *
 * A failing chunk comes back as its position, code and a short message; the caller turns it
 * into the same CrimgError the JavaScript path gives ({@link jsErrorOf}: that one chunk decoded
 * again by the reader), so the two engines report alike.
 */
import { CHUNK_ENCRYPTED, REQUIRED_PARENT } from '../format/constants.js';
import { CrimgError, isCrimgError, type CrimgErrorCode } from '../format/errors.js';
import type { ChunkRecord, Region } from '../format/index-table.js';
import { hex } from '../format/bytes.js';
import { decodeBatch, nativeAddon, type DecodeBatchFailure, type Reservation } from '../native-mmap/index.js';
import type { ImageReader } from './reader.js';
import { RemoteSource } from './remote/source.js';
import { decodeFetched } from './remote/_batch.js';

/** Words per chunk in the items array (batch_decode_js.cc). */
const WORDS = 8;
/** Destination offset meaning "decode and drop". */
const DROP = 0xffffffffffffffffn;

/** The codecs the native decoder knows (chunk_decode.h): none, deflate, zstd. */
const NATIVE_CODECS = new Set([0, 1, 2]);

/**
 * Why the native batch decoder cannot take `image`, or null when it can: it needs the addon,
 * a local file (an fd) or a remote image (fetched in windows, image/remote/_batch.ts), a codec
 * it knows, the key of an encrypted image, and no parent (a child's IN_PARENT chunks live in
 * another file).
 */
export function nativeBatchRefusal(image: NativeBatchImage): string | null {
  const native = nativeAddon();
  if (native === null || typeof (native as { decodeBatch?: unknown }).decodeBatch !== 'function') return 'the native addon is unavailable';
  if (process.env.CRIMG_NATIVE_DECODE === '0') return 'disabled by CRIMG_NATIVE_DECODE=0';
  if (image.source.fd === undefined && !(image.source instanceof RemoteSource)) return `the source ${image.source.name} is not a local file`;
  const h = image.header;
  if (!NATIVE_CODECS.has(h.codec)) return `codec ${h.codec} is unknown to the native decoder`;
  if ((h.requiredFeatures & REQUIRED_PARENT) !== 0n) return 'the image has a parent';
  if (h.cipher !== 0 && image.chunkKeys() === null) return 'the image is encrypted and no key was given';
  return null;
}

/** What the native batch decoder needs of an open image (ImageReader has it). */
export interface NativeBatchImage {
  readonly source: ImageReader['source'];
  readonly header: ImageReader['header'];
  chunkKeys(): ReturnType<ImageReader['chunkKeys']>;
  region(index: number): Region;
  decodeChunk(region: Region, j: number, number: number, rec: ChunkRecord, stored: Uint8Array): Promise<Uint8Array>;
}

/** One chunk of a batch, as the caller knows it (for errors and progress). */
export interface BatchChunk {
  region: Region;
  j: number;
  number: number;
  rec: ChunkRecord;
  plainLength: number;
}

/**
 * The chunks of one batch call, packed for the addon as they are added (64 bytes each, no
 * object per chunk: a verify of millions of chunks keeps only these words).
 */
export class BatchItems {
  private words = new BigUint64Array(WORDS * 64);
  private n = 0;
  private plain = 0;
  private readonly targets: Reservation[] = [];

  constructor(private readonly chunkSize: number) {}

  get count(): number {
    return this.n;
  }

  /** Plain bytes of the chunks added. */
  get plainBytes(): number {
    return this.plain;
  }

  /**
   * Adds a stored chunk (`rec` checked by ChunkTable.get), decoded into `target` at `offset`,
   * or dropped without a target.
   */
  add(c: BatchChunk, target?: Reservation, offset?: number): void {
    const n = this.n;
    if ((n + 1) * WORDS > this.words.length) {
      const grown = new BigUint64Array(this.words.length * 2);
      grown.set(this.words);
      this.words = grown;
    }
    let t = -1;
    if (target) {
      t = this.targets.indexOf(target);
      if (t < 0) t = this.targets.push(target) - 1;
    }
    const w = this.words;
    const k = n * WORDS;
    const r = c.region;
    w[k] = BigInt(c.rec.offset);
    w[k + 1] = BigInt(c.number);
    w[k + 2] = r.address + BigInt(c.j) * BigInt(this.chunkSize);
    w[k + 3] = c.rec.checksum;
    w[k + 4] = BigInt(c.rec.storedLength) | (BigInt(c.plainLength) << 32n);
    w[k + 5] = BigInt(c.rec.flags) | (c.j === r.chunkCount - 1 ? 1n << 16n : 0n) | (BigInt(r.index) << 32n);
    w[k + 6] = target ? BigInt(offset!) : DROP;
    w[k + 7] = target ? BigInt(t) : 0n;
    this.n++;
    this.plain += c.plainLength;
  }

  /** Chunk `i` as added, its region made again by the image. */
  chunk(image: NativeBatchImage, i: number): BatchChunk {
    const w = this.words;
    const k = i * WORDS;
    const region = image.region(Number(w[k + 5]! >> 32n));
    const rec: ChunkRecord = { offset: Number(w[k]!), storedLength: Number(w[k + 4]! & 0xffffffffn), flags: Number(w[k + 5]! & 0xffffn), checksum: w[k + 3]! };
    return { region, j: Number((w[k + 2]! - region.address) / BigInt(this.chunkSize)), number: Number(w[k + 1]!), rec, plainLength: Number(w[k + 4]! >> 32n) };
  }

  /**
   * Decodes every chunk. `all`: every failure (verify), else the first in image order
   * (restore). `populate`: provision destination pages in bulk first, in 2 MiB pages where the
   * destinations fill half of one or more unless `huge` is false.
   */
  async run(image: NativeBatchImage, o: { all: boolean; populate: boolean; huge?: boolean; threads?: number }): Promise<DecodeBatchFailure[]> {
    if (this.n === 0) return [];
    const h = image.header;
    const keys = h.cipher !== 0 ? image.chunkKeys() : null;
    const job = {
      codec: h.codec, cipher: h.cipher, chunkSize: h.chunkSize,
      ...(keys && { dataKey: keys.dataKey, headerHash: keys.headerHash, imageId: h.imageId }),
      items: this.words.subarray(0, this.n * WORDS), targets: this.targets,
      threads: o.threads ?? 0, populate: o.populate, all: o.all, huge: o.huge !== false,
    };
    // A remote image: its stored bytes fetched window by window, decoded from memory.
    if (image.source.fd === undefined) return decodeFetched(image.source, job);
    return (await decodeBatch({ fd: image.source.fd, ...job })).failures;
  }
}

/**
 * The CrimgError of a chunk the native decoder refused, as the JavaScript path words it: the
 * chunk read and decoded again by the reader. Should that succeed (the file changed between the
 * two reads), the native finding itself, with the chunk's place.
 */
export async function jsErrorOf(image: NativeBatchImage, c: BatchChunk, f: DecodeBatchFailure): Promise<unknown> {
  try {
    const stored = await image.source.read(c.rec.offset, c.rec.storedLength);
    await image.decodeChunk(c.region, c.j, c.number, c.rec, stored);
  } catch (e) {
    if (isCrimgError(e)) return e;
    throw e;
  }
  const address = c.region.address + BigInt(c.j) * BigInt(image.header.chunkSize);
  return new CrimgError(f.code as CrimgErrorCode, `${f.message} (region ${c.region.index}, address ${hex(address)})`, {
    chunk: c.number, region: c.region.index, address, offset: c.rec.offset,
    ...((c.rec.flags & CHUNK_ENCRYPTED) === 0 && { hint: 'this part of the image is damaged; restore it from a good copy' }),
  });
}

/** Chunks per native call of {@link verifyNative}: 4 MiB of items, whatever the image's size. */
const VERIFY_GROUP = 65536;

/**
 * verify()'s step 2 (spec section 12.2) on native threads: every stored chunk of `batches`
 * (region by region, chunk by chunk) read and decoded into scratch that is dropped, a group of
 * chunks per call. Each failing chunk is reported, in order, with the CrimgError the JavaScript
 * path gives (`report`, at most `max` of them decoded again; the rest are only counted out).
 * @returns plain bytes of the chunks that checked out.
 */
export async function verifyNative(
  image: NativeBatchImage & { plainLength(r: Region, j: number): number },
  batches: readonly { region: number; items: readonly { j: number; number: number; rec: ChunkRecord }[] }[],
  report: (e: unknown, c: BatchChunk) => boolean,
  onBatch: (chunks: number) => void,
): Promise<number> {
  let bytes = 0;
  let reporting = true;
  for (let b = 0; b < batches.length;) {
    const items = new BatchItems(image.header.chunkSize);
    const first = b;
    for (; b < batches.length && (items.count === 0 || items.count + batches[b]!.items.length <= VERIFY_GROUP); b++) {
      const region = image.region(batches[b]!.region);
      for (const it of batches[b]!.items) items.add({ region, j: it.j, number: it.number, rec: it.rec, plainLength: image.plainLength(region, it.j) });
    }
    const failures = await items.run(image, { all: true, populate: false });
    bytes += items.plainBytes;
    for (const f of failures) {
      const c = items.chunk(image, f.item);
      bytes -= c.plainLength;
      if (reporting) reporting = report(await jsErrorOf(image, c, f), c);
    }
    for (let k = first; k < b; k++) onBatch(batches[k]!.items.length);
  }
  return bytes;
}
