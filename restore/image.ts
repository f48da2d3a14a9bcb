/**
 * The package's image: the image floor's reader with {@link Image.restore} added. It lives on the
 * restore floor so that the reader never imports restore (no cycle between the floors).
 */
import { ImageReader, openWith, type OpenOptions } from '../image/reader.js';
import type { SourceInput } from '../image/source.js';
import { restoreImage, type RestoreOptions, type RestoreResult } from './restore.js';

/** An open image that can also restore itself. Methods are safe to call concurrently. */
export class Image extends ImageReader {
  /**
   * Restores the image's regions into memory (restore/restore.ts): `map` mode maps raw runs
   * straight from the file and checks every mapped chunk before returning (`check: false` maps
   * unchecked), `copy` mode decodes into anonymous memory, checking every chunk.
   * @throws CrimgError ADDRESS_IN_USE, INCOMPATIBLE, CORRUPT_CHUNK (either mode), and the read
   *   errors of copy mode.
   * @example
   * const { regions, release } = await image.restore({ mode: 'copy' });
   */
  restore(options: RestoreOptions = {}): Promise<RestoreResult> {
    return restoreImage(this, options);
  }
}

/**
 * Opens an image. Reads the footer, header, validation block and region section only.
 * @param input a path, an fd, bytes, or a {@link RandomAccessSource}.
 * @throws CrimgError when the image cannot be opened (bad magic, truncated, corrupt index, wrong key...).
 * @example
 * const image = await openImage('app.img');
 * const bytes = await image.read(0x7f0000001000n, 4096);
 * await image.close();
 */
export function openImage(input: SourceInput, options: OpenOptions = {}): Promise<Image> {
  return openWith(input, options, (parts) => new Image(parts));
}
