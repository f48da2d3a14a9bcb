/**
 * The reader's per-chunk stage for encoded or encrypted images: checksum, open (AEAD) and
 * decode, inline for single chunks and on worker threads for batches (spec/FORMAT.md
 * sections 5.3, 6, 7.2-7.4).
 */
import type { Header } from '../format/header.js';
import type { ChunkRecord } from '../format/index-table.js';
import { toKeySpec, type KeyInput } from './keying.js';
import { defaultWorkers } from './_workers.js';
import { CrimgError, isCrimgError } from '../format/errors.js';
import { ChunkPool } from '../codec/pool.js';
import { loadPortableEngine } from '../codec/portable.js';
import { decodeChunk, type DecodeParams } from '../codec/chunk.js';
import { chunkAad, chunkNonce, indexAad, indexNonce } from '../codec/aad.js';
import { open, suiteForCipherId } from '../codec/aead.js';
import { deriveKeys, headerHash, resolveMasterKey, verifyKeyCheck, type ImageKeys } from '../codec/keys.js';

export interface DecodeContext {
  rec: ChunkRecord;
  plainLength: number;
  chunkNumber: number;
  regionNumber: number;
  address: bigint;
  last: boolean;
}

export interface ChunkDecoder {
  /** True when the index can be read: no cipher, or a key that passed the key check. */
  readonly hasKey: boolean;
  /** Decodes one chunk on the calling thread. */
  decode(stored: Uint8Array, ctx: DecodeContext): Promise<Uint8Array>;
  /**
   * Decodes chunks stored back to back in `stored` (one read): split into one contiguous group
   * per worker, each group one message. Resolves with each chunk's plain bytes, in order.
   */
  decodeMany(stored: Uint8Array, items: { ctx: DecodeContext; start: number; length: number }[]): Promise<DecodedRun>;
  /** `Kd` and `H` (sections 7.2, 7.3) for the native batch decoder; null without cipher or key. */
  chunkKeys(): { dataKey: Uint8Array; headerHash: Uint8Array } | null;
  /** Opens a sealed index section (identity without a cipher). `base` is its file offset. */
  openIndex(domain: 1 | 2, count: bigint, stored: Uint8Array, base: number): Uint8Array;
  close(): Promise<void>;
}

/** Plain bytes of a run of chunks; `release()` once they are copied out (they may be reused). */
export interface DecodedRun {
  plains: Uint8Array[];
  release(): void;
}

export interface DecoderSetup {
  header: Header;
  headerBytes: Uint8Array;
  validationBytes: Uint8Array;
  key?: KeyInput | undefined;
  engine: 'node' | 'portable';
  scryptCaps?: { maxMemory?: number; maxP?: number } | undefined;
  workers?: number | undefined;
}

class CodecDecoder implements ChunkDecoder {
  private pool: ChunkPool | null = null;
  private readonly h: Uint8Array;

  constructor(private readonly s: DecoderSetup, private readonly keys: ImageKeys | null) {
    this.h = headerHash(s.headerBytes, s.validationBytes, s.engine);
  }

  get hasKey(): boolean {
    return this.s.header.cipher === 0 || this.keys !== null;
  }

  private params(ctx: DecodeContext): DecodeParams {
    const h = this.s.header;
    const params: DecodeParams = {
      flags: ctx.rec.flags, plainLength: ctx.plainLength, checksum: ctx.rec.checksum,
      codec: h.codec, cipher: h.cipher, engine: this.s.engine,
      at: { chunk: ctx.chunkNumber, region: ctx.regionNumber, offset: ctx.rec.offset, address: ctx.address },
    };
    if (h.cipher !== 0) {
      if (!this.keys) throw keyRequired();
      params.dataKey = this.keys.dataKey;
      params.nonce = chunkNonce(ctx.chunkNumber);
      params.aad = chunkAad({ imageId: h.imageId, headerHash: this.h, chunkNumber: ctx.chunkNumber, regionNumber: ctx.regionNumber, plainLength: ctx.plainLength, address: ctx.address, encoded: false, last: ctx.last });
    }
    return params;
  }

  async decode(stored: Uint8Array, ctx: DecodeContext): Promise<Uint8Array> {
    return decodeChunk(stored, this.params(ctx));
  }

