/**
 * Codec id 1, deflate: raw DEFLATE (RFC 1951) with no zlib or gzip wrapper, one complete
 * stream per chunk (spec/FORMAT.md section 6). Pure and synchronous.
 *
 * Decoding is bounded by the chunk's plain length, which the chunk table and region table
 * fix before any byte is decoded (spec section 5.3: "an encoded chunk that does not decode to
 * exactly `p` bytes" is `CORRUPT_CHUNK`). No buffer is sized from the stream itself:
 * - node: zlib stops as soon as the output passes `plainLength` (`maxOutputLength`), so a
 *   decompression bomb costs at most `plainLength + 1` bytes of output work.
 * - portable: a stream that can expand (DEFLATE's maximum is about 1032 x) to at most
 *   `plainLength` + 8 MiB is decoded in one call into a `plainLength + 1` buffer, past whose end
 *   fflate writes nothing (at most ~20 ms of work, no memory); a longer one goes through fflate's
 *   streaming decoder in slices that can each expand to at most the bytes still expected plus
 *   min(plainLength, 1 MiB) (1 MiB for the smallest slice, 1 KiB), stopping as soon as the
 *   output passes `plainLength`: a bomb costs at most `plainLength` + about 1 MiB of output
 *   work, not the whole stream.
 *
 * A chunk is one complete stream and nothing else (spec section 6): bytes after the end of the
 * final block are `CORRUPT_CHUNK` in both engines (node: the input zlib consumed, reported by
 * `info`; portable: the streaming decoder's unconsumed input, or for the one-shot decode, the
 * stream less its last byte still decoding whole, which a stream that ends in its last byte
 * cannot).
 */
