/**
 * Lazy restore in whole 2 MiB spans (native-mmap/src/uffd_spans.cc, uffd.h kWholeSpans): an
 * aligned 2 MiB of whole chunks is decoded into a huge page and moved in with one UFFDIO_MOVE.
 * Prefetch moves every span its stored chunks fill half of or more (the rest go chunk by chunk,
 * their zero chunks as zero pages); the handler moves a span whole only for a fault on the near
 * edge of the span next to the last fault's; 'nohugepage' and CRIMG_LAZY_HUGE=0 turn it off; a
 * corrupt chunk in a span is never installed while the span's other chunks are. Bytes exact in
 * every case.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openImage, optimizeImage, ImageWriter } from '../index.js';
import { CHUNK_IN_PARENT } from '../format/constants.js';
import { requireNative } from './native-fixture.js';
import { flipByte, memoryLike, smapsMappings, tempDir } from './helpers.js';

requireNative();
const t = tempDir();
afterAll(() => t.cleanup());

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEY = new Uint8Array(32).fill(9);
const HUGE = 2 * 1024 * 1024;

/** Bytes of [start, end) mapped by 2 MiB pages (AnonHugePages of the mappings inside it). */
function hugeBytes(start: bigint, end: bigint): number {
  return smapsMappings().filter((m) => m.start >= start && m.end <= end).reduce((n, m) => n + m.anonHuge, 0);
}

describe('prefetch moves the spans half stored or more, whole', () => {
  // 2 MiB blocks of 128 chunks of 16 KiB whose first k are stored: all, 60 %, exactly half,
  // just under half, 2 %, none, all.
  const CHUNK = 16384;
  const stored = [128, 77, 64, 63, 2, 0, 128];
  const whole = stored.filter((k) => k * 2 >= 128).length;
  const data = Buffer.concat(stored.map((k) => Buffer.concat([randomBytes(k * CHUNK), Buffer.alloc((128 - k) * CHUNK)])));
  const SUITES = [
    { name: 'zstd:1 + aes-256-gcm', options: { compress: 'zstd:1', encrypt: 'aes-256-gcm', key: KEY } },
    { name: 'deflate:1', options: { compress: 'deflate:1' } },
    { name: 'raw', options: {} },
  ] as const;

  test.each(SUITES)('$name: bytes exact; moved spans are 2 MiB pages; none with nohugepage', async ({ name, options }) => {
    const file = t.path(`spans-${name.replace(/\W+/g, '-')}.img`);
    const w = await ImageWriter.create(file, { fsync: false, chunkSize: CHUNK, ...options });
    await w.addRegion({ address: 0x7f6000000000n, data, prot: 'r--', kind: 'heap', name: 'heap' });
    await w.finish();
    const image = await openImage(file, { key: KEY });
    try {
      for (const advise of [undefined, 'nohugepage'] as const) {
        const r = await image.restore({ mode: 'lazy', ...(advise && { advise }) });
        try {
          await r.done;
          const region = r.regions[0]!;
          expect(region.address % BigInt(HUGE)).toBe(0n);
          expect(Buffer.from(region.memory!).equals(data)).toBe(true);
          const s = r.lazyStats()!;
          expect(s.settled).toBe(s.total);
          if (!advise && s.spans === 0) throw new Error('no whole spans: they need UFFDIO_MOVE (Linux 6.8+) and transparent huge pages not "never"');
          // Only the spans half stored or more (the others are not advised for huge pages).
          expect(s.spans).toBe(advise ? 0 : whole);
          expect(s.spansMoved).toBe(advise ? 0 : whole);
          // Zero chunks of the mostly-zero spans go in as zero pages; a moved span's are in its page.
          expect(s.zeroInstalls).toBe(stored.reduce((n, k) => n + (advise || k * 2 < 128 ? 128 - k : 0), 0));
          const huge = hugeBytes(region.address, region.address + BigInt(data.length));
          if (advise) expect(huge).toBe(0);
          else expect(huge).toBeGreaterThanOrEqual(whole * HUGE);
          if (!advise) expect(s.spanDecodeUs).toBeGreaterThan(0);
        } finally {
          r.release();
        }
      }
    } finally {
      await image.close();
    }
  });

  test('CRIMG_LAZY_HUGE=0 turns it off', async () => {
    // In a child process: the session reads it from the process environment, which jest's
    // sandbox does not pass on to the addon.
    const file = t.path('spans-knob.img');
    const w = await ImageWriter.create(file, { fsync: false, chunkSize: CHUNK, compress: 'zstd:1' });
    await w.addRegion({ address: 0x7f6000000000n, data });
    await w.finish();
    const script = t.path('spans-knob.mjs');
    writeFileSync(script, `
import { openImage } from ${JSON.stringify(path.join(ROOT, 'build', 'index.js'))};
import { createHash } from 'node:crypto';
const image = await openImage(${JSON.stringify(file)});
const r = await image.restore({ mode: 'lazy' });
await r.done;
const { spans, spansMoved } = r.lazyStats();
console.log(JSON.stringify({ spans, spansMoved, sha: createHash('sha256').update(new Uint8Array(r.regions[0].memory)).digest('hex') }));
r.release();
await image.close();
`);
    const sha = createHash('sha256').update(data).digest('hex');
    for (const [knob, spans] of [['0', 0], ['1', whole]] as const) {
      const out = spawnSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, CRIMG_LAZY_HUGE: knob }, timeout: 60_000 });
      expect(out.status).toBe(0);
      expect(JSON.parse(out.stdout)).toEqual({ spans, spansMoved: spans, sha });
    }
  });
});

