/**
 * The lazy handler's fault path (native-mmap/src/uffd.h kFollowFaulter, kWarm): the handler
 * moves to the CPU of the thread whose fault it serves, and a warm thread reads the other pages
 * of each chunk installed for a fault, then settles it. Bytes exact with both on and with both
 * off (CRIMG_LAZY_FOLLOW=0, CRIMG_LAZY_WARM=0), the counters tell what ran, recorded
 * protections only once done, and release while the warm thread has chunks in hand.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImageWriter, openImage } from '../index.js';
import { advise } from '../native-mmap/index.js';
import type { LazyStats } from '../native-mmap/index.js';
import { memoryLike, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const PAGE = 4096;
const CHUNK = 65536;
const PAGES = 1024; // 4 MiB: 64 chunks
const KEY = new Uint8Array(32).fill(5);
const BASE = 0x5a0000000000n;
const t = tempDir();
const data = memoryLike(PAGES, 31);
let file = '';

beforeAll(async () => {
  file = t.path('follow.img');
  const w = await ImageWriter.create(file, { fsync: false, chunkSize: CHUNK, compress: 'zstd:1', encrypt: 'aes-256-gcm', key: KEY });
  await w.addRegion({ address: BASE, data, prot: 'r--', kind: 'heap', name: 'heap' });
  await w.finish();
});
afterAll(() => t.cleanup());

/** Every chunk in a fixed shuffled order, each read a byte a page from its first page on, as the bench's working set. */
function touchOrder(): number[] {
  const order = Array.from({ length: (PAGES * PAGE) / CHUNK }, (_, i) => i);
  let s = 7;
  for (let i = order.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

describe('lazy restore: follow the faulting thread, warm what faults installed', () => {
  // In a child process: the session reads CRIMG_LAZY_FOLLOW and CRIMG_LAZY_WARM from the
  // process environment, which jest's sandbox does not pass on to the addon.
  test.each([
    { name: 'on (the default)', env: {} as Record<string, string>, on: true },
    { name: 'off (CRIMG_LAZY_FOLLOW=0, CRIMG_LAZY_WARM=0)', env: { CRIMG_LAZY_FOLLOW: '0', CRIMG_LAZY_WARM: '0' }, on: false },
  ])('$name: every page read in a shuffled chunk order is exact, then done applies r--', ({ env, on }) => {
    const script = t.path('follow-child.mjs');
    writeFileSync(script, `
      const [lib, maps, file, order] = process.argv.slice(2);
      const { openImage } = await import(lib);
      const { readMaps } = await import(maps);
      const image = await openImage(file, { key: new Uint8Array(32).fill(5) });
      const r = await image.restore({ mode: 'lazy', prefetch: false });
      const m = new Uint8Array(r.regions[0].memory);
      const pages = [];
      // Every page of each chunk in turn, from its first: whole pages copied out, not only a
      // byte, so that a warm read changing a page would show.
      for (const c of JSON.parse(order)) for (let p = c * ${CHUNK}; p < (c + 1) * ${CHUNK}; p += ${PAGE}) pages.push([p, Buffer.from(m.subarray(p, p + ${PAGE}))]);
      await r.done;
      const heap = r.regions[0];
      const perms = readMaps().find((x) => x.start <= heap.address && heap.address < x.end).perms;
      const all = Buffer.alloc(m.length);
      for (const [p, b] of pages) b.copy(all, p);
      process.stdout.write(JSON.stringify({ stats: r.lazyStats(), perms, hex: all.toString('base64') }));
      r.release();
      await image.close();
    `);
    const build = (p: string): string => pathToFileURL(join(process.cwd(), 'build', p)).href;
    const run = spawnSync(process.execPath, [script, build('index.js'), build('restore/_maps.js'), file, JSON.stringify(touchOrder())], {
      encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60000, maxBuffer: 64 << 20,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout) as { stats: LazyStats; perms: string; hex: string };
    expect(Buffer.from(out.hex, 'base64').equals(data)).toBe(true);
    expect(out.perms).toBe('r--p');
    const s = out.stats;
    expect(s.settled).toBe(s.total);
    expect(s.faultInstalls).toBe(s.total); // no prefetch: every chunk came in for a fault
    if (on) {
      // The warm thread starts once the first faults are served: the later fault installs go through it.
      expect(s.warmed).toBeGreaterThan(s.faultInstalls / 2);
      expect(s.warmed).toBeLessThanOrEqual(s.faultInstalls);
      // The first fault pins the handler to its thread's CPU (with more than one CPU to choose from).
      if (availableParallelism() > 1) expect(s.handlerMoves).toBeGreaterThanOrEqual(1);
    } else {
      expect(s.warmed).toBe(0);
      expect(s.handlerMoves).toBe(0);
    }
  });

  test('release while the warm thread has chunks in hand, pages of them dropped, 20 times: no hang, the next restore is exact', async () => {
    const image = await openImage(file, { key: KEY });
    const order = touchOrder();
    try {
      let handed = 0;
      for (let i = 0; i < 20; i++) {
        const r = await image.restore({ mode: 'lazy', prefetch: i % 2 === 0 });
        const mem = r.regions[0]!.memory!;
        const m = new Uint8Array(mem);
        // The first fault starts the warm thread; each later one hands its chunk to it. Its last
        // page, which the warm thread reads first, is dropped at once: read again, it must be
        // brought in by the handler (zeros) while release() waits for the warm thread.
        for (let k = 0; k < 9; k++) {
          const c = order[(i + k) % order.length]!;
          expect(m[c * CHUNK]).toBe(data[c * CHUNK]);
          if (k > 0) advise(r.regions[0]!.address + BigInt((c + 1) * CHUNK - PAGE), PAGE, 'dontneed');
        }
        handed += r.lazyStats()!.warmed;
        r.release();
        await r.done.catch(() => undefined); // rejects: released first (or resolves, had every chunk come in)
      }
      expect(handed).toBeGreaterThan(0);
      const r = await image.restore({ mode: 'lazy' });
      try {
        expect(Buffer.from(new Uint8Array(r.regions[0]!.memory!)).equals(data)).toBe(true);
      } finally {
        r.release();
      }
    } finally {
      await image.close();
    }
  });
});