import { constants as zc, deflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import { CrimgError } from '../format/errors.js';
import { nativeAddon } from '../native-mmap/index.js';
import { expectBytes, expectInt } from './_check.js';
import { checkEngine, type Engine } from './engine.js';
import { portableLibraries } from './portable.js';
import { NativeBatches, type BatchJob } from './_native-batches.js';
import { NativePieces } from './pieces.js';
import { DEFLATE_MAX_LEVEL, DEFLATE_MIN_LEVEL, LIMITS } from '../format/constants.js';

/** Node's zlib refuses output chunk sizes below this (zlib.constants.Z_MIN_CHUNK). */
const ZLIB_MIN_CHUNK = 64;

/**
 * Encodes `plain` as one raw DEFLATE stream (spec section 6, codec id 1).
 *
 * The two engines produce different (equally valid) streams; each decodes the other's.
 * @param plain - the chunk's plain bytes, at most 16 MiB.
 * @param level - 1 (fastest) to 9 (smallest), the header's codec level.
 * @param engine - `'node'` (node:zlib, default) or `'portable'` (fflate).
 * @returns the encoded bytes (may be longer than `plain` for incompressible data; the caller
 *   then stores the chunk raw, spec section 5.1).
 * @throws TypeError / RangeError on misuse.
 * @example
 * const encoded = deflateEncode(new Uint8Array(65536), 1);
 */
export function deflateEncode(plain: Uint8Array, level: number, engine?: Engine): Uint8Array {
  expectBytes('plain', plain);
  if (plain.byteLength > LIMITS.maxChunkSize) {
    throw new RangeError(`expected plain to be at most ${LIMITS.maxChunkSize} bytes, got ${plain.byteLength} bytes`);
  }
  expectInt('level', level, DEFLATE_MIN_LEVEL, DEFLATE_MAX_LEVEL);
  if (checkEngine(engine) === 'node') {
    // One output buffer as large as the input: typical chunks come back as a single view
    // instead of several 16 KiB pieces concatenated.
    return deflateRawSync(plain, { level, chunkSize: Math.max(ZLIB_MIN_CHUNK, plain.byteLength) });
  }
  return portableLibraries().deflateSync(plain, { level: level as 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 });
}

/**
 * Decodes one raw DEFLATE stream that must yield exactly `plainLength` bytes (spec sections 5.3
 * and 6).
 * @param encoded - the stream (after opening, when the image has a cipher).
 * @param plainLength - the chunk's plain length, 1 to 16 MiB: the only size ever allocated.
 * @param engine - `'node'` (default) or `'portable'`.
 * @returns `plainLength` bytes.
 * @throws CrimgError `CORRUPT_CHUNK` when the stream is malformed, truncated, or decodes to more
 *   or fewer than `plainLength` bytes. TypeError / RangeError on misuse.
 * @example
 * const plain = deflateDecode(encoded, 65536);
 */
export function deflateDecode(encoded: Uint8Array, plainLength: number, engine?: Engine): Uint8Array {
  expectBytes('encoded', encoded);
  expectInt('plainLength', plainLength, 1, LIMITS.maxChunkSize);
  const eng = checkEngine(engine);
  let out: Uint8Array;
  try {
    if (eng === 'node') {
      // The output buffer has one spare byte: a stream that ends at exactly plainLength comes
      // back in one piece, and one that goes on trips maxOutputLength at once.
      const r = inflateRawSync(encoded, {
        maxOutputLength: plainLength,
        chunkSize: Math.max(ZLIB_MIN_CHUNK, plainLength + 1),
        info: true,
      }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
      out = r.buffer;
      if (out.byteLength === plainLength && r.engine.bytesWritten < encoded.byteLength) throw trailing(encoded.byteLength - r.engine.bytesWritten);
    } else {
      if (encoded.byteLength === 0) throw new Error('empty stream');
      out = portableInflate(encoded, plainLength);
    }
  } catch (e) {
    if (e instanceof CrimgError) throw e;
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw tooLong(plainLength);
    const why = e instanceof Error ? e.message : String(e);
    throw new CrimgError('CORRUPT_CHUNK', `deflate stream does not decode (${why})`, {
      hint: 'the chunk is damaged; verify the image, or re-copy it from its source',
    });
  }
  if (out.byteLength > plainLength) throw tooLong(plainLength);
  if (out.byteLength < plainLength) {
    throw new CrimgError('CORRUPT_CHUNK', `deflate stream decodes to ${out.byteLength} bytes, expected ${plainLength}`, {
      hint: 'the chunk is damaged; verify the image, or re-copy it from its source',
    });
  }
  return out;
}

/** DEFLATE's largest expansion: 258 bytes from one 2-bit length/distance pair, about 1032 x. */
const MAX_EXPANSION = 1032;
/**
 * Output a one-shot portable decode may be made to produce past the plain length: fflate keeps
 * decoding past the end of the caller's buffer (writes there are dropped, no memory grows) at
 * about 2 ns per byte, so a stream that can claim at most this much costs at most ~20 ms.
 */
const ONE_SHOT_OVERSHOOT = 8 << 20;
/** The smallest input slice of the portable streaming decoder (each push costs fflate ~160 KiB of buffers: about 50 us). */
const MIN_SLICE = 1024;
/** How far past the plain length a slice may let the output go, at most. */
const MAX_OVERSHOOT = 1 << 20;

/**
 * The input bytes of the next push when `got` of `plainLength` bytes are out: as many as can
 * expand to at most the bytes still expected plus min(plainLength, 1 MiB), or MIN_SLICE.
 */
export function portableSlice(plainLength: number, got: number): number {
  const allowed = Math.max(0, plainLength - got) + Math.min(plainLength, MAX_OVERSHOOT);
  return Math.max(MIN_SLICE, Math.floor(allowed / MAX_EXPANSION));
}

/**
 * The portable decoder, bounded by the plain length whatever the stream claims:
 * - a stream that cannot expand past `plainLength` + 8 MiB (DEFLATE expands at most about
 *   1032 x: a 4 KiB chunk's, and any chunk stored in under ~8 KiB) is decoded in one call into
 *   a buffer of `plainLength + 1` bytes: fflate decodes the whole stream but writes nothing past
 *   the buffer (a full buffer means too long), so it costs at most ~20 ms and no memory;
 * - a longer one goes through fflate's streaming decoder in slices sized by
 *   {@link portableSlice}, since it decodes each pushed slice whole: no push can take the output
 *   more than about 1 MiB past the plain length, and decoding stops at the first push that
 *   passes it, so a bomb costs at most plainLength + about 1 MiB of output.
 * (With 4 KiB slices for every stream, a 4 KiB chunk inflating to 4 MiB cost 346 ms and +32 MiB.)
 */
function portableInflate(encoded: Uint8Array, plainLength: number): Uint8Array {
  if (encoded.byteLength * MAX_EXPANSION <= plainLength + ONE_SHOT_OVERSHOOT) {
    const inflateSync = portableLibraries().inflateSync;
    const got = inflateSync(encoded, { out: new Uint8Array(plainLength + 1) });
    if (got.byteLength > plainLength) throw tooLong(plainLength);
    if (got.byteLength === plainLength && encoded.byteLength > 1) {
      // fflate reports no consumed length here: a stream that still decodes whole without its
      // last byte did not end in it (fflate fails at the end of its input otherwise).
      let whole = false;
      try {
        whole = inflateSync(encoded.subarray(0, encoded.byteLength - 1), { out: new Uint8Array(plainLength + 1) }).byteLength === plainLength;
      } catch {
        // the stream needs its last byte: nothing follows it
      }
      if (whole) throw trailing(1);
    }
    return got;
  }
  const out = new Uint8Array(plainLength);
  let got = 0;
  let ended = false;
  const inflater = new (portableLibraries().Inflate)((chunk: Uint8Array, final: boolean) => {
    if (got + chunk.byteLength <= plainLength) out.set(chunk, got);
    got += chunk.byteLength;
    if (final) ended = true;
  });
  for (let off = 0; off < encoded.byteLength;) {
    const end = Math.min(encoded.byteLength, off + portableSlice(plainLength, got));
    inflater.push(encoded.subarray(off, end), end === encoded.byteLength);
    if (got > plainLength) throw tooLong(plainLength);
    off = end;
  }
  if (!ended) throw new Error('unexpected end of stream');
  // fflate keeps the input from the byte of its bit position on (fflate 0.8, pinned by the
  // lockfile): a partly used byte is the stream's last, any byte beyond it follows the stream.
  const left = inflater as unknown as { p: Uint8Array; s: { p: number } };
  const after = left.p.byteLength - ((left.s.p & 7) !== 0 ? 1 : 0);
  if (got === plainLength && after > 0) throw trailing(after);
  return got === plainLength ? out : out.subarray(0, got);
}

function trailing(bytes: number): CrimgError {
  return new CrimgError('CORRUPT_CHUNK', `deflate stream is followed by ${bytes === 1 ? 'at least one byte' : `${bytes} bytes`} in its chunk (a chunk is one complete stream and nothing else)`, {
    hint: 'the chunk is damaged or crafted; verify the image, or re-copy it from its source',
  });
}

function tooLong(plainLength: number): CrimgError {
  return new CrimgError('CORRUPT_CHUNK', `deflate stream decodes to more than the plain length of ${plainLength} bytes`, {
    hint: 'the chunk is damaged or crafted; verify the image, or re-copy it from its source',
  });
}

const deflateRawAsync = promisify(deflateRaw) as (b: Uint8Array, o: { level: number; finishFlush: number }) => Promise<Buffer>;

/**
 * Raw DEFLATE of a chunk whose pages are part random, part compressible, on libuv's thread
 * pool (node engine): the chunk whole, as one stream, the bytes of node:zlib's deflateRaw at
 * `level` (and of the addon's deflateBatch, {@link NativeDeflater}). So no chunk is ever larger
 * than zlib's own deflate of it.
 *
 * Why not the page flags: runs of random pages were kept as stored blocks between runs of
 * compressible pages deflated each as a fresh stream. A page judged random from 256 sampled
 * bytes may hold compressible runs, and each fresh stream lost the window and paid a sync flush
 * and new code tables: on memory whose pages mix random and structured runs, 32 MiB made 13.9 MB
 * against 12.4 MB for zlib per chunk (issue 16). A chunk whose every page looks random
 * throughout ({@link looksIncompressibleThroughout}) is not deflated at all (the encoder stores
 * it raw), which keeps most of the CPU that skipping saved.
 * @param plain - the chunk.
 * @param level - deflate level 1-9.
 * @param _random - per whole 4 KiB page, whether it looks random: no longer used (kept for callers).
 */
export async function deflatePagesAsync(plain: Uint8Array, level: number, _random: readonly boolean[]): Promise<Uint8Array> {
  return deflateRawAsync(plain, { level, finishFlush: zc.Z_FINISH });
}

/** n * log2(n) for n = 0..4096: histogram terms of a page's entropy. */
const PAGE_N_LOG_N = Float64Array.from({ length: 4097 }, (_, n) => (n === 0 ? 0 : n * Math.log2(n)));
const pageHist = new Int32Array(256);
const quarterHist = new Int32Array(256);

/**
 * True when zlib is not expected to shrink `plain`, looking at every byte (the addon's
 * LooksIncompressible in native-mmap/src/deflate.cc, for the engine without it): whole pages
 * only, each 1 KiB quarter above 7.75 bits per byte and each page above 7.94 (uniform random
 * bytes measure 0.1 % below 7.751 and 7.941; a structured run of a few dozen bytes brings its
 * quarter below), and 4-byte repeats within zlib's 32 KiB window no more than chance makes
 * (copied bytes are no longer random to deflate). The encoder stores a chunk raw without deflating it only when this
 * holds and its 256-sample test (codec/chunk.ts pageLooksRandom) flagged every page.
 */
export function looksIncompressibleThroughout(plain: Uint8Array): boolean {
  const n = plain.byteLength;
  if (n === 0 || n % 4096 !== 0) return false;
  for (let base = 0; base < n; base += 4096) {
    pageHist.fill(0);
    for (let k = 0; k < 4; k++) {
      quarterHist.fill(0);
      const from = base + k * 1024;
      for (let i = from; i < from + 1024; i++) quarterHist[plain[i]!]!++;
      let q = 0;
      for (let b = 0; b < 256; b++) {
        const c = quarterHist[b]!;
        q += PAGE_N_LOG_N[c]!;
        pageHist[b]! += c;
      }
      if (10 - q / 1024 <= 7.75) return false;
    }
    let whole = 0;
    for (let b = 0; b < 256; b++) whole += PAGE_N_LOG_N[pageHist[b]!]!;
    if (12 - whole / 4096 <= 7.94) return false;
  }
  return repeats(plain) <= Math.floor(n / 65536);
}

const head = new Uint32Array(1 << 15);

/**
 * Positions of `p` whose 4 bytes equal those at the last earlier position of the same hash
 * within 32 KiB (zlib's window; a chunk is its own stream): random bytes repeat 4 bytes by
 * chance about once per 2^17 bytes, a copy of L bytes counts about L - 3 times. As the addon's
 * Repeats.
 */
function repeats(p: Uint8Array): number {
  head.fill(0);
  let count = 0;
  for (let i = 0; i + 4 <= p.length; i++) {
    const w = (p[i]! | (p[i + 1]! << 8) | (p[i + 2]! << 16) | (p[i + 3]! << 24)) >>> 0;
    const h = Math.imul(w, 2654435761) >>> 17;
    const prev = head[h]!;
    if (prev !== 0 && i - (prev - 1) <= 32768 && p[prev - 1] === p[i] && p[prev] === p[i + 1] && p[prev + 1] === p[i + 2] && p[prev + 2] === p[i + 3]) count++;
    head[h] = i + 1;
  }
  return count;
}

/** Stored blocks holding `bytes` (at most 65535 bytes each), starting on a byte boundary (tests make streams of them). */
export function storedBlocks(bytes: Uint8Array, final: boolean): Uint8Array {
  const n = Math.max(1, Math.ceil(bytes.byteLength / 65535));
  const out = new Uint8Array(bytes.byteLength + 5 * n);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const seg = bytes.subarray(i * 65535, Math.min(bytes.byteLength, (i + 1) * 65535));
    out[o] = final && i === n - 1 ? 1 : 0; // BFINAL, BTYPE 00, padding to the byte boundary
    out[o + 1] = seg.byteLength & 0xff;
    out[o + 2] = seg.byteLength >> 8;
    out[o + 3] = ~seg.byteLength & 0xff;
    out[o + 4] = (~seg.byteLength >> 8) & 0xff;
    out.set(seg, o + 5);
    o += 5 + seg.byteLength;
  }
  return out;
}

type DeflateBatch = (level: number, plains: Uint8Array[], random: Uint8Array, out: Uint8Array, sizes: Int32Array, done: (err: Error | null) => void) => void;

/** A chunk for the native deflater, with its pages' randomness (see {@link NativeDeflater.deflate}). */
interface DeflateJob extends BatchJob {
  random: readonly boolean[] | null;
}

/**
 * The node engine's deflate through the native addon (native-mmap/src/deflate.cc): Node's own
 * zlib, the same bits as {@link deflateRawAsync} / {@link deflatePagesAsync}: each chunk whole,
 * as one stream (tested byte for byte), on libuv's pool in batches (codec/_native-batches.ts).
 */
export class NativeDeflater {
  private readonly batches: NativeBatches<DeflateJob>;
  /** Whole pieces of a region in one job each (codec/pieces.ts), the bytes {@link deflate} makes chunk by chunk. */
  readonly pieces: NativePieces;

  private constructor(batch: DeflateBatch, pieces: NativePieces, level: number) {
    this.pieces = pieces;
    this.batches = new NativeBatches<DeflateJob>((jobs, out, sizes, done) => {
      let pages = 0;
      for (const j of jobs) pages += Math.ceil(j.plain.byteLength / 4096);
      const random = new Uint8Array(pages);
      let k = 0;
      for (const j of jobs) {
        const n = Math.ceil(j.plain.byteLength / 4096);
        if (j.random) for (let p = 0; p < n; p++) random[k + p] = j.random[p] === true ? 1 : 0;
        k += n;
      }
      batch(level, jobs.map((j) => j.plain), random, out, sizes, done);
    });
  }

  /** A deflater at `level`, or null when the addon is unavailable. */
  static create(level: number): NativeDeflater | null {
    const addon = nativeAddon();
    return addon ? new NativeDeflater(addon.deflateBatch.bind(addon), new NativePieces(addon.deflatePiece.bind(addon), addon.deflateFilePiece.bind(addon), level), level) : null;
  }

  /**
   * Raw DEFLATE of `plain`, whole, as one stream (see {@link deflatePagesAsync}). When
   * `random` flags every page, the addon first looks at every byte on the pool thread, as
   * {@link looksIncompressibleThroughout} does, and resolves to null without deflating when
   * the chunk looks random throughout. Resolves to the encoded bytes, or null when they would
   * not be smaller than `plain`.
   */
  deflate(plain: Uint8Array, random: readonly boolean[] | null): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => this.batches.add({ plain, random, resolve, reject }));
  }
}
