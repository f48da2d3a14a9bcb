/**
 * Lazy restore of a child image (spec/FORMAT.md section 8.3): the chain is opened and checked
 * first (each parent's image id and index hash, as any read of a child does), then every
 * IN_PARENT chunk of the child is resolved to the chunk that holds its bytes (the parent's at
 * the same address, or further down the chain) and handed to the native handler with that
 * image's file, data area and key: the handler installs it as it installs the child's own.
 */
import { CHUNK_IN_PARENT } from '../format/constants.js';
import type { ChunkTable } from '../format/index-table.js';
import type { ImageReader } from '../image/reader.js';
import { checkParentChunk } from '../image/_parent.js';
import type { LazySpec } from '../native-mmap/index.js';
import type { Slot } from './_place.js';

/** The codecs the native decoder knows (native-mmap/src/chunk_decode.h): none, deflate, zstd. */
const NATIVE_CODECS = new Set([0, 1, 2]);

/** A child's chain, opened and checked, for a lazy restore. */
export interface LazyChain {
  /** Why the chain cannot be restored lazily, or null. */
  refusal: string | null;
  /** The parents' files and data areas: sources 1, 2... of the lazy spec (0 is the child's). */
  sources: LazySpec['sources'];
  /** The parents' codecs, ciphers and keys: contexts 1, 2... */
  contexts: LazySpec['contexts'];
  /** The resolved chunks of the child's data slots (the spec's `resolved`). */
  resolve(slots: readonly Slot[], table: ChunkTable, chunkSize: number): BigUint64Array;
}

/**
 * Opens `image`'s parents (each checked, section 8.3) and their chunk tables.
 * @throws CrimgError PARENT_REQUIRED, PARENT_MISMATCH, and what opening a parent throws
 */
export async function lazyChain(image: ImageReader): Promise<LazyChain> {
  const parents: ImageReader[] = [];
  for (let cur: ImageReader | null = await image.parent(); cur !== null; cur = await cur.parent()) parents.push(cur);
  let refusal: string | null = null;
  const sources: LazySpec['sources'] = [];
  const contexts: LazySpec['contexts'] = [];
  for (const [i, p] of parents.entries()) {
    const h = p.header;
    const keys = h.cipher !== 0 ? p.chunkKeys() : null;
    if (p.source.fd === undefined) refusal ??= `parent ${i + 1} (${p.source.name}) is not a local file`;
    else if (!NATIVE_CODECS.has(h.codec)) refusal ??= `parent ${i + 1} has codec ${h.codec}, unknown to the native decoder`;
    else if (h.cipher !== 0 && keys === null) refusal ??= `parent ${i + 1} is encrypted and opened without its key`;
    sources.push({ fd: p.source.fd ?? -1, dataStart: p.dataStart, dataEnd: Number(p.footer.chunkTableOffset) });
    contexts.push({ codec: h.codec, cipher: h.cipher, chunkSize: h.chunkSize, ...(keys && { key: keys.dataKey, imageId: h.imageId, headerHash: keys.headerHash }) });
  }
  const tables = refusal === null ? await Promise.all(parents.map((p) => p.chunkTable())) : [];
  return {
    refusal, sources, contexts,
    resolve: (slots, table, chunkSize) => resolveChunks(image, parents, tables, slots, table, chunkSize),
  };
}

/**
 * The spec's `resolved` words (native-mmap/src/uffd_js.cc): for each IN_PARENT chunk of the
 * data slots, in the native chunk list's order, the record of the chain's image that holds it.
 * @throws CrimgError CORRUPT_INDEX for an IN_PARENT chunk with no chunk at its address in the parent
 */
function resolveChunks(child: ImageReader, parents: readonly ImageReader[], tables: readonly ChunkTable[], slots: readonly Slot[], table: ChunkTable, chunkSize: number): BigUint64Array {
  const out: bigint[] = [];
  const cs = BigInt(chunkSize);
  let index = 0;
  for (const s of slots) {
    if (s.region.isGap) continue;
    const r = s.region;
    const n = Math.ceil(s.length / chunkSize);
    for (let j = 0; j < n; j++, index++) {
      const plain = child.plainLength(r, j);
      let rec = table.get(r.firstChunk + j, plain);
      if ((rec.flags & CHUNK_IN_PARENT) === 0) continue;
      const address = r.address + BigInt(j) * cs;
      let number = r.firstChunk + j;
      let region = r.index;
      let level = 0;
      let last = false;
      while (rec.flags & CHUNK_IN_PARENT) {
        const p = parents[level]!;
        checkParentChunk(p, address, plain, number, region);
        const pr = p.regionAt(address)!;
        const pj = Number((address - pr.address) / cs);
        number = pr.firstChunk + pj;
        region = pr.index;
        last = pj === pr.chunkCount - 1;
        rec = tables[level]!.get(number, plain);
        level++;
      }
      out.push(BigInt(index), BigInt(rec.offset), BigInt(rec.storedLength) | (BigInt(rec.flags) << 32n), rec.checksum,
        BigInt(number), BigInt(region) | (last ? 1n << 32n : 0n), BigInt(level) | (BigInt(level) << 16n), 0n);
    }
  }
  return BigUint64Array.from(out);
}
