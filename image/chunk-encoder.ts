/**
 * The writer's per-chunk stage: zero elision, checksum, and (with a codec or cipher) encoding
 * and sealing on a pool of worker threads (spec/FORMAT.md sections 5.1, 5.3, 7.1-7.4).
 */
import { randomBytes } from 'node:crypto';
import { xxh64 } from '../codec/checksum.js';
import { CHUNK_RAW, CHUNK_ZERO } from '../format/constants.js';
import { isZero, pageLooksRandom } from '../codec/chunk.js';
import { NativeDeflater, deflatePagesAsync, looksIncompressibleThroughout } from '../codec/deflate.js';
import { deflateRaw } from 'node:zlib';
import { promisify } from 'node:util';
import { CHUNK_ENCODED, CHUNK_ENCRYPTED, CODEC_DEFLATE, CODEC_ZSTD } from '../format/constants.js';
import { NativeZstd, ZSTD_COPY_MAX, zstdWriteUnsupported } from '../codec/zstd.js';
import { PIECE_MAX as NATIVE_PIECE_MAX, PIECE_ZERO as NATIVE_PIECE_ZERO, rawPieces, type NativePiece, type NativePieces, type PieceSeal } from '../codec/pieces.js';
import type { HeaderFields } from '../format/header.js';
import { toKeySpec, type KeyInput } from './keying.js';
import { defaultWorkers } from './_workers.js';
import { ChunkPool } from '../codec/pool.js';
import { loadPortableEngine } from '../codec/portable.js';
import { chunkAad, chunkNonce, indexAad, indexNonce } from '../codec/aad.js';
import { seal, suiteForCipherId } from '../codec/aead.js';
import { DEFAULT_SCRYPT_PARAMS, deriveKeys, headerHash, resolveMasterKey, type ImageKeys } from '../codec/keys.js';
import type { CipherId, CodecId } from '../format/constants.js';

export interface EncodedChunk {
  stored: Uint8Array;
  flags: number;
  checksum: bigint;
  plainLength: number;
}

/**
 * What {@link ChunkEncoder.encodePiece} made of a piece of a region: per chunk, the record
 * {@link ChunkEncoder.encode} would give it, and the stored bytes of all of them back to back.
 */
export interface EncodedPiece extends NativePiece {
  /** Each stored chunk sealed (CHUNK_ENCRYPTED): its stored form plus a 16-byte tag. */
  sealed: boolean;
}

/**
 * Where a piece's chunks are: its first chunk's number and address (each next chunk one chunk
 * size on), and `last` when the piece's last chunk ends the region.
 */
export type PieceContext = Omit<ChunkContext, 'changed'>;

/** {@link EncodedPiece.sizes}'s code of a chunk of zeros. */
export const PIECE_ZERO = NATIVE_PIECE_ZERO;

/** The largest piece {@link ChunkEncoder.encodePiece} takes. */
export const PIECE_MAX = NATIVE_PIECE_MAX;

export interface ChunkContext {
  chunkNumber: number;
  regionNumber: number;
  address: bigint;
  last: boolean;
  /** A child image's chunk the caller says differs from its parent's: stored without comparing (RegionOptions.compareWithParent). */
  changed?: boolean;
}

export interface ChunkEncoder {
  /** How many chunks it encodes at once (the writer keeps twice that in flight). */
  readonly parallelism: number;
  /** Called once with the final header and validation bytes (they feed the AEAD's `H`). */
  bindHeader(header: Uint8Array, validation: Uint8Array): void;
  encode(plain: Uint8Array, ctx: ChunkContext): Promise<EncodedChunk>;
  /**
   * True when encode() keeps nothing of `plain` once it returns (it copied what it needs, before
   * its first await): the caller may reuse the buffer at once (image/_file-range.ts then reads
   * file ranges into reused buffers). Absent: `plain` is held until the promise settles, and
   * raw chunks' stored bytes may be views of it.
   */
  readonly copiesPlain?: boolean;
  /** A synchronous encode when the encoder needs no context and no worker (no codec, no cipher). */
  encodeSync?(plain: Uint8Array): EncodedChunk;
  /**
   * Whole chunks of a region at once (a piece of up to {@link PIECE_MAX} bytes, the last chunk
   * may be shorter only when it ends the region), copied before this returns: the records and
   * bytes {@link encode} would give each chunk, with no promise per chunk. The addon's zstd and
   * deflate have it (with or without a cipher), and its sealing of raw chunks (no codec, a cipher).
   */
  encodePiece?(bytes: Uint8Array, at: PieceContext): Promise<EncodedPiece>;
  /**
   * {@link encodePiece} of `length` bytes (up to {@link PIECE_MAX}) of file `fd` from `position`,
   * read off the main thread by the encoder itself; `read` runs once the read is done, before
   * the promise settles. `fd` must stay open until then, or until the promise settles. A failed
   * read rejects with the addon's error (NativeMmap.zstdFilePiece and its kin), and `read` is not called.
   */
  encodeFilePiece?(fd: number, position: number, length: number, read: () => void, at: PieceContext): Promise<EncodedPiece>;
  /** Seals an index section (identity without a cipher). `domain` 1 chunk table, 2 region section. */
  sealIndex(domain: 1 | 2, count: bigint, plain: Uint8Array): Uint8Array;
  close(): Promise<void>;
}

