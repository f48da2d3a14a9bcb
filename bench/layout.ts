/**
 * Region layouts for the benchmarks: how the input file is cut into regions and where each
 * region sits in the captured address space. One region for the best case, or ~200 regions
 * of realistic sizes (one large heap, then log-uniform sizes from one page to a few MiB, like
 * the mappings of a JVM: code cache, metaspace, thread stacks, libraries).
 */
import { createReadStream, type ReadStream } from 'node:fs';
import type { RegionData, RegionOptions } from '../index.js';
import { PAGE_SIZE } from './memory-like.js';

/** One region: its bytes are `[fileOffset, fileOffset + length)` of the input file. */
export interface BenchRegion {
  address: bigint;
  length: number;
  fileOffset: number;
  kind: 'heap' | 'code' | 'stack' | 'anonymous' | 'metadata';
  name: string;
}

/** Reads of the input file use this buffer size (the brief's 1 MiB highWaterMark). */
export const STREAM_PIECE = 1024 * 1024;

const BASE_ADDRESS = 0x7f0000000000n;

/**
 * Cuts `totalBytes` (whole pages) into `count` regions, deterministic by `seed`.
 * @throws RangeError when there are fewer pages than regions.
 */
export function regionLayout(totalBytes: number, count: number, seed = 7): BenchRegion[] {
  const pages = Math.floor(totalBytes / PAGE_SIZE);
  if (!Number.isSafeInteger(count) || count < 1 || count > pages) throw new RangeError(`expected 1..${pages} regions, got ${count}`);
  if (count === 1) return [{ address: BASE_ADDRESS, length: pages * PAGE_SIZE, fileOffset: 0, kind: 'heap', name: 'heap' }];
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  // Weights: log-uniform over 1..4096 (4 KiB..16 MiB at 512 MiB), the heap as large as all others.
  const weights = Array.from({ length: count - 1 }, () => Math.exp(rnd() * Math.log(4096)));
  const rest = weights.reduce((a, b) => a + b, 0);
  weights.unshift(rest);
  const total = rest * 2;
  const sizes = weights.map((w) => Math.max(1, Math.floor((pages - count) * w / total)) );
  // Hand the pages lost to rounding to the heap, so the regions cover the input exactly.
  sizes[0]! += pages - sizes.reduce((a, b) => a + b, 0);
  const kinds: BenchRegion['kind'][] = ['code', 'stack', 'anonymous', 'metadata'];
  const out: BenchRegion[] = [];
  let address = BASE_ADDRESS;
  let fileOffset = 0;
  sizes.forEach((p, i) => {
    const kind = i === 0 ? 'heap' : kinds[Math.floor(rnd() * kinds.length)]!;
    out.push({ address, length: p * PAGE_SIZE, fileOffset, kind, name: i === 0 ? 'heap' : `${kind} ${i}` });
    fileOffset += p * PAGE_SIZE;
    // Unmapped space between mappings: 1..256 pages.
    address += BigInt((p + 1 + Math.floor(rnd() * 256)) * PAGE_SIZE);
  });
  return out;
}

/** The region holding input file offset `off` (the regions cover the input in order). */
export function regionAtOffset(layout: readonly BenchRegion[], off: number): BenchRegion {
  let lo = 0;
  let hi = layout.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (layout[mid]!.fileOffset <= off) lo = mid; else hi = mid - 1;
  }
  return layout[lo]!;
}

/** Writer options for a region of the layout with the given bytes. */
export function regionOptions(r: BenchRegion, data: RegionData): RegionOptions {
  return { address: r.address, kind: r.kind, name: r.name, prot: r.kind === 'code' ? 'r-x' : 'rw-', data };
}

/** The region's bytes streamed from the input file in {@link STREAM_PIECE} pieces. */
export function streamFromFile(inputPath: string, r: BenchRegion): ReadStream {
  return createReadStream(inputPath, { start: r.fileOffset, end: r.fileOffset + r.length - 1, highWaterMark: STREAM_PIECE });
}
