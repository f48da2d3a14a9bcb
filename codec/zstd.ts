/**
 * Codec id 2, zstd (spec/FORMAT.md section 6.2): one single-segment zstd frame (RFC 8878) per
 * chunk, with its content size equal to the chunk's plain length, no dictionary, and nothing
 * before or after it. Pure and synchronous, as codec/deflate.ts.
 *
 * - node engine: zstd 1.5.7 compiled into the native addon (native-mmap/deps/zstd): encoding
 *   through `zstdCompress` / `zstdBatch`, decoding through the C++ chunk decoder
 *   (native-mmap/src/chunk_decode.h), the same code the native readers run on their threads.
 *   Without the addon, decoding falls back to fzstd and encoding is `UNSUPPORTED_FEATURE`.
 * - portable engine: decodes with fzstd (pure JavaScript); it has no zstd encoder, so asking it
 *   to write zstd is `UNSUPPORTED_FEATURE` naming the fix.
 *
 * Before fzstd sees a byte, {@link zstdFrameProblem} checks the frame rules on the frame header
 * and block headers alone (no decoding): so both engines refuse the same frames with
 * `CORRUPT_CHUNK`, and fzstd only ever decodes a frame whose content size is the plain length,
 * its work linear in the frame's bytes and the plain length; the frame must then decode to
 * exactly that many bytes (checked by decoding twice into differently filled buffers), and
 * match its content checksum when it has one.
 */
import { createRequire } from 'node:module';
import { NativeJobs, type NativeJob } from './_native-batches.js';
import { NativePieces } from './pieces.js';
import { CrimgError } from '../format/errors.js';
import { nativeAddon } from '../native-mmap/index.js';
import { expectBytes, expectInt } from './_check.js';
import { xxh64 } from './checksum.js';
import { checkEngine, type Engine } from './engine.js';
import { CHUNK_ENCODED, LIMITS, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL } from '../format/constants.js';

const HINT = 'the chunk is damaged; verify the image, or re-copy it from its source';
const MAGIC = 0xfd2fb528;
/** RFC 8878 3.1.1.2: a block's decompressed size is at most min(window, 128 KiB). */
const BLOCK_MAX = 128 * 1024;

function corrupt(why: string): CrimgError {
  return new CrimgError('CORRUPT_CHUNK', `zstd ${why}`, { hint: HINT });
}

/**
 * The first rule of section 6.2 that `frame` breaks, from its headers alone, or undefined.
 * Walks the frame header and every block header: the magic (a skippable frame is refused), a
 * single-segment frame with a content size equal to `plainLength`, no dictionary id, the
 * reserved bit clear, blocks that fit, raw and RLE blocks that do not add up past the plain
 * length, and the frame (with its checksum, when flagged) ending exactly at the end of the
 * bytes.
 * @example
 * zstdFrameProblem(frame, 16384); // undefined for a good frame
 */
export function zstdFrameProblem(frame: Uint8Array, plainLength: number): string | undefined {
  const n = frame.byteLength;
  if (n < 4) return `frame is truncated (${n} bytes)`;
  const magic = (frame[0]! | (frame[1]! << 8) | (frame[2]! << 16) | (frame[3]! << 24)) >>> 0;
  if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) return 'skippable frame (a chunk is one zstd frame and nothing else)';
  if (magic !== MAGIC) return 'frame header does not decode (unknown magic)';
  if (n < 5) return 'frame header is truncated';
  const fhd = frame[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 0x08) return 'frame header does not decode (reserved bit set)';
  const dictBytes = [0, 1, 2, 4][dictFlag]!;
  const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
  const headerLength = 5 + (single ? 0 : 1) + dictBytes + fcsBytes;
  if (n < headerLength) return `frame header is truncated (${n} bytes)`;
  let at = 5 + (single ? 0 : 1);
  let dictId = 0;
  for (let i = 0; i < dictBytes; i++) dictId += frame[at + i]! * 2 ** (8 * i);
  at += dictBytes;
  if (dictId !== 0) return `frame names dictionary ${dictId} (dictionaries are not allowed)`;
  if (!single) return 'frame is not single-segment (its window must be its content size)';
  let size = 0;
  for (let i = 0; i < fcsBytes; i++) size += frame[at + i]! * 2 ** (8 * i);
  if (fcsBytes === 2) size += 256;
  at += fcsBytes;
  if (size !== plainLength) return `frame content size ${size} is not the plain length ${plainLength}`;
  let known = 0;
  for (;;) {
    if (at + 3 > n) return 'frame is truncated or malformed (a block header is cut off)';
    const h = frame[at]! | (frame[at + 1]! << 8) | (frame[at + 2]! << 16);
    at += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const blockSize = h >>> 3;
    if (type === 3) return 'frame does not decode (reserved block type)';
    if (blockSize > Math.min(BLOCK_MAX, plainLength)) return 'frame does not decode (a block is larger than the window)';
    const stored = type === 1 ? 1 : blockSize;
    if (at + stored > n) return 'frame is truncated or malformed (a block is cut off)';
    if (type === 2 && literalsSize(frame, at, blockSize) > Math.min(BLOCK_MAX, plainLength)) {
      return 'frame does not decode (a block\'s literals are larger than the window)';
    }
    at += stored;
    if (type !== 2) {
      known += blockSize;
      if (known > plainLength) return `frame decodes to more than the plain length of ${plainLength} bytes`;
    }
    if (last) break;
  }
  if (checksum) at += 4;
  if (at > n) return 'frame is truncated or malformed (its checksum is cut off)';
  if (at < n) return `frame is followed by ${n - at} bytes in its chunk (a chunk is one zstd frame and nothing else)`;
  return undefined;
}

