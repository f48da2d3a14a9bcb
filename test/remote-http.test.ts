/**
 * Remote images over HTTP from a real nginx on loopback (started and stopped here; requests and
 * bytes counted from its access log): open in at most two requests, exact bytes, coalesced
 * and cached reads, copy-mode restore, a replaced object is SOURCE_CHANGED, the CLI's reading
 * commands on http:// URLs, and no credentials in any message.
 */
import { copyFileSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { ImageWriter, openImage, type Image } from '../index.js';
import { RemoteSource } from '../image/index.js';
import { CrimgError } from '../format/errors.js';
import { memoryLike, tempDir } from './helpers.js';
import { selfSignedCert, startNginx, type Nginx } from './remote-servers.js';
import { crimgBatch } from './cli-inproc.js';
import { ROOT, crimg, ensureBuilt } from './cli-helpers.js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFile } from 'node:fs/promises';
import { nativeBatchRefusal } from '../image/_native-batch.js';
import { windowsOf } from '../image/remote/_batch.js';

const PAGE = 4096;
const BASE = 0x7f1200000000n;
const t = tempDir();
let nginx: Nginx;
let cert: ReturnType<typeof selfSignedCert>;
/** Region 0: 6 MiB memory-like; region 1 after a gap: 1 MiB. */
const region0 = memoryLike(1536, 18);
const region1 = memoryLike(256, 19);

async function writeImage(path: string, compress: string, chunkSize?: number): Promise<void> {
  const w = await ImageWriter.create(path, { compress, ...(chunkSize ? { chunkSize } : {}), fsync: false, validation: { architecture: 'x86_64' } });
  await w.addRegion({ address: BASE, data: region0, kind: 'heap', name: 'heap' });
  await w.addGap({ address: BASE + BigInt(region0.length), length: BigInt(16 * PAGE) });
  await w.addRegion({ address: BASE + BigInt(region0.length + 16 * PAGE), data: region1, name: 'stack' });
  await w.finish();
}

/**
 * The access-log entries since `mark` (a count), once the log has stopped growing (nginx writes
 * a request's line after answering it).
 */
async function since(mark: number): Promise<ReturnType<Nginx['log']>> {
  let n = -1;
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const now = nginx.log().length;
    if (now === n) break;
    n = now;
  }
  return nginx.log().slice(mark);
}

beforeAll(async () => {
  await writeImage(t.path('deflate.img'), 'deflate:1');
  await writeImage(t.path('raw.img'), 'none');
  cert = selfSignedCert(t.dir);
  nginx = await startNginx(t.dir, { tls: cert });
});

afterAll(async () => {
  await nginx?.stop();
  t.cleanup();
});

async function expectExact(image: Image): Promise<void> {
  expect(Buffer.from(await image.read(BASE, region0.length)).equals(region0)).toBe(true);
  expect(Buffer.from(await image.read(BASE + BigInt(region0.length + 16 * PAGE), region1.length)).equals(region1)).toBe(true);
}

