/**
 * Parent images (spec/FORMAT.md section 8.3): a child image stores only the chunks whose plain
 * bytes differ from its parent's chunk at the same address; the others are IN_PARENT records.
 * The child's validation record type 8 names the parent's image id and a SHA-256 of the
 * parent's header, validation block and index ({@link parentIndexHash}); a reader opens the
 * parent lazily, on the first IN_PARENT chunk it reads, and refuses a parent that is missing
 * (PARENT_REQUIRED) or is not that image (PARENT_MISMATCH) before using any byte of it.
 */
import { createHash } from 'node:crypto';
import { dirname, isAbsolute, join } from 'node:path';
import { CHUNK_IN_PARENT, FOOTER_SIZE, LIMITS } from '../format/constants.js';
import { CrimgError, isCrimgError } from '../format/errors.js';
import { encodeFooter, type Footer } from '../format/footer.js';
import { xxh64 } from '../codec/checksum.js';
import type { ParentRecord } from '../format/validation.js';
import type { ChunkTable, Region } from '../format/index-table.js';
import { hex, toHex } from '../format/bytes.js';
import type { RandomAccessSource, SourceInput } from './source.js';

/** A URL (`http://`, `s3://`, ...), as image/source.ts opens remotely. */
const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;
import type { KeyInput } from './keying.js';

/**
 * A parent image: a path, an fd, bytes or a source; or, for an encrypted parent or one whose
 * own parent is elsewhere, an object with its `source`, its `key` (default: the child's key) and
 * its own `parent` (default: its location hint).
 */
export type ParentInput = SourceInput | ParentSpec;

/** A parent image with its key and its own parent. */
export interface ParentSpec {
  source: SourceInput;
  /** Key or passphrase of the parent; default the key of the image above it. */
  key?: KeyInput;
  /** The parent's parent, when the parent is a child too; default its location hint. */
  parent?: ParentInput;
}

/** Whether `p` is a {@link ParentSpec} (an object with a `source`) rather than a source. */
export function isParentSpec(p: unknown): p is ParentSpec {
  return typeof p === 'object' && p !== null && !(p instanceof Uint8Array) && 'source' in p && !('read' in p);
}

/** The spec form of a parent input. */
export function toParentSpec(p: ParentInput): ParentSpec {
  return isParentSpec(p) ? p : { source: p };
}

/** What {@link parentIndexHash} reads of an open image. */
export interface HashableImage {
  readonly source: RandomAccessSource;
  readonly headerBytes: Uint8Array;
  readonly validationBytes: Uint8Array;
  readonly footer: Footer;
}

/**
 * Section 8.3: SHA-256 of the image's header bytes, its validation block bytes, and its file
 * bytes from the chunk table offset to the end (chunk table, region section and footer, as
 * stored). It covers every record of the index, so every chunk's checksum (and, sealed, the
 * tags that bind the chunks): a parent whose index changed in any byte has another hash.
 * Reads the index once, in pieces of at most 16 MiB.
 */
export async function parentIndexHash(image: HashableImage): Promise<Uint8Array> {
  return (await hashIndex(image)).hash;
}

/**
 * {@link parentIndexHash}, with the bytes it hashed that the image then uses: its chunk table as
 * stored (one read) and whether the footer hashed is the footer it opened with. The index after
 * the chunk table is read in pieces of at most 16 MiB.
 */
async function hashIndex(image: HashableImage): Promise<{ hash: Uint8Array; chunkTable: Uint8Array; sameFooter: boolean }> {
  const h = createHash('sha256');
  h.update(image.headerBytes);
  h.update(image.validationBytes);
  const start = Number(image.footer.chunkTableOffset);
  const end = image.source.size;
  const chunkTable = await image.source.read(start, Number(image.footer.chunkTableLength));
  h.update(chunkTable);
  const piece = 16 * 1024 * 1024;
  let tail: Uint8Array = new Uint8Array(0);
  for (let at = start + chunkTable.byteLength; at < end; at += piece) {
    const bytes = await image.source.read(at, Math.min(piece, end - at));
    h.update(bytes);
    tail = bytes.byteLength >= FOOTER_SIZE ? bytes : concat(tail, bytes);
  }
  const footer = tail.subarray(Math.max(0, tail.byteLength - FOOTER_SIZE));
  return { hash: new Uint8Array(h.digest()), chunkTable, sameFooter: bytesEqual(footer, encodeFooter(image.footer, xxh64)) };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}