/**
 * The regenerated size in the literals section header of the compressed block of `blockSize`
 * bytes at `at` (RFC 8878 3.1.1.3.1.1), or 0 when the header does not fit in the block (fzstd
 * and libzstd refuse that themselves). fzstd clips literals past the window instead of refusing
 * them, so the size is checked here.
 */
function literalsSize(frame: Uint8Array, at: number, blockSize: number): number {
  if (blockSize < 1) return 0;
  const b0 = frame[at]!;
  const type = b0 & 3;
  const sf = (b0 >> 2) & 3;
  const headerBytes = type < 2 ? (sf === 0 || sf === 2 ? 1 : sf === 1 ? 2 : 3) : (sf < 2 ? 3 : sf === 2 ? 4 : 5);
  if (headerBytes > blockSize) return 0;
  const h = b0 + (headerBytes > 1 ? frame[at + 1]! * 2 ** 8 : 0) + (headerBytes > 2 ? frame[at + 2]! * 2 ** 16 : 0);
  if (type < 2) return sf === 0 || sf === 2 ? b0 >> 3 : Math.floor(h / 16);
  const h5 = h + (headerBytes > 3 ? frame[at + 3]! * 2 ** 24 : 0) + (headerBytes > 4 ? frame[at + 4]! * 2 ** 32 : 0);
  return Math.floor(h5 / 16) % 2 ** (sf < 2 ? 10 : sf === 2 ? 14 : 18);
}

/**
 * Encodes `plain` as one zstd frame (spec section 6.2) with the native addon.
 * @param plain - the chunk's plain bytes, 1 byte to 16 MiB.
 * @param level - 1 (fastest) to 19, the header's codec level.
 * @param engine - `'node'` (default); `'portable'` cannot write zstd.
 * @returns the frame, or null when it would not be smaller than `plain` (store the chunk raw).
 * @throws CrimgError `UNSUPPORTED_FEATURE` with the portable engine or without the addon.
 *   TypeError / RangeError on misuse.
 * @example
 * const frame = zstdEncode(plain, 1);
 */
export function zstdEncode(plain: Uint8Array, level: number, engine?: Engine): Uint8Array | null {
  expectBytes('plain', plain);
  expectInt('plain length', plain.byteLength, 1, LIMITS.maxChunkSize);
  expectInt('level', level, ZSTD_MIN_LEVEL, ZSTD_MAX_LEVEL);
  const addon = checkEngine(engine) === 'node' ? nativeAddon() : null;
  if (addon === null) throw zstdWriteUnsupported(checkEngine(engine));
  const out = new Uint8Array(plain.byteLength - 1);
  const n = addon.zstdCompress(level, plain, out);
  return n < 0 ? null : out.subarray(0, n);
}

/** The `UNSUPPORTED_FEATURE` error of a zstd write the engine cannot do. */
export function zstdWriteUnsupported(engine: Engine): CrimgError {
  return new CrimgError('UNSUPPORTED_FEATURE', engine === 'portable'
    ? 'the portable engine cannot write zstd (codec id 2): it has a zstd decoder only'
    : 'zstd (codec id 2) needs the native addon to write, and it is not built', {
    hint: engine === 'portable'
      ? "use the node engine (engine: 'node', the default) with the native addon, or deflate"
      : 'build it with node native-mmap/install.mjs (CRIMG_REQUIRE_NATIVE=1 shows why it failed), or use deflate',
  });
}

