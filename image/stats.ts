/**
 * Chunk statistics: how an image's memory is stored (spec/FORMAT.md sections 5.1 and 5.3),
 * per data region, per kind and in total. Reads the chunk table, never the chunk data.
 */
import { CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_IN_PARENT, CHUNK_RAW, CHUNK_ZERO } from '../format/constants.js';
import type { ChunkTable, Region } from '../format/index-table.js';
import { zeroRecords } from './_runs.js';

/** Chunk counts by stored form (section 5.1). A chunk both encoded and encrypted counts in both. */
export interface ChunkForms {
  total: number;
  zero: number;
  raw: number;
  encoded: number;
  encrypted: number;
  /** A child image's chunks held by its parent (IN_PARENT, spec section 8.3); absent for a standalone image. */
  inParent?: number;
}

/** Byte and chunk counts of a region, a kind, or the whole image. */
export interface ChunkUsage {
  /** Plain bytes: the region lengths. */
  mapped: bigint;
  /** Bytes stored in the file for them. */
  stored: bigint;
  /** Plain bytes of zero chunks (stored as nothing). */
  zero: bigint;
  chunks: ChunkForms;
}

/** The counts of one data region. */
export interface RegionChunkStats extends ChunkUsage {
  region: Region;
}

/** The counts of all data regions of one kind. */
export interface KindChunkStats extends ChunkUsage {
  /** The kind name, as `Region.kind` (unknown kinds as `unknown(N)`). */
  kind: string;
  regions: number;
}

/** The result of {@link chunkStats}. */
export interface ChunkStats {
  /** Data regions in table order; gaps hold no chunks and are left out. */
  regions: RegionChunkStats[];
  /** One entry per kind present, in the order the kinds first appear in the region table. */
  kinds: KindChunkStats[];
  totals: ChunkUsage & { regions: number };
}

/** What chunkStats needs of an open image; `ImageReader` provides it. */
export interface StatsImage {
  readonly regionCount: number;
  region(index: number): Region;
  readonly chunkSize: number;
  chunkTable(): Promise<ChunkTable>;
}

export interface ChunkStatsOptions {
  /**
   * Called with each data region's counts, in table order, instead of keeping them: the
   * result's `regions` is then empty and memory stays O(1) whatever the region count (2^20
   * regions kept are about 200 MiB).
   */
  onRegion?: (stats: RegionChunkStats) => void;
}

function emptyUsage(): ChunkUsage {
  return { mapped: 0n, stored: 0n, zero: 0n, chunks: { total: 0, zero: 0, raw: 0, encoded: 0, encrypted: 0 } };
}

function addUsage(to: ChunkUsage, u: ChunkUsage): void {
  to.mapped += u.mapped;
  to.stored += u.stored;
  to.zero += u.zero;
  for (const k of ['total', 'zero', 'raw', 'encoded', 'encrypted'] as const) to.chunks[k] += u.chunks[k];
  if (u.chunks.inParent !== undefined) to.chunks.inParent = (to.chunks.inParent ?? 0) + u.chunks.inParent;
}

/**
 * Counts region `r`'s chunks by their flags in the chunk table. Plain lengths as Numbers: every
 * chunk is whole but the last (the region's length was checked below 2^64 and its chunk count
 * below section 9's limit at open).
 */
function regionUsage(table: ChunkTable, chunkSize: number, r: Region): ChunkUsage {
  const u = emptyUsage();
  u.mapped = r.length;
  let stored = 0;
  let zero = 0;
  const last = r.chunkCount - 1;
  const lastPlain = last >= 0 ? Number(r.length - BigInt(last) * BigInt(chunkSize)) : 0;
  for (let j = 0; j < r.chunkCount; j++) {
    const plain = j === last ? lastPlain : chunkSize;
    const rec = table.get(r.firstChunk + j, plain);
    u.chunks.total++;
    stored += rec.storedLength;
    if (rec.flags & CHUNK_ZERO) {
      u.chunks.zero++;
      zero += plain;
      // The zero records after it but the region's last, counted on the table's bytes in one step.
      const more = j + 1 < last ? zeroRecords(table, r.firstChunk + j + 1, last - j - 1) : 0;
      u.chunks.total += more;
      u.chunks.zero += more;
      zero += more * chunkSize;
      j += more;
    }
    if (rec.flags & CHUNK_RAW) u.chunks.raw++;
    if (rec.flags & CHUNK_ENCODED) u.chunks.encoded++;
    if (rec.flags & CHUNK_ENCRYPTED) u.chunks.encrypted++;
    if (rec.flags & CHUNK_IN_PARENT) u.chunks.inParent = (u.chunks.inParent ?? 0) + 1;
  }
  u.stored = BigInt(stored);
  u.zero = BigInt(zero);
  return u;
}

/**
 * Bytes mapped, stored and zero, and chunk counts by stored form, per data region, per kind and
 * in total. Regions are made one at a time from the region section in place (`region(i)`), never
 * the whole table: memory is the result's, O(data regions) for `regions`, O(1) with `onRegion`.
 * Time is O(regions + chunks).
 * @param image an open image (an `ImageReader` or the package's `Image`).
 * @throws CrimgError KEY_REQUIRED for an encrypted image opened without a key; CORRUPT_INDEX
 *   when the chunk table is damaged.
 * @example
 * const { totals } = await chunkStats(image);
 * console.log(`${totals.chunks.zero} of ${totals.chunks.total} chunks are zero`);
 */
export async function chunkStats(image: StatsImage, options: ChunkStatsOptions = {}): Promise<ChunkStats> {
  const table = await image.chunkTable();
  const regions: RegionChunkStats[] = [];
  const kinds = new Map<string, KindChunkStats>();
  const totals: ChunkStats['totals'] = { ...emptyUsage(), regions: 0 };
  const onRegion = options.onRegion ?? ((s: RegionChunkStats): void => { regions.push(s); });
  const count = image.regionCount;
  for (let i = 0; i < count; i++) {
    const r = image.region(i);
    if (r.isGap) continue;
    const u = regionUsage(table, image.chunkSize, r);
    // u is this region's own: no copy (a spread copy per region was half the garbage).
    let k = kinds.get(r.kind);
    if (!k) kinds.set(r.kind, (k = { kind: r.kind, regions: 0, ...emptyUsage() }));
    k.regions++;
    addUsage(k, u);
    totals.regions++;
    addUsage(totals, u);
    onRegion({ region: r, mapped: u.mapped, stored: u.stored, zero: u.zero, chunks: u.chunks });
  }
  return { regions, kinds: [...kinds.values()], totals };
}