export interface EncoderSetup {
  /** Header fields; the encoder fills kdf, scrypt, salt and keyCheck when it encrypts. */
  fields: HeaderFields;
  validation: Uint8Array;
  key?: KeyInput | undefined;
  scrypt?: { log2N?: number; r?: number; p?: number } | undefined;
  salt?: Uint8Array | undefined;
  engine: 'node' | 'portable';
  workers?: number | undefined;
}

/** Encodes a plain chunk of an image without codec or cipher: zero or raw. */
export function encodePlainChunk(plain: Uint8Array): EncodedChunk {
  if (isZero(plain)) return { stored: new Uint8Array(0), flags: CHUNK_ZERO, checksum: 0n, plainLength: plain.length };
  return { stored: plain, flags: CHUNK_RAW, checksum: xxh64(plain), plainLength: plain.length };
}

class PlainEncoder implements ChunkEncoder {
  readonly parallelism = 1;
  bindHeader(): void {}
  async encode(plain: Uint8Array): Promise<EncodedChunk> {
    return encodePlainChunk(plain);
  }
  encodeSync(plain: Uint8Array): EncodedChunk {
    return encodePlainChunk(plain);
  }
  sealIndex(_d: 1 | 2, _c: bigint, plain: Uint8Array): Uint8Array {
    return plain;
  }
  async close(): Promise<void> {}
}

/** Encodes (and seals) chunks on worker threads; results come back per chunk. */
class CodecEncoder implements ChunkEncoder {
  readonly parallelism: number;
  private readonly pool: ChunkPool;
  private h: Uint8Array | null = null;

  constructor(
    private readonly fields: HeaderFields,
    private readonly keys: ImageKeys | null,
    private readonly engine: 'node' | 'portable',
    workers: number,
  ) {
    this.pool = new ChunkPool({ size: workers });
    this.parallelism = Math.max(1, workers);
  }

  bindHeader(header: Uint8Array, validation: Uint8Array): void {
    this.h = headerHash(header, validation, this.engine);
  }

  async encode(plain: Uint8Array, ctx: ChunkContext): Promise<EncodedChunk> {
    const f = this.fields;
    const base = { codec: f.codec as CodecId, level: f.codecLevel, cipher: f.cipher as CipherId, engine: this.engine };
    // A zero chunk costs a memcmp here instead of a round trip to a worker.
    if (isZero(plain)) return { stored: new Uint8Array(0), flags: CHUNK_ZERO, checksum: 0n, plainLength: plain.length };
    const params = this.keys
      ? {
        ...base, dataKey: this.keys.dataKey, nonce: chunkNonce(ctx.chunkNumber),
        aad: chunkAad({ imageId: f.imageId, headerHash: this.h!, chunkNumber: ctx.chunkNumber, regionNumber: ctx.regionNumber, plainLength: plain.length, address: ctx.address, encoded: false, last: ctx.last }),
      }
      : base;
    const r = await this.pool.encode(plain, params);
    return { stored: r.stored, flags: r.flags, checksum: r.checksum, plainLength: plain.length };
  }

