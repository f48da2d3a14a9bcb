/**
 * The parameters of native-mmap's decodeChunk (src/chunk_decode_js.cc), re-exported by
 * native-mmap/index.ts: a private module so that the loader stays under the line limit.
 */

/** The image's fields every native decode takes (decodeChunk, decodeBatch; spec sections 3, 7.3). */
export interface NativeImageParams {
  /** Header codec id (0 none, 1 deflate, 2 zstd) and cipher id (0 none, 1 AES-256-GCM, 2 ChaCha20-Poly1305). */
  codec: number;
  cipher: number;
  /** Header chunk size: a zstd frame's window may not exceed it. */
  chunkSize: number;
  /** Kd (32), image id (16) and H (32), with a cipher (decodeBatch copies them, and wipes its copies after the job). */
  dataKey?: Uint8Array;
  imageId?: Uint8Array;
  headerHash?: Uint8Array;
}

/** The image's and the chunk record's fields of NativeMmap.decodeChunk (spec sections 5.3, 7.3). */
export interface NativeChunkParams extends NativeImageParams {
  /** Chunk number, region number, address of its first byte, whether it is the region's last. */
  number: bigint;
  region: number;
  address: bigint;
  last: boolean;
  /** Plain length, and the record's flags and checksum. */
  plainLength: number;
  flags: number;
  checksum: bigint;
  /** Check XXH64 of the stored bytes first; default true. */
  verifyChecksum?: boolean;
}
