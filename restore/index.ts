/**
 * The restore floor (`crimg/restore`): an image's regions back into memory, and the package's
 * {@link Image}, the reader with `restore()`.
 */
export { Image, openImage } from './image.js';
export { restoreImage } from './restore.js';
export type { RestoreOptions, RestoreResult, RestoredRegion, RestoreAdvice } from './restore.js';
