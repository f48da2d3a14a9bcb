/**
 * A deterministic generator of memory-like bytes, the input of every benchmark
 * (a memory-like input as measured on 2-vCPU machines of the kind this project runs on):
 * runs of 1 to 32 pages, each run of one kind, chosen with probability 40 % zero,
 * 30 % structured (pointer-like 8-byte words near a few bases, small integers, ASCII strings),
 * 30 % random (xorshift32 words: incompressible, not cryptographic).
 *
 * Everything follows from the seed, so two runs (and the C tools reading the written file) see
 * the same bytes. Pieces are produced one at a time: 512 MiB never sit in memory at once.
 */
import { open } from 'node:fs/promises';

export const PAGE_SIZE = 4096;
const MiB = 1024 * 1024;

/** Page kinds of the input, and how many of each were produced. */
export interface MemoryLikeStats {
  pages: number;
  zeroPages: number;
  structuredPages: number;
  randomPages: number;
}

export interface MemoryLikeOptions {
  /** Default 1. Any 32-bit value; 0 is replaced by a fixed non-zero state (xorshift needs one). */
  seed?: number;
  /** Bytes per piece, a multiple of the page size. Default 1 MiB. */
  pieceSize?: number;
  /** Filled in while the pieces are produced. */
  stats?: MemoryLikeStats;
}

const ZERO = 0;
const STRUCTURED = 1;
const RANDOM = 2;

/** Pointer bases: a heap, a mmap area, a stack, a compressed class space (high, low 32 bits). */
const BASES: readonly (readonly [number, number])[] = [
  [0x00007f3a, 0x12000000], [0x00005555, 0x56a00000], [0x00007ffd, 0xe0000000], [0x00000008, 0x00000000],
];

/** Strings as found in a JVM or a C heap: class names, paths, identifiers, text. */
const WORDS: readonly Uint8Array[] = [
  'java/lang/String', 'Ljava/util/HashMap;', 'java/util/concurrent/ConcurrentHashMap$Node', '<init>', 'main',
  'org/example/app/OrderService', 'toString', '/usr/lib/jvm/java-21/lib/modules', 'UTF-8', 'Exception in thread',
  'GET /api/v1/orders HTTP/1.1', 'Content-Type: application/json', 'hashCode', '(Ljava/lang/Object;)Z',
  'libc.so.6', 'LD_LIBRARY_PATH=/usr/local/lib', 'user-', 'session', 'true', 'false', 'null', 'id', 'name',
  'The quick brown fox jumps over the lazy dog. ',
].map((s) => new TextEncoder().encode(s));

/**
 * The memory-like bytes, `totalBytes` of them (rounded down to whole pages), as fresh pieces.
 * Each piece is a new zero-filled buffer the caller may keep (the writer holds pieces until
 * their chunks are written).
 * @throws RangeError when the piece size is not a positive multiple of the page size.
 */
