/**
 * Failure behaviour of remote images, through a fault-injecting proxy (node:http) in front of a
 * real nginx on loopback: connection resets, 503 answers, bodies cut short, stalled requests,
 * a server without range support, and the object replaced while it is read. Every run ends in
 * the exact bytes of the version opened or in a coded error (IO_ERROR, TRUNCATED,
 * SOURCE_CHANGED): never other bytes, never a CORRUPT_* from a mix of two versions.
 */
import { copyFileSync, readFileSync, renameSync, utimesSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { ImageWriter, openImage } from '../index.js';
import { RemoteSource, type RemoteOptions } from '../image/index.js';
import { CrimgError } from '../format/errors.js';
import { parseByteRanges } from '../image/remote/_http.js';
import { memoryLike, prng, tempDir } from './helpers.js';
import { startFaultProxy, startNginx, type FaultProxy, type Fault, type Nginx } from './remote-servers.js';
import { crimg } from './cli-helpers.js';
import { nativeBatchRefusal } from '../image/_native-batch.js';
import { requireNative } from './native-fixture.js';

requireNative();
const BASE = 0x7f5600000000n;
const t = tempDir();
let nginx: Nginx;
let proxy: FaultProxy;
/** Two versions of one image, of different sizes (nginx's ETag is mtime and size). */
const versionA = memoryLike(1024, 56);
const versionB = memoryLike(1040, 57);
/** Fast retries: the tests wait for backoff, not for coverage. */
const FAST: RemoteOptions = { retries: 3, backoffMs: 2, pieceSize: 256 * 1024, gap: 0 };

async function write(path: string, data: Buffer, mtime: number): Promise<void> {
  const w = await ImageWriter.create(path, { compress: 'deflate:1', fsync: false });
  await w.addRegion({ address: BASE, data, name: 'heap' });
  await w.finish();
  utimesSync(path, mtime, mtime);
}

beforeAll(async () => {
  const now = Math.floor(Date.now() / 1000);
  await write(t.path('a.img'), versionA, now - 1000);
  await write(t.path('b.img'), versionB, now - 500);
  copyFileSync(t.path('a.img'), t.path('served.img'));
  utimesSync(t.path('served.img'), now - 1000, now - 1000);
  nginx = await startNginx(t.dir);
  proxy = await startFaultProxy(nginx.base);
});

afterAll(async () => {
  await proxy?.stop();
  await nginx?.stop();
  t.cleanup();
});

beforeEach(() => {
  proxy.plan = () => 'pass';
  proxy.before = () => {};
  proxy.headers = () => {};
});

/**
 * Opens `name` through the proxy as an image, hands it to `use`, closes both: what `use`
 * returned, or the CrimgError on the way.
 */
async function throughProxy(name: string, options: RemoteOptions, use: (image: Awaited<ReturnType<typeof openImage>>) => Promise<Buffer>): Promise<Buffer | CrimgError> {
  try {
    const src = await RemoteSource.open(`${proxy.base}/${name}`, options);
    try {
      const image = await openImage(src);
      try {
        return await use(image);
      } finally {
        await image.close();
      }
    } finally {
      await src.close();
    }
  } catch (e) {
    if (e instanceof CrimgError) return e;
    throw e;
  }
}

/** Opens a.img through the proxy and reads its region: the bytes, or the error. */
function readThrough(name: string, options: RemoteOptions = FAST): Promise<Buffer | CrimgError> {
  return throughProxy(name, options, async (image) => Buffer.from(await image.read(BASE, Number(image.regions[0]!.length))));
}

/**
 * Opens `name` through the proxy, then runs `afterOpen` (a change of the server's answers or
 * of the object), then reads the region: the bytes, or the error.
 */
function readAfterOpen(name: string, options: RemoteOptions, afterOpen: () => void): Promise<Buffer | CrimgError> {
  return throughProxy(name, options, async (image) => {
    afterOpen();
    return Buffer.from(await image.read(BASE, Number(image.regions[0]!.length)));
  });
}

/** Serves a fresh copy of a.img as served.img, with its own mtime (so its own ETag). */
function serveA(mtime: number): void {
  copyFileSync(t.path('a.img'), t.path('served.next'));
  utimesSync(t.path('served.next'), mtime, mtime);
  renameSync(t.path('served.next'), t.path('served.img'));
}

/** Replaces served.img by b.img (another size, mtime now). */
function replaceByB(): void {
  copyFileSync(t.path('b.img'), t.path('served.next'));
  renameSync(t.path('served.next'), t.path('served.img'));
}

const noValidators = (_n: number, h: http.IncomingHttpHeaders): void => { delete h.etag; delete h['last-modified']; };

/** A plan that injects `fault` into the first `times` tries of every request after the opening ones. */
function firstTries(fault: Fault, times: number): (n: number, req: http.IncomingMessage) => Fault {
  const seen = new Map<string, number>();
  return (_n, req) => {
    const k = String(req.headers.range);
    const c = seen.get(k) ?? 0;
    seen.set(k, c + 1);
    return c < times ? fault : 'pass';
  };
}

describe('faults through a proxy in front of nginx', () => {
  test.each([['reset'], ['503'], ['short'], ['stall']] as const)('%s on the first two tries of every request: retried, exact bytes', async (fault) => {
    proxy.plan = firstTries(fault, 2);
    const got = await readThrough('a.img', { ...FAST, timeoutMs: fault === 'stall' ? 200 : 30_000 });
    expect(got).toBeInstanceOf(Buffer);
    expect((got as Buffer).equals(versionA)).toBe(true);
  });

  test('bodies always cut short: TRUNCATED; always 503: IO_ERROR after the retries; always reset: IO_ERROR', async () => {
    proxy.plan = firstTries('short', 100);
    expect(await readThrough('a.img')).toMatchObject({ code: 'TRUNCATED' });
    proxy.plan = firstTries('503', 100);
    const e503 = await readThrough('a.img');
    expect(e503).toMatchObject({ code: 'IO_ERROR' });
    expect((e503 as Error).message).toMatch(/HTTP 503 after 4 tries/);
    proxy.plan = firstTries('reset', 100);
    expect(await readThrough('a.img')).toMatchObject({ code: 'IO_ERROR' });
  });

  test('the object replaced between two reads: SOURCE_CHANGED, whichever request sees it', async () => {
    const results: unknown[] = [];
    for (const at of [1, 2, 3, 5]) {
      copyFileSync(t.path('a.img'), t.path('served.img'));
      utimesSync(t.path('served.img'), 1_000_000, 1_000_000);
      const start = proxy.requests;
      proxy.before = (n) => {
        if (n - start === at) {
          copyFileSync(t.path('b.img'), t.path('served.next'));
          renameSync(t.path('served.next'), t.path('served.img'));
        }
      };
      // One connection: requests in order, none left in flight after the failure.
      const got = await readThrough('served.img', { ...FAST, connections: 1 });
      results.push([at, got instanceof CrimgError ? got.code : 'bytes']);
    }
    expect(results).toEqual([[1, 'SOURCE_CHANGED'], [2, 'SOURCE_CHANGED'], [3, 'SOURCE_CHANGED'], [5, 'SOURCE_CHANGED']]);
  });

  test('a server that ignores Range (200 with the whole object) is refused without reading it', async () => {
    const body = Buffer.alloc(4 << 20, 1);
    let sent = 0;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body, () => { sent += body.length; });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const err = await openImage(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/x.img`).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'IO_ERROR' });
      expect((err as Error).message).toContain('does not serve byte ranges');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    expect(sent).toBe(0);
  });

  test('40 seeded runs of random resets, 503s, short bodies and replacements: exact bytes of one version or a coded error', async () => {
    const outcomes: Record<string, number> = {};
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(seed);
      copyFileSync(t.path('a.img'), t.path('served.img'));
      utimesSync(t.path('served.img'), 2_000_000 + seed, 2_000_000 + seed);
      const swapAt = seed % 4 === 0 ? Math.floor(rnd() * 12) : -1;
      const start = proxy.requests;
      const p = 0.08 + rnd() * 0.2;
      proxy.plan = () => {
        const x = rnd();
        return x < p / 3 ? 'reset' : x < (2 * p) / 3 ? '503' : x < p ? 'short' : 'pass';
      };
      proxy.before = (n) => {
        if (n - start === swapAt) {
          copyFileSync(t.path('b.img'), t.path('served.next'));
          renameSync(t.path('served.next'), t.path('served.img'));
        }
      };
      const got = await readThrough('served.img', { ...FAST, retries: 2 });
      let outcome: string;
      if (got instanceof CrimgError) outcome = got.code;
      else outcome = got.equals(versionA) ? 'bytes of A' : got.equals(versionB) ? 'bytes of B' : 'WRONG BYTES';
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      expect([seed, outcome]).toEqual([seed, expect.stringMatching(/^(bytes of A|bytes of B|IO_ERROR|TRUNCATED|SOURCE_CHANGED)$/)]);
    }
    // Both ends are reached: most runs recover, some fail with a code.
    expect(outcomes['bytes of A'] ?? 0).toBeGreaterThan(10);
    expect((outcomes.SOURCE_CHANGED ?? 0) + (outcomes.IO_ERROR ?? 0) + (outcomes.TRUNCATED ?? 0)).toBeGreaterThan(0);
  });
});

describe('bodies received straight into the reader\'s memory', () => {
  /** Copy restore of `name` through the proxy (native decode of fetched windows): the region's bytes, or the error. */
  function restoreThrough(name: string, options: RemoteOptions): Promise<Buffer | CrimgError> {
    return throughProxy(name, options, async (image) => {
      expect(nativeBatchRefusal(image)).toBeNull();
      const result = await image.restore({ mode: 'copy' });
      try {
        return Buffer.from(new Uint8Array(result.regions[0]!.memory!)); // a copy: release() unmaps the memory
      } finally {
        result.release();
      }
    });
  }

  test('copy restore in 128 KiB windows (many more than the three reused slots): exact bytes; with resets, 503s and short bodies retried into the same slot, exact bytes of A or a coded error in 12 seeded runs', async () => {
    // 32 KiB pieces: windows of 128 KiB; a.img stores ~1.6 MiB, so ~13 windows through 3 slots.
    const SMALL: RemoteOptions = { ...FAST, pieceSize: 32 * 1024 };
    const start = proxy.requests;
    const clean = await restoreThrough('a.img', SMALL);
    expect(clean).toBeInstanceOf(Buffer);
    expect((clean as Buffer).equals(versionA)).toBe(true);
    expect(proxy.requests - start).toBeGreaterThan(3 * 4 + 2);
    const outcomes: string[] = [];
    for (let seed = 1; seed <= 12; seed++) {
      const rnd = prng(100 + seed);
      const p = 0.1 + rnd() * 0.2;
      proxy.plan = () => {
        const x = rnd();
        return x < p / 3 ? 'reset' : x < (2 * p) / 3 ? '503' : x < p ? 'short' : 'pass';
      };
      const got = await restoreThrough('a.img', { ...SMALL, retries: 2 });
      const outcome = got instanceof CrimgError ? got.code : got.equals(versionA) ? 'bytes of A' : 'WRONG BYTES';
      expect([seed, outcome]).toEqual([seed, expect.stringMatching(/^(bytes of A|IO_ERROR|TRUNCATED)$/)]);
      outcomes.push(outcome);
    }
    expect(outcomes.filter((o) => o === 'bytes of A').length).toBeGreaterThan(3);
  });

  test.each([['reset'], ['503'], ['short'], ['stall']] as const)('copy restore, %s on the first two tries of every window request (received in place): retried, exact bytes', async (fault) => {
    const SMALL: RemoteOptions = { ...FAST, ...(fault === 'stall' ? { pieceSize: 512 * 1024, timeoutMs: 150 } : { pieceSize: 64 * 1024 }) };
    // The opening requests pass; every later one (a window's piece) fails twice first.
    const plan = firstTries(fault, 2);
    proxy.plan = (n, req) => (req.headers.connection === undefined ? plan(n, req) : 'pass');
    const got = await restoreThrough('a.img', SMALL);
    expect(got).toBeInstanceOf(Buffer);
    expect((got as Buffer).equals(versionA)).toBe(true);
  });

  test('copy restore with every window request cut short: TRUNCATED; reset: IO_ERROR; the object replaced: SOURCE_CHANGED', async () => {
    const SMALL: RemoteOptions = { ...FAST, pieceSize: 64 * 1024 };
    const windows = (fault: Fault) => (_n: number, req: http.IncomingMessage): Fault => (req.headers.connection === undefined ? fault : 'pass');
    proxy.plan = windows('short');
    expect(await restoreThrough('a.img', SMALL)).toMatchObject({ code: 'TRUNCATED' });
    proxy.plan = windows('reset');
    expect(await restoreThrough('a.img', SMALL)).toMatchObject({ code: 'IO_ERROR' });
    proxy.plan = () => 'pass';
    copyFileSync(t.path('a.img'), t.path('served.img'));
    utimesSync(t.path('served.img'), 1_500_000, 1_500_000);
    let swapped = false;
    proxy.before = (_n, req) => {
      if (req.headers.connection === undefined && !swapped) {
        swapped = true;
        replaceByB();
      }
    };
    expect(await restoreThrough('served.img', SMALL)).toMatchObject({ code: 'SOURCE_CHANGED' });
    expect(swapped).toBe(true);
  });

  test('window bodies go to memory in place over plain http (no node:http Connection header); an answer without Content-Length (chunked) is asked again through node:http, which serves the rest: exact bytes', async () => {
    const file = readFileSync(t.path('a.img'));
    const seen: { range: string; viaNode: boolean; chunked: boolean }[] = [];
    let chunkedFrom = Infinity;
    const server = http.createServer((req, res) => {
      const m = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
      let start = 0;
      let end = file.length - 1;
      if (m && m[1] === '') start = file.length - Number(m[2]);
      else if (m) { start = Number(m[1]); end = m[2] === '' ? end : Math.min(end, Number(m[2])); }
      const chunked = seen.length >= chunkedFrom;
      seen.push({ range: String(req.headers.range), viaNode: req.headers.connection !== undefined, chunked });
      const headers: http.OutgoingHttpHeaders = { etag: '"v1"', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', 'content-range': `bytes ${start}-${end}/${file.length}` };
      if (!chunked) headers['content-length'] = String(end - start + 1);
      res.writeHead(206, headers);
      res.end(file.subarray(start, end + 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const restoreFrom = async (): Promise<Buffer> => {
      const src = await RemoteSource.open(`${base}/a.img`, { ...FAST, retries: 0, pieceSize: 64 * 1024 });
      try {
        const image = await openImage(src);
        try {
          expect(nativeBatchRefusal(image)).toBeNull();
          const result = await image.restore({ mode: 'copy' });
          try {
            return Buffer.from(new Uint8Array(result.regions[0]!.memory!));
          } finally {
            result.release();
          }
        } finally {
          await image.close();
        }
      } finally {
        await src.close();
      }
    };
    try {
      expect((await restoreFrom()).equals(versionA)).toBe(true);
      const opening = seen.filter((r) => r.viaNode).length;
      expect(opening).toBeLessThanOrEqual(2);
      expect(seen.length - opening).toBeGreaterThan(10);
      // From the third window on (four pieces at once), answers are chunked: those in flight are
      // read in place up to their head, refused, and asked again through node:http (no retry
      // spent: retries 0), as is every later request; the other connections are not cut.
      seen.length = 0;
      chunkedFrom = 2 + 1 + 2;
      expect((await restoreFrom()).equals(versionA)).toBe(true);
      const refused = seen.filter((r) => !r.viaNode && r.chunked);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(refused.length).toBeLessThanOrEqual(4);
      for (const r of refused) expect(seen.some((x) => x.viaNode && x.range === r.range)).toBe(true);
      expect(seen.slice(-5).every((r) => r.viaNode)).toBe(true);
      expect(seen.length).toBeGreaterThan(15);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('readInto: a long read fetched in pieces straight into the target, exact; a cached span copied without a request; a failed piece rejects only once every other piece has finished writing', async () => {
    const src = await RemoteSource.open(`${proxy.base}/a.img`, { ...FAST, retries: 0, pieceSize: 64 * 1024, cacheBytes: 1 << 20 });
    try {
      const whole = readFileSync(t.path('a.img'));
      const offset = 4096;
      const length = 5 * 64 * 1024 + 100;
      const target = new Uint8Array(length);
      let before = src.stats.requests;
      await src.readInto(target, offset);
      expect(src.stats.requests - before).toBe(6);
      expect(Buffer.from(target).equals(whole.subarray(offset, offset + length))).toBe(true);
      // The tail was cached at open: no request.
      before = src.stats.requests;
      const tail = new Uint8Array(1000);
      await src.readInto(tail, src.size - 1000);
      expect(src.stats.requests - before).toBe(0);
      expect(Buffer.from(tail).equals(whole.subarray(whole.length - 1000))).toBe(true);
      // The first piece reset; the other five held at the proxy until released.
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      const first = `bytes=${offset}-${offset + 64 * 1024 - 1}`;
      let held = 0;
      proxy.plan = (_n, req) => (req.headers.range === first ? 'reset' : 'pass');
      proxy.before = async (_n, req) => {
        if (req.headers.range === first) return;
        held++;
        await gate;
      };
      const into = new Uint8Array(length);
      let settled = false;
      const read = src.readInto(into, offset).then(() => null, (e: unknown) => e).finally(() => { settled = true; });
      while (held < 5) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100)); // the reset has come back by now
      expect(settled).toBe(false);
      release();
      expect(await read).toMatchObject({ code: 'IO_ERROR' });
      // Every other piece was written before readInto rejected; nothing writes after.
      expect(Buffer.from(into.subarray(64 * 1024)).equals(whole.subarray(offset + 64 * 1024, offset + length))).toBe(true);
    } finally {
      await src.close();
    }
  });
});

describe('impossible numbers from the server', () => {
  test('a Content-Range past 2^53, past the object or ending before it starts is IO_ERROR at open, never a RangeError', async () => {
    for (const bad of ['bytes 0-99/99999999999999999999', 'bytes 0-49151/100', 'bytes 5-4/1000000']) {
      proxy.headers = (_n, h) => { if (h['content-range']) h['content-range'] = bad; };
      const got = await readThrough('a.img');
      expect([bad, got]).toEqual([bad, expect.objectContaining({ code: 'IO_ERROR' })]);
      proxy.headers = () => {};
    }
  });

  test('multipart/byteranges: a part ending before it starts, past the object, or too many parts is no body (never a walk back to the same delimiter)', () => {
    const type = 'multipart/byteranges; boundary=B';
    const part = (range: string, data: string): string => `--B\r\nContent-Range: bytes ${range}\r\n\r\n${data}\r\n`;
    expect(parseByteRanges(type, Buffer.from(part('0-1/10', 'ab') + part('4-5/10', 'ef') + '--B--\r\n'))).toEqual([
      { start: 0, end: 1, total: 10, bytes: Buffer.from('ab') },
      { start: 4, end: 5, total: 10, bytes: Buffer.from('ef') },
    ]);
    expect(parseByteRanges(type, Buffer.from(part('1000-0/5000', 'xx') + '--B--\r\n'))).toBeNull();
    expect(parseByteRanges(type, Buffer.from(part('0-1/1', 'ab') + '--B--\r\n'))).toBeNull();
    expect(parseByteRanges(type, Buffer.from(part('0-1/99999999999999999999', 'ab') + '--B--\r\n'))).toBeNull();
    expect(parseByteRanges(type, Buffer.from(part('0-0/9', 'a').repeat(3) + '--B--\r\n'), 2)).toBeNull();
  });
});

describe('version pinning: validators missing, dropped, weak; the size', () => {
  test('a server with neither ETag nor Last-Modified is refused at open; accepted with allowUnpinned (library) and CRIMG_REMOTE_UNPINNED=1 (CLI, with a warning)', async () => {
    proxy.headers = noValidators;
    const refused = await readThrough('a.img');
    expect(refused).toMatchObject({ code: 'IO_ERROR' });
    expect((refused as Error).message).toMatch(/no ETag and no Last-Modified.*allowUnpinned: true \(CRIMG_REMOTE_UNPINNED=1\)/);
    const got = await readThrough('a.img', { ...FAST, allowUnpinned: true });
    expect(Buffer.isBuffer(got) && got.equals(versionA)).toBe(true);
    const cliRefused = await crimg(['verify', `${proxy.base}/a.img`]);
    expect(cliRefused.status).not.toBe(0);
    expect(cliRefused.stderr).toContain('CRIMG_REMOTE_UNPINNED=1');
    const cliOk = await crimg(['verify', `${proxy.base}/a.img`], { CRIMG_REMOTE_UNPINNED: '1' });
    expect(cliOk.status).toBe(0);
    expect(cliOk.stderr).toMatch(/is read unpinned \(CRIMG_REMOTE_UNPINNED=1\)/);
  });

  test('a pinned validator missing from a later answer is SOURCE_CHANGED (the ETag, the Last-Modified), before any of its bytes are used', async () => {
    for (const drop of ['etag', 'last-modified'] as const) {
      const got = await readAfterOpen('a.img', FAST, () => { proxy.headers = (_n, h) => { delete h[drop]; }; });
      expect([drop, got]).toEqual([drop, expect.objectContaining({ code: 'SOURCE_CHANGED' })]);
      expect((got as Error).message).toContain(drop === 'etag' ? 'the answer has no ETag' : 'the answer has no Last-Modified');
      proxy.headers = () => {};
    }
  });

  test('only Last-Modified (no ETag): the object replaced after open is SOURCE_CHANGED (If-Unmodified-Since), not a damaged image', async () => {
    serveA(1_500_000);
    proxy.headers = (_n, h) => { delete h.etag; };
    const got = await readAfterOpen('served.img', { ...FAST, connections: 1 }, replaceByB);
    expect(got).toMatchObject({ code: 'SOURCE_CHANGED' });
  });

  test('a weak ETag: If-Unmodified-Since is sent (never If-Match), the weak ETag is compared on every answer; alone it is refused unless allowUnpinned', async () => {
    const weak = (_n: number, h: http.IncomingHttpHeaders): void => { if (h.etag) h.etag = `W/${h.etag}`; };
    const sent: http.IncomingHttpHeaders[] = [];
    proxy.plan = (_n, req) => { sent.push(req.headers); return 'pass'; };
    proxy.headers = weak;
    const got = await readThrough('a.img');
    expect(Buffer.isBuffer(got) && got.equals(versionA)).toBe(true);
    const later = sent.slice(1);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((h) => h['if-match'] === undefined && typeof h['if-unmodified-since'] === 'string')).toBe(true);
    // Another weak ETag in a later answer, Last-Modified unchanged: SOURCE_CHANGED.
    const other = await readAfterOpen('a.img', FAST, () => { proxy.headers = (_n, h) => { h.etag = 'W/"another"'; }; });
    expect(other).toMatchObject({ code: 'SOURCE_CHANGED', message: expect.stringContaining('its ETag changed') });
    // A weak ETag and no Last-Modified: no strong validator.
    const weakOnly = (_n: number, h: http.IncomingHttpHeaders): void => { weak(_n, h); delete h['last-modified']; };
    proxy.headers = weakOnly;
    expect(await readThrough('a.img')).toMatchObject({ code: 'IO_ERROR', message: expect.stringContaining('only a weak ETag and no Last-Modified') });
    const accepted = await readThrough('a.img', { ...FAST, allowUnpinned: true });
    expect(Buffer.isBuffer(accepted) && accepted.equals(versionA)).toBe(true);
    const weakChanged = await readAfterOpen('a.img', { ...FAST, allowUnpinned: true }, () => {
      proxy.headers = (_n, h) => { h.etag = 'W/"another"'; delete h['last-modified']; };
    });
    expect(weakChanged).toMatchObject({ code: 'SOURCE_CHANGED' });
  });

  test('a size change under unchanged validators (a same-second rewrite, an unpinned server) is SOURCE_CHANGED from the Content-Range length', async () => {
    // The server ignores the conditions and keeps answering with the validators of the version
    // opened, as nginx would for a rewrite within the same second (its ETag is mtime and size:
    // here the size differs).
    serveA(1_600_000);
    proxy.plan = (_n, req) => { delete req.headers['if-match']; delete req.headers['if-unmodified-since']; return 'pass'; };
    let pinned: { etag?: string; lm?: string } | null = null;
    proxy.headers = (_n, h) => {
      pinned ??= { etag: h.etag, lm: h['last-modified'] };
      h.etag = pinned.etag;
      h['last-modified'] = pinned.lm;
    };
    const got = await readAfterOpen('served.img', { ...FAST, connections: 1 }, replaceByB);
    expect(got).toMatchObject({ code: 'SOURCE_CHANGED', message: expect.stringMatching(/its size is now \d+, not \d+/) });
    // No validators at all, accepted unpinned: the size still catches a replacement of another size.
    serveA(1_600_001);
    proxy.headers = noValidators;
    const unpinned = await readAfterOpen('served.img', { ...FAST, connections: 1, allowUnpinned: true }, replaceByB);
    expect(unpinned).toMatchObject({ code: 'SOURCE_CHANGED', message: expect.stringMatching(/its size is now/) });
  });
});
