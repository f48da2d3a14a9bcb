/**
 * Large buffers in anonymous memory advised for huge pages, when the native addon is there.
 *
 * Why: on the VMs these tests and benches run on, the first touch of a fresh 4 KiB page costs
 * about 12 us (64 MiB of new memory: 190 ms before a byte is read into it), so a table read
 * into a fresh Buffer costs more than reading it. With 2 MiB pages that is one fault per
 * 2 MiB: a 12 MiB chunk table read 36 ms into a Buffer, 1-3 ms here; a region section of
 * 64 MiB 300-500 ms loaded against 30-40 ms.
 */
import { nativeAddon } from '../native-mmap/index.js';

/** Buffers from this size go into huge-page memory (below it, at most a few faults). */
export const HUGE_FROM = 2 * 1024 * 1024;

/** Bytes and how to give their memory back. */
export interface Held {
  readonly bytes: Uint8Array;
  /** Unmaps the memory (the buffer is then detached; once; later calls do nothing). No-op for a Buffer. */
  readonly release: () => void;
}

const NOTHING = (): void => {};

/**
 * `length` zeroed bytes: from {@link HUGE_FROM} and with the addon, a mapping advised for huge
 * pages (unmapped by `release`, or by the collector once unreachable); else a plain
 * Uint8Array. A failed map or advice falls back to the plain buffer, or the unadvised mapping.
 */
export function hugeBytes(length: number): Held {
  const addon = length >= HUGE_FROM ? nativeAddon() : null;
  if (addon === null) return { bytes: new Uint8Array(length), release: NOTHING };
  let ab: ArrayBuffer;
  try {
    ab = addon.mapAnonymous(Math.ceil(length / addon.pageSize()) * addon.pageSize(), 'rw-');
  } catch {
    return { bytes: new Uint8Array(length), release: NOTHING };
  }
  try {
    addon.advise(ab, ab.byteLength, 'hugepage');
  } catch {
    // No huge pages here: the mapping serves as it is.
  }
  let released = false;
  return {
    bytes: new Uint8Array(ab, 0, length),
    release: () => {
      if (!released) addon.unmap(ab);
      released = true;
    },
  };
}
