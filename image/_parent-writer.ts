/**
 * Writing a child image (spec/FORMAT.md section 8.3): the parent is opened (with its own chain)
 * and named in the child's parent record; every chunk of the child is compared with the
 * parent's chunk at the same address and, when equal, recorded IN_PARENT instead of stored.
 * The parent is read ahead in windows of {@link WINDOW} bytes along the child's chunks, which
 * come in address order. With the native addon, a window's stored chunks are read and decoded
 * on native threads (decodeBatch, every core) into reused mapped memory, the parent's ZERO
 * chunks are not decoded at all (they equal only a zero chunk, which is stored ZERO anyway), and
 * its IN_PARENT chunks (a parent that is a child) are read down its chain; without the addon
 * the reader decodes the window on the JavaScript thread.
 */
import { dirname, relative, resolve } from 'node:path';
import { Buffer } from 'node:buffer';
import { CHUNK_IN_PARENT, CHUNK_ZERO, LIMITS, REQUIRED_PARENT } from '../format/constants.js';
import type { ParentRecord } from '../format/validation.js';
import type { Region } from '../format/index-table.js';
import { isZero } from '../codec/chunk.js';
import { protect, reserve, unmap, view, type Reservation } from '../native-mmap/index.js';
import { openReader, type ImageReader } from './reader.js';
import { parentIndexHash, toParentSpec, type ParentInput } from './_parent.js';
import { BatchItems, jsErrorOf, nativeBatchRefusal } from './_native-batch.js';
import type { ChunkContext, ChunkEncoder, EncodedChunk } from './chunk-encoder.js';
import type { KeyInput } from './keying.js';

/** Parent bytes read at once while writing a child: 4 MiB, a multiple of every chunk size up to 4 MiB. */
const WINDOW = 4 * 1024 * 1024;

/** A window's plain bytes, and which of its chunks are the parent's ZERO chunks (native path only). */
interface WindowBytes { buf: Buffer; zero: Uint8Array | null }
/** Mapped memory a native window decodes into, reused from window to window. */
interface Slot { res: Reservation; view: ArrayBuffer; buf: Buffer; fresh: boolean }
/** Parent bytes `[start, end)`, being read; `users` chunks comparing with it. */
interface Window {
  start: bigint; end: bigint; bytes: Promise<WindowBytes>;
  slot: Slot | null; users: number; settled: boolean; retired: boolean;
}
const NOTHING = new Uint8Array(0);

/**
 * Parent chunks compared so far in this process, by how their bytes were had: decoded on native
 * threads, read down the parent's own chain, ZERO (not decoded), or in windows the reader
 * decoded on the JavaScript thread (counted in chunks of the child compared against them).
 */
export const parentCompareCounts = { native: 0, chained: 0, zero: 0, js: 0 };

/**
 * Why the parent's windows cannot be decoded on native threads, or null when they can: the
 * batch decoder's own conditions, except that a parent with a parent of its own is fine (its
 * IN_PARENT chunks are read down its chain, not by the batch).
 */
