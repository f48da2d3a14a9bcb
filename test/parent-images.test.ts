/**
 * Parent images (issue 19, spec/FORMAT.md section 8.3): child images written against a parent
 * store only the chunks that changed; reading, verifying, restoring and flattening them go
 * through the parent, which is checked (image id, index hash) before any of its bytes is used.
 */
import { copyFileSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { BufferSource, CrimgError, ImageWriter, diffImages, flattenImage, openImage, openReader, type RandomAccessSource, type WriterOptions } from '../index.js';
import { xxh64 } from '../codec/checksum.js';
import { CHUNK_IN_PARENT, CHUNK_ZERO, LIMITS, REQUIRED_PARENT } from '../format/constants.js';
import { nativeAddon } from '../native-mmap/index.js';
import { parentCompareCounts } from '../image/_parent-writer.js';
import { flipByte, memoryLike, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const HEAP = 0x7f0000000000n;
const STACK = 0x7f0000200000n;
const NEW = 0x7f0000400000n;
const keyA = randomBytes(32);
const keyB = randomBytes(32);

interface Memory { heap: Buffer; stack: Buffer }

/** The parent's memory: a heap of 96 pages and a stack of 16. */
function parentMemory(): Memory {
  return { heap: memoryLike(96, 11), stack: memoryLike(16, 12) };
}

/** The child's memory: 3 heap pages rewritten, the stack grown by 4 pages, a new region. */
function childMemory(p: Memory): Memory & { fresh: Buffer } {
  const heap = Buffer.from(p.heap);
  for (const page of [3, 40, 41]) heap.fill(page + 1, page * 4096 + 100, page * 4096 + 300);
  const stack = Buffer.concat([p.stack, memoryLike(4, 13)]);
  return { heap, stack, fresh: memoryLike(8, 14) };
}

async function writeImage(out: string, m: Memory & { fresh?: Buffer }, options: WriterOptions): Promise<Awaited<ReturnType<ImageWriter['finish']>>> {
  const w = await ImageWriter.create(out, { fsync: false, ...options });
  await w.addRegion({ address: HEAP, data: m.heap, kind: 'heap', name: 'heap' });
  await w.addGap({ address: HEAP + BigInt(m.heap.length), length: 8192n, name: 'guard' });
  await w.addRegion({ address: STACK, data: m.stack, kind: 'stack' });
  if (m.fresh) await w.addRegion({ address: NEW, data: m.fresh, name: 'new' });
  return w.finish();
}

async function expectCode(p: Promise<unknown>, code: string): Promise<CrimgError> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(CrimgError);
  expect((e as CrimgError).code).toBe(code);
  return e as CrimgError;
}

describe('write and read a child', () => {
  const cases: [string, WriterOptions, WriterOptions][] = [
    ['raw', {}, {}],
    ['deflate', { compress: 'deflate:1' }, { compress: 'deflate:6' }],
    ['aes-256-gcm, one key', { encrypt: 'aes-256-gcm', key: keyA }, { encrypt: 'aes-256-gcm', key: keyA }],
    ['chacha parent, aes child with another key', { encrypt: 'chacha20-poly1305', key: keyA, compress: 'deflate' }, { encrypt: 'aes-256-gcm', key: keyB }],
  ];
  test.each(cases)('%s: stores only what changed; reads, verifies, restores and flattens exact', async (name, po, co) => {
    const dir = t.path(name.replace(/\W+/g, '-'));
    mkdirSync(dir, { recursive: true });
    const pm = parentMemory();
    const cm = childMemory(pm);
    const parentPath = `${dir}/base.img`;
    const childPath = `${dir}/child.img`;
    const ps = await writeImage(parentPath, pm, { ...po, chunkSize: 16384 });
    const differentKeys = co.key !== po.key && po.key !== undefined;
    const parent = differentKeys ? { source: parentPath, key: po.key! } : parentPath;
    const cs = await writeImage(childPath, cm, { ...co, parent });
    // 24 heap chunks of 16 KiB: 2 changed (pages 3; 40 and 41), the stack's 4 and its new last
    // chunk, the new region's 2: the rest are the parent's.
    expect(cs.inParentChunks).toBe(sameChunks(pm, cm));
    expect(cs.inParentChunks).toBeGreaterThan(ps.chunks - ps.zeroChunks - 3);
    expect(cs.storedBytes).toBeLessThan(ps.storedBytes / 4);
    const open = differentKeys ? { key: co.key!, parent: { source: parentPath, key: po.key! } } : co.key ? { key: co.key } : {};
    const img = await openImage(childPath, open);
    try {
      expect(img.isChild).toBe(true);
      expect(img.header.requiredFeatures & REQUIRED_PARENT).toBe(REQUIRED_PARENT);
      expect(img.mappable).toBe(false);
      expect(img.validation.parent!.depth).toBe(1);
      expect(img.validation.parent!.hint).toBe('base.img');
      expect((await img.read(HEAP, cm.heap.length)).equals(cm.heap)).toBe(true);
      expect((await img.read(STACK, cm.stack.length)).equals(cm.stack)).toBe(true);
      expect((await img.read(NEW, cm.fresh.length)).equals(cm.fresh)).toBe(true);
      // A read across a stored chunk and parent chunks, at odd offsets.
      expect((await img.read(HEAP + 3n * 4096n - 77n, 70000)).equals(cm.heap.subarray(3 * 4096 - 77, 3 * 4096 - 77 + 70000))).toBe(true);
      const v = await img.verify();
      expect(v.errors).toEqual([]);
      expect(v.ok).toBe(true);
      expect(v.chunksChecked).toBe(cs.chunks + ps.chunks);
      // Copy restore (the default for a child); map mode is refused: the child is not MAPPABLE.
      const r = await img.restore({ mode: 'copy' });
      try {
        expect(r.mode).toBe('copy');
        expect(Buffer.from(r.regions[0]!.memory!).equals(cm.heap)).toBe(true);
        expect(Buffer.from(r.regions[2]!.memory!).equals(cm.stack)).toBe(true);
        expect(Buffer.from(r.regions[3]!.memory!).equals(cm.fresh)).toBe(true);
      } finally {
        r.release();
      }
      // Lazy restore: the handler installs the child's chunks and, for IN_PARENT ones, the
      // chain's (each from its image's file with its key), the chain checked first.
      const lz = await img.restore({ mode: 'lazy' });
      try {
        expect(lz.mode).toBe('lazy');
        await lz.done;
        expect(Buffer.from(lz.regions[0]!.memory!).equals(cm.heap)).toBe(true);
        expect(Buffer.from(lz.regions[2]!.memory!).equals(cm.stack)).toBe(true);
        expect(Buffer.from(lz.regions[3]!.memory!).equals(cm.fresh)).toBe(true);
      } finally {
        lz.release();
      }
      const mapped = await expectCode(img.restore({ mode: 'map' }), 'UNSUPPORTED_FEATURE');
      if (!co.key && !co.compress) expect(mapped.message).toContain('a child image');
      // Flatten: a standalone image with the same bytes.
      const flat = `${dir}/flat.img`;
      await flattenImage(img, flat, co.key ? { outKey: co.key } : {});
      const f = await openImage(flat, co.key ? { key: co.key } : {});
      try {
        expect(f.isChild).toBe(false);
        expect(f.validation.parent).toBeUndefined();
        expect(f.mappable).toBe(!co.key && !co.compress);
        for (const reg of img.regions) {
          if (reg.isGap) continue;
          expect((await f.read(reg.address, Number(reg.length))).equals(await img.read(reg.address, Number(reg.length)))).toBe(true);
        }
        expect((await f.verify()).ok).toBe(true);
      } finally {
        await f.close();
      }
    } finally {
      await img.close();
    }
  });

  test('a chain of three: the grandchild reads through two parents; verify names the image of a bad chunk', async () => {
    const pm = parentMemory();
    const c1 = childMemory(pm);
    const c2 = { ...c1, heap: Buffer.from(c1.heap) };
    c2.heap.fill(0x5a, 70 * 4096, 71 * 4096);
    await writeImage(t.path('g0.img'), pm, { compress: 'deflate' });
    await writeImage(t.path('g1.img'), c1, { compress: 'deflate', parent: t.path('g0.img') });
    const s2 = await writeImage(t.path('g2.img'), c2, { compress: 'deflate', parent: t.path('g1.img') });
    expect(s2.chunks - s2.inParentChunks - s2.zeroChunks).toBe(1); // the one heap chunk that changed
    const img = await openReader(t.path('g2.img'));
    expect(img.validation.parent!.depth).toBe(2);
    expect((await img.read(HEAP, c2.heap.length)).equals(c2.heap)).toBe(true);
    expect((await img.read(NEW, c2.fresh.length)).equals(c2.fresh)).toBe(true);
    await img.close();
    // Lazy restore through two parents: chunks resolved down the chain, each decoded with its image's codec.
    const lazy = await openImage(t.path('g2.img'));
    const lz = await lazy.restore({ mode: 'lazy' });
    expect(lz.mode).toBe('lazy');
    await lz.done;
    expect(Buffer.from(lz.regions[0]!.memory!).equals(c2.heap)).toBe(true);
    expect(Buffer.from(lz.regions[3]!.memory!).equals(c2.fresh)).toBe(true);
    lz.release();
    await lazy.close();
    // Damage a stored chunk of the root: verify of the grandchild reports it as image 2's.
    const root = await openReader(t.path('g0.img'));
    const table = await root.chunkTable();
    const rec = table.get(root.regions[0]!.firstChunk + 1, 16384);
    const rootId = root.imageId;
    await root.close();
    flipByte(t.path('g0.img'), rec.offset + 5);
    const again = await openReader(t.path('g2.img'));
    const v = await again.verify();
    expect(v.ok).toBe(false);
    expect(v.errors).toHaveLength(1);
    expect(v.errors[0]).toMatchObject({ code: 'CORRUPT_CHUNK', image: 2, imageId: rootId, chunk: 1 });
    await expectCode(again.read(HEAP, c2.heap.length), 'CORRUPT_CHUNK');
    await again.close();
    // A lazy restore installs nothing of the damaged chunk: done rejects with its code.
    const bad = await openImage(t.path('g2.img'));
    const blz = await bad.restore({ mode: 'lazy' });
    await expectCode(blz.done, 'CORRUPT_CHUNK');
    blz.release();
    await bad.close();
  });
});

/** Chunks of 16 KiB the child holds equal to the parent's and not all zero: its IN_PARENT chunks. */
function sameChunks(p: Memory, c: Memory): number {
  let n = 0;
  for (const [a, b] of [[p.heap, c.heap], [p.stack, c.stack]] as const) {
    for (let o = 0; o + 16384 <= a.length; o += 16384) {
      const x = a.subarray(o, o + 16384);
      if (x.equals(b.subarray(o, o + 16384)) && !x.every((v) => v === 0)) n++;
    }
  }
  return n;
}

describe('a child of file ranges and zero runs', () => {
  test('file-range, zero-run and streamed regions are compared with the parent as bytes are', async () => {
    const pm = parentMemory();
    const cm = childMemory(pm);
    const base = t.path('fr-base.img');
    const out = t.path('fr-child.img');
    await writeImage(base, pm, { compress: 'deflate' });
    const heapFile = t.path('heap.bin');
    writeFileSync(heapFile, cm.heap);
    const w = await ImageWriter.create(out, { fsync: false, compress: 'deflate', parent: base });
    await w.addRegion({ address: HEAP, data: { path: heapFile, length: cm.heap.length } });
    await w.addRegion({ address: STACK, data: [cm.stack.subarray(0, 5000), { zeros: 0 }, cm.stack.subarray(5000)] });
    await w.addRegion({ address: NEW, data: [{ zeros: 16384 }, cm.fresh.subarray(16384)] }); // the first 16 KiB as zeros
    const s = await w.finish();
    expect(s.inParentChunks).toBe(sameChunks(pm, cm));
    const img = await openReader(out);
    expect((await img.read(HEAP, cm.heap.length)).equals(cm.heap)).toBe(true);
    expect((await img.read(STACK, cm.stack.length)).equals(cm.stack)).toBe(true);
    const fresh = Buffer.from(cm.fresh);
    fresh.fill(0, 0, 16384);
    expect((await img.read(NEW, fresh.length)).equals(fresh)).toBe(true);
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });

  test('options a child cannot have are refused before anything is written', async () => {
    const base = t.path('opt-base.img');
    await writeImage(base, parentMemory(), {});
    await expect(ImageWriter.create(t.path('x.img'), { parent: base, layout: 'sparse' })).rejects.toThrow(/compact/);
    await expect(ImageWriter.create(t.path('x.img'), { parent: base, chunkSize: 16384 })).rejects.toThrow(/chunk size 4096/);
    await expectCode(ImageWriter.create(t.path('x.img'), { parent: t.path('nothing.img') }), 'IO_ERROR');
  });
});

describe('the parent is checked before any of its bytes is used', () => {
  const dir = t.path('tamper');
  const base = `${dir}/base.img`;
  const child = `${dir}/child.img`;
  let pm: Memory;
  let cm: ReturnType<typeof childMemory>;
  let baseId: Uint8Array;

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    pm = parentMemory();
    cm = childMemory(pm);
    await writeImage(base, pm, {});
    await writeImage(child, cm, { parent: base });
    const r = await openReader(base);
    baseId = r.header.imageId.slice();
    await r.close();
  });

  /** Runs `fn` with base.img replaced by `bytes` (or moved away for null), then puts it back. */
  async function withBase(bytes: Uint8Array | null, fn: () => Promise<void>): Promise<void> {
    renameSync(base, `${base}.good`);
    try {
      if (bytes) writeFileSync(base, bytes);
      await fn();
    } finally {
      renameSync(`${base}.good`, base);
    }
  }

  test('missing: the child opens and reads its own chunks; a parent chunk is PARENT_REQUIRED; verify names image 1; --parent finds it', async () => {
    await withBase(null, async () => {
      const img = await openReader(child);
      expect((await img.read(NEW, cm.fresh.length)).equals(cm.fresh)).toBe(true);
      const e = await expectCode(img.read(HEAP, 4096), 'PARENT_REQUIRED');
      expect(e.message).toContain(basename(base));
      const v = await img.verify();
      expect(v.ok).toBe(false);
      expect(v.errors).toEqual([expect.objectContaining({ code: 'PARENT_REQUIRED', image: 1 })]);
      await img.close();
      const given = await openReader(child, { parent: `${base}.good` });
      expect((await given.read(HEAP, cm.heap.length)).equals(cm.heap)).toBe(true);
      await given.close();
    });
  });

  test('a different image at the location: PARENT_MISMATCH, no byte of it read as the child\'s', async () => {
    const other = t.path('other.img');
    await writeImage(other, pm, {}); // the same memory, another image id
    await withBase(readFileSync(other), async () => {
      const img = await openReader(child);
      const e = await expectCode(img.read(HEAP, cm.heap.length), 'PARENT_MISMATCH');
      expect(e.message).toContain('is image');
      expect((await img.verify()).errors[0]).toMatchObject({ code: 'PARENT_MISMATCH', image: 1 });
      await img.close();
    });
  });

  test('tampered: the parent rewritten under its own image id, or its header changed, is PARENT_MISMATCH', async () => {
    const forged = t.path('forged.img');
    const m = { heap: Buffer.from(pm.heap), stack: pm.stack };
    m.heap[5000] ^= 1; // one byte of a chunk the child takes from its parent
    await writeImage(forged, m, { imageId: baseId });
    await withBase(readFileSync(forged), async () => {
      const img = await openReader(child);
      const e = await expectCode(img.read(HEAP, cm.heap.length), 'PARENT_MISMATCH');
      expect(e.message).toContain('changed');
      await img.close();
    });
    // The creation time (header offset 56) changed and the header checksum made right again.
    const bytes = readFileSync(base);
    bytes[56] ^= 1;
    bytes.writeBigUInt64LE(xxh64(bytes.subarray(0, 120)), 120);
    await withBase(bytes, async () => {
      const img = await openReader(child);
      await expectCode(img.read(HEAP, 4096), 'PARENT_MISMATCH');
      await img.close();
    });
  });

  test('rewritten in place after the child opened, before its first read: PARENT_MISMATCH', async () => {
    const forged = t.path('forged-in-place.img');
    const m = { heap: Buffer.from(pm.heap), stack: pm.stack };
    m.heap[5000] ^= 1;
    await writeImage(forged, m, { imageId: baseId });
    const copy = t.path('in-place-base.img');
    copyFileSync(base, copy);
    const img = await openReader(child, { parent: copy });
    writeFileSync(copy, readFileSync(forged)); // the same inode, truncated and rewritten
    await expectCode(img.read(HEAP, cm.heap.length), 'PARENT_MISMATCH');
    await img.close();
  });

  test('rewritten between the index hash and the chunk table: the table used is the one hashed (one read), the new bytes only fail', async () => {
    const forged = t.path('forged-toctou.img');
    const m = { heap: Buffer.from(pm.heap), stack: pm.stack };
    m.heap[5000] ^= 1; // the parent's chunk 0, which the child takes from its parent
    await writeImage(forged, m, { imageId: baseId });
    const good = readFileSync(base);
    const bad = readFileSync(forged);
    expect(bad.length).toBe(good.length);
    const r = await openReader(base);
    const tableAt = Number(r.footer.chunkTableOffset);
    await r.close();
    // A parent whose file turns into the forged one once its whole index was read.
    let tableReads = 0;
    let swapped = false;
    const source: RandomAccessSource = {
      size: good.length,
      name: 'swapping parent',
      read(offset: number, length: number): Promise<Uint8Array> {
        const out = Uint8Array.from((swapped ? bad : good).subarray(offset, offset + length));
        if (offset === tableAt) tableReads++;
        if (tableReads > 0 && offset >= tableAt && offset + length === good.length) swapped = true;
        return Promise.resolve(out);
      },
      close: () => Promise.resolve(),
    };
    const img = await openReader(child, { parent: source });
    const got = await img.read(HEAP, cm.heap.length).then((b) => b, (e: unknown) => e);
    expect(got).toBeInstanceOf(CrimgError);
    expect(['CORRUPT_CHUNK', 'PARENT_MISMATCH', 'SOURCE_CHANGED']).toContain((got as CrimgError).code);
    expect({ swapped, tableReads }).toEqual({ swapped: true, tableReads: 1 });
    // The chunks the forged file did not change are still the hashed parent's, exact.
    expect((await img.read(HEAP + 8192n, 4096)).equals(cm.heap.subarray(8192, 12288))).toBe(true);
    await img.close();
  });

  test('the hint is relative to the child: the pair moved together still opens', async () => {
    const moved = t.path('moved');
    mkdirSync(moved, { recursive: true });
    copyFileSync(base, `${moved}/base.img`);
    copyFileSync(child, `${moved}/child.img`);
    await withBase(null, async () => {
      const img = await openReader(`${moved}/child.img`);
      expect((await img.read(HEAP, cm.heap.length)).equals(cm.heap)).toBe(true);
      expect(img.parentLocation).toBe(`${moved}/base.img`);
      await img.close();
    });
  });

  test('a hint that is a URL is never followed from a local child (PARENT_REQUIRED naming it); --parent still works', async () => {
    const c = t.path('url-hint-child.img');
    await writeImage(c, cm, { parent: base, parentHint: 's3://bucket/base.img' });
    const img = await openReader(c);
    const e = await expectCode(img.read(HEAP + 16384n, 4096), 'PARENT_REQUIRED');
    expect(e.message).toContain('records a location that is not followed ("s3://bucket/base.img"');
    await img.close();
    const given = await openReader(c, { parent: base });
    expect((await given.read(HEAP, cm.heap.length)).equals(cm.heap)).toBe(true);
    await given.close();
  });

  test('an encrypted parent with the wrong key is WRONG_KEY naming the parent', async () => {
    const eb = t.path('enc-base.img');
    const ec = t.path('enc-child.img');
    await writeImage(eb, pm, { encrypt: 'aes-256-gcm', key: keyA });
    await writeImage(ec, cm, { encrypt: 'aes-256-gcm', key: keyB, parent: { source: eb, key: keyA } });
    const img = await openReader(ec, { key: keyB }); // the parent's key defaults to the child's
    const e = await expectCode(img.read(HEAP + 16384n, 4096), 'WRONG_KEY'); // chunk 1: the parent's
    expect(e.message).toContain('parent image');
    await img.close();
  });

  test('the PARENT bit without the parent record (or the record without the bit) is CORRUPT_VALIDATION at open', async () => {
    const bytes = readFileSync(child);
    expect(bytes.readBigUInt64LE(16) & REQUIRED_PARENT).toBe(REQUIRED_PARENT);
    bytes.writeBigUInt64LE(bytes.readBigUInt64LE(16) & ~REQUIRED_PARENT, 16);
    bytes.writeBigUInt64LE(xxh64(bytes.subarray(0, 120)), 120);
    await expectCode(openReader(bytes), 'CORRUPT_VALIDATION');
  });

  test('a chunk flagged IN_PARENT in a standalone image is CORRUPT_INDEX (a reserved bit)', async () => {
    const img = await openReader(base);
    const table = await img.chunkTable();
    const off = Number(img.footer.chunkTableOffset);
    const n = img.regions[0]!.firstChunk + 1;
    expect(table.get(n, img.chunkSize).flags & CHUNK_IN_PARENT).toBe(0);
    await img.close();
    const bytes = readFileSync(base);
    bytes.writeUInt16LE(CHUNK_IN_PARENT, off + n * 24 + 12);
    bytes.fill(0, off + n * 24, off + n * 24 + 12);
    bytes.fill(0, off + n * 24 + 16, off + n * 24 + 24);
    const tableBytes = bytes.subarray(off, off + img.chunkCount * 24);
    bytes.writeBigUInt64LE(xxh64(tableBytes), bytes.length - 96 + 64);
    bytes.writeBigUInt64LE(xxh64(bytes.subarray(bytes.length - 96, bytes.length - 16)), bytes.length - 16);
    const bad = await openReader(bytes);
    const e = await expectCode(bad.read(HEAP, 4096 * 3), 'CORRUPT_INDEX');
    expect(e.message).toMatch(/reserved bits|region 0 records/);
    await bad.close();
  });
});