describe('reading over HTTP (nginx)', () => {
  test('openImage(url): two requests, of which the second asks for the header; then exact bytes and a clean verify', async () => {
    const mark = nginx.log().length;
    const image = await openImage(`${nginx.base}/deflate.img`);
    try {
      const open = await since(mark);
      expect(open.length).toBe(2);
      expect(open[0]!.range).toBe('bytes=-49152');
      expect(open[1]!.range).toBe('bytes=0-16383');
      // Everything an inspect shows (regions, chunk statistics) without another request.
      expect(image.regions.map((r) => r.name)).toEqual(['heap', '', 'stack']);
      const stats = await image.chunkStats();
      expect(stats.totals.chunks.total).toBe(448);
      expect((await since(mark)).length).toBe(2);
      await expectExact(image);
      const report = await image.verify();
      expect(report.ok).toBe(true);
    } finally {
      await image.close();
    }
  });

  test('an index larger than the first request: footer and index still in two requests (one multi-range)', async () => {
    const mark = nginx.log().length;
    const src = await RemoteSource.open(`${nginx.base}/raw.img`, { tail: 1024, head: 4096 });
    const image = await openImage(src);
    try {
      const open = await since(mark);
      expect(open.length).toBe(2);
      expect(open[1]!.range).toMatch(/^bytes=0-4095,\d+-\d+$/);
      await image.chunkStats();
      expect((await since(mark)).length).toBe(2);
      await expectExact(image);
    } finally {
      await image.close();
      await src.close();
    }
  });

  test('neighbouring reads coalesce into one request, repeated reads come from the cache, independent ones run in parallel', async () => {
    const src = await RemoteSource.open(`${nginx.base}/raw.img`, { gap: 0 });
    try {
      const file = readFileSync(t.path('raw.img'));
      const before = src.stats.requests;
      // 64 neighbouring 4 KiB reads issued together: one request.
      const at = 1 << 20;
      const parts = await Promise.all(Array.from({ length: 64 }, (_, i) => src.read(at + i * PAGE, PAGE)));
      expect(src.stats.requests - before).toBe(1);
      parts.forEach((p, i) => expect(Buffer.from(p).equals(file.subarray(at + i * PAGE, at + (i + 1) * PAGE))).toBe(true));
      // The same bytes again: from the cache.
      await src.read(at + 5 * PAGE, 3 * PAGE);
      expect(src.stats.requests - before).toBe(1);
      // Three ranges far apart: three requests, and a long read cut in pieces.
      const far = await Promise.all([0, 2, 4].map((m) => src.read(m * (1 << 20) + 123456, 1000)));
      expect(src.stats.requests - before).toBe(4);
      far.forEach((p, k) => expect(Buffer.from(p).equals(file.subarray(k * 2 * (1 << 20) + 123456, k * 2 * (1 << 20) + 124456))).toBe(true));
      const small = await RemoteSource.open(`${nginx.base}/raw.img`, { pieceSize: 1 << 20, connections: 3 });
      const r0 = small.stats.requests;
      const whole = await small.read(0, 4 * (1 << 20) + 7);
      expect(small.stats.requests - r0).toBe(5);
      expect(Buffer.from(whole).equals(file.subarray(0, 4 * (1 << 20) + 7))).toBe(true);
      await small.close();
    } finally {
      await src.close();
    }
  });

  test('copy-mode restore from nginx gives the image bytes', async () => {
    const image = await openImage(`${nginx.base}/deflate.img`);
    try {
      const result = await image.restore({ mode: 'copy' });
      try {
        expect(Buffer.from(result.regions[0]!.memory!).equals(region0)).toBe(true);
        expect(Buffer.from(result.regions[2]!.memory!).equals(region1)).toBe(true);
      } finally {
        result.release();
      }
    } finally {
      await image.close();
    }
  });

  test('copy restore of a remote image decodes on native threads from fetched windows (4 pieces): raw, deflate and aes exact; a damaged chunk is the local restore\'s error; a replaced object is SOURCE_CHANGED', async () => {
    // 10 MiB in 4 MiB windows (1 MiB pieces): three windows raw, two deflated.
    const big = memoryLike(2560, 21);
    const key = new Uint8Array(32).fill(9);
    const PIECE = 1 << 20;
    for (const [name, options] of [['big-raw.img', { compress: 'none' }], ['big-deflate.img', { compress: 'deflate:1' }], ['big-aes.img', { compress: 'deflate:1', encrypt: 'aes-256-gcm', key }]] as const) {
      const w = await ImageWriter.create(t.path(name), { ...options, fsync: false });
      await w.addRegion({ address: BASE, data: big, name: 'heap' });
      await w.finish();
    }
    for (const name of ['big-raw.img', 'big-deflate.img', 'big-aes.img']) {
      const src = await RemoteSource.open(`${nginx.base}/${name}`, { pieceSize: PIECE });
      const image = await openImage(src, name === 'big-aes.img' ? { key } : {});
      try {
        expect(nativeBatchRefusal(image)).toBeNull();
        const before = src.stats.requests;
        const result = await image.restore({ mode: 'copy' });
        try {
          expect([name, Buffer.from(result.regions[0]!.memory!).equals(big)]).toEqual([name, true]);
        } finally {
          result.release();
        }
        // Stored bytes in 1 MiB pieces, each asked for once: no chunk read on its own.
        expect(src.stats.requests - before).toBeLessThanOrEqual(Math.ceil(src.size / PIECE) + 3);
      } finally {
        await image.close();
        await src.close();
      }
    }
    // One byte flipped in a stored chunk 70 % into the file (past the first window): the local restore's error.
    const bad = readFileSync(t.path('big-deflate.img'));
    bad[Math.floor(bad.length * 0.7)] ^= 0x40;
    writeFileSync(t.path('big-bad.img'), bad);
    const errorOf = async (where: string | RemoteSource): Promise<CrimgError> => {
      const image = await openImage(where);
      try {
        const e = await image.restore({ mode: 'copy' }).then((r) => { r.release(); return null; }, (x: unknown) => x);
        expect(e).toBeInstanceOf(CrimgError);
        return e as CrimgError;
      } finally {
        await image.close();
      }
    };
    const local = await errorOf(t.path('big-bad.img'));
    const badSrc = await RemoteSource.open(`${nginx.base}/big-bad.img`, { pieceSize: PIECE });
    const remote = await errorOf(badSrc).finally(() => badSrc.close());
    expect(local.code).toMatch(/^CORRUPT_/);
    expect([remote.code, remote.message]).toEqual([local.code, local.message]);
    // Replaced between open and restore: SOURCE_CHANGED, no memory left behind.
    copyFileSync(t.path('big-deflate.img'), t.path('big-moving.img'));
    const image = await openImage(`${nginx.base}/big-moving.img`);
    try {
      copyFileSync(t.path('big-raw.img'), t.path('big-moving.next'));
      const later = new Date(Date.now() + 5000);
      utimesSync(t.path('big-moving.next'), later, later);
      renameSync(t.path('big-moving.next'), t.path('big-moving.img'));
      const e = await image.restore({ mode: 'copy' }).then((r) => { r.release(); return null; }, (x: unknown) => x);
      expect(e).toMatchObject({ code: 'SOURCE_CHANGED' });
    } finally {
      await image.close();
    }
  });

  test('lazy restore of a remote image (mode lazy): a fault is a range request to nginx made through read(); exact once done; the default stays copy and says why', async () => {
    const image = await openImage(`${nginx.base}/deflate.img`);
    try {
      const dflt = await image.restore();
      expect(dflt.mode).toBe('copy');
      expect(dflt.reason).toMatch(/not a local file .*must not touch a page before done/);
      dflt.release();
    } finally {
      await image.close();
    }
    // A fresh open (nothing of the data area in its cache yet).
    const fresh = await openImage(`${nginx.base}/deflate.img`);
    try {
      // No prefetch: only faults install chunks. Three chunks of the restored memory are written
      // to files by libuv's pool threads (fs.promises.writeFile of a view): each write faults,
      // the handler asks read() on this (free) JavaScript thread, which asks nginx.
      const lazy = await fresh.restore({ mode: 'lazy', prefetch: false });
      try {
        expect(lazy.mode).toBe('lazy');
        const cs = fresh.chunkSize;
        const mark = nginx.log().length;
        for (const k of [40, 150, 300]) {
          await writeFile(t.path(`lazy-${k}`), new Uint8Array(lazy.regions[0]!.memory!, k * cs, cs));
          expect([k, readFileSync(t.path(`lazy-${k}`)).equals(region0.subarray(k * cs, (k + 1) * cs))]).toEqual([k, true]);
        }
        const stats = lazy.lazyStats()!;
        expect(stats.faultInstalls).toBeGreaterThanOrEqual(3);
        expect(stats.prefetched).toBe(0);
        const asked = (await since(mark)).filter((e) => e.uri === '/deflate.img' && e.status === 206);
        expect(asked.length).toBeGreaterThanOrEqual(3); // one range request per fault, at least
      } finally {
        lazy.release();
      }
      await expect(lazy.done).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      // With prefetch: every chunk in, exact, once done (nothing touched before).
      const full = await fresh.restore({ mode: 'lazy' });
      try {
        await full.done;
        expect(Buffer.from(full.regions[0]!.memory!).equals(region0)).toBe(true);
        expect(Buffer.from(full.regions[2]!.memory!).equals(region1)).toBe(true);
      } finally {
        full.release();
      }
    } finally {
      await fresh.close();
    }
  });

  test('windowsOf: items cut where their stored bytes stop following each other or a window would pass its size', () => {
    const items = new BigUint64Array(8 * 6);
    const put = (i: number, offset: number, stored: number): void => {
      items[i * 8] = BigInt(offset);
      items[i * 8 + 4] = BigInt(stored) | (65536n << 32n);
    };
    [[100, 50], [150, 50], [200, 60], [100000, 10], [100010, 90000], [190010, 20000]].forEach(([o, n], i) => put(i, o!, n!));
    expect(windowsOf(items, 100000)).toEqual([
      { first: 0, count: 3, start: 100, end: 260 },
      { first: 3, count: 2, start: 100000, end: 190010 },
      { first: 5, count: 1, start: 190010, end: 210010 },
    ]);
    // A small first window, each next one up to twice the one before, up to the window size.
    const run = new BigUint64Array(8 * 40);
    for (let i = 0; i < 40; i++) {
      run[i * 8] = BigInt(1000 + i * 100);
      run[i * 8 + 4] = 100n | (65536n << 32n);
    }
    expect(windowsOf(run, 1600, 200).map((w) => [w.first, w.count, w.end - w.start])).toEqual([
      [0, 2, 200], [2, 4, 400], [6, 8, 800], [14, 16, 1600], [30, 10, 1000],
    ]);
  });

  test('a remote image restored and never closed does not keep its process alive: idle connections (node:http\'s and the in-place client\'s) do not hold the event loop', async () => {
    ensureBuilt();
    const index = pathToFileURL(join(ROOT, 'build', 'index.js')).href;
    const batch = pathToFileURL(join(ROOT, 'build', 'image', '_native-batch.js')).href;
    const code = `const { openImage } = await import(${JSON.stringify(index)});
      const { nativeBatchRefusal } = await import(${JSON.stringify(batch)});
      const image = await openImage(${JSON.stringify(`${nginx.base}/deflate.img`)}, { });
      const r = await image.restore({ mode: 'copy' });
      console.log(JSON.stringify({ native: nativeBatchRefusal(image), regions: r.regions.length }));`;
    // The image is not closed and nothing else is waited for: the child must exit on its own.
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    // Killed before the test's timeout if it hangs, so that it does not outlive the test.
    const guard = setTimeout(() => child.kill('SIGKILL'), 25_000);
    const exitCode = await new Promise<number | null>((resolve) => child.on('exit', resolve)).finally(() => clearTimeout(guard));
    expect([exitCode, err]).toEqual([0, '']);
    expect(JSON.parse(out)).toEqual({ native: null, regions: 3 });
  }, 30_000);

  test('https:// (nginx with a self-signed certificate): exact bytes with it as the CA; without, IO_ERROR naming the TLS failure', async () => {
    const src = await RemoteSource.open(`${nginx.tlsBase}/deflate.img`, { ca: cert.pem });
    const image = await openImage(src);
    try {
      await expectExact(image);
    } finally {
      await image.close();
      await src.close();
    }
    const err = await openImage(`${nginx.tlsBase}/deflate.img`).then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'IO_ERROR' });
    expect((err as Error).message).toMatch(/SELF_SIGNED|CERT/);
  });

  test('an encrypted image over HTTP: the same bytes twice (the second time from the cache: nothing decrypted in place)', async () => {
    const key = new Uint8Array(32).fill(7);
    const w = await ImageWriter.create(t.path('sealed.img'), { compress: 'deflate:1', encrypt: 'aes-256-gcm', key, fsync: false });
    await w.addRegion({ address: BASE, data: region1, name: 'secret' });
    await w.finish();
    const image = await openImage(`${nginx.base}/sealed.img`, { key });
    try {
      for (let i = 0; i < 2; i++) expect(Buffer.from(await image.read(BASE, region1.length)).equals(region1)).toBe(true);
      expect(image.regions[0]!.name).toBe('secret');
    } finally {
      await image.close();
    }
  });

  test('the object replaced after open: SOURCE_CHANGED (If-Match refused), never bytes of the new version', async () => {
    copyFileSync(t.path('deflate.img'), t.path('moving.img'));
    const image = await openImage(`${nginx.base}/moving.img`);
    try {
      await writeImageOther(t.path('moving.next'));
      const later = new Date(Date.now() + 5000);
      utimesSync(t.path('moving.next'), later, later);
      renameSync(t.path('moving.next'), t.path('moving.img'));
      const err = await image.read(BASE, region0.length).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(CrimgError);
      expect((err as CrimgError).code).toBe('SOURCE_CHANGED');
      expect((err as CrimgError).message).toContain('/moving.img');
      // nginx logs a request after answering it: wait for the line.
      for (let i = 0; i < 100 && !nginx.log().some((e) => e.uri === '/moving.img' && e.status === 412); i++) await new Promise((r) => setTimeout(r, 20));
      expect(nginx.log().filter((e) => e.uri === '/moving.img').map((e) => e.status)).toContain(412);
    } finally {
      await image.close();
    }
  });

  test('not found, not an image, user:password in the URL: coded errors that name the URL without the password', async () => {
    const e404 = await openImage(`${nginx.base}/missing.img`).then(() => null, (e: unknown) => e);
    expect(e404).toMatchObject({ code: 'IO_ERROR' });
    expect((e404 as Error).message).toContain('404');
    const secret = 'hunter2-secret';
    const eAuth = await openImage(`http://user:${secret}@${nginx.base.slice(7)}/missing.img?X-Amz-Signature=${secret}`).then(() => null, (e: unknown) => e);
    expect(eAuth).toMatchObject({ code: 'IO_ERROR' });
    expect(String((eAuth as Error).message) + String((eAuth as Error).stack)).not.toContain(secret);
    writeFileSync(t.path('notimage.img'), Buffer.alloc(100, 7));
    const bad = await openImage(`${nginx.base}/notimage.img`).then(() => null, (e: unknown) => e);
    expect(bad).toMatchObject({ code: 'BAD_MAGIC' });
  });
});

