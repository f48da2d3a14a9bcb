/**
 * The writer's per-chunk stage: zero elision, checksum, and (with a codec or cipher) encoding
 * and sealing (spec/FORMAT.md sections 5.1, 5.3, 7.3, 7.4).
 */
import { xxh64 } from './checksum.js';
import { CHUNK_RAW, CHUNK_ZERO } from './constants.js';
import { isAllZero } from './bytes.js';
import type { HeaderFields } from './header.js';
import type { KeyInput } from './keying.js';

export interface EncodedChunk {
  stored: Uint8Array;
  flags: number;
  checksum: bigint;
  plainLength: number;
}

export interface ChunkContext {
  chunkNumber: number;
  regionNumber: number;
  address: bigint;
  last: boolean;
}

export interface ChunkEncoder {
  /** How many chunks it encodes at once (the writer keeps twice that in flight). */
  readonly parallelism: number;
  /** Called once with the final header and validation bytes (they feed the AEAD's `H`). */
  bindHeader(header: Uint8Array, validation: Uint8Array): void;
  encode(plain: Uint8Array, ctx: ChunkContext): Promise<EncodedChunk>;
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
  if (isAllZero(plain)) return { stored: new Uint8Array(0), flags: CHUNK_ZERO, checksum: 0n, plainLength: plain.length };
  return { stored: plain, flags: CHUNK_RAW, checksum: xxh64(plain), plainLength: plain.length };
}

class PlainEncoder implements ChunkEncoder {
  readonly parallelism = 1;
  bindHeader(): void {}
  async encode(plain: Uint8Array): Promise<EncodedChunk> {
    return encodePlainChunk(plain);
  }
  sealIndex(_d: 1 | 2, _c: bigint, plain: Uint8Array): Uint8Array {
    return plain;
  }
  async close(): Promise<void> {}
}

/** The encoder for the image's codec and cipher. */
export async function createChunkEncoder(s: EncoderSetup): Promise<ChunkEncoder> {
  if (s.fields.codec === 0 && s.fields.cipher === 0) return new PlainEncoder();
  throw new RangeError('codecs and ciphers are not wired into the writer yet');
}