  sealIndex(domain: 1 | 2, count: bigint, plain: Uint8Array): Uint8Array {
    if (!this.keys) return plain;
    const f = this.fields;
    const aad = indexAad({ imageId: f.imageId, headerHash: this.h!, domain, count, plainLength: plain.length });
    return seal(suiteForCipherId(f.cipher), this.keys.indexKey, indexNonce(domain), aad, plain, this.engine);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * The node engine's encoder. Whole chunks of a region go to the addon a piece at a time
 * ({@link encodePiece}: tests, codec, sealing and checksums in one libuv pool job per piece).
 * Chunk by chunk (a region's last chunk, streamed pieces shorter than a chunk): zero and entropy
 * tests and the checksum on the calling thread, deflate and zstd on libuv's thread pool (the
 * addon's batched jobs over Node's zlib, else node:zlib's async API), sealing on the calling
 * thread (the addon's OpenSSL seal, about 5 us a chunk, else node:crypto, about 12 us).
 * Measured on 2 cores against the worker pool: no structured clones and no worker round trip
 * (~65 us a chunk), about a fifth less CPU.
 */
class ThreadPoolEncoder implements ChunkEncoder {
  /** libuv's default pool size: deflates in flight at once. */
  readonly parallelism = 4;
  /** zstd copies each chunk of up to 4 MiB as it is submitted (codec/zstd.ts NativeZstd.encode); deflate does not. */
  readonly copiesPlain: boolean;
  /** zstd, deflate or a cipher alone in the addon: a piece of a region in one native job (codec/pieces.ts NativePieces.encodePiece), sealed there too. */
  readonly encodePiece?: (bytes: Uint8Array, at: PieceContext) => Promise<EncodedPiece>;
  /** The same, read from a file by the job itself (NativePieces.encodeFilePiece). */
  readonly encodeFilePiece?: (fd: number, position: number, length: number, read: () => void, at: PieceContext) => Promise<EncodedPiece>;
  private h: Uint8Array | null = null;
  /** Image id || H: the start of every chunk's associated data, for {@link pieceSeal}. */
  private prefix: Uint8Array | null = null;

  constructor(
    private readonly fields: HeaderFields,
    private readonly keys: ImageKeys | null,
    /** The addon's batched deflate; null: node:zlib's async API, one call per chunk. */
    private readonly native: NativeDeflater | null,
    /** The addon's batched zstd, for codec 2 (which has no other encoder). */
    private readonly zstd: NativeZstd | null = null,
  ) {
    this.copiesPlain = zstd !== null && fields.chunkSize <= ZSTD_COPY_MAX;
    // Pieces are recorded as little-endian words (image/_chunk-records.ts), as the raw scan is.
    // CRIMG_WRITE_PIECES=0: chunk by chunk (the same image; for comparisons).
    const pieces: NativePieces | null = zstd?.pieces ?? native?.pieces ?? (fields.codec === 0 && keys !== null ? rawPieces() : null);
    if (pieces !== null && process.env.CRIMG_WRITE_PIECES !== '0' && new Uint8Array(Uint16Array.of(1).buffer)[0] === 1) {
      const sealed = keys !== null;
      const done = (p: NativePiece): EncodedPiece => ({ ...p, sealed });
      this.encodePiece = async (bytes, at) => done(await pieces.encodePiece(bytes, fields.chunkSize, this.pieceSeal(at)));
      this.encodeFilePiece = async (fd, position, length, read, at) => done(await pieces.encodeFilePiece(fd, position, length, fields.chunkSize, read, this.pieceSeal(at)));
    }
  }

  bindHeader(header: Uint8Array, validation: Uint8Array): void {
    this.h = headerHash(header, validation, 'node');
  }

  /** A piece's sealing in the addon (spec section 7.3, as {@link sealed} seals a chunk), or undefined without a cipher. */
  private pieceSeal(at: PieceContext): PieceSeal | undefined {
    if (!this.keys) return undefined;
    const f = this.fields;
    this.prefix ??= Buffer.concat([f.imageId, this.h!]);
    return { cipher: f.cipher as 1 | 2, key: this.keys.dataKey, prefix: this.prefix, chunk: at.chunkNumber, region: at.regionNumber, address: at.address, last: at.last };
  }

  async encode(plain: Uint8Array, ctx: ChunkContext): Promise<EncodedChunk> {
    if (this.zstd) return this.encodeZstd(this.zstd, plain, ctx);
    const f = this.fields;
    if (isZero(plain)) return { stored: new Uint8Array(0), flags: CHUNK_ZERO, checksum: 0n, plainLength: plain.length };
    let body = plain;
    let flags = CHUNK_RAW;
    const pages = Math.floor(plain.byteLength / 4096);
    const random = f.codec === CODEC_DEFLATE ? Array.from({ length: pages }, (_, p) => pageLooksRandom(plain, p)) : [];
    const randomCount = random.filter(Boolean).length;
    // A chunk whose pages all look random is stored raw without deflating only when every byte
    // looks random too: checked by the addon on its pool thread, else here (codec/deflate.ts).
    if (f.codec === CODEC_DEFLATE && (this.native !== null || !(pages > 0 && randomCount === pages && looksIncompressibleThroughout(plain)))) {
      const encoded = this.native
        ? await this.native.deflate(plain, randomCount > 0 ? random : null)
        : randomCount > 0 ? await deflatePagesAsync(plain, f.codecLevel, random) : await deflateRawAsync(plain, { level: f.codecLevel });
      if (encoded !== null && encoded.byteLength < plain.byteLength) {
        body = encoded;
        flags = CHUNK_ENCODED;
      }
    }
    return this.sealed(plain, body, flags, ctx);
  }

  /**
   * zstd: the zero test, the entropy test (a chunk whose pages all look random is stored raw
   * without compressing, as codec/chunk.ts's looksIncompressible decides) and, without a
   * cipher, the checksum run in the addon (codec/zstd.ts's NativeZstd, scan and sums): the
   * tests in C++ as the batch is submitted, the frames' checksums on the pool thread.
   */
  private async encodeZstd(zstd: NativeZstd, plain: Uint8Array, ctx: ChunkContext): Promise<EncodedChunk> {
    const r = await zstd.encode(plain); // copies plain before the await: see copiesPlain
    if (r.zero) return { stored: new Uint8Array(0), flags: CHUNK_ZERO, checksum: 0n, plainLength: plain.length };
    const body = r.frame ?? r.raw!;
    const flags = r.frame ? CHUNK_ENCODED : CHUNK_RAW;
    if (this.keys || r.checksum === null) return this.sealed(plain, body, flags, ctx);
    return { stored: body, flags, checksum: r.checksum, plainLength: plain.length };
  }

  /** The chunk's stored form: `body` sealed when the image has a cipher, and its checksum. */
  private sealed(plain: Uint8Array, body: Uint8Array, flags: number, ctx: ChunkContext): EncodedChunk {
    if (this.keys) {
      const f = this.fields;
      const aad = chunkAad({ imageId: f.imageId, headerHash: this.h!, chunkNumber: ctx.chunkNumber, regionNumber: ctx.regionNumber, plainLength: plain.length, address: ctx.address, encoded: flags === CHUNK_ENCODED, last: ctx.last });
      body = seal(suiteForCipherId(f.cipher), this.keys.dataKey, chunkNonce(ctx.chunkNumber), aad, body, 'node');
      flags |= CHUNK_ENCRYPTED;
    }
    return { stored: body, flags, checksum: xxh64(body), plainLength: plain.length };
  }

  sealIndex(domain: 1 | 2, count: bigint, plain: Uint8Array): Uint8Array {
    if (!this.keys) return plain;
    const f = this.fields;
    const aad = indexAad({ imageId: f.imageId, headerHash: this.h!, domain, count, plainLength: plain.length });
    return seal(suiteForCipherId(f.cipher), this.keys.indexKey, indexNonce(domain), aad, plain, 'node');
  }

  async close(): Promise<void> {}
}

const deflateRawAsync = promisify(deflateRaw) as (b: Uint8Array, o: { level: number }) => Promise<Buffer>;

/**
 * The encoder for the image's codec and cipher. With a cipher it fills the header's KDF,
 * scrypt, salt and key check fields (sections 3 and 7.2).
 */
export async function createChunkEncoder(s: EncoderSetup): Promise<ChunkEncoder> {
  const f = s.fields;
  if (f.codec === 0 && f.cipher === 0) return new PlainEncoder();
  if (s.engine === 'portable') await loadPortableEngine();
  // zstd is written by the addon only (codec/zstd.ts): refuse before any key work.
  const zstd = f.codec === CODEC_ZSTD && s.engine === 'node' ? NativeZstd.create(f.codecLevel, { scan: true, sums: f.cipher === 0 }) : null;
  if (f.codec === CODEC_ZSTD && zstd === null) throw zstdWriteUnsupported(s.engine);
  let keys: ImageKeys | null = null;
  if (f.cipher !== 0) {
    const spec = toKeySpec(s.key);
    if (!spec) throw new TypeError('expected a key or passphrase with encrypt');
    f.salt = s.salt ?? randomBytes(16);
    if (f.salt.length !== 16) throw new RangeError(`expected a 16-byte salt, got ${f.salt.length} bytes`);
    if ('passphrase' in spec) {
      f.kdf = 1;
      f.scryptLog2N = s.scrypt?.log2N ?? DEFAULT_SCRYPT_PARAMS.log2N;
      f.scryptR = s.scrypt?.r ?? DEFAULT_SCRYPT_PARAMS.r;
      f.scryptP = s.scrypt?.p ?? DEFAULT_SCRYPT_PARAMS.p;
    }
    const master = resolveMasterKey(spec, { kdf: f.kdf, salt: f.salt, log2N: f.scryptLog2N, r: f.scryptR, p: f.scryptP }, { engine: s.engine });
    keys = deriveKeys(master, f.salt, f.imageId, s.engine);
    f.keyCheck = keys.keyCheck;
  }
  // Worker threads when asked for, or for the portable engine, whose codecs are synchronous
  // (defaultWorkers: none on 2 cores or fewer, then chunks are encoded inline).
  if (s.engine === 'node' && (s.workers === undefined || zstd !== null)) {
    return new ThreadPoolEncoder(f, keys, f.codec === CODEC_DEFLATE ? NativeDeflater.create(f.codecLevel) : null, zstd);
  }
  return new CodecEncoder(f, keys, s.engine, s.workers ?? defaultWorkers());
}
