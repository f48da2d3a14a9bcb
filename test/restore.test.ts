/**
 * Restore (restore/restore.ts) against the kernel's own account of the address space,
 * /proc/self/maps: where each run lands, with what protection, file-backed or anonymous; the
 * bytes against image.read; recorded addresses and their EEXIST path; release.
 * Fails, saying why, when the native addon is unavailable (restore-fallback.test.ts covers the
 * portable path).
 */
import { copyFileSync, openSync, readFileSync, realpathSync, writeSync, closeSync } from 'node:fs';
import { openImage, type Image } from '../index.js';
import { pageSize } from '../native-mmap/index.js';
import { readMaps, type MapsEntry } from '../restore/_maps.js';
import type { RestoreResult } from '../restore/restore.js';
import { CHUNK, FIXTURE_SPAN, LAYOUT, PAGE, freeBase, regionBytes, writeFixture } from './restore-fixture.js';
import { tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const t = tempDir();
let base: bigint;
let imagePath: string;
let image: Image;

beforeAll(async () => {
  base = freeBase();
  imagePath = realpathSync(t.dir) + '/fixture.img';
  await writeFixture(imagePath, base);
  image = await openImage(imagePath);
});

afterAll(async () => {
  await image?.close();
  t.cleanup();
});

/** "perms path" of the page at `a`, with the file offset for file pages. */
function pageAt(entries: readonly MapsEntry[], a: bigint): string {
  const e = entries.find((x) => x.start <= a && a < x.end);
  if (!e) return 'unmapped';
  if (!e.path) return e.perms;
  return `${e.perms} ${e.path} @${e.offset + (a - e.start)}`;
}

/** What every page of the fixture should look like at `at` (region i's address now). */
async function expectedPages(index: number, mode: 'map' | 'copy'): Promise<string[]> {
  const layout = LAYOUT[index]!;
  const r = image.regions[index]!;
  const pages = Math.ceil(Number(r.length) / PAGE);
  if (r.isGap) return Array<string>(pages).fill('---p');
  const table = await image.chunkTable();
  const perms = `${r.prot}p`;
  return Array.from({ length: pages }, (_, p) => {
    const j = Math.floor((p * PAGE) / CHUNK);
    if (mode === 'copy' || layout.chunks[j] === 'Z') return perms;
    const rec = table.get(r.firstChunk + j, image.plainLength(r, j));
    return `${perms} ${imagePath} @${rec.offset + (p * PAGE - j * CHUNK)}`;
  });
}

async function checkPlacement(result: RestoreResult, mode: 'map' | 'copy'): Promise<void> {
  const entries = readMaps();
  for (const got of result.regions) {
    const pages = Math.ceil(Number(got.length) / PAGE);
    const actual = Array.from({ length: pages }, (_, p) => pageAt(entries, got.address + BigInt(p * PAGE)));
    expect({ region: got.index, pages: actual }).toEqual({ region: got.index, pages: await expectedPages(got.index, mode) });
  }
}

async function checkContent(result: RestoreResult): Promise<void> {
  for (const got of result.regions) {
    const r = image.regions[got.index]!;
    expect(got).toMatchObject({ recordedAddress: r.address, length: r.length, prot: r.prot, kind: r.kind, name: r.name });
    if (r.isGap || (r.protBits & 1) === 0) {
      expect(got.memory).toBeUndefined();
      continue;
    }
    expect(got.memory!.byteLength).toBe(Number(r.length));
    const want = await image.read(r.address, Number(r.length));
    expect(Buffer.from(got.memory!).equals(want)).toBe(true);
    expect(want.equals(regionBytes(LAYOUT[got.index]!, got.index))).toBe(true);
  }
}

/** Entries of /proc/self/maps inside the fixture's recorded range. */
function fixtureMaps(): string[] {
  return readMaps().filter((e) => e.start < base + BigInt(FIXTURE_SPAN) && base < e.end).map((e) => `${e.start.toString(16)}-${e.end.toString(16)} ${e.perms} ${e.path}`);
}

describe('restore, map mode', () => {
  test('the default is lazy mode (checked per chunk) for a raw image opened from a file; map is asked for', async () => {
    const result = await image.restore();
    try {
      await result.done;
      expect(result).toMatchObject({ mode: 'lazy', degraded: false, warnings: [] });
      expect(result.reason).toBeUndefined();
      expect(result.regions.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5]);
    } finally {
      result.release();
    }
  });

  test('file runs map the image, zero runs are anonymous, gaps are ---p, protections as recorded', async () => {
    const result = await image.restore({ mode: 'map' });
    try {
      await checkPlacement(result, 'map');
      await checkContent(result);
      // Anywhere: one reservation, regions in order, each followed by a no-access guard page.
      const entries = readMaps();
      for (const [i, r] of result.regions.entries()) {
        const end = r.address + BigInt(Math.ceil(Number(r.length) / PAGE) * PAGE);
        expect(pageAt(entries, end)).toBe('---p');
        if (i > 0) expect(r.address).toBe(result.regions[i - 1]!.address + BigInt(Math.ceil(Number(result.regions[i - 1]!.length) / PAGE) * PAGE + PAGE));
      }
    } finally {
      result.release();
    }
  });

  test('one mapping per run: the heap region DDZDZZDDDZDD is 4 file runs and 3 zero runs', async () => {
    const result = await image.restore({ mode: 'map', regions: [0] });
    try {
      const r = result.regions[0]!;
      const end = r.address + r.length;
      // The kernel may merge neighbouring VMAs, never split them: count distinct runs.
      const runs = readMaps().filter((e) => e.start < end && r.address < e.end);
      expect(runs.map((e) => (e.path ? 'file' : 'zero'))).toEqual(['file', 'zero', 'file', 'zero', 'file', 'zero', 'file']);
    } finally {
      result.release();
    }
  });

  test('memory is writable copy-on-write: the image file does not change', async () => {
    const result = await image.restore({ mode: 'map', regions: [0] });
    const before = readFileSync(imagePath);
    try {
      const bytes = new Uint8Array(result.regions[0]!.memory!);
      bytes.fill(0xee, 0, 3 * CHUNK);
      expect(bytes[CHUNK]).toBe(0xee);
    } finally {
      result.release();
    }
    expect(readFileSync(imagePath).equals(before)).toBe(true);
  });

  test('at recorded addresses; a second restore there fails with ADDRESS_IN_USE naming the address', async () => {
    const first = await image.restore({ mode: 'map', atRecordedAddress: true });
    try {
      expect(first.regions.map((r) => r.address)).toEqual(image.regions.map((r) => r.address));
      await checkPlacement(first, 'map');
      await checkContent(first);
      const mapsBefore = fixtureMaps();
      const err = await image.restore({ mode: 'map', atRecordedAddress: true }).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ name: 'CrimgError', code: 'ADDRESS_IN_USE', address: base, region: 0 });
      expect((err as Error).message).toContain(`0x${base.toString(16)}`);
      expect(fixtureMaps()).toEqual(mapsBefore);
    } finally {
      first.release();
    }
    expect(fixtureMaps()).toEqual([]);
  });

  test('a conflict at a later region releases the regions already placed', async () => {
    const blocker = await image.restore({ mode: 'map', atRecordedAddress: true, regions: [3] });
    try {
      const mapsBefore = fixtureMaps();
      const conflict = image.regions[3]!.address;
      for (const mode of ['map', 'copy'] as const) {
        const err = await image.restore({ mode, atRecordedAddress: true }).then(() => null, (e: unknown) => e);
        expect(err).toMatchObject({ code: 'ADDRESS_IN_USE', address: conflict, region: 3 });
        expect((err as Error).message).toMatch(new RegExp(`region 3 \\(no access\\) cannot be placed at its recorded address 0x${conflict.toString(16)}: 0x${conflict.toString(16)} is in use \\(mapping [0-9a-fx-]+ ---p ${imagePath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
        // Regions 0 to 2 were placed before the conflict; nothing of them is left.
        expect(fixtureMaps()).toEqual(mapsBefore);
      }
    } finally {
      blocker.release();
    }
  });

  test('release() unmaps everything, detaches memory, and is idempotent', async () => {
    const result = await image.restore({ mode: 'map', atRecordedAddress: true });
    const memory = result.regions[0]!.memory!;
    expect(fixtureMaps().length).toBeGreaterThan(0);
    const { release } = result; // works unbound
    release();
    expect(memory.byteLength).toBe(0);
    expect(fixtureMaps()).toEqual([]);
    expect(() => result.release()).not.toThrow();
  });

  test('map mode checks every mapped chunk by default; check: false is the unchecked lazy mapping; verify: true checks the file first', async () => {
    const bad = t.path('bad.img');
    copyFileSync(imagePath, bad);
    const table = await image.chunkTable();
    const rec = table.get(image.regions[0]!.firstChunk, CHUNK);
    const fd = openSync(bad, 'r+');
    writeSync(fd, Uint8Array.of(0x5a ^ 0xff), 0, 1, rec.offset + 7);
    closeSync(fd);
    const damaged = await openImage(bad);
    try {
      const checked = await damaged.restore({ mode: 'map', regions: [0] }).then(() => null, (e: unknown) => e);
      expect(checked).toMatchObject({ code: 'CORRUPT_CHUNK', chunk: image.regions[0]!.firstChunk, region: 0, offset: rec.offset });
      expect(fixtureMaps()).toEqual([]);
      const lazy = await damaged.restore({ mode: 'map', regions: [0], check: false });
      expect(new Uint8Array(lazy.regions[0]!.memory!)[7]).toBe(0x5a ^ 0xff);
      lazy.release();
      await expect(damaged.restore({ mode: 'map', verify: true })).rejects.toMatchObject({ code: 'CORRUPT_CHUNK' });
      const err = await damaged.restore({ mode: 'copy', atRecordedAddress: true }).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'CORRUPT_CHUNK', chunk: image.regions[0]!.firstChunk });
      expect(fixtureMaps()).toEqual([]);
    } finally {
      await damaged.close();
    }
  });

  test('advice is applied to the region (hugepage shows as hg in VmFlags)', async () => {
    const result = await image.restore({ mode: 'map', regions: [4], advise: 'hugepage' });
    try {
      expect(result.warnings).toEqual([]);
      const at = result.regions[0]!.address.toString(16);
      const smaps = readFileSync('/proc/self/smaps', 'utf8');
      const block = smaps.slice(smaps.indexOf(`${at}-`));
      expect(block.slice(0, block.indexOf('VmFlags')).length).toBeGreaterThan(0);
      expect(/VmFlags:[^\n]* hg/.test(block.slice(0, block.indexOf('\n', block.indexOf('VmFlags'))))).toBe(true);
    } finally {
      result.release();
    }
  });
});

describe('restore, copy mode', () => {
  test('anonymous memory with recorded protections, equal to map mode', async () => {
    const copy = await image.restore({ mode: 'copy' });
    const map = await image.restore({ mode: 'map' });
    try {
      expect(copy).toMatchObject({ mode: 'copy', degraded: false });
      await checkPlacement(copy, 'copy');
      await checkContent(copy);
      copy.regions.forEach((c, i) => {
        const m = map.regions[i]!;
        expect(c.memory === undefined).toBe(m.memory === undefined);
        if (c.memory) expect(Buffer.from(c.memory).equals(Buffer.from(m.memory!))).toBe(true);
      });
    } finally {
      copy.release();
      map.release();
    }
  });

  test('at recorded addresses, with progress up to the total', async () => {
    const calls: [number, number][] = [];
    const result = await image.restore({ mode: 'copy', atRecordedAddress: true, onProgress: (d, n) => calls.push([d, n]) });
    try {
      expect(result.regions.map((r) => r.address)).toEqual(image.regions.map((r) => r.address));
      await checkPlacement(result, 'copy');
      await checkContent(result);
      const total = image.regions.filter((r) => !r.isGap).reduce((n, r) => n + Number(r.length), 0);
      expect(calls.length).toBeGreaterThan(1);
      expect(calls.every(([d, n], i) => n === total && d <= total && (i === 0 || d >= calls[i - 1]![0]))).toBe(true);
      expect(calls.at(-1)).toEqual([total, total]);
    } finally {
      result.release();
    }
    expect(fixtureMaps()).toEqual([]);
  });

  test('a subset of regions, in region-table order', async () => {
    const result = await image.restore({ mode: 'copy', regions: [5, 0, 1] });
    try {
      expect(result.regions.map((r) => r.index)).toEqual([0, 1, 5]);
      await checkContent(result);
    } finally {
      result.release();
    }
  });

  test('an image without a file descriptor restores by copy; map mode refuses it', async () => {
    const inMemory = await openImage(readFileSync(imagePath));
    try {
      const result = await inMemory.restore();
      try {
        expect(result.mode).toBe('copy');
        await checkContent(result);
      } finally {
        result.release();
      }
      await expect(inMemory.restore({ mode: 'map' })).rejects.toMatchObject({ code: 'UNSUPPORTED_FEATURE' });
    } finally {
      await inMemory.close();
    }
  });
});

describe('restore options', () => {
  test.each([
    ['mode', { mode: 'mmap' }, RangeError],
    ['regions out of range', { regions: [LAYOUT.length] }, RangeError],
    ['regions repeated', { regions: [0, 0] }, RangeError],
    ['regions not integers', { regions: [0.5] }, RangeError],
    ['regions not an array', { regions: 1 }, TypeError],
    ['advise dontneed', { advise: 'dontneed' }, RangeError],
    ['onProgress not a function', { onProgress: 5 }, TypeError],
    ['atRecordedAddress not a boolean', { atRecordedAddress: 'yes' }, TypeError],
  ])('%s', async (_label, options, type) => {
    await expect(image.restore(options as never)).rejects.toBeInstanceOf(type);
  });

  test('a region larger than an ArrayBuffer is placed without memory', async () => {
    // 5 GiB of zeros: one anonymous run, never touched.
    const big = t.path('big.img');
    const { ImageWriter } = await import('../index.js');
    const w = await ImageWriter.create(big, { chunkSize: 1 << 24, fsync: false });
    const zeros = new Uint8Array(1 << 26);
    await w.addRegion({ address: base, data: (function* () { for (let i = 0; i < 80; i++) yield zeros; })() });
    await w.finish();
    const img = await openImage(big);
    try {
      for (const mode of ['map', 'copy'] as const) {
        const result = await img.restore({ mode });
        try {
          expect(result.regions[0]!.memory).toBeUndefined();
          expect(result.warnings).toEqual([expect.stringContaining('more than an ArrayBuffer can hold')]);
          const e = readMaps().find((x) => x.start === result.regions[0]!.address);
          expect(e && e.end - e.start).toBe(5n << 30n);
        } finally {
          result.release();
        }
      }
    } finally {
      await img.close();
    }
  });

  test('page size of the host', () => {
    expect(pageSize()).toBe(PAGE);
  });
});

describe('restore of compressed and encrypted images (copy mode)', () => {
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
  test.each([
    ['deflate:1', { compress: 'deflate:1' }, {}],
    ['aes-256-gcm', { encrypt: 'aes-256-gcm', key }, { key }],
    ['deflate:1 + chacha20-poly1305', { compress: 'deflate:1', encrypt: 'chacha20-poly1305', key }, { key }],
  ])('%s', async (name, writeOptions, openOptions) => {
    const path = t.path(`${name.replace(/[^a-z0-9]/g, '_')}.img`);
    await writeFixture(path, base, writeOptions as Parameters<typeof writeFixture>[2]);
    const coded = await openImage(path, openOptions);
    try {
      expect(coded.mappable).toBe(false);
      await expect(coded.restore({ mode: 'map' })).rejects.toMatchObject({ code: 'UNSUPPORTED_FEATURE' });
      const result = await coded.restore({ mode: 'copy', atRecordedAddress: true });
      try {
        expect(result.mode).toBe('copy');
        await checkPlacement(result, 'copy');
        await checkContent(result);
      } finally {
        result.release();
      }
    } finally {
      await coded.close();
    }
  });
});
