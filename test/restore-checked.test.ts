/**
 * Issue 14 item 14: the default restore of a raw image is checked. A deterministic sweep of byte
 * flips over the data area of raw images (compact and SPARSE): the default restore, in map and
 * copy modes, either throws CORRUPT_CHUNK or restores exactly the right bytes, and throws
 * whenever the flip lies in a stored chunk. `check: false` is the explicit unchecked mapping: it
 * still maps, damaged bytes and all.
 */
import { copyFileSync, openSync, readSync, writeSync, closeSync, realpathSync } from 'node:fs';
import { CHUNK_ZERO } from '../format/constants.js';
import { openImage, type Image } from '../index.js';
import { LAYOUT, freeBase, regionBytes, writeFixture } from './restore-fixture.js';
import { flipByte as flip, prng, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const t = tempDir();
afterAll(() => t.cleanup());

/** The file ranges of every stored chunk: a flip there must be caught. */
async function storedRanges(image: Image): Promise<Array<[number, number]>> {
  const table = await image.chunkTable();
  const out: Array<[number, number]> = [];
  for (const r of image.regions) {
    for (let j = 0; j < r.chunkCount; j++) {
      const rec = table.get(r.firstChunk + j, image.plainLength(r, j));
      if (!(rec.flags & CHUNK_ZERO)) out.push([rec.offset, rec.offset + rec.storedLength]);
    }
  }
  return out;
}

type Outcome = 'CORRUPT_CHUNK' | 'right' | 'WRONG' | string;

/** The right bytes of each data region of the fixture, by region index (made once: slow to make). */
const EXPECTED = new Map(LAYOUT.flatMap((l, i) => (l.gap === undefined ? [[i, regionBytes(l, i)] as const] : [])));

/** Restores `image` and says whether it threw CORRUPT_CHUNK or gave the right bytes in every readable region. */
async function restoreOutcome(image: Image, options: Parameters<Image['restore']>[0]): Promise<Outcome> {
  let result;
  try {
    result = await image.restore(options);
  } catch (e) {
    return (e as { code?: string }).code === 'CORRUPT_CHUNK' ? 'CORRUPT_CHUNK' : `threw ${String(e)}`;
  }
  try {
    for (const r of result.regions) {
      if (LAYOUT[r.index]!.gap !== undefined || !r.memory) continue;
      if (!Buffer.from(r.memory).equals(EXPECTED.get(r.index)!)) return 'WRONG';
    }
    return 'right';
  } finally {
    result.release();
  }
}

/** Flips byte `at` of `file` with `mask`. */

describe.each([['compact', 200], ['sparse', 120]] as const)('default restore of a damaged raw %s image (issue 14 item 14)', (layout, flips) => {
  let file: string;
  let image: Image;
  let stored: Array<[number, number]>;
  let dataStart: number;
  let dataEnd: number;

  beforeAll(async () => {
    const good = realpathSync(t.dir) + `/good-${layout}.img`;
    await writeFixture(good, freeBase(), { layout });
    file = realpathSync(t.dir) + `/damaged-${layout}.img`;
    copyFileSync(good, file);
    image = await openImage(file);
    stored = await storedRanges(image);
    dataStart = image.dataStart;
    dataEnd = Number(image.footer.chunkTableOffset);
    expect(image.mappable).toBe(true);
    expect(image.sparse).toBe(layout === 'sparse');
  });

  afterAll(async () => {
    await image?.close();
  });

  test(`${flips} byte flips in the data area: CORRUPT_CHUNK or the right bytes, map and copy`, async () => {
    const rnd = prng(layout === 'compact' ? 14 : 41);
    const seen: Record<string, number> = {};
    const bad: string[] = [];
    for (let i = 0; i < flips; i++) {
      // Half of the flips in stored chunks, half anywhere in the data area (padding included).
      let at: number;
      if (i % 2 === 0) {
        const [s, e] = stored[Math.floor(rnd() * stored.length)]!;
        at = s + Math.floor(rnd() * (e - s));
      } else {
        at = dataStart + Math.floor(rnd() * (dataEnd - dataStart));
      }
      const mask = 1 << Math.floor(rnd() * 8);
      const inChunk = stored.some(([s, e]) => at >= s && at < e);
      flip(file, at, mask);
      try {
        for (const mode of ['map', 'copy'] as const) {
          const got = await restoreOutcome(image, { mode });
          seen[`${mode} ${inChunk ? 'in chunk' : 'outside'}: ${got}`] = (seen[`${mode} ${inChunk ? 'in chunk' : 'outside'}: ${got}`] ?? 0) + 1;
          if (got !== 'CORRUPT_CHUNK' && got !== 'right') bad.push(`${mode} flip ${i} at ${at}^${mask}: ${got}`);
          if (inChunk && got !== 'CORRUPT_CHUNK') bad.push(`${mode} flip ${i} at ${at}^${mask} in a stored chunk: ${got}`);
        }
      } finally {
        flip(file, at, mask);
      }
    }
    expect(bad).toEqual([]);
    // Every flip in a stored chunk was caught by both modes.
    expect(seen['map in chunk: CORRUPT_CHUNK']).toBe(seen['copy in chunk: CORRUPT_CHUNK']);
    expect(seen['map in chunk: CORRUPT_CHUNK']).toBeGreaterThanOrEqual(flips / 2);
  });

  test('check: false still maps the damaged bytes (the explicit unchecked mapping)', async () => {
    // A stored chunk of region 0 (rw- heap): flip its first byte.
    const table = await image.chunkTable();
    const r0 = image.regions[0]!;
    const rec = table.get(r0.firstChunk, image.plainLength(r0, 0));
    flip(file, rec.offset, 0x80);
    try {
      const unchecked = await image.restore({ mode: 'map', check: false });
      try {
        expect(unchecked.mode).toBe('map');
        const bytes = new Uint8Array(unchecked.regions[0]!.memory!);
        expect(bytes[0]).toBe(regionBytes(LAYOUT[0]!, 0)[0]! ^ 0x80);
      } finally {
        unchecked.release();
      }
      await expect(image.restore({ mode: 'map' })).rejects.toMatchObject({ code: 'CORRUPT_CHUNK', chunk: r0.firstChunk, region: 0, offset: rec.offset });
      await expect(image.restore({ mode: 'map', check: true, regions: [2] })).resolves.toMatchObject({ mode: 'map' });
    } finally {
      flip(file, rec.offset, 0x80);
    }
  });

  test('an undamaged image restores the same with and without the check, unreadable regions keep their protection', async () => {
    const checked = await image.restore({ mode: 'map' });
    const unchecked = await image.restore({ mode: 'map', check: false });
    try {
      expect(checked.regions.map((r) => [r.prot, r.memory?.byteLength])).toEqual(unchecked.regions.map((r) => [r.prot, r.memory?.byteLength]));
      for (const [i, r] of checked.regions.entries()) {
        if (r.memory) expect(Buffer.from(r.memory).equals(Buffer.from(unchecked.regions[i]!.memory!))).toBe(true);
      }
      // The unreadable region (---) was read through a temporary r-- window, then put back.
      const noAccess = checked.regions.find((r) => r.name === 'no access')!;
      const maps = (await import('../restore/_maps.js')).readMaps();
      const entry = maps.find((e) => e.start <= noAccess.address && noAccess.address < e.end)!;
      expect(entry.perms).toBe('---p');
    } finally {
      checked.release();
      unchecked.release();
    }
  });
});

test('check must be a boolean', async () => {
  const file = realpathSync(t.dir) + '/opts.img';
  await writeFixture(file, freeBase());
  const image = await openImage(file);
  try {
    await expect(image.restore({ check: 'no' as unknown as boolean })).rejects.toThrow(/expected check to be a boolean, got string/);
  } finally {
    await image.close();
  }
});