async function writeImageOther(path: string): Promise<void> {
  const w = await ImageWriter.create(path, { compress: 'deflate:1', fsync: false });
  await w.addRegion({ address: BASE, data: memoryLike(1536, 77), kind: 'heap', name: 'heap' });
  await w.finish();
}

describe('the CLI reads http:// images', () => {
  test('inspect, verify, stats, dump, extract, diff, check, export-core and convert on URLs', async () => {
    const url = `${nginx.base}/deflate.img`;
    const local = t.path('deflate.img');
    const runs = [
      { args: ['inspect', url, '--json'] },
      { args: ['inspect', local, '--json'] },
      { args: ['verify', url] },
      { args: ['stats', url, '--json'] },
      { args: ['dump', url, '--address', `0x${(BASE + 4096n).toString(16)}`, '--length', '64'] },
      { args: ['dump', local, '--address', `0x${(BASE + 4096n).toString(16)}`, '--length', '64'] },
      { args: ['extract', url, '--region', '0', '-o', t.path('region0.bin')] },
      { args: ['diff', url, local] },
      { args: ['check', url] },
      { args: ['check', local] },
      { args: ['export-core', url, t.path('core.elf')] },
      { args: ['convert', url, t.path('converted.img'), '--compress', 'none'] },
    ];
    const { runs: out } = await crimgBatch(runs);
    out.forEach((r, i) => expect([runs[i]!.args[0], r.status, r.stderr]).toEqual([runs[i]!.args[0], expect.any(Number), expect.any(String)]));
    const [inspectUrl, inspectLocal, verify, stats, dumpUrl, dumpLocal, extract, diff, checkUrl, checkLocal, core, convert] = out;
    expect([checkUrl!.status, checkUrl!.stdout.replace(url, 'IMG')]).toEqual([checkLocal!.status, checkLocal!.stdout.replace(local, 'IMG')]);
    for (const r of [inspectUrl, verify, stats, dumpUrl, extract, diff, core, convert]) expect([r!.status, r!.stderr]).toEqual([0, '']);
    const a = JSON.parse(inspectUrl!.stdout) as Record<string, unknown>;
    const b = JSON.parse(inspectLocal!.stdout) as Record<string, unknown>;
    expect(a.regions).toEqual(b.regions);
    expect(dumpUrl!.stdout).toBe(dumpLocal!.stdout);
    expect(readFileSync(t.path('region0.bin')).equals(region0)).toBe(true);
    const converted = await openImage(t.path('converted.img'));
    try { await expectExact(converted); } finally { await converted.close(); }
  });

  test('--debug output of a failed remote open carries no credentials', async () => {
    const secret = 'pa55-word-never-shown';
    const r = await crimg(['inspect', `http://admin:${secret}@${nginx.base.slice(7)}/missing.img`, '--debug']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('IO_ERROR');
    expect(r.stderr + r.stdout).not.toContain(secret);
  });
});
