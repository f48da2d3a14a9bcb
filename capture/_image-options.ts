/**
 * The image options that capture and import-core pass through to the writer unchanged.
 */
import type { CipherName } from '../format/constants.js';
import type { KeyInput } from '../image/keying.js';
import type { WriterOptions } from '../image/writer.js';

export interface ImageOutputOptions {
  /** "none" (default), "deflate" or "deflate:LEVEL". */
  compress?: string;
  /** Cipher suite; needs `key`. */
  encrypt?: CipherName;
  key?: KeyInput;
  /** Chunk size; default the writer's. */
  chunkSize?: number;
  /** Worker threads for compression and encryption (the writer's default otherwise). */
  workers?: number;
  /** fsync the image before renaming it into place (default true). */
  fsync?: boolean;
  /** Permission bits of the image, 0 to 0o777 (default the writer's 0o600: images hold secrets). */
  mode?: number;
}

/** The writer options `o` sets (an unset one keeps the writer's default; encrypt 'none' is none). */
export function imageWriterOptions(o: ImageOutputOptions): WriterOptions {
  return {
    ...(o.chunkSize !== undefined ? { chunkSize: o.chunkSize } : {}),
    ...(o.compress !== undefined ? { compress: o.compress } : {}),
    ...(o.encrypt !== undefined && o.encrypt !== 'none' ? { encrypt: o.encrypt, key: o.key } : {}),
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    ...(o.fsync !== undefined ? { fsync: o.fsync } : {}),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
  };
}