describe('chain depth', () => {
  test(`a chain of ${LIMITS.maxChainDepth} children reads; a child below it is refused; a forged depth is LIMIT_EXCEEDED`, async () => {
    const dir = t.path('deep');
    mkdirSync(dir, { recursive: true });
    const mem = Buffer.concat([Buffer.alloc(4096, 1), Buffer.alloc(4096, 2)]);
    await (async () => {
      const w = await ImageWriter.create(`${dir}/0.img`, { fsync: false });
      await w.addRegion({ address: HEAP, data: mem });
      await w.finish();
    })();
    let last = mem;
    for (let d = 1; d <= LIMITS.maxChainDepth; d++) {
      last = Buffer.from(last);
      last[(d % 2) * 4096 + d] = d; // one page changes each time
      const w = await ImageWriter.create(`${dir}/${d}.img`, { fsync: false, parent: `${dir}/${d - 1}.img` });
      await w.addRegion({ address: HEAP, data: last });
      const s = await w.finish();
      expect(s.inParentChunks).toBe(1);
    }
    const deepest = await openReader(`${dir}/${LIMITS.maxChainDepth}.img`);
    expect(deepest.validation.parent!.depth).toBe(LIMITS.maxChainDepth);
    expect((await deepest.read(HEAP, 8192)).equals(last)).toBe(true);
    expect((await deepest.verify()).ok).toBe(true);
    await deepest.close();
    await expect(ImageWriter.create(`${dir}/over.img`, { fsync: false, parent: `${dir}/${LIMITS.maxChainDepth}.img` })).rejects.toThrow(/depth limit/);
    // Depth 33 forged into the record (validation block checksum made right): refused at open.
    const bytes = readFileSync(`${dir}/${LIMITS.maxChainDepth}.img`);
    const vStart = bytes.readUInt32LE(12);
    const vSize = bytes.readUInt32LE(64);
    const at = bytes.indexOf(Buffer.from([8, 0, 1, 0]), vStart); // record type 8, CRITICAL
    expect(at).toBeGreaterThan(vStart);
    bytes.writeUInt32LE(LIMITS.maxChainDepth + 1, at + 8 + 48);
    bytes.writeBigUInt64LE(xxh64(bytes.subarray(vStart, vStart + vSize - 8)), vStart + vSize - 8);
    await expectCode(openReader(bytes), 'LIMIT_EXCEEDED');
  });
});