export function parentNativeRefusal(p: ImageReader): string | null {
  const h = p.header;
  return nativeBatchRefusal({
    source: p.source, header: { ...h, requiredFeatures: h.requiredFeatures & ~REQUIRED_PARENT },
    chunkKeys: () => p.chunkKeys(), region: (i) => p.region(i), decodeChunk: (r, j, n, rec, stored) => p.decodeChunk(r, j, n, rec, stored),
  });
}

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
  /** Native memory of windows no longer in use. */
  private readonly free: Slot[] = [];
  private readonly slots: Slot[] = [];
  /** Windows still being read or decoded (close waits for them). */
  private readonly reading = new Set<Promise<unknown>>();
  /** Bytes per window: {@link WINDOW}, or one chunk when chunks are larger. */
  private readonly span: number;
  /** Whether windows decode on native threads ({@link parentNativeRefusal}). */
  readonly native: boolean;
  /** Chunks recorded IN_PARENT. */
  inParent = 0;

  constructor(private readonly inner: ChunkEncoder, private readonly parent: ImageReader) {
    this.span = Math.max(WINDOW, parent.chunkSize);
    this.native = parentNativeRefusal(parent) === null;
  }

  get parallelism(): number { return this.inner.parallelism; }

  /** The parent's image id. */
  get parentImageId(): Uint8Array { return this.parent.header.imageId; }

  bindHeader(header: Uint8Array, validation: Uint8Array): void {
    this.inner.bindHeader(header, validation);
  }

  async encode(plain: Uint8Array, ctx: ChunkContext): Promise<EncodedChunk> {
    if (ctx.changed !== true && await this.sameAsParent(ctx.address, plain)) {
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
      try {
        // No native decode may still write into the memory released here.
        await Promise.allSettled([...this.reading]);
        for (const s of this.slots) {
          unmap(s.view);
          unmap(s.res);
        }
        this.slots.length = 0;
        this.free.length = 0;
      } finally {
        await this.parent.close();
      }
    }
  }

  /**
   * For a run the caller vouches equals the parent ({@link ParentRun}): for each of `count`
   * chunks from `address` (whole chunks, the last `lastLength` long), 1 where the parent's chunk
   * is ZERO (the child records ZERO: no parent needed), 0 for IN_PARENT. Reads only the
   * parent's index; counts the IN_PARENT ones in {@link inParent}.
   * @throws RangeError where the parent has no chunk at that address with that plain length
   */
  async parentKinds(address: bigint, count: number, lastLength: number): Promise<Uint8Array> {
    const p = this.parent;
    const table = await p.chunkTable();
    const cs = p.chunkSize;
    const out = new Uint8Array(count);
    let r: Region | undefined;
    for (let k = 0; k < count; k++) {
      const at = address + BigInt(k) * BigInt(cs);
      const length = k === count - 1 ? lastLength : cs;
      if (r === undefined || at < r.address || at >= r.address + r.length) r = p.regionAt(at);
      const rel = r === undefined || r.isGap ? -1n : at - r.address;
      const j = Number(rel / BigInt(cs));
      if (r === undefined || r.isGap || rel % BigInt(cs) !== 0n || p.plainLength(r, j) !== length) {
        throw new RangeError(`expected the parent to hold a chunk of ${length} bytes at 0x${at.toString(16)} for a { sameAsParent } run, but it has none there (another region or chunk boundary): give those bytes instead`);
      }
      if (table.get(r.firstChunk + j, length).flags & CHUNK_ZERO) out[k] = 1;
      else this.inParent++;
    }
    return out;
  }

  /**
   * Whether `plain`, the child's chunk at `address`, equals the parent's chunk there (section
   * 8.3: same address, same plain length) and is not all zeros.
   */
  private async sameAsParent(address: bigint, plain: Uint8Array): Promise<boolean> {
    const length = plain.length;
    const p = this.parent;
    const r = p.regionAt(address);
    if (r === undefined || r.isGap) return false;
    const cs = BigInt(p.chunkSize);
    const rel = address - r.address;
    if (rel % cs !== 0n || p.plainLength(r, Number(rel / cs)) !== length) return false;
    const w = this.windowAt(r, address, address + BigInt(length));
    w.users++;
    try {
      const { buf, zero } = await w.bytes;
      const at = Number(address - w.start);
      if (zero === null) parentCompareCounts.js++;
      else if (zero[at / p.chunkSize] === 1) return false; // equal only to zeros, stored ZERO
      return buf.subarray(at, at + length).equals(plain) && !isZero(plain);
    } finally {
      w.users--;
      this.release(w);
    }
  }

  /** The window holding `[address, end)` of region `r`: the current one, the one read ahead, or a new one. */
  private windowAt(r: Region, address: bigint, end: bigint): Window {
    const w = this.window;
    if (w !== null && address >= w.start && end <= w.end) return w;
    const a = this.ahead;
    const regionEnd = r.address + r.length;
    const next = a !== null && address >= a.start && end <= a.end ? a : this.readWindow(r, address, regionEnd);
    if (a !== null && a !== next) this.retire(a);
    if (w !== null) this.retire(w);
    this.window = next;
    // The parent's next window decodes while this one is compared (and the child's chunks encode).
    this.ahead = next.end < regionEnd ? this.readWindow(r, next.end, regionEnd) : null;
    return next;
  }

  /** Starts reading the parent's window at `start` of region `r`, up to {@link span} bytes and at most `regionEnd`. */
  private readWindow(r: Region, start: bigint, regionEnd: bigint): Window {
    const end = start + BigInt(this.span) < regionEnd ? start + BigInt(this.span) : regionEnd;
    const slot = this.native ? this.slot() : null;
    const bytes: Promise<WindowBytes> = slot !== null
      ? this.decodeWindow(r, start, end, slot)
      : this.parent.read(start, Number(end - start)).then((buf) => ({ buf, zero: null }));
    const w: Window = { start, end, bytes, slot, users: 0, settled: false, retired: false };
    // Awaited when a chunk needs it (a failed read fails that chunk).
    const done = bytes.then(() => {}, () => {}).finally(() => {
      w.settled = true;
      this.reading.delete(done);
      this.release(w);
    });
    this.reading.add(done);
    return w;
  }

  private retire(w: Window): void {
    w.retired = true;
    this.release(w);
  }

  /** Gives a window's memory back once it is retired, compared with, and decoded. */
  private release(w: Window): void {
    if (w.slot === null || !w.retired || w.users > 0 || !w.settled) return;
    this.free.push(w.slot);
    w.slot = null;
  }

  /** Mapped memory for one window: a freed one, or a new reservation made writable. */
  private slot(): Slot {
    const s = this.free.pop();
    if (s !== undefined) return s;
    const res = reserve(this.span);
    protect(res.address, res.length, 'rw-');
    const v = view(res, 0, this.span, 'rw-');
    const made: Slot = { res, view: v, buf: Buffer.from(v), fresh: true };
    this.slots.push(made);
    return made;
  }

  /**
   * The parent's plain bytes `[start, end)` of region `r` into `slot`: its stored chunks decoded
   * in one native batch, its IN_PARENT chunks read down its chain meanwhile, its ZERO chunks
   * marked (their bytes in the slot are left as they were).
   * @throws CrimgError the JavaScript path's error for the first chunk that fails
   */
  private async decodeWindow(r: Region, start: bigint, end: bigint, slot: Slot): Promise<WindowBytes> {
    const p = this.parent;
    const cs = p.chunkSize;
    const table = await p.chunkTable();
    const j0 = Number((start - r.address) / BigInt(cs));
    const n = Math.ceil(Number(end - start) / cs);
    const zero = new Uint8Array(n);
    const items = new BatchItems(cs);
    const chained: Promise<void>[] = [];
    for (let k = 0; k < n; k++) {
      const j = j0 + k;
      const number = r.firstChunk + j;
      const plainLength = p.plainLength(r, j);
      const rec = table.get(number, plainLength);
      if (rec.flags & CHUNK_ZERO) {
        zero[k] = 1;
        parentCompareCounts.zero++;
      } else if (rec.flags & CHUNK_IN_PARENT) {
        chained.push(p.readInto(r.address + BigInt(j) * BigInt(cs), slot.buf.subarray(k * cs, k * cs + plainLength)));
        parentCompareCounts.chained++;
      } else {
        items.add({ region: r, j, number, rec, plainLength }, slot.res, k * cs);
      }
    }
    parentCompareCounts.native += items.count;
    const populate = slot.fresh;
    slot.fresh = false;
    // Every read settled before the window is (the slot is reused only then).
    const [batch, ...rest] = await Promise.allSettled([items.run(p, { all: false, populate }), ...chained]);
    if (batch!.status === 'rejected') throw batch!.reason;
    const failures = batch!.value as Awaited<ReturnType<BatchItems['run']>>;
    if (failures.length > 0) throw await jsErrorOf(p, items.chunk(p, failures[0]!.item), failures[0]!);
    for (const c of rest) if (c.status === 'rejected') throw c.reason;
    return { buf: slot.buf.subarray(0, Number(end - start)), zero };
  }
}
