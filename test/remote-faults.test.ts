/**
 * Failure behaviour of remote images, through a fault-injecting proxy (node:http) in front of a
 * real nginx on loopback: connection resets, 503 answers, bodies cut short, stalled requests,
 * a server without range support, and the object replaced while it is read. Every run ends in
 * the exact bytes of the version opened or in a coded error (IO_ERROR, TRUNCATED,
 * SOURCE_CHANGED): never other bytes, never a CORRUPT_* from a mix of two versions.
 */
import { copyFileSync, renameSync, utimesSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { ImageWriter, openImage } from '../index.js';
import { RemoteSource, type RemoteOptions } from '../image/index.js';
import { CrimgError } from '../format/errors.js';
import { memoryLike, prng, tempDir } from './helpers.js';
import { startFaultProxy, startNginx, type FaultProxy, type Fault, type Nginx } from './remote-servers.js';

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
});

/** Opens a.img through the proxy and reads its region: the bytes, or the error. */
async function readThrough(name: string, options: RemoteOptions = FAST): Promise<Buffer | CrimgError> {
  try {
    const src = await RemoteSource.open(`${proxy.base}/${name}`, options);
    try {
      const image = await openImage(src);
      try {
        return Buffer.from(await image.read(BASE, image.regions[0]!.length > 0n ? Number(image.regions[0]!.length) : 0));
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