/**
 * Decodes one zstd frame that must yield exactly `plainLength` bytes (spec sections 5.3, 6.2).
 * @param frame - the frame (after opening, when the image has a cipher).
 * @param plainLength - the chunk's plain length, 1 to 16 MiB: the only size ever allocated.
 * @param engine - `'node'` (native decoder, else fzstd) or `'portable'` (fzstd).
 * @returns `plainLength` bytes.
 * @throws CrimgError `CORRUPT_CHUNK` for a frame that breaks section 6.2 or does not decode to
 *   exactly `plainLength` bytes. TypeError / RangeError on misuse.
 * @example
 * const plain = zstdDecode(frame, 16384);
 */
export function zstdDecode(frame: Uint8Array, plainLength: number, engine?: Engine): Uint8Array {
  expectBytes('frame', frame);
  expectInt('plainLength', plainLength, 1, LIMITS.maxChunkSize);
  const addon = checkEngine(engine) === 'node' ? nativeAddon() : null;
  if (addon !== null) {
    const out = new Uint8Array(plainLength);
    const r = addon.decodeChunk({
      codec: 2, cipher: 0, chunkSize: 0, number: 0n, region: 0, address: 0n, last: false, plainLength,
      flags: CHUNK_ENCODED, checksum: 0n, verifyChecksum: false,
    }, frame, out);
    if (r === null) return out;
    if (r.code === 'CORRUPT_INDEX') throw corrupt(`frame of ${frame.byteLength} bytes is not smaller than the plain length ${plainLength}`);
    throw new CrimgError(r.code === 'CORRUPT_CHUNK' ? 'CORRUPT_CHUNK' : 'IO_ERROR', r.message.replace(/^chunk 0: /, ''), { hint: HINT });
  }
  const problem = zstdFrameProblem(frame, plainLength);
  if (problem !== undefined) throw corrupt(problem);
  return fzstdDecode(frame, plainLength);
}

/**
 * Decodes a frame that passed {@link zstdFrameProblem} with fzstd's one-shot `decompress` into
 * a buffer of `plainLength` bytes, twice: first filled with 0x00, then with 0xff. Its work is
 * linear in the frame and the output (fzstd's streaming decoder shifts the whole window for
 * every block: a frame of millions of tiny blocks took hours). fzstd writes into the buffer it
 * is given without saying how much it wrote, so the two decodes tell: a byte the frame did not
 * write (a frame that decodes short), or one it made from bytes it had not written, differs
 * between them. Not detected (the native decoder refuses these; spec/FORMAT.md section 6.2):
 * a short gap that the last compressed block's literals fill (fzstd lays them out at the end
 * of the block's window first), and output of an RLE or compressed block past the plain length
 * (fzstd drops it; a raw block past the end throws). Then the content checksum, when the frame has one (the low 32
 * bits of XXH64 of the content, RFC 8878 3.1.1), which fzstd skips. Memory: two buffers of the
 * plain length.
 */
function fzstdDecode(frame: Uint8Array, plainLength: number): Uint8Array {
  const decode = (fill: number): Uint8Array => {
    const out = new Uint8Array(plainLength);
    if (fill !== 0) out.fill(fill);
    try {
      fzstdModule().decompress(frame, out);
    } catch (e) {
      // fzstd's errors, and a RangeError of a block written past the buffer
      throw corrupt(`frame does not decode (${e instanceof Error ? e.message : String(e)})`);
    }
    return out;
  };
  const plain = decode(0);
  if (!Buffer.from(plain.buffer, plain.byteOffset, plainLength).equals(decode(0xff))) {
    throw corrupt(`frame decodes to fewer than its ${plainLength} bytes, or copies bytes it has not decoded`);
  }
  if ((frame[4]! >> 2) & 1) {
    const n = frame.byteLength;
    const stored = (frame[n - 4]! | (frame[n - 3]! << 8) | (frame[n - 2]! << 16) | (frame[n - 1]! << 24)) >>> 0;
    if (Number(xxh64(plain) & 0xffffffffn) !== stored) throw corrupt('frame content checksum does not match its content');
  }
  return plain;
}

let fzstd: typeof import('fzstd') | null = null;

/**
 * fzstd, required on first use (synchronously, as the codec's primitives are), for the portable
 * engine and for the node engine without the addon.
 */