/** A source over bytes that counts the bytes read outside `index` (the file's index range). */
class CountingSource implements RandomAccessSource {
  readonly size: number;
  readonly name = 'counting';
  dataBytes = 0;
  private readonly inner: BufferSource;
  constructor(bytes: Uint8Array, private readonly dataEnd: number) {
    this.inner = new BufferSource(bytes);
    this.size = bytes.length;
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(offset + length, this.dataEnd);
    if (end > offset) this.dataBytes += end - Math.max(offset, 4096);
    return this.inner.read(offset, length);
  }
  async close(): Promise<void> {}
}

describe('diff of a child and its parent', () => {
  test('reads only the chunks the child holds, and finds what a full comparison finds', async () => {
    const pm = { heap: memoryLike(480, 21), stack: memoryLike(16, 22) };
    const cm = childMemory(pm);
    const base = t.path('diff-base.img');
    const child = t.path('diff-child.img');
    const flat = t.path('diff-flat.img');
    await writeImage(base, pm, { compress: 'deflate' });
    await writeImage(child, cm, { compress: 'deflate', parent: base });
    await flattenImage(child, flat);
    const counted = async (path: string): Promise<CountingSource> => {
      const r = await openReader(path);
      const end = Number(r.footer.chunkTableOffset);
      await r.close();
      return new CountingSource(readFileSync(path), end);
    };
    const ps = await counted(base);
    const psForChild = await counted(base);
    const cs = await counted(child);
    const parentImg = await openReader(ps);
    const childImg = await openReader(cs, { parent: psForChild });
    const quick = await diffImages(childImg, parentImg);
    const fullA = await openReader(flat);
    const fullB = await openReader(base);
    const full = await diffImages(fullA, fullB);
    expect(quick.memory.map((m) => m.ranges)).toEqual(full.memory.map((m) => m.ranges));
    expect(quick.removed.map((r) => r.address)).toEqual([NEW]); // a: the child, b: its parent
    expect(quick.changed.map((c) => c.fields)).toEqual([['length']]);
    expect(quick.memory.map((m) => m.ranges)).toEqual([[{ start: HEAP + 3n * 4096n, end: HEAP + 4n * 4096n }, { start: HEAP + 40n * 4096n, end: HEAP + 42n * 4096n }]]);
    // No chunk of either image decoded beyond the child's own stored ones and the parent's same-address ones.
    const childStored = statSync(child).size;
    expect(cs.dataBytes).toBeLessThanOrEqual(childStored);
    expect(ps.dataBytes + psForChild.dataBytes).toBeLessThan(statSync(base).size / 10);
    for (const x of [parentImg, childImg, fullA, fullB]) await x.close();
  });
});

