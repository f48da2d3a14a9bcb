/**
 * Writing a child image (spec/FORMAT.md section 8.3): the parent is opened (with its own chain)
 * and named in the child's parent record; every chunk of the child is compared with the
 * parent's chunk at the same address and, when equal, recorded IN_PARENT instead of stored.
 * The parent is read ahead in windows of {@link WINDOW} bytes along the child's chunks, which
 * come in address order.
 */
import { dirname, relative, resolve } from 'node:path';
import { Buffer } from 'node:buffer';
import { CHUNK_IN_PARENT, LIMITS } from '../format/constants.js';
import type { ParentRecord } from '../format/validation.js';
import { isZero } from '../codec/chunk.js';
import { openReader, type ImageReader } from './reader.js';
import { parentIndexHash, toParentSpec, type ParentInput } from './_parent.js';
import type { ChunkContext, ChunkEncoder, EncodedChunk } from './chunk-encoder.js';
import type { KeyInput } from './keying.js';

/** Parent bytes read at once while writing a child: 4 MiB, a multiple of every chunk size up to 4 MiB. */
const WINDOW = 4 * 1024 * 1024;

/** Parent bytes `[start, end)`, being read. */
interface Window { start: bigint; end: bigint; bytes: Promise<Buffer> }
const NOTHING = new Uint8Array(0);

/** The opened parent of a child being written, and its record. */
export interface ParentForWriting {
  reader: ImageReader;
  record: ParentRecord;
}

/**
 * Opens `input` as the parent of a child written to `out`, and makes its record: its image id,
 * its index hash, the chain depth, and a location hint (the parent's path relative to the
 * child's directory when the parent was given by path, else `hint`, else empty).
 * @throws RangeError when the parent's chain is at the depth limit (section 9); CrimgError from
 *   opening the parent (and its own chain).
 */
export async function openParentForWriting(input: ParentInput, out: string, childKey: KeyInput | undefined, engine: 'node' | 'portable' | undefined, hint?: string): Promise<ParentForWriting> {
  const spec = toParentSpec(input);
  const key = spec.key ?? childKey;
  const reader = await openReader(spec.source, {
    ...(key !== undefined ? { key } : {}), ...(engine !== undefined ? { engine } : {}), ...(spec.parent !== undefined ? { parent: spec.parent } : {}),
  });
  try {
    const depth = (reader.validation.parent?.depth ?? 0) + 1;
    if (depth > LIMITS.maxChainDepth) {
      throw new RangeError(`expected a parent image below the chain depth limit ${LIMITS.maxChainDepth}, got one at depth ${depth - 1}: flatten it first (\`crimg flatten\`)`);
    }
    if (reader.indexLocked) await reader.chunkTable(); // KEY_REQUIRED now, not at the first chunk
    const where = hint ?? (typeof spec.source === 'string' ? relative(dirname(resolve(out)), resolve(spec.source)) : '');
    const record: ParentRecord = { imageId: reader.header.imageId.slice(), indexHash: await parentIndexHash(reader), depth, hint: where };
    return { reader, record };
  } catch (e) {
    await reader.close();
    throw e;
  }
}

/**
 * The child's chunk encoder: a chunk equal to the parent's chunk at the same address (same plain
 * length) becomes an IN_PARENT record, unless it is all zeros (a ZERO record needs no parent);
 * every other chunk goes to the image's own encoder. Asynchronous only: the parent's bytes are
 * read as the chunks come. Closing it closes the parent.
 */
export class ParentDiffEncoder implements ChunkEncoder {
  private window: Window | null = null;
  /** The window after {@link window}, read ahead while the current one is compared. */
  private ahead: Window | null = null;
  /** Chunks recorded IN_PARENT. */
  inParent = 0;

  constructor(private readonly inner: ChunkEncoder, private readonly parent: ImageReader) {}

  get parallelism(): number { return this.inner.parallelism; }

  bindHeader(header: Uint8Array, validation: Uint8Array): void {
    this.inner.bindHeader(header, validation);
  }

  async encode(plain: Uint8Array, ctx: ChunkContext): Promise<EncodedChunk> {
    const theirs = await this.parentChunk(ctx.address, plain.length);
    if (theirs !== null && Buffer.compare(theirs, plain) === 0 && !isZero(plain)) {
      this.inParent++;
      return { stored: NOTHING, flags: CHUNK_IN_PARENT, checksum: 0n, plainLength: plain.length };
    }
    return this.inner.encodeSync ? this.inner.encodeSync(plain) : this.inner.encode(plain, ctx);
  }

  sealIndex(domain: 1 | 2, count: bigint, plain: Uint8Array): Uint8Array {
    return this.inner.sealIndex(domain, count, plain);
  }

  async close(): Promise<void> {
    try {
      await this.inner.close();
    } finally {
      await this.parent.close();
    }
  }

  /** Starts reading the parent's window at `start`, up to {@link WINDOW} bytes and at most `regionEnd`. */
  private readWindow(start: bigint, regionEnd: bigint): Window {
    const end = start + BigInt(WINDOW) < regionEnd ? start + BigInt(WINDOW) : regionEnd;
    const bytes = this.parent.read(start, Number(end - start));
    bytes.catch(() => {}); // awaited when a chunk needs it (a failed read fails that chunk)
    return { start, end, bytes };
  }

  /**
   * The parent's plain bytes of its chunk at `address` when it has one of `length` bytes there
   * (section 8.3), else null.
   */
  private async parentChunk(address: bigint, length: number): Promise<Buffer | null> {
    const p = this.parent;
    const r = p.regionAt(address);
    if (r === undefined || r.isGap) return null;
    const cs = BigInt(p.chunkSize);
    const rel = address - r.address;
    if (rel % cs !== 0n || p.plainLength(r, Number(rel / cs)) !== length) return null;
    const end = address + BigInt(length);
    let w = this.window;
    if (w === null || address < w.start || end > w.end) {
      const a = this.ahead;
      w = a !== null && address >= a.start && end <= a.end ? a : this.readWindow(address, r.address + r.length);
      this.window = w;
      // The parent's next window decodes while this one is compared (and the child's chunks encode).
      this.ahead = w.end < r.address + r.length ? this.readWindow(w.end, r.address + r.length) : null;
    }
    const b = await w.bytes;
    const at = Number(address - w.start);
    return b.subarray(at, at + length);
  }
}
