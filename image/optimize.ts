/**
 * Optimizing an image for lazy restore (issue 17): the same memory rewritten with a hot list
 * (spec/FORMAT.md section 4.1, validation record type 9 and optional feature bit 2) made from an
 * access profile, the chunk numbers in the order a previous restore first touched them
 * (`restored.accessProfile()`). A lazy restore prefetches the hot list first; copy and map
 * restores read hot chunks first too.
 *
 * The stored chunks stay in chunk-table order: section 5.2 requires it of every image, and bit 2
 * is optional, so a reader that does not know it would see a reordered data area as a placement
 * violation and refuse the image at verify. The order lives in the list alone (section 4.1 says
 * why that costs a local restore nothing).
 */
import { convertImage, type ConvertOptions } from './convert.js';
import type { SourceInput } from './source.js';
import type { WriteSummary } from './writer.js';
import { ImageReader, openReader } from './reader.js';

/** Settings of {@link optimizeImage}: those of convert, but never another chunk size. */
export type OptimizeOptions = Omit<ConvertOptions, 'chunkSize' | 'hotList'> & {
  /**
   * Chunk numbers in first-touch order, as `restored.accessProfile()` returns them. A number
   * named again later is dropped (profiles of several runs may be concatenated); an empty
   * profile writes the image without a hot list.
   */
  profile: readonly number[];
};

/** What {@link optimizeImage} wrote. */
export interface OptimizeSummary extends WriteSummary {
  /** Chunks in the hot list. */
  hotChunks: number;
}

/**
 * Writes `output`: the memory of `input` with the hot list of `options.profile` (replacing any
 * hot list `input` has), otherwise as {@link convertImage} with the same options writes it.
 * On failure no file is left at `output`.
 * @param input an open image (left open), or a path, fd or bytes to open (closed afterwards).
 * @throws TypeError when `profile` is not an array; RangeError when an entry is not an integer
 *   chunk number of `input` (below its chunk count: a profile of another image), before the
 *   output is created; CrimgError as convertImage does.
 * @example
 * const r = await image.restore({ mode: 'lazy', prefetch: false });
 * await runWorkload(r); const profile = r.accessProfile(); r.release();
 * await optimizeImage('app.img', 'app-hot.img', { profile, key });
 */
export async function optimizeImage(input: ImageReader | SourceInput, output: string, options: OptimizeOptions): Promise<OptimizeSummary> {
  if (!options || !Array.isArray(options.profile)) throw new TypeError(`expected options.profile, an array of chunk numbers, got ${typeof options?.profile}`);
  const owned = !(input instanceof ImageReader);
  const image = input instanceof ImageReader ? input : await openReader(input, {
    ...(options.key !== undefined ? { key: options.key } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
  });
  try {
    const hot = hotChunksOf(options.profile, image.chunkCount);
    const { profile: _, ...rest } = options;
    const summary = await convertImage(image, output, { ...rest, hotList: hot.length > 0 ? hot : null });
    return { ...summary, hotChunks: hot.length };
  } finally {
    if (owned) await image.close();
  }
}

/**
 * The profile's chunk numbers, each once, in first-seen order.
 * @throws RangeError naming the first entry that is not a chunk number below `chunkCount`.
 */
export function hotChunksOf(profile: readonly number[], chunkCount: number): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  profile.forEach((c, i) => {
    if (!Number.isSafeInteger(c) || c < 0 || c >= chunkCount) {
      throw new RangeError(`expected profile entry ${i} to be a chunk number from 0 to ${chunkCount - 1}, got ${JSON.stringify(c)} (a profile recorded on another image?)`);
    }
    if (!seen.has(c)) {
      seen.add(c);
      out.push(c);
    }
  });
  return out;
}
