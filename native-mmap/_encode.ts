/**
 * The addon's encoder bindings (native-mmap/src/codec_js.cc, src/zstd_js.cc, src/piece_js.cc), part of
 * NativeMmap: a private module so that the loader stays under the line limit.
 */
/**
 * Sealing of a piece's chunks (an image with a cipher, spec/FORMAT.md section 7.3), as the
 * chunk-by-chunk path seals each: nonce `u64 c || u32 0`, associated data `prefix || u64 c ||
 * u32 region || u32 plain length || u64 address || u8 encoded || u8 last || u16 0`.
 */
export interface PieceSeal {
  /** 1 AES-256-GCM, 2 ChaCha20-Poly1305. */
  cipher: 1 | 2;
  /** The data key `Kd`, 32 bytes (copied, and wiped when the job ends). */
  key: Uint8Array;
  /** Image id (16 bytes) || H (32 bytes). */
  prefix: Uint8Array;
  /** The piece's first chunk number. */
  chunk: number;
  region: number;
  /** The piece's first chunk's address. */
  address: bigint;
  /** The piece's last chunk ends its region. */
  last: boolean;
}

/** A piece job's end: the codes, sums and stored bytes of its chunks, or the error. */
export type PieceDone = (err: Error | null, sizes: Int32Array, sums: BigUint64Array, stored: Uint8Array) => void;

export interface EncodeBindings {
  /**
   * Seals `plain` under the format's cipher id (spec/FORMAT.md section 7: 1 AES-256-GCM,
   * 2 ChaCha20-Poly1305; 32-byte key, 12-byte nonce) into `out`, which must hold
   * plain.length + 16 bytes: ciphertext, then the tag. Node's OpenSSL.
   */
  aeadSeal(cipherId: 1 | 2, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array, out: Uint8Array): void;
  /**
   * Raw DEFLATE of every chunk of `plains` at `level` in one libuv pool job, with Node's zlib:
   * chunk i's flags are the next ceil(length / 4096) bytes of `random` (1: keep the page as a
   * stored block), its output goes to `out` at the sum of the previous chunks' lengths, and
   * sizes[i] is its length, or -1 when it would not be smaller. `done` runs on this thread.
   */
  deflateBatch(level: number, plains: Uint8Array[], random: Uint8Array, out: Uint8Array, sizes: Int32Array, done: (err: Error | null) => void): void;
  /** One zstd frame (spec 6.2) of `plain` at `level` 1..19 into `out`, on this thread: its length, or -1 when it does not fit. */
  zstdCompress(level: number, plain: Uint8Array, out: Uint8Array): number;
  /** zstdCompress of every chunk of `plains` in one libuv pool job; flags 1: zero and entropy tests, 2: XXH64 sums; returns the codes known before the job (src/zstd_js.cc). */
  zstdBatch(level: number, plains: Uint8Array[], flags: number, done: (err: Error | null, sizes: Int32Array, frames: (Uint8Array | null)[], sums: BigUint64Array | null) => void): { sizes: Int32Array; sums: BigUint64Array | null };
  /**
   * A whole piece of a region (1 byte to 64 MiB, copied before this returns) cut into
   * `chunkSize` chunks, the last may be shorter, each tested, compressed and summed as
   * zstdBatch does with flags 3, in one libuv pool job: sizes[i] is chunk i's frame length, -1
   * or -3 (stored raw) or -2 (zeros); sums[i] XXH64 of what is stored (0 for zeros); `stored`
   * is what alloc(n) returned when the job was done (n: the bytes stored; a Uint8Array of at
   * least n bytes, checked), with the stored bytes of the chunks in order, back to back, copied
   * there on this thread just before `done` (src/piece_js.cc).
   */
  zstdPiece(level: number, bytes: Uint8Array, chunkSize: number, alloc: (n: number) => Uint8Array, done: PieceDone, seal?: PieceSeal): void;
  /**
   * {@link zstdPiece} of `length` bytes (1 byte to 64 MiB) of file `fd` from `position`, read
   * by the job itself on its pool thread: no copy on this thread. `read` runs on this thread
   * once the read is done (before `done`); keep `fd` open until then, or until `done`. A failed
   * read is `done`'s error (and `read` is not called): a system error (code the errno name,
   * syscall 'pread') or, when the file ends first, code ERR_CRIMG_EOF; either with the read's
   * `position`.
   */
  zstdFilePiece(level: number, fd: number, position: number, length: number, chunkSize: number, alloc: (n: number) => Uint8Array, done: PieceDone, read?: () => void, seal?: PieceSeal): void;
  /**
   * {@link zstdPiece} with deflate at `level` 1..9: each chunk what deflateBatch makes of it
   * with its pages' flags from codec/chunk.ts's pageLooksRandom (a raw chunk is -1 whether not
   * smaller or random throughout), sums[i] XXH64 of what is stored.
   */
  deflatePiece(level: number, bytes: Uint8Array, chunkSize: number, alloc: (n: number) => Uint8Array, done: PieceDone, seal?: PieceSeal): void;
  /** {@link zstdFilePiece} with deflate, as {@link deflatePiece}. */
  deflateFilePiece(level: number, fd: number, position: number, length: number, chunkSize: number, alloc: (n: number) => Uint8Array, done: PieceDone, read?: () => void, seal?: PieceSeal): void;
  /**
   * {@link zstdPiece} with no codec (`level` 0): every chunk but a zero one stored raw (-1), with
   * `seal` sealed as an image with a cipher stores it.
   */
  rawPiece(level: number, bytes: Uint8Array, chunkSize: number, alloc: (n: number) => Uint8Array, done: PieceDone, seal?: PieceSeal): void;
  /** {@link zstdFilePiece} with no codec, as {@link rawPiece}. */
  rawFilePiece(level: number, fd: number, position: number, length: number, chunkSize: number, alloc: (n: number) => Uint8Array, done: PieceDone, read?: () => void, seal?: PieceSeal): void;
}
