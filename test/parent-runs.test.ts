/**
 * `{ sameAsParent: n }` region pieces (image/_chunk-stream.ts ParentRun): a child's bytes that
 * a caller knows equal its parent's (it tracked the writes) are recorded IN_PARENT from the
 * parent's index alone, no byte read, compared or decoded; the child is the one a writer that
 * compares every chunk makes.
 */
import { randomBytes } from 'node:crypto';
import { CrimgError, ImageWriter, openImage, type WriterOptions } from '../index.js';
import type { RegionPiece } from '../image/index.js';
import { CHUNK_IN_PARENT, CHUNK_ZERO } from '../format/constants.js';
import { parentCompareCounts } from '../image/_parent-writer.js';
import { memoryLike, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const HEAP = 0x7f0000000000n;
const PAGE = 4096;

async function write(out: string, pieces: RegionPiece[], options: WriterOptions, compareWithParent = true): Promise<Awaited<ReturnType<ImageWriter['finish']>>> {
  const w = await ImageWriter.create(out, { fsync: false, ...options });
  try {
    await w.addRegion({ address: HEAP, data: pieces, kind: 'heap', compareWithParent });
  } catch (e) {
    await w.abort();
    throw e;
  }
  return w.finish();
}

/** Every chunk record's flags, in order. */
async function flagsOf(path: string, options: WriterOptions): Promise<number[]> {
  const image = await openImage(path, options.key !== undefined ? { key: options.key } : {});
  try {
    const table = await image.chunkTable();
    const r = image.regions[0]!;
    return Array.from({ length: r.chunkCount }, (_, j) => table.get(r.firstChunk + j, image.plainLength(r, j)).flags);
  } finally {
    await image.close();
  }
}

describe('a child given runs the caller vouches equal its parent', () => {
  const cases: [string, WriterOptions][] = [
    ['raw', {}],
    ['deflate:1 + aes-256-gcm, 16 KiB chunks', { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: randomBytes(32) }],
    ['deflate:1, 4 KiB chunks', { compress: 'deflate:1', chunkSize: 4096 }],
  ];
  it.each(cases)('%s: reads back as the memory, with the records a comparing writer makes, the parent never decoded', async (name, options) => {
    const cs = options.chunkSize ?? (options.compress || options.encrypt ? 16384 : PAGE);
    // 64 chunks and a short last one: the parent's memory has a zero stretch (ZERO chunks).
    const before = Buffer.concat([memoryLike((64 * cs) / PAGE, 1), Buffer.alloc(cs * 4), Buffer.alloc(1000, 0x33)]);
    before.fill(0, 10 * cs, 12 * cs);
    const after = Buffer.from(before);
    // Chunks 3 and 40 change, chunk 50 becomes zeros, chunk 66 (a parent ZERO one) is written.
    after.fill(7, 3 * cs + 100, 3 * cs + 200);
    after.fill(9, 40 * cs, 40 * cs + 1);
    after.fill(0, 50 * cs, 51 * cs);
    after.fill(5, 66 * cs, 66 * cs + 64);
    const parent = t.path(`p-${name}.img`);
    await write(parent, [before], options);
    const changed = new Set([3, 40, 50, 66]);
    const chunks = Math.ceil(after.length / cs);
    // Pieces: the changed chunks' bytes, everything else one run per stretch (the last one
    // ending the region short).
    const pieces: RegionPiece[] = [];
    for (let k = 0; k < chunks;) {
      if (changed.has(k)) {
        pieces.push(after.subarray(k * cs, (k + 1) * cs));
        k++;
        continue;
      }
      let m = k;
      while (m < chunks && !changed.has(m)) m++;
      pieces.push({ sameAsParent: Math.min(m * cs, after.length) - k * cs });
      k = m;
    }
    const decoded = { ...parentCompareCounts };
    const runs = await write(t.path(`runs-${name}.img`), pieces, { ...options, parent: parent }, false);
    // Nothing of the parent was decoded or compared.
    expect(parentCompareCounts).toEqual(decoded);
    const compared = await write(t.path(`cmp-${name}.img`), [after], { ...options, parent: parent });
    expect(runs.inParentChunks).toBe(compared.inParentChunks);
    expect(runs.storedBytes).toBe(compared.storedBytes);
    const flags = await flagsOf(t.path(`runs-${name}.img`), options);
    expect(flags).toEqual(await flagsOf(t.path(`cmp-${name}.img`), options));
    // The parent's ZERO chunks stay ZERO (no parent needed), the rest of the runs IN_PARENT.
    expect(flags[10]).toBe(CHUNK_ZERO);
    expect(flags[50]).toBe(CHUNK_ZERO);
    expect(flags[chunks - 1]).toBe(CHUNK_IN_PARENT); // the short last chunk
    expect(flags.filter((f) => f === CHUNK_IN_PARENT).length).toBe(runs.inParentChunks);
    expect(runs.inParentChunks).toBeGreaterThan(10);
    const image = await openImage(t.path(`runs-${name}.img`), options.key !== undefined ? { key: options.key } : {});
    try {
      expect((await image.read(HEAP, after.length)).equals(after)).toBe(true);
      expect(await image.verify()).toMatchObject({ ok: true });
    } finally {
      await image.close();
    }
  });
});

describe('runs the writer refuses', () => {
  const cs = PAGE;
  const before = memoryLike(16, 3);
  const parent = t.path('refuse-parent.img');
  beforeAll(async () => { await write(parent, [before], {}); });

  async function refused(pieces: RegionPiece[], options: WriterOptions, type: typeof RangeError | typeof TypeError, message: RegExp): Promise<void> {
    const e = await write(t.path('refused.img'), pieces, options).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(type);
    expect(e).not.toBeInstanceOf(CrimgError);
    expect((e as Error).message).toMatch(message);
  }

  it('without a parent', async () => {
    await refused([{ sameAsParent: cs }], {}, TypeError, /only in a child image/);
  });
  it('off a chunk boundary', async () => {
    await refused([before.subarray(0, 100), { sameAsParent: cs }], { parent }, RangeError, /start on a chunk boundary \(4096 bytes\) of the region, got one at byte 100/);
  });
  it('ending inside a chunk, then more bytes', async () => {
    const short = t.path('short-parent.img');
    await write(short, [before.subarray(0, 2 * cs + 10)], {});
    await refused([{ sameAsParent: 2 * cs + 10 }, before.subarray(0, 10)], { parent: short }, RangeError, /ends inside a chunk to end the region, got more bytes after byte 8202/);
    await refused([{ sameAsParent: 2 * cs + 10 }, { zeros: 1 }], { parent: short }, RangeError, /ends inside a chunk to end the region/);
  });
  it('where the parent has no such chunk (past its region, or a shorter last chunk)', async () => {
    await refused([{ sameAsParent: 17 * cs }], { parent }, RangeError, /expected the parent to hold a chunk of 4096 bytes at 0x7f0000010000/);
    await refused([{ sameAsParent: 15 * cs + 10 }], { parent }, RangeError, /a chunk of 10 bytes at 0x7f000000f000/);
  });
  it('a length that is not a non-negative safe integer', async () => {
    await refused([{ sameAsParent: -1 }], { parent }, RangeError, /non-negative safe integer/);
    await refused([{ sameAsParent: 0.5 }], { parent }, RangeError, /non-negative safe integer/);
  });
});