describe('the parent compared on native threads', () => {
  /** Writes `m` against `parent` with the native decoder on or off; the parent chunks compared, by how. */
  async function counted(out: string, m: Memory & { fresh?: Buffer }, o: WriterOptions, native: boolean): Promise<{ s: Awaited<ReturnType<ImageWriter['finish']>>; d: typeof parentCompareCounts }> {
    const before = { ...parentCompareCounts };
    const saved = process.env.CRIMG_NATIVE_DECODE;
    if (!native) process.env.CRIMG_NATIVE_DECODE = '0';
    try {
      const s = await writeImage(out, m, o);
      const d = { ...parentCompareCounts };
      for (const k of Object.keys(d) as (keyof typeof d)[]) d[k] -= before[k];
      return { s, d };
    } finally {
      if (saved === undefined) delete process.env.CRIMG_NATIVE_DECODE;
      else process.env.CRIMG_NATIVE_DECODE = saved;
    }
  }

  test('stored, ZERO and chained parent chunks: decodeBatch gives the child the JavaScript path gives, exact; a damaged parent chunk fails alike', async () => {
    expect(nativeAddon()).not.toBeNull(); // the addon is built for the suite: this test is about it
    const dir = t.path('native-compare');
    mkdirSync(dir, { recursive: true });
    const pm = parentMemory();
    pm.heap.fill(0, 48 * 4096, 52 * 4096); // one 16 KiB chunk of zeros at least
    const c1 = childMemory(pm);
    const c2 = { ...c1, heap: Buffer.from(c1.heap) };
    c2.heap.fill(0x5a, 70 * 4096 + 9, 70 * 4096 + 900);
    const o: WriterOptions = { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: keyA };
    await writeImage(`${dir}/p.img`, pm, { ...o, chunkSize: 16384 });
    const zeroChunks = (b: Buffer): number => {
      let n = 0;
      for (let at = 0; at < b.length; at += 16384) if (b.subarray(at, at + 16384).every((v) => v === 0)) n++;
      return n;
    };
    // The child's heap (24 chunks) and its stack's first 4 have a parent chunk at their address.
    const one = await counted(`${dir}/c1.img`, c1, { ...o, parent: `${dir}/p.img` }, true);
    expect(one.d).toEqual({ native: 28 - zeroChunks(pm.heap) - zeroChunks(pm.stack), chained: 0, zero: zeroChunks(pm.heap) + zeroChunks(pm.stack), js: 0 });
    expect(one.s.inParentChunks).toBe(sameChunks(pm, c1));
    // A parent that is a child: its IN_PARENT chunks are read down its chain, the rest decoded natively.
    const two = await counted(`${dir}/c2.img`, c2, { ...o, parent: `${dir}/c1.img` }, true);
    expect(two.d.chained).toBe(one.s.inParentChunks);
    expect(two.d.native).toBeGreaterThan(0);
    expect(two.d.native + two.d.chained + two.d.zero).toBe(24 + 5 + 2); // heap, stack, the new region
    expect(two.d.js).toBe(0);
    expect(two.s.chunks - two.s.inParentChunks - two.s.zeroChunks).toBe(1); // the one heap chunk that changed
    // The JavaScript path writes the same child.
    const js = await counted(`${dir}/c2-js.img`, c2, { ...o, parent: `${dir}/c1.img` }, false);
    expect(js.d.native + js.d.chained + js.d.zero).toBe(0);
    expect(js.d.js).toBe(31);
    expect(js.s.inParentChunks).toBe(two.s.inParentChunks);
    expect(js.s.storedBytes).toBe(two.s.storedBytes);
    for (const f of ['c2.img', 'c2-js.img']) {
      const img = await openReader(`${dir}/${f}`, { key: keyA });
      try {
        expect((await img.read(HEAP, c2.heap.length)).equals(c2.heap)).toBe(true);
        expect((await img.read(STACK, c2.stack.length)).equals(c2.stack)).toBe(true);
        expect((await img.read(NEW, c2.fresh.length)).equals(c2.fresh)).toBe(true);
        expect((await img.verify()).ok).toBe(true);
      } finally {
        await img.close();
      }
    }
    // A damaged stored chunk of the parent: both paths refuse the child with the same error.
    const root = await openReader(`${dir}/p.img`, { key: keyA });
    const table = await root.chunkTable();
    const heap = root.regions[0]!;
    let j = 0;
    while (table.get(heap.firstChunk + j, 16384).flags & CHUNK_ZERO) j++;
    const rec = table.get(heap.firstChunk + j, 16384);
    await root.close();
    flipByte(`${dir}/p.img`, rec.offset + 7);
    const failed = async (native: boolean): Promise<CrimgError> => {
      const e = await counted(`${dir}/bad-${native}.img`, c1, { ...o, parent: `${dir}/p.img` }, native).then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(CrimgError);
      return e as CrimgError;
    };
    const [a, b] = [await failed(true), await failed(false)];
    expect(a.code).toBe('CORRUPT_CHUNK');
    expect([a.code, a.message, a.chunk]).toEqual([b.code, b.message, b.chunk]);
  });
});
