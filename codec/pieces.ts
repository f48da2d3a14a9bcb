/**
 * Whole pieces of a region encoded in one native pool job each (native-mmap/src/piece_js.cc,
 * zstd and deflate alike): the job tests, encodes and sums every chunk of the piece as the
 * chunk-by-chunk path does, byte for byte, and the stored bytes come back packed into kept
 * memory, sealed in the job too for an image with a cipher. The image writer
 * (image/_chunk-stream.ts) takes this path for whole chunks of a region: no promise, copy, test
 * or seal per chunk on the JavaScript thread.
 */
import type { EncodeBindings, PieceSeal } from '../native-mmap/_encode.js';
import { nativeAddon } from '../native-mmap/index.js';

export type { PieceSeal };

/** The addon's zstdPiece, deflatePiece or rawPiece. */
export type PieceJob = EncodeBindings['zstdPiece'];
/** The addon's zstdFilePiece, deflateFilePiece or rawFilePiece. */
export type FilePieceJob = EncodeBindings['zstdFilePiece'];
type PieceDone = Parameters<PieceJob>[4];

/** The largest piece {@link NativePieces.encodePiece} takes. */
export const PIECE_MAX = 64 * 1024 * 1024;

/** {@link NativePiece.sizes}'s code of a chunk of zeros. */
export const PIECE_ZERO = -2;

/**
 * What the native job made of a piece of a region (whole chunks but perhaps the last), per
 * chunk what the codec's chunk-by-chunk encoder makes of it, in one job and one buffer.
 */
export interface NativePiece {
  /**
   * Per chunk: its encoded length (> 0); PIECE_ZERO: all zeros, nothing stored; any other
   * negative: stored raw, its plain length. Sealed, each stores 16 bytes more (the tag).
   */
  sizes: Int32Array;
  /** XXH64 of what is stored (0 for a chunk of zeros). */
  sums: BigUint64Array;
  /** What is stored of the chunks, in chunk order, back to back. */
  stored: Uint8Array;
  /** Gives the memory of {@link stored} back for a later piece: call once nothing reads it any more (it is written). */
  release(): void;
}

/**
 * Memory the pieces' stored bytes are packed into, back to back, as their jobs end (exactly
 * what each stores, ~40 % of its plain length on memory-like data): the pieces behind the
 * writes in flight then touch about what they store, where a buffer per piece, sized for its
 * plain length, would spread them over up to 2.5 times the memory (each page touched for the
 * first time costs a fault, ~5 us on a VM). An arena is reused once every piece in it is
 * written; at most {@link KEPT_ARENAS} are kept.
 */
const ARENA = 4 * 1024 * 1024;
const KEPT_ARENAS = 12;

/** An arena being filled or still read by writes: `live` pieces in it not yet released. */
interface Arena {
  bytes: Uint8Array;
  used: number;
  live: number;
}

/** One codec's piece jobs at one level, with the arenas their stored bytes are packed into. */
export class NativePieces {
  /** The arena being filled, and arenas free for reuse. */
  private arena: Arena | null = null;
  private readonly freeArenas: Uint8Array[] = [];

  constructor(private readonly piece: PieceJob, private readonly filePiece: FilePieceJob, private readonly level: number) {}

  /**
   * Every chunk of `bytes` (1 byte to {@link PIECE_MAX}, cut into `chunkSize` chunks, the last
   * may be shorter) in one pool job, each stored form sealed with `seal`. `bytes` is copied
   * before this returns: the caller may reuse it at once.
   */
  encodePiece(bytes: Uint8Array, chunkSize: number, seal?: PieceSeal): Promise<NativePiece> {
    return this.run((alloc, done) => this.piece(this.level, bytes, chunkSize, alloc, done, seal));
  }

  /**
   * {@link encodePiece} of `length` bytes (1 byte to {@link PIECE_MAX}) of file `fd` from
   * `position`, read by the pool job itself; `read` runs once the read is done (before the
   * promise settles). Keep `fd` open until then, or until the promise settles. A failed read
   * rejects with the addon's error (see NativeMmap.zstdFilePiece).
   */
  encodeFilePiece(fd: number, position: number, length: number, chunkSize: number, read?: () => void, seal?: PieceSeal): Promise<NativePiece> {
    return this.run((alloc, done) => this.filePiece(this.level, fd, position, length, chunkSize, alloc, done, read, seal));
  }

  /** Runs one piece job, its stored bytes packed into the arena ({@link pack}). */
  private run(start: (alloc: (n: number) => Uint8Array, done: PieceDone) => void): Promise<NativePiece> {
    let release = (): void => {};
    const alloc = (n: number): Uint8Array => {
      const slot = this.pack(n);
      release = slot.release;
      return slot.bytes;
    };
    return new Promise((resolve, reject) => {
      start(alloc, (err, sizes, sums, stored) => {
        if (err) {
          release();
          reject(err);
        } else {
          resolve({ sizes, sums, stored, release });
        }
      });
    });
  }

  /** `n` bytes of the arena being filled (a new or kept one when it has no room), and how to give them back (once). */
  private pack(n: number): { bytes: Uint8Array; release: () => void } {
    if (n === 0) return { bytes: new Uint8Array(0), release: () => {} };
    let a = this.arena;
    if (a === null || a.bytes.byteLength - a.used < n) {
      const kept = this.freeArenas.findIndex((b) => b.byteLength >= n);
      a = { bytes: kept >= 0 ? this.freeArenas.splice(kept, 1)[0]! : new Uint8Array(Math.max(ARENA, n)), used: 0, live: 0 };
      const old = this.arena;
      this.arena = a;
      if (old) this.keepArena(old);
    }
    const arena = a;
    const bytes = arena.bytes.subarray(arena.used, arena.used + n);
    arena.used += n;
    arena.live++;
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        arena.live--;
        this.keepArena(arena);
      },
    };
  }

  /** Keeps `a` for reuse once it is no longer filled and nothing in it is live. */
  private keepArena(a: Arena): void {
    if (a === this.arena || a.live > 0 || a.bytes.byteLength > ARENA) return;
    if (this.freeArenas.length < KEPT_ARENAS) this.freeArenas.push(a.bytes);
  }
}

/**
 * Pieces with no codec (the addon's rawPiece): every chunk but a zero one stored raw, sealed in
 * the job for an image with a cipher; null without the addon.
 */
export function rawPieces(): NativePieces | null {
  const addon = nativeAddon();
  return addon ? new NativePieces(addon.rawPiece.bind(addon), addon.rawFilePiece.bind(addon), 0) : null;
}
