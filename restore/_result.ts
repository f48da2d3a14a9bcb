/**
 * The result of a restore while it is built, and what its `release()` undoes; shared helpers of
 * the restore modes.
 */
import { constants as bufferConstants } from 'node:buffer';
import type { Region } from '../format/index-table.js';
import { unmap, type Reservation } from '../native-mmap/index.js';
import type { LazyStats } from '../native-mmap/index.js';
import type { RestoredRegion, RestoreResult } from './_types.js';

/** The result under construction. */
export class Restoration implements RestoreResult {
  degraded = false;
  reason?: string;
  readonly regions: RestoredRegion[] = [];
  readonly warnings: string[] = [];
  private readonly reservations: Reservation[] = [];
  private readonly buffers: { buffer: ArrayBuffer; native: boolean }[] = [];
  private released = false;
  private readonly before: (() => void)[] = [];
  private readonly after: (() => void)[] = [];
  /** Settled once every page is in place: at once for map and copy; lazy mode replaces it. */
  done: Promise<void> = Promise.resolve();
  /** Lazy mode's first-fault order and counters (restore/_lazy.ts). */
  lazy: { profile(): number[]; stats(): LazyStats | null } | null = null;

  constructor(public mode: 'map' | 'copy' | 'lazy') {}

  readonly accessProfile = (): number[] => this.lazy?.profile() ?? [];

  readonly lazyStats = (): LazyStats | null => this.lazy?.stats() ?? null;

  /** Runs `fn` at release before anything is unmapped (lazy mode: stop the threads). */
  beforeRelease(fn: () => void): void {
    this.before.push(fn);
  }

  /** Runs `fn` at release after everything is unmapped (lazy mode: close the descriptor). */
  afterRelease(fn: () => void): void {
    this.after.push(fn);
  }

  /** Keeps a reservation until release (its pages go when it is released or collected). */
  hold(r: Reservation): void {
    this.reservations.push(r);
  }

  /** Keeps a buffer to detach on release. */
  own(buffer: ArrayBuffer, native: boolean): void {
    this.buffers.push({ buffer, native });
  }

  readonly release = (): void => {
    if (this.released) return;
    this.released = true;
    let failure: unknown = null;
    for (const fn of this.before.splice(0)) {
      try {
        fn();
      } catch (e) {
        failure ??= e;
      }
    }
    // Views first: while their reservation lives, dropping one changes no page; then each
    // reservation goes with one munmap.
    for (const { buffer, native } of this.buffers.splice(0)) {
      try {
        if (buffer.byteLength === 0) continue; // detached already (the caller unmapped it)
        if (native) unmap(buffer);
        else structuredClone(buffer, { transfer: [buffer] });
      } catch (e) {
        failure ??= e;
      }
    }
    for (const r of this.reservations.splice(0)) {
      try {
        unmap(r);
      } catch (e) {
        failure ??= e;
      }
    }
    for (const fn of this.after.splice(0)) {
      try {
        fn();
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure !== null) throw failure;
  };
}

/** Bytes restored so far, reported to `onProgress`. */
export interface Progress {
  done: number;
  total: number;
  report: ((done: number, total: number) => void) | undefined;
}

export function advance(p: Progress, bytes: number): void {
  p.done += bytes;
  p.report?.(p.done, p.total);
}

/** The result entry of a region placed at `address`. */
export function entry(r: Region, address: bigint, memory?: ArrayBuffer): RestoredRegion {
  const e: RestoredRegion = { index: r.index, address, recordedAddress: r.address, length: r.length, prot: r.prot, kind: r.kind, name: r.name };
  if (memory) e.memory = memory;
  return e;
}

/** "region 3 (heap)" for messages. */
export const label = (r: Region): string => `region ${r.index}${r.name ? ` (${r.name})` : ''}`;

export const readable = (r: Region): boolean => (r.protBits & 1) !== 0;

/** A region too long for one ArrayBuffer: restored in place, without `memory`. */
export function fitsBuffer(result: Restoration, r: Region, length: number): boolean {
  if (length <= bufferConstants.MAX_LENGTH) return true;
  if (readable(r)) result.warnings.push(`${label(r)} is ${length} bytes, more than an ArrayBuffer can hold (${bufferConstants.MAX_LENGTH}): it is restored in place without memory`);
  return false;
}
