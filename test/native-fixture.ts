/** Helpers shared by the native shim's tests. */
import { nativeAddon, nativeStatus, type NativeMmap } from '../native-mmap/index.js';

/**
 * "Name:code" of what `fn` throws, or "ok". Names, not constructors: the addon's errors come
 * from another realm than jest's.
 */
export function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    const e = err as { name?: string; code?: string };
    return `${e.name}:${e.code}`;
  }
}

/**
 * The native addon, for a suite that tests it: when it is unavailable this throws, so the suite
 * fails saying why instead of skipping. CI builds the addon (`npm ci` runs
 * native-mmap/install.mjs, which fails there when the build does); only tests that prove the
 * portable path on purpose set CRIMG_NO_NATIVE=1 themselves (restore-fallback.test.ts).
 */
export function requireNative(): NativeMmap {
  const addon = nativeAddon();
  if (addon === null) {
    throw new Error(`this suite tests the native addon, which is unavailable: ${nativeStatus().reason}`);
  }
  return addon;
}
