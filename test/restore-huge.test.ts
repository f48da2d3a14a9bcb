/**
 * Copy restore's page size (native-mmap/src/provision.cc): every aligned 2 MiB of a region that
 * its stored chunks fill at least half of is advised for 2 MiB pages (MADV_HUGEPAGE, "hg" in the
 * mapping's VmFlags), spans mostly zero are not (their zero chunks stay unbacked), and the caller's
 * 'nohugepage' advice keeps every span at 4 KiB pages. The bytes are the image's either way.
 */
import { randomBytes } from 'node:crypto';
import { openImage, ImageWriter } from '../index.js';
import { requireNative } from './native-fixture.js';
import { smapsMappings, tempDir, type SmapsMapping } from './helpers.js';

requireNative();
const t = tempDir();
afterAll(() => t.cleanup());

const MiB = 1024 * 1024;
const HUGE = 2 * MiB;

/** The VmFlags of every mapping of this process, by address range. */
/** Whether the aligned 2 MiB at `base` lies in one mapping advised for huge pages. */
function advisedHuge(maps: SmapsMapping[], base: bigint): boolean {
  const m = maps.find((x) => x.start <= base && base + BigInt(HUGE) <= x.end);
  return m !== undefined && m.flags.includes('hg');
}

test('2 MiB pages where the stored chunks fill half of an aligned 2 MiB or more, not elsewhere; none with nohugepage', async () => {
  // 2 MiB blocks (the region is placed 2 MiB-aligned, so each is one span) whose first k of 128
  // chunks of 16 KiB are stored: all, 60 %, exactly half, just under half, 40 %, 2 %, none.
  const CHUNK = 16384;
  const stored = [128, 77, 64, 63, 51, 2, 0, 128, 64, 63];
  const data = Buffer.concat(stored.map((k) => Buffer.concat([randomBytes(k * CHUNK), Buffer.alloc((128 - k) * CHUNK)])));
  const path = t.path('huge.img');
  for (const compress of ['zstd:1', 'deflate:1']) {
    const w = await ImageWriter.create(path, { compress, chunkSize: CHUNK, fsync: false });
    await w.addRegion({ address: 0x7f5000000000n, data });
    await w.finish();
    const image = await openImage(path);
    try {
      for (const advise of [undefined, 'nohugepage'] as const) {
        const r = await image.restore({ mode: 'copy', ...(advise && { advise }) });
        try {
          const region = r.regions[0]!;
          expect(Buffer.from(region.memory!).equals(data)).toBe(true);
          expect(region.address % BigInt(HUGE)).toBe(0n);
          const maps = smapsMappings();
          const got = stored.map((_, k) => advisedHuge(maps, region.address + BigInt(k * HUGE)));
          expect(got).toEqual(stored.map((k) => advise === undefined && k * CHUNK * 2 >= HUGE));
        } finally {
          r.release();
        }
      }
    } finally {
      await image.close();
    }
  }
});
