/**
 * The reader's per-chunk stage for encoded or encrypted images: checksum, open (AEAD) and
 * decode (spec/FORMAT.md sections 5.3, 6, 7.3, 7.4).
 */
import type { Header } from './header.js';
import type { ChunkRecord } from './index-table.js';
import type { KeyInput } from './keying.js';

export interface DecodeContext {
  rec: ChunkRecord;
  plainLength: number;
  chunkNumber: number;
  regionNumber: number;
  address: bigint;
  last: boolean;
}

export interface ChunkDecoder {
  /** True when a key was given and it passed the key check. */
  readonly hasKey: boolean;
  decode(stored: Uint8Array, ctx: DecodeContext): Promise<Uint8Array>;
  /** Opens a sealed index section (identity without a cipher). `base` is its file offset. */
  openIndex(domain: 1 | 2, count: bigint, stored: Uint8Array, base: number): Uint8Array;
  close(): Promise<void>;
}

export interface DecoderSetup {
  header: Header;
  headerBytes: Uint8Array;
  validationBytes: Uint8Array;
  key?: KeyInput | undefined;
  engine: 'node' | 'portable';
  scryptCaps?: { maxMemory?: number; maxP?: number } | undefined;
  workers?: number | undefined;
}

export async function createChunkDecoder(_s: DecoderSetup): Promise<ChunkDecoder> {
  throw new RangeError('codecs and ciphers are not wired into the reader yet');
}
