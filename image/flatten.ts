/**
 * Flattening a child image (spec/FORMAT.md section 8.3): one standalone image holding every
 * byte of the child, its parent's chunks included, in one streaming pass (convertImage over the
 * child, whose reads take IN_PARENT chunks from the chain). The output has no parent record, a
 * new image id, and the child's regions, validation records and settings unless told otherwise;
 * a raw output is MAPPABLE again, so a restore can map it.
 */
import { convertImage, type ConvertOptions } from './convert.js';
import { ImageReader, openReader } from './reader.js';
import type { SourceInput } from './source.js';
import type { WriteSummary } from './writer.js';
import type { ParentInput } from './_parent.js';

export interface FlattenOptions extends ConvertOptions {
  /** The child's parent when `input` is opened here (see OpenOptions.parent); default its location hint. */
  parent?: ParentInput;
}

/**
 * Writes `output`, a standalone image of the same memory as the child `input` (any image: a
 * standalone input is copied as convertImage copies it). On failure no file is left at `output`.
 * @param input an open image (left open), or a path, fd or bytes to open (closed afterwards).
 * @throws CrimgError PARENT_REQUIRED, PARENT_MISMATCH, and what reading the chain throws
 *   (KEY_REQUIRED, CORRUPT_CHUNK, AUTH_FAILED...); IO_ERROR from writing.
 * @example
 * await flattenImage('child.img', 'whole.img');
 * await flattenImage('child.img', 'whole.img', { key, parent: { source: 'base.img', key: baseKey } });
 */
export async function flattenImage(input: ImageReader | SourceInput, output: string, options: FlattenOptions = {}): Promise<WriteSummary> {
  const { parent, ...convert } = options;
  const owned = !(input instanceof ImageReader);
  const image = input instanceof ImageReader ? input : await openReader(input, {
    ...(options.key !== undefined ? { key: options.key } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
    ...(parent !== undefined ? { parent } : {}),
  });
  try {
    // The chain is checked (image id, index hash) before the output is created.
    await image.parent();
    return await convertImage(image, output, convert);
  } finally {
    if (owned) await image.close();
  }
}