/** What a parent link needs of an open image (a child or a parent). */
export interface ChainImage extends HashableImage {
  readonly header: { readonly pageSize: number; readonly chunkSize: number; readonly imageId: Uint8Array };
  readonly validation: { readonly parent?: ParentRecord };
  readonly chunkCount: number;
  /** True when the index is sealed and no key was given (no chunk table to adopt). */
  readonly indexLocked?: boolean;
  /** Takes the chunk table as stored, read and hashed by the parent link, as its own. */
  adoptChunkTable?(stored: Uint8Array): Promise<unknown>;
  regionAt(address: bigint): Region | undefined;
  plainLength(r: Region, j: number): number;
  close(): Promise<void>;
}

/** Opens a parent image with the options of the child (key, engine) and its own parent. */
export type ParentOpener<T extends ChainImage> = (input: SourceInput, key: KeyInput | undefined, parent: ParentInput | undefined) => Promise<T>;

/**
 * The parent of one child image: opened on first use and checked against the child's parent
 * record, then kept until the child closes.
 */
export class ParentLink<T extends ChainImage> {
  private opened: Promise<T> | null = null;

  constructor(
    /** The child's parent record (section 8.3). */
    readonly record: ParentRecord,
    /** The parent as the caller gave it, if any. */
    private readonly given: ParentInput | undefined,
    /** The child's path, when opened by path: the location hint is relative to its directory. */
    private readonly childPath: string | undefined,
    /** The child's key: the parent's when none is given for it. */
    private readonly childKey: KeyInput | undefined,
    private readonly open: ParentOpener<T>,
    /** The child's page and chunk size: the parent's must be the same. */
    private readonly geometry: { pageSize: number; chunkSize: number },
  ) {}

  /** Where the parent is looked for: the given source, else the hint beside the child. */
  get location(): string {
    if (this.given !== undefined) {
      const s = toParentSpec(this.given).source;
      return typeof s === 'string' ? s : typeof s === 'number' ? `fd ${s}` : s instanceof Uint8Array ? 'buffer' : s.name;
    }
    return this.hintPath() ?? '(no location)';
  }

  /** The hint as a path: relative to the child's directory (or the working directory). */
  private hintPath(): string | undefined {
    const hint = this.record.hint;
    if (hint === '') return undefined;
    const child = this.childPath;
    if (child !== undefined && URL_LIKE.test(child)) {
      // A remote child's hint is resolved against its URL, on the child's own origin only.
      try {
        const u = new URL(hint, child);
        return u.origin === new URL(child).origin ? u.href : undefined;
      } catch {
        return undefined;
      }
    }
    // A hint in an image never makes a local reader contact a server (with the user's
    // credentials, for s3://): a URL is followed only when given (--parent, option parent).
    if (URL_LIKE.test(hint)) return undefined;
    // Joined, not resolved: a child named by a relative path names its parent relatively too.
    return isAbsolute(hint) || child === undefined ? hint : join(dirname(child), hint);
  }

  /**
   * The parent, opened and checked once (a failure is kept: every later call throws it).
   * @throws CrimgError PARENT_REQUIRED (not given and not found at the hint), PARENT_MISMATCH
   *   (another image, or its header, validation block or index changed), or the parent's own
   *   error (KEY_REQUIRED, WRONG_KEY, CORRUPT_*), its message naming the parent.
   */
  get(): Promise<T> {
    this.opened ??= this.load();
    return this.opened;
  }