function fzstdModule(): typeof import('fzstd') {
  fzstd ??= createRequire(import.meta.url)('fzstd') as typeof import('fzstd');
  return fzstd;
}

type ZstdBatch = (level: number, plains: Uint8Array[], flags: number, done: (err: Error | null, sizes: Int32Array, frames: (Uint8Array | null)[], sums: BigUint64Array | null) => void) => { sizes: Int32Array; sums: BigUint64Array | null };
/** What the native zstd job made of one chunk. */
export interface ZstdChunk {
  /** The frame, or null: a chunk of zeros (`zero`), or one to store raw (`raw`). */
  frame: Uint8Array | null;
  /** Every byte is zero (only with `scan`). */
  zero: boolean;
  /**
   * A chunk stored raw (not smaller, or random-looking): a copy of its plain bytes, so that the
   * caller's buffer is free as soon as {@link NativeZstd.encode} returns.
   */
  raw: Uint8Array | null;
  /** XXH64 of what is stored, the frame or else the plain bytes (only with `sums`; 0n for zeros). */
  checksum: bigint | null;
}

/** Options of {@link NativeZstd.create}. */
export interface NativeZstdOptions {
  /**
   * The writer's tests in the addon, before the chunk is copied for the job: a chunk of zeros
   * comes back `zero`, one whose whole pages all look random (codec/chunk.ts's
   * looksIncompressible, the same arithmetic) is not compressed and comes back `raw`;
   * neither is copied for the job.
   */
  scan?: boolean;
  /** XXH64 of what is stored, in the addon (an image without a cipher: the stored bytes are these). */
  sums?: boolean;
}

/** A chunk for the native zstd job: its bytes copied into a stage. */
interface ZstdJob extends NativeJob {
  stage: Stage;
  settled: boolean;
  resolve: (r: ZstdChunk) => void;
}

/** zstdBatch's size codes (src/zstd_js.cc): a chunk of zeros, and one the job compresses. */
const ZERO_CHUNK = -2;
const TO_COMPRESS = -(2 ** 31);

/** Bytes of a stage: a batch of 16 KiB chunks (codec/_native-batches.ts NATIVE_BATCH), or one larger chunk. */
const STAGE = 256 * 1024;
/** Stages kept for reuse: those of the jobs in flight, and a few more; none larger than {@link KEPT_STAGE_MAX}. */
const KEPT_STAGES = 8;
const KEPT_STAGE_MAX = 4 * 1024 * 1024;
/**
 * Chunks up to this size are copied into stages as they are submitted; larger ones are not
 * (the caller keeps them unchanged until they settle, as before stages): 64 chunks in flight
 * of 16 MiB copied were +1 GiB, each in a fresh stage.
 */
export const ZSTD_COPY_MAX = KEPT_STAGE_MAX;

/** Memory the chunks are copied into as they are submitted; reused once all its chunks are settled. */
interface Stage {
  bytes: Uint8Array;
  used: number;
  /** Chunks copied in and not yet settled. */
  live: number;
}

/**
 * The node engine's zstd on the encoder pool (native-mmap/src/zstd_js.cc), in batches
 * (codec/_native-batches.ts). {@link encode} copies the chunk at once into a stage (kept
 * memory, reused), so the caller may reuse its buffer as soon as the call returns: the image
 * writer then reads file ranges into reused buffers too (image/_file-range.ts), where fresh ones
 * cost a page fault per 4 KiB page in the read and slow first reads after it on a VM. A
 * batch's frames come back as views of one buffer of their total length: a buffer of the
 * batch's plain length (256 KiB) was fresh memory every job (12-25 us per fresh 4 KiB page).
 */
export class NativeZstd {
  private readonly jobs: NativeJobs<ZstdJob>;
  private stage: Stage | null = null;
  private readonly freeStages: Uint8Array[] = [];
  /** Whole pieces of a region in one job each (codec/pieces.ts). */
  readonly pieces: NativePieces;