export function* memoryLikePieces(totalBytes: number, options: MemoryLikeOptions = {}): Generator<Uint8Array> {
  const pieceSize = options.pieceSize ?? MiB;
  if (!Number.isSafeInteger(pieceSize) || pieceSize <= 0 || pieceSize % PAGE_SIZE !== 0) {
    throw new RangeError(`expected a piece size that is a positive multiple of ${PAGE_SIZE}, got ${pieceSize}`);
  }
  const stats = options.stats ?? { pages: 0, zeroPages: 0, structuredPages: 0, randomPages: 0 };
  // Two independent xorshift32 streams: one decides runs (so the proportions do not depend on
  // how many random words the pages consumed), one fills pages.
  let decide = (options.seed ?? 1) >>> 0 || 0x9e3779b9;
  let fill = Math.imul(decide, 0x85ebca6b) >>> 0 || 0x6a09e667;
  const nextDecide = (): number => {
    decide ^= decide << 13; decide ^= decide >>> 17; decide ^= decide << 5;
    return decide >>> 0;
  };
  const nextFill = (): number => {
    fill ^= fill << 13; fill ^= fill >>> 17; fill ^= fill << 5;
    return fill >>> 0;
  };

  const fillRandom = (w: Uint32Array, from: number, to: number): void => {
    let x = fill;
    for (let i = from; i < to; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      w[i] = x;
    }
    fill = x;
  };

  // Structured page: segments of pointers, small integers, strings and zero words, 8-aligned.
  const fillStructured = (bytes: Uint8Array, w: Uint32Array, pageByte: number): void => {
    const end = pageByte + PAGE_SIZE;
    let o = pageByte;
    while (o < end) {
      const r = nextFill();
      const kind = r & 7;
      const words = Math.min(1 + ((r >>> 3) & 15), (end - o) >> 3);
      const wi = o >> 2;
      if (kind < 3) {
        // Pointer-like: one base per segment, 8-aligned offsets within 128 KiB of it.
        const [hi, lo] = BASES[(r >>> 7) & 3]!;
        for (let k = 0; k < words; k++) {
          w[wi + 2 * k] = (lo + ((nextFill() & 0x3fff) << 3)) >>> 0;
          w[wi + 2 * k + 1] = hi;
        }
        o += words * 8;
      } else if (kind < 5) {
        // Small integers (counts, lengths, flags, enum values), high word zero.
        for (let k = 0; k < words; k++) {
          const v = nextFill();
          w[wi + 2 * k] = v & 0x8000 ? v & 0xff : v & 0x3ff;
        }
        o += words * 8;
      } else if (kind < 7) {
        // A string of a few words, NUL-padded to 8 bytes (like a C string or a JVM symbol).
        const n = 1 + ((r >>> 7) & 3);
        for (let k = 0; k < n && o < end; k++) {
          const s = WORDS[nextFill() % WORDS.length]!;
          const len = Math.min(s.length, end - o);
          bytes.set(len === s.length ? s : s.subarray(0, len), o);
          o += len;
        }
        o = Math.min(end, (o + 7) & ~7);
      } else {
        o += words * 8; // zero words: nulls, unused fields
      }
    }
  };

  let remaining = Math.floor(totalBytes / PAGE_SIZE);
  let runKind = ZERO;
  let runLeft = 0;
  while (remaining > 0) {
    const pages = Math.min(remaining, pieceSize / PAGE_SIZE);
    const bytes = new Uint8Array(pages * PAGE_SIZE);
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
    for (let p = 0; p < pages; p++) {
      if (runLeft === 0) {
        const r = nextDecide();
        runLeft = 1 + (r & 31);
        const pick = (r >>> 5) % 10;
        runKind = pick < 4 ? ZERO : pick < 7 ? STRUCTURED : RANDOM;
      }
      runLeft--;
      const at = p * PAGE_SIZE;
      if (runKind === RANDOM) {
        fillRandom(w, at >> 2, (at + PAGE_SIZE) >> 2);
        stats.randomPages++;
      } else if (runKind === STRUCTURED) {
        fillStructured(bytes, w, at);
        stats.structuredPages++;
      } else {
        stats.zeroPages++;
      }
      stats.pages++;
    }
    remaining -= pages;
    yield bytes;
  }
}

/**
 * Writes `totalBytes` of memory-like bytes to `path` (truncating it), one piece at a time.
 * @returns the page statistics of what was written.
 */
export async function writeMemoryLikeFile(path: string, totalBytes: number, seed = 1): Promise<MemoryLikeStats> {
  const stats: MemoryLikeStats = { pages: 0, zeroPages: 0, structuredPages: 0, randomPages: 0 };
  const fh = await open(path, 'w');
  try {
    for (const piece of memoryLikePieces(totalBytes, { seed, stats, pieceSize: 4 * MiB })) {
      let done = 0;
      while (done < piece.length) done += (await fh.write(piece, done, piece.length - done)).bytesWritten;
    }
  } finally {
    await fh.close();
  }
  return stats;
}
