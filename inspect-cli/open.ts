/**
 * Opening an image with the key the options name (if any), and closing it afterwards. The
 * reader is imported when first needed, so commands that never open an image (capture,
 * create) do not pay for loading it.
 */
import type { Image } from '../restore/index.js';
import { parseMaxScrypt, readKey, type KeySources } from './keys.js';

/**
 * Opens `path`; an encrypted image opened without key options has `indexLocked`.
 * @throws CrimgError as openImage does (IO_ERROR for a missing file, WRONG_KEY...).
 */
export async function openWithKey(path: string, keys: KeySources, env: NodeJS.ProcessEnv): Promise<Image> {
  const key = await readKey(keys, env);
  const maxScrypt = parseMaxScrypt(keys.maxScrypt);
  const { openImage } = await import('../restore/index.js');
  return openImage(path, { ...(key === undefined ? {} : { key }), ...(maxScrypt ? { maxScrypt } : {}), ...(keys.parent !== undefined ? { parent: keys.parent } : {}) });
}

/** Runs `fn` with the open image and closes it whatever happens. */
export async function withImage<T>(path: string, keys: KeySources, env: NodeJS.ProcessEnv, fn: (image: Image) => Promise<T>): Promise<T> {
  const image = await openWithKey(path, keys, env);
  try {
    return await fn(image);
  } finally {
    await image.close();
  }
}