  private constructor(batch: ZstdBatch, pieces: NativePieces, level: number, flags: number) {
    this.pieces = pieces;
    this.jobs = new NativeJobs<ZstdJob>((jobs, done) => {
      let left = 0;
      const known = batch(level, jobs.map((j) => j.plain), flags, (err, sizes, frames, sums) => done(err, () => {
        jobs.forEach((j, i) => {
          if (j.settled) return;
          const frame = frames[i] ?? null;
          this.settle(j, { frame, zero: sizes[i] === ZERO_CHUNK, raw: frame ? null : j.plain.slice(), checksum: sums ? sums[i]! : null });
        });
      }));
      // Zero and random chunks settle now, without waiting for the job (a settled job ignores
      // the job's later result); with none left to compress there is no job. The random ones'
      // copies share one buffer (one allocation a batch, not one a chunk).
      let rawBytes = 0;
      jobs.forEach((j, i) => {
        const size = known.sizes[i]!;
        if (size === TO_COMPRESS) left++;
        else if (size !== ZERO_CHUNK) rawBytes += j.plain.byteLength;
      });
      const raws = rawBytes > 0 ? Buffer.allocUnsafe(rawBytes) : null;
      let at = 0;
      jobs.forEach((j, i) => {
        const size = known.sizes[i]!;
        if (size === TO_COMPRESS) return;
        let raw: Uint8Array | null = null;
        if (size !== ZERO_CHUNK) {
          raw = raws!.subarray(at, at + j.plain.byteLength);
          raw.set(j.plain);
          at += j.plain.byteLength;
        }
        this.settle(j, { frame: null, zero: size === ZERO_CHUNK, raw, checksum: known.sums ? known.sums[i]! : null });
      });
      if (left === 0) done(null);
    });
  }

  /** An encoder at `level` 1..19, or null when the addon is unavailable. */
  static create(level: number, options: NativeZstdOptions = {}): NativeZstd | null {
    expectInt('level', level, ZSTD_MIN_LEVEL, ZSTD_MAX_LEVEL);
    const addon = nativeAddon();
    const flags = (options.scan ? 1 : 0) | (options.sums ? 2 : 0);
    return addon ? new NativeZstd(addon.zstdBatch.bind(addon), new NativePieces(addon.zstdPiece.bind(addon), addon.zstdFilePiece.bind(addon), level), level, flags) : null;
  }

  /**
   * What the job made of `plain` (see {@link ZstdChunk}). A `plain` of at most
   * {@link ZSTD_COPY_MAX} bytes is copied before this returns: the caller may change or reuse
   * it at once; a larger one must stay unchanged until the promise settles.
   */
  encode(plain: Uint8Array): Promise<ZstdChunk> {
    const n = plain.byteLength;
    if (n > ZSTD_COPY_MAX) return this.submit(plain, { bytes: plain, used: n, live: 1 }); // not copied, never kept
    let stage = this.stage;
    if (stage === null || stage.bytes.byteLength - stage.used < n) {
      this.release(stage, true);
      const kept = this.freeStages.findIndex((b) => b.byteLength >= n);
      const bytes = kept >= 0 ? this.freeStages.splice(kept, 1)[0]! : new Uint8Array(Math.max(STAGE, n));
      stage = { bytes, used: 0, live: 0 };
      this.stage = stage;
    }
    const copy = stage.bytes.subarray(stage.used, stage.used + n);
    copy.set(plain);
    stage.used += n;
    stage.live++;
    return this.submit(copy, stage);
  }

  /** Queues the chunk `copy` (in stage `s`, counted live there). */
  private submit(copy: Uint8Array, s: Stage): Promise<ZstdChunk> {
    return new Promise((resolve, reject) => {
      const job: ZstdJob = {
        plain: copy, stage: s, settled: false, resolve,
        reject: (e) => {
          if (job.settled) return; // a later failure of its batch changes nothing
          job.settled = true;
          this.done(s);
          reject(e);
        },
      };
      this.jobs.add(job);
    });
  }

  /** One zstd frame of `plain`, or null when it would not be smaller than `plain` (without `scan`). */
  async compress(plain: Uint8Array): Promise<Uint8Array | null> {
    return (await this.encode(plain)).frame;
  }

  private settle(j: ZstdJob, r: ZstdChunk): void {
    if (j.settled) return;
    j.settled = true;
    j.resolve(r);
    this.done(j.stage);
  }

  /** One chunk of `s` settled. */
  private done(s: Stage): void {
    s.live--;
    this.release(s, s !== this.stage);
  }

  /** Returns `s` to the free list once it is no longer filled (`retired`) and no chunk in it is live. */
  private release(s: Stage | null, retired: boolean): void {
    if (s === null) return;
    if (s === this.stage && retired) this.stage = null;
    if (s.live > 0 || s === this.stage || s.bytes.byteLength > KEPT_STAGE_MAX) return;
    if (this.freeStages.length < KEPT_STAGES) this.freeStages.push(s.bytes);
  }
}