  /** True once the parent was opened (and so must be closed). */
  get isOpen(): boolean { return this.opened !== null; }

  /** Closes the parent if it was opened. */
  async close(): Promise<void> {
    if (this.opened === null) return;
    const p = await this.opened.catch(() => null);
    await p?.close();
  }

  private async load(): Promise<T> {
    const rec = this.record;
    const want = toHex(rec.imageId);
    const spec = this.given !== undefined ? toParentSpec(this.given) : undefined;
    const input = spec?.source ?? this.hintPath();
    if (input === undefined) {
      const why = rec.hint === '' ? 'records no location for it' : `records a location that is not followed (${JSON.stringify(rec.hint.slice(0, 200))}: a URL, or another origin than the child's)`;
      throw new CrimgError('PARENT_REQUIRED', `the image is a child of image ${want} and ${why}`, { hint: 'give the parent image (--parent FILE, option parent)' });
    }
    let parent: T;
    try {
      parent = await this.open(input, spec?.key ?? this.childKey, spec?.parent);
    } catch (e) {
      if (isCrimgError(e, 'IO_ERROR')) {
        throw new CrimgError('PARENT_REQUIRED', `the parent image ${want} is not at ${this.location} (${e.message})`, {
          hint: 'give the parent image (--parent FILE, option parent), or put it where the child was written against it', cause: e,
        });
      }
      if (isCrimgError(e)) throw new CrimgError(e.code, `parent image ${this.location}: ${e.message}`, { cause: e, ...(e.offset !== undefined ? { offset: e.offset } : {}) });
      throw e;
    }
    try {
      const got = toHex(parent.header.imageId);
      if (got !== want) {
        throw new CrimgError('PARENT_MISMATCH', `${this.location} is image ${got}, not the parent image ${want} this child was written against`, { hint: 'give the child\'s own parent image' });
      }
      // The index is read once: the bytes hashed are the chunk table the parent then uses, and
      // the footer hashed is the one it opened with (a parent rewritten after the hash can
      // only serve chunks that fail the hashed table's checksums, never another image's).
      const { hash, chunkTable, sameFooter } = await hashIndex(parent);
      if (toHex(hash) !== toHex(rec.indexHash) || !sameFooter) {
        throw new CrimgError('PARENT_MISMATCH', `the parent image ${want} at ${this.location} was changed since the child was written: its header, validation block or index hash differs`, {
          hint: 'the parent was tampered with or rewritten; restore it from a good copy, or use a flattened child',
        });
      }
      const depth = (parent.validation.parent?.depth ?? 0) + 1;
      if (depth !== rec.depth) {
        throw new CrimgError('PARENT_MISMATCH', `the parent image ${want} is at depth ${depth - 1} of its chain, the child records depth ${rec.depth}`, { hint: 'the child was written wrongly; flatten it from a good chain' });
      }
      const g = this.geometry;
      if (parent.header.pageSize !== g.pageSize || parent.header.chunkSize !== g.chunkSize) {
        throw new CrimgError('PARENT_MISMATCH', `the parent image ${want} has page size ${parent.header.pageSize} and chunk size ${parent.header.chunkSize}, the child ${g.pageSize} and ${g.chunkSize}`, { hint: 'a child and its parent share the page and chunk size' });
      }
      if (parent.adoptChunkTable !== undefined && !parent.indexLocked) await parent.adoptChunkTable(chunkTable);
      return parent;
    } catch (e) {
      await parent.close();
      throw e;
    }
  }
}

/**
 * Section 8.3: an IN_PARENT chunk of plain length `plain` at `address` needs a chunk of the
 * parent at the same address with the same plain length.
 * @throws CrimgError CORRUPT_INDEX naming the child's chunk
 */
