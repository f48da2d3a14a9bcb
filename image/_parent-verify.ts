/**
 * Verifying a chain of parent images (spec/FORMAT.md section 8.3): the child's own report, then
 * its parent opened and checked (image id, index hash), every IN_PARENT chunk against the
 * parent's chunks, then the parent verified the same way, down to the end of the chain. Each
 * problem names the image of the chain it belongs to (`image`: 0 the child, 1 its parent...).
 */
import { CHUNK_IN_PARENT } from '../format/constants.js';
import { isCrimgError } from '../format/errors.js';
import type { ChunkTable, Region } from '../format/index-table.js';
import { checkParentChunk, type ChainImage } from './_parent.js';
import type { VerifyError, VerifyOptions, VerifyReport } from './verify.js';

/** What verifying a chain needs of an open image; `ImageReader` provides it. */
export interface ChainVerifiable {
  readonly regionCount: number;
  region(index: number): Region;
  plainLength(r: Region, j: number): number;
  chunkTable(): Promise<ChunkTable>;
  parent(): Promise<(ChainImage & { readonly imageId: string; verify(o?: VerifyOptions): Promise<VerifyReport> }) | null>;
}

/**
 * `own` (the child's report of its own bytes) with the chain below it: the parent's problems
 * follow the child's, each with its `image` and `imageId`. Counts add up over the chain.
 * Never throws for the parent: a parent that cannot be opened is a finding (PARENT_REQUIRED,
 * PARENT_MISMATCH, or its own code) of image 1.
 */
export async function verifyChain(child: ChainVerifiable, own: VerifyReport, options: VerifyOptions): Promise<VerifyReport> {
  const max = options.maxErrors ?? 1000;
  const errors: VerifyError[] = [...own.errors];
  const push = (e: VerifyError): void => { if (errors.length < max) errors.push(e); };
  let chunks = own.chunksChecked;
  let bytes = own.bytesChecked;
  let parent: Awaited<ReturnType<ChainVerifiable['parent']>>;
  try {
    parent = await child.parent();
  } catch (e) {
    if (!isCrimgError(e)) throw e;
    push({ code: e.code, message: e.message, image: 1 });
    return { ok: false, chunksChecked: chunks, bytesChecked: bytes, errors };
  }
  if (parent === null) return own;
  // Every IN_PARENT record has its chunk in the parent (same address, same plain length).
  const table = await child.chunkTable();
  const cs = BigInt(parent.header.chunkSize);
  for (let i = 0; i < child.regionCount; i++) {
    const r = child.region(i);
    for (let j = 0; j < r.chunkCount; j++) {
      const number = r.firstChunk + j;
      let flags: number;
      try { flags = table.get(number, child.plainLength(r, j)).flags; } catch { continue; } // reported in `own`
      if ((flags & CHUNK_IN_PARENT) === 0) continue;
      try {
        checkParentChunk(parent, r.address + BigInt(j) * cs, child.plainLength(r, j), number, r.index);
      } catch (e) {
        if (!isCrimgError(e)) throw e;
        push({ code: e.code, message: e.message, region: r.index, chunk: number, address: r.address + BigInt(j) * cs, length: child.plainLength(r, j), image: 0 });
      }
    }
  }
  try {
    // The parent's own progress is not the child's: its chunks are counted in the totals only.
    const sub = await parent.verify({ maxErrors: Math.max(1, max - errors.length) });
    chunks += sub.chunksChecked;
    bytes += sub.bytesChecked;
    for (const e of sub.errors) push({ ...e, image: (e.image ?? 0) + 1, imageId: e.imageId ?? parent.imageId });
  } catch (e) {
    if (!isCrimgError(e)) throw e;
    push({ code: e.code, message: e.message, image: 1, imageId: parent.imageId });
  }
  return { ok: errors.length === 0, chunksChecked: chunks, bytesChecked: bytes, errors };
}