  async decodeMany(stored: Uint8Array, items: { ctx: DecodeContext; start: number; length: number }[]): Promise<DecodedRun> {
    const workers = this.s.workers ?? defaultWorkers();
    let plainTotal = 0;
    for (const it of items) plainTotal += it.ctx.plainLength;
    // Small batches cost more in messages than in decoding: keep them on this thread.
    if (workers === 0 || items.length < 2 || plainTotal < INLINE_BELOW) {
      return { plains: items.map((it) => decodeChunk(stored.subarray(it.start, it.start + it.length), this.params(it.ctx))), release: () => {} };
    }
    this.pool ??= new ChunkPool({ size: workers });
    // Contiguous groups of about equal stored size, one per worker.
    const groups: (typeof items)[] = [];
    const target = stored.byteLength / workers;
    let cur: typeof items = [];
    let curBytes = 0;
    for (const it of items) {
      cur.push(it);
      curBytes += it.length;
      if (curBytes >= target && groups.length < workers - 1) {
        groups.push(cur);
        cur = [];
        curBytes = 0;
      }
    }
    if (cur.length) groups.push(cur);
    // Stored bytes go out and plain bytes come back through reused shared memory: fresh
    // buffers per message would cost a first touch of every page on both sides.
    const held: SharedArrayBuffer[] = [];
    const release = (): void => {
      for (const b of held.splice(0)) this.free(b);
    };
    const jobs = groups.map((g) => {
      const from = g[0]!.start;
      const to = g[g.length - 1]!.start + g[g.length - 1]!.length;
      let plain = 0;
      for (const it of g) plain += it.ctx.plainLength;
      const input = this.acquire(to - from);
      const output = this.acquire(plain);
      held.push(input, output);
      new Uint8Array(input, 0, to - from).set(stored.subarray(from, to));
      const parts = g.map((it) => ({ start: it.start - from, length: it.length, params: this.params(it.ctx) }));
      return this.pool!.decodeMany(new Uint8Array(input, 0, to - from), parts, { into: output });
    });
    try {
      const results = await Promise.all(jobs);
      const plains: Uint8Array[] = [];
      groups.forEach((g, i) => {
        let at = 0;
        for (const it of g) {
          plains.push(results[i]!.subarray(at, at + it.ctx.plainLength));
          at += it.ctx.plainLength;
        }
      });
      return { plains, release };
    } catch (e) {
      // Other groups' workers may still be writing into their shared buffers: wait for every
      // job before the buffers go back to the free list.
      await Promise.allSettled(jobs);
      release();
      throw e;
    }
  }

  /** Shared buffers not in use, reused by later batches. */
  private readonly shared: SharedArrayBuffer[] = [];

  private acquire(size: number): SharedArrayBuffer {
    const i = this.shared.findIndex((b) => b.byteLength >= size);
    if (i >= 0) return this.shared.splice(i, 1)[0]!;
    return new SharedArrayBuffer(Math.max(1 << 20, 2 ** Math.ceil(Math.log2(size))));
  }

  private free(b: SharedArrayBuffer): void {
    if (this.shared.length < 16) this.shared.push(b); // a few batches' worth; the rest is dropped
  }

  chunkKeys(): { dataKey: Uint8Array; headerHash: Uint8Array } | null {
    return this.keys ? { dataKey: this.keys.dataKey, headerHash: this.h } : null;
  }

  openIndex(domain: 1 | 2, count: bigint, stored: Uint8Array, base: number): Uint8Array {
    const h = this.s.header;
    if (h.cipher === 0) return stored;
    if (!this.keys) throw keyRequired();
    const what = domain === 1 ? 'chunk table' : 'region section';
    if (stored.length < 16) throw new CrimgError('CORRUPT_INDEX', `the sealed ${what} is shorter than a tag`, { offset: base });
    const aad = indexAad({ imageId: h.imageId, headerHash: this.h, domain, count, plainLength: stored.length - 16 });
    try {
      return open(suiteForCipherId(h.cipher), this.keys.indexKey, indexNonce(domain), aad, stored, this.s.engine);
    } catch (e) {
      if (isCrimgError(e, 'AUTH_FAILED')) {
        throw new CrimgError('AUTH_FAILED', `the ${what} does not authenticate: the index, header or validation block was altered`, {
          offset: base, hint: 'the image was tampered with or damaged; restore it from a good copy',
        });
      }
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }
}

/** Batches of less plain data than this are decoded on the calling thread. */
const INLINE_BELOW = 512 * 1024;

function keyRequired(): CrimgError {
  return new CrimgError('KEY_REQUIRED', 'the image is encrypted and no key was given', {
    hint: 'pass a key (--key-file, --key-env or --passphrase-file)',
  });
}

/**
 * The decoder for an image's codec and cipher. With a cipher and a key, derives the subkeys
 * and checks the key check value first: a wrong key is WRONG_KEY, not corruption (section 7.2).
 * Without a key the decoder opens, and index or data access gives KEY_REQUIRED.
 * @throws CrimgError WRONG_KEY, LIMIT_EXCEEDED (scrypt cost), INVALID_ARGUMENT (key kind)
 */
export async function createChunkDecoder(s: DecoderSetup): Promise<ChunkDecoder> {
  const h = s.header;
  if (s.engine === 'portable') await loadPortableEngine();
  let keys: ImageKeys | null = null;
  const spec = toKeySpec(s.key);
  if (h.cipher !== 0 && spec) {
    const caps = { maxMemory: s.scryptCaps?.maxMemory ?? 256 * 1024 * 1024, maxP: s.scryptCaps?.maxP ?? 16 };
    const master = resolveMasterKey(spec, { kdf: h.kdf, salt: h.salt, log2N: h.scryptLog2N, r: h.scryptR, p: h.scryptP }, { scryptCaps: caps, engine: s.engine });
    keys = deriveKeys(master, h.salt, h.imageId, s.engine);
    verifyKeyCheck(keys.keyCheck, h.keyCheck);
  }
  return new CodecDecoder(s, keys);
}