export function checkParentChunk(parent: ChainImage, address: bigint, plain: number, number: number, region: number): void {
  const r = parent.regionAt(address);
  const cs = BigInt(parent.header.chunkSize);
  if (r !== undefined && !r.isGap && (address - r.address) % cs === 0n && parent.plainLength(r, Number((address - r.address) / cs)) === plain) return;
  throw new CrimgError('CORRUPT_INDEX', `chunk ${number} (region ${region}, address ${hex(address)}) is IN_PARENT, but the parent has no chunk of ${plain} bytes at that address`, {
    chunk: number, region, address, hint: 'the child was written against another layout; flatten it from a good chain',
  });
}

/** One IN_PARENT piece of a read: bytes `[from, from + length)` of the chunk at `chunk` into `dst` of the output. */
export interface ParentPiece {
  /** Address of the chunk's first byte, its plain length, its number and its region's. */
  chunk: bigint;
  plain: number;
  number: number;
  region: number;
  from: number;
  length: number;
  dst: number;
}

/**
 * Fills `out` at each piece's `dst` with the parent's bytes at the same addresses: every chunk
 * checked against the parent's chunks first ({@link checkParentChunk}), then consecutive pieces
 * (adjacent in memory and in `out`) read as one run.
 * @throws CrimgError CORRUPT_INDEX, and what reading the parent throws
 */
export async function readFromParent(parent: ChainImage & { readInto(address: bigint, out: Uint8Array, o: { zeroFilled?: boolean }): Promise<void> }, pieces: readonly ParentPiece[], out: Uint8Array, options: { zeroFilled?: boolean }): Promise<void> {
  const runs: { address: bigint; length: number; dst: number }[] = [];
  for (const p of pieces) {
    checkParentChunk(parent, p.chunk, p.plain, p.number, p.region);
    const address = p.chunk + BigInt(p.from);
    const last = runs[runs.length - 1];
    if (last && last.address + BigInt(last.length) === address && last.dst + last.length === p.dst && last.length + p.length <= 2 ** 30) last.length += p.length;
    else runs.push({ address, length: p.length, dst: p.dst });
  }
  for (const r of runs) await parent.readInto(r.address, out.subarray(r.dst, r.dst + r.length), options);
}

/** What a reader was opened with, as {@link parentLinkOf} needs it. */
interface LinkParts {
  readonly validation: { readonly parent?: ParentRecord };
  readonly header: { readonly pageSize: number; readonly chunkSize: number };
  readonly options?: { parent?: ParentInput; key?: KeyInput };
  readonly path?: string;
}

/**
 * The parent link of an image being opened (null for a standalone image): the parent is opened
 * with the child's options, its own key (default the child's) and its own parent.
 */
export function parentLinkOf<T extends ChainImage, O extends { parent?: ParentInput; key?: KeyInput }>(parts: LinkParts & { readonly options?: O }, open: (input: SourceInput, options: O) => Promise<T>): ParentLink<T> | null {
  const rec = parts.validation.parent;
  if (rec === undefined) return null;
  const o = parts.options ?? ({} as O);
  return new ParentLink<T>(rec, o.parent, parts.path, o.key, (input, key, parent) => {
    const options: O = { ...o, key, parent };
    if (key === undefined) delete options.key;
    if (parent === undefined) delete options.parent;
    return open(input, options);
  }, { pageSize: parts.header.pageSize, chunkSize: parts.header.chunkSize });
}

/** Chunks of a child image by form, counted from its chunk table (IN_PARENT vs its own). */
export function countInParent(table: ChunkTable, regions: Iterable<Region>, plainLength: (r: Region, j: number) => number): number {
  let n = 0;
  for (const r of regions) {
    for (let j = 0; j < r.chunkCount; j++) if (table.get(r.firstChunk + j, plainLength(r, j)).flags & CHUNK_IN_PARENT) n++;
  }
  return n;
}

/** The depth limit of section 9, for messages. */
export const MAX_CHAIN_DEPTH = LIMITS.maxChainDepth;