describe('8 MiB memory-like, 64 KiB chunks (4 spans of 32)', () => {
  const data = memoryLike(2048, 23);
  const file = t.path('walk.img');
  type Restored = Awaited<ReturnType<Awaited<ReturnType<typeof openImage>>['restore']>>;
  type Stats = NonNullable<ReturnType<Restored['lazyStats']>>;
  /** The lazy statistics once `ready` holds or every chunk settled (2 s at most). */
  const until = async (r: Restored, ready: (s: Stats) => boolean): Promise<Stats> => {
    for (const end = performance.now() + 2000; ; await new Promise((res) => setImmediate(res))) {
      const s = r.lazyStats()!;
      if (ready(s) || s.settled === s.total || performance.now() >= end) return s;
    }
  };
  /** A lazy restore of `image` after the others: every byte exact. */
  const restoresExact = async (image: Awaited<ReturnType<typeof openImage>>): Promise<void> => {
    const r = await image.restore({ mode: 'lazy' });
    await r.done;
    expect(Buffer.from(r.regions[0]!.memory!).equals(data)).toBe(true);
    r.release();
  };
  beforeAll(async () => {
    const w = await ImageWriter.create(file, { fsync: false, chunkSize: 65536, compress: 'zstd:1', encrypt: 'aes-256-gcm', key: KEY });
    await w.addRegion({ address: 0x7f7000000000n, data, prot: 'rw-', kind: 'heap', name: 'heap' });
    await w.finish();
  });

  test('the handler moves a span whole only for a fault on the near edge of the span next to the last fault\'s', async () => {
    const image = await openImage(file, { key: KEY });
    const r = await image.restore({ mode: 'lazy', prefetch: false });
    try {
      const m = new Uint8Array(r.regions[0]!.memory!);
      const at = (c: number, page = 0): number => c * 65536 + page * 4096 + 7;
      const touch = (c: number, page = 0): void => expect(m[at(c, page)]).toBe(data[at(c, page)]);
      touch(0); // span 0, no fault before: its chunk alone
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 1, spansMoved: 0 });
      touch(32); // the first chunk of span 1, after span 0: walking up, the whole span
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 33, spansMoved: 1 });
      touch(96); // the first chunk of span 3, not next to span 1: its chunk alone
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 34, spansMoved: 1 });
      touch(64); // span 2, below span 3, but its first chunk (walking down reaches its last): alone
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 35, spansMoved: 1 });
      touch(1); // span 0 again: already chunk by chunk
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 36, spansMoved: 1 });
      // The span a walking fault brought in whole is listed in the walk's order, as its faults would have been.
      const walk = Array.from({ length: 32 }, (_, k) => 32 + k);
      expect(r.accessProfile()).toEqual([0, ...walk, 96, 64, 1]);
      // Every page of every span exact, whichever way it came in.
      expect(Buffer.from(m).equals(data)).toBe(true);
      await r.done;
      expect(r.lazyStats()!.spansMoved).toBe(1);
    } finally {
      r.release();
      await image.close();
    }
    // Walking down: the last chunk of the span below the last fault's.
    const image2 = await openImage(file, { key: KEY });
    const r2 = await image2.restore({ mode: 'lazy', prefetch: false });
    try {
      const m = new Uint8Array(r2.regions[0]!.memory!);
      expect(m[127 * 65536]).toBe(data[127 * 65536]);
      expect(m[95 * 65536 + 65535]).toBe(data[95 * 65536 + 65535]);
      expect(r2.lazyStats()).toMatchObject({ faultInstalls: 33, spansMoved: 1 });
      expect(r2.accessProfile()).toEqual([127, ...Array.from({ length: 32 }, (_, k) => 95 - k)]);
      expect(Buffer.from(m.subarray(64 * 65536, 96 * 65536)).equals(data.subarray(64 * 65536, 96 * 65536))).toBe(true);
    } finally {
      r2.release();
      await image2.close();
    }
  });

  test('2 MiB chunks: every fault moves its chunk in whole, one huge page, walking or not', async () => {
    const big = t.path('spans-2m.img');
    const d = memoryLike(4 * 512, 5).map((b, i) => (i % 4096 === 7 ? b | 1 : b)); // no chunk all zero
    const w = await ImageWriter.create(big, { fsync: false, chunkSize: HUGE, compress: 'zstd:1', encrypt: 'aes-256-gcm', key: KEY });
    await w.addRegion({ address: 0x7f6400000000n, data: d, prot: 'rw-', kind: 'heap', name: 'heap' });
    await w.finish();
    const image = await openImage(big, { key: KEY });
    const r = await image.restore({ mode: 'lazy', prefetch: false });
    try {
      const region = r.regions[0]!;
      const m = new Uint8Array(region.memory!);
      expect(m[2 * HUGE + 4096 * 9 + 7]).toBe(d[2 * HUGE + 4096 * 9 + 7]); // chunk 2, no fault before it
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 1, spansMoved: 1 });
      const huge = (): number => hugeBytes(region.address, region.address + BigInt(d.length));
      expect(huge()).toBe(HUGE);
      expect(m[0]).toBe(d[0]); // chunk 0: not next to chunk 2's span
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 2, spansMoved: 2 });
      expect(huge()).toBe(2 * HUGE);
      expect(r.accessProfile()).toEqual([2, 0]);
      expect(Buffer.from(m).equals(d)).toBe(true);
      await r.done;
      expect(r.lazyStats()).toMatchObject({ faultInstalls: 4, spansMoved: 4 });
    } finally {
      r.release();
      await image.close();
    }
  });

  test('a hot list from a walking profile moves the walked spans whole; a scattered one goes chunk by chunk', async () => {
    const image = await openImage(file, { key: KEY });
    const r = await image.restore({ mode: 'lazy', prefetch: false });
    const m = new Uint8Array(r.regions[0]!.memory!);
    for (let i = 0; i < 64 * 65536; i += 4096) expect(m[i]).toBe(data[i]); // spans 0 and 1, walking up
    for (const c of [100, 70, 110]) expect(m[c * 65536]).toBe(data[c * 65536]); // scattered in spans 2 and 3
    const profile = r.accessProfile();
    r.release();
    await image.close();
    // Span 0 chunk by chunk (its first fault had no neighbour), span 1 whole (walked into).
    expect(profile).toEqual([...Array.from({ length: 64 }, (_, k) => k), 100, 70, 110]);
    const hot = t.path('walk-hot.img');
    await optimizeImage(file, hot, { profile, key: KEY });
    const image2 = await openImage(hot, { key: KEY });
    const r2 = await image2.restore({ mode: 'lazy' });
    try {
      await r2.done;
      expect(Buffer.from(r2.regions[0]!.memory!).equals(data)).toBe(true);
      // Spans 0 and 1 whole from the list's runs; 2 and 3 chunk by chunk (their hot chunks alone
      // first), unless a prefetch thread stalled between taking a hot chunk of one and marking it.
      const s = r2.lazyStats()!;
      expect(s.spans).toBe(4);
      expect([2, 3]).toContain(s.spansMoved);
    } finally {
      r2.release();
      await image2.close();
    }
  });

  test('a child image: spans of its own chunks and of its parent\'s, each from its own file, exact', async () => {
    // The child keeps spans 0 and 2 of the parent's (IN_PARENT), changes 1 and 3, and half of 2.
    const changed = Buffer.from(data);
    const other = memoryLike(2048, 29);
    for (const [from, to] of [[32, 64], [96, 128], [64, 80]]) other.copy(changed, from! * 65536, from! * 65536, to! * 65536);
    const childFile = t.path('walk-child.img');
    const cw = await ImageWriter.create(childFile, { fsync: false, chunkSize: 65536, compress: 'zstd:1', encrypt: 'aes-256-gcm', key: KEY, parent: file });
    await cw.addRegion({ address: 0x7f7000000000n, data: changed, prot: 'rw-', kind: 'heap', name: 'heap' });
    await cw.finish();
    const image = await openImage(childFile, { key: KEY });
    const table = await image.chunkTable();
    const inParent = Array.from({ length: 128 }, (_, c) => (table.get(c, 65536).flags & CHUNK_IN_PARENT) !== 0);
    // Spans 0 and 2's second half from the parent, 1, 3 and 2's first half the child's own.
    expect(inParent.filter((x, c) => x !== (c < 32 || (c >= 80 && c < 96))).length).toBeLessThan(8); // memoryLike's repeats aside
    expect(inParent.slice(0, 32).filter(Boolean).length).toBeGreaterThan(24);
    const r = await image.restore({ mode: 'lazy' });
    try {
      await r.done;
      expect(Buffer.from(r.regions[0]!.memory!).equals(changed)).toBe(true);
      expect(r.lazyStats()).toMatchObject({ spans: 4, spansMoved: 4 });
    } finally {
      r.release();
      await image.close();
    }
  });

  test('a corrupt chunk in a span: done rejects naming it, the span\'s other chunks exact, a touch of it a SIGBUS', async () => {
    const bad = t.path('walk-bad.img');
    writeFileSync(bad, readFileSync(file));
    const probe = await openImage(bad, { key: KEY });
    const rec = (await probe.chunkTable()).get(40, 65536);
    await probe.close();
    expect(rec.storedLength).toBeGreaterThan(0);
    flipByte(bad, rec.offset + 20);
    const image = await openImage(bad, { key: KEY });
    const r = await image.restore({ mode: 'lazy' });
    try {
      await expect(r.done).rejects.toMatchObject({ code: 'CORRUPT_CHUNK', chunk: 40 });
      expect(r.lazyStats()).toMatchObject({ spansMoved: 3, settled: 128 });
      const m = new Uint8Array(r.regions[0]!.memory!);
      for (let c = 0; c < 128; c++) {
        if (c !== 40) expect(Buffer.from(m.subarray(c * 65536, (c + 1) * 65536)).equals(data.subarray(c * 65536, (c + 1) * 65536))).toBe(true);
      }
    } finally {
      r.release();
      await image.close();
    }
    const script = t.path('walk-bad.mjs');
    writeFileSync(script, `
import { openImage } from ${JSON.stringify(path.join(ROOT, 'build', 'index.js'))};
const image = await openImage(${JSON.stringify(bad)}, { key: new Uint8Array(32).fill(9) });
const r = await image.restore({ mode: 'lazy' });
await r.done.catch((e) => console.log('done', e.code, e.chunk));
const m = new Uint8Array(r.regions[0].memory);
const sum = (c) => m.subarray(c * 65536, (c + 1) * 65536).reduce((a, b) => a + b, 0);
console.log('neighbours', sum(39), sum(41));
console.log('got', m[40 * 65536 + 4096 * 3]);
`);
    const out = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
    const sum = (c: number): number => data.subarray(c * 65536, (c + 1) * 65536).reduce((a, b) => a + b, 0);
    expect(out.stdout).toContain('done CORRUPT_CHUNK 40');
    expect(out.stdout).toContain(`neighbours ${sum(39)} ${sum(41)}`);
    expect(out.stdout).not.toContain('got');
    expect(out.signal).toBe('SIGBUS');
  });

  test('released at once, again and again, while the prefetch threads hold whole spans', async () => {
    const image = await openImage(file, { key: KEY });
    try {
      let midway = 0;
      for (let i = 0; i < 8; i++) {
        const r = await image.restore({ mode: 'lazy' });
        if (i % 2 === 1) {
          // Once one span is decoded and before the last: the other prefetch thread holds one.
          const s = await until(r, (x) => x.spanDecodeUs > 0);
          if (s.spanDecodeUs > 0 && s.settled < s.total) midway++;
        }
        r.release();
        await r.done.then(
          () => undefined,
          (e: unknown) => expect(e).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/released before every chunk/) }),
        );
      }
      expect(midway).toBeGreaterThan(0);
      await restoresExact(image);
    } finally {
      await image.close();
    }
  });

  test('released while prefetch threads read spans they moved, whose pages the process drops: no hang, 20 times', async () => {
    const native = requireNative();
    const image = await openImage(file, { key: KEY });
    try {
      let dropped = 0;
      for (let i = 0; i < 20; i++) {
        const r = await image.restore({ mode: 'lazy' });
        const base = r.regions[0]!.address;
        await until(r, (x) => x.spansMoved > 0);
        // Every page of every span dropped, as an allocator returning memory does: a prefetch
        // thread reading a span it moved faults on them, and only the handler can serve it.
        for (let k = 0; k < 4; k++) native.advise(base + BigInt(k * HUGE), HUGE, 'dontneed');
        dropped += r.lazyStats()!.spansMoved;
        r.release();
        await r.done.catch(() => undefined);
      }
      expect(dropped).toBeGreaterThan(0);
      await restoresExact(image);
    } finally {
      await image.close();
    }
  });

  test('released while the handler waits on a JavaScript read and a prefetch thread reads a span whose pages were dropped: no hang, 20 times', () => {
    // A JavaScript source whose reads of chunk 127 never answer. A write(2) of chunk 127's page
    // on a libuv thread faults there, and the handler waits on that read. Then every span's
    // pages are dropped while prefetch threads read the spans they moved: their faults need
    // the handler. release() once hung here: it waited for those reads (EndSpanReads, 1 s),
    // then stopped the handler, whose read only then gave up, and joined a prefetch thread
    // whose fault no one would serve. Now release() first ends the JavaScript reads.
    const script = t.path('js-release.mjs');
    writeFileSync(script, `
import { openImage } from ${JSON.stringify(path.join(ROOT, 'build', 'index.js'))};
import { advise } from ${JSON.stringify(path.join(ROOT, 'build', 'native-mmap', 'index.js'))};
import { readFileSync, promises as fsp } from 'node:fs';
const key = new Uint8Array(32).fill(9);
const bytes = readFileSync(${JSON.stringify(file)});
const probe = await openImage(bytes, { key });
const rec127 = (await probe.chunkTable()).get(127, 65536);
await probe.close();
const source = {
  size: bytes.length, name: 'js', close: async () => {},
  read: (offset, length) => offset === rec127.offset ? new Promise(() => {}) : Promise.resolve(new Uint8Array(bytes.subarray(offset, offset + length))),
};
const image = await openImage(source, { key });
let moved = 0;
const codes = new Set();
for (let i = 0; i < 20; i++) {
  const r = await image.restore({ mode: 'lazy' });
  const base = r.regions[0].address;
  for (const end = performance.now() + 2000; r.lazyStats().spansMoved === 0 && performance.now() < end;) await new Promise((res) => setImmediate(res));
  moved += r.lazyStats().spansMoved;
  const out = await fsp.open(${JSON.stringify(t.path('js-release.out'))}, 'w');
  const wrote = out.write(new Uint8Array(r.regions[0].memory, 127 * 65536, 4096)).then(() => 'ok', (e) => e.code);
  await new Promise((res) => setTimeout(res, 20));
  for (let k = 0; k < 4; k++) advise(base + BigInt(k * 2 * 1024 * 1024), 2 * 1024 * 1024, 'dontneed');
  r.release();
  codes.add(await wrote);
  await out.close();
  await r.done.catch(() => undefined);
}
console.log(JSON.stringify({ moved, codes: [...codes] }));
await image.close();
`);
    const out = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 90_000 });
    expect(out.signal).toBeNull();
    expect(out.stderr).toBe('');
    const got = JSON.parse(out.stdout) as { moved: number; codes: string[] };
    expect(got.moved).toBeGreaterThan(0);
    // The write of chunk 127's page never got its bytes: released, it fails.
    expect(got.codes).toEqual(['EFAULT']);
  });

  test('a fault on a span whose prefetch thread is stuck is served by the handler after a few ms', () => {
    // An image read through a JavaScript source whose first read of chunk 40 (span 1) hangs
    // 1.5 s: the prefetch thread installing span 1 whole waits on it. A write(2) of chunk 50's
    // page to a file, on a libuv thread (the JavaScript thread must stay free to answer reads),
    // faults there; the handler decodes and copies chunk 50 itself, well before the read returns.
    // In a child process with CRIMG_LAZY_HELP=0: on a loaded machine the handler's own help
    // could otherwise take span 1 first and be the one waiting on the read.
    const script = t.path('stuck.mjs');
    writeFileSync(script, `
import { openImage } from ${JSON.stringify(path.join(ROOT, 'build', 'index.js'))};
import { readFileSync, promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
const key = new Uint8Array(32).fill(9);
const bytes = readFileSync(${JSON.stringify(file)});
const probe = await openImage(bytes, { key });
const rec40 = (await probe.chunkTable()).get(40, 65536);
await probe.close();
let held = false;
const source = {
  size: bytes.length, name: 'stuck', close: async () => {},
  read: (offset, length) => {
    const out = new Uint8Array(bytes.subarray(offset, offset + length));
    if (offset === rec40.offset && !held) {
      held = true;
      return new Promise((res) => setTimeout(() => res(out), 1500));
    }
    return Promise.resolve(out);
  },
};
const image = await openImage(source, { key });
const r = await image.restore({ mode: 'lazy', prefetchThreads: 1 });
for (let i = 0; i < 5000 && !held; i++) await new Promise((res) => setTimeout(res, 1));
const out = await fsp.open(${JSON.stringify(t.path('stuck.out'))}, 'w');
const t0 = performance.now();
await out.write(new Uint8Array(r.regions[0].memory, 50 * 65536, 65536));
const ms = performance.now() - t0;
const assists = r.lazyStats().assists;
await out.close();
await r.done;
const sha = createHash('sha256').update(new Uint8Array(r.regions[0].memory)).digest('hex');
console.log(JSON.stringify({ mode: r.mode, held, fast: ms < 1000, assists, spansMoved: r.lazyStats().spansMoved, sha }));
r.release();
await image.close();
`);
    const out = spawnSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, CRIMG_LAZY_HELP: '0' }, timeout: 60_000 });
    expect(out.stderr).toBe('');
    const got = JSON.parse(out.stdout) as { mode: string; held: boolean; fast: boolean; assists: number; spansMoved: number; sha: string };
    expect(got).toMatchObject({ mode: 'lazy', held: true, fast: true, sha: createHash('sha256').update(data).digest('hex') });
    expect(got.assists).toBeGreaterThanOrEqual(1);
    // Span 1 went in chunk by chunk after the handler's copy stopped its move.
    expect(got.spansMoved).toBeLessThan(4);
    expect(readFileSync(t.path('stuck.out')).equals(data.subarray(50 * 65536, 51 * 65536))).toBe(true);
  });
});
