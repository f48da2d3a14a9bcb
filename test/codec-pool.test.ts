/**
 * codec/pool.ts and codec/worker.ts: chunk jobs on worker threads, error propagation,
 * shutdown.
 *
 * Worker threads load built JavaScript (jest's transform does not reach inside a Worker):
 * run `npx tsc -p tsconfig.build.json` (or `npm run build`; `npm test` does it) before this
 * file, or the pool reports that build/codec/worker.js is missing.
 */
import { chunkAad, chunkNonce } from '../codec/aad.js';
import { decodeChunk, encodeChunk, type EncodeParams } from '../codec/chunk.js';
import { ChunkPool, resolveWorkerScript, type DecodeJob } from '../codec/pool.js';
import { CrimgError } from '../format/errors.js';
import { rng } from './codec-fixture.js';


/** Mostly random bytes with some zero and text stretches: slow to compress at level 9. */
function bytes(size: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  for (let off = 0; off < size; off += 4096) {
    const k = r() % 4;
    const end = Math.min(size, off + 4096);
    if (k === 0) continue;
    if (k === 1) for (let i = off; i < end; i++) out[i] = 0x61 + (r() % 4);
    else for (let i = off; i + 4 <= end; i += 4) dv.setUint32(i, r());
  }
  if (out.every((b) => b === 0)) out[0] = 1;
  return out;
}

const dataKey = new Uint8Array(32).fill(0x42);
const imageId = new Uint8Array(16).fill(1);
const headerHash = new Uint8Array(32).fill(2);
const sealed = (n: number, plainLength: number) => ({
  dataKey,
  nonce: chunkNonce(n),
  aad: chunkAad({ imageId, headerHash, chunkNumber: n, regionNumber: 0, plainLength, address: BigInt(n) * 65536n, encoded: false, last: false }),
});

let pool: ChunkPool;
beforeAll(() => {
  resolveWorkerScript(); // a clear error here means: build first
  pool = new ChunkPool({ size: 2 });
});
afterAll(async () => {
  await pool.close();
});

describe('running jobs on workers', () => {
  test('encode and decode give exactly what the inline pipeline gives, for every cipher', async () => {
    for (const cipher of [0, 1, 2] as const) {
      const plain = bytes(65536, 7 + cipher);
      const params: EncodeParams = { codec: 1, level: 1, cipher, ...(cipher ? sealed(3, plain.length) : {}) };
      const inline = encodeChunk(plain, params);
      const r = await pool.encode(plain, params);
      expect(r.flags).toBe(inline.flags);
      expect(r.checksum).toBe(inline.checksum);
      expect(Buffer.from(r.stored).equals(inline.stored)).toBe(true);
      const back = await pool.decode(r.stored, { ...params, flags: r.flags, checksum: r.checksum, plainLength: plain.length });
      expect(Buffer.from(back).equals(plain)).toBe(true);
    }
    expect(pool.threads).toBeGreaterThan(0);
    expect(pool.threads).toBeLessThanOrEqual(2);
  });

  test('a view into a large buffer is copied, not detached; transfer: true hands the buffer over', async () => {
    const big = bytes(1 << 20, 3);
    const view = big.subarray(4096, 4096 + 65536);
    const r = await pool.encode(view, { codec: 1, level: 1, cipher: 0 });
    expect(big.byteLength).toBe(1 << 20);
    expect(r.checksum).toBe(encodeChunk(view, { codec: 1, level: 1, cipher: 0 }).checksum);
    const own = bytes(65536, 4);
    const expected = encodeChunk(own, { codec: 1, level: 1, cipher: 0 }).checksum;
    const t = await pool.encode(own, { codec: 1, level: 1, cipher: 0 }, { transfer: true });
    expect(own.byteLength).toBe(0); // detached: moved to the worker, not copied
    expect(t.checksum).toBe(expected);
  });

  test('a short job overtakes a long one in run()', async () => {
    const long = bytes(12 << 20, 11);
    const short = bytes(4096, 12);
    const p: EncodeParams = { codec: 1, level: 9, cipher: 0 };
    // Start both workers first: a worker's start-up must not be what the short job waits on.
    await Promise.all([pool.encode(short, p), pool.encode(short, p)]);
    const finished: string[] = [];
    await Promise.all([
      pool.encode(long, p).then(() => finished.push('long')),
      pool.encode(short, p).then(() => finished.push('short')),
    ]);
    expect(finished).toEqual(['short', 'long']);
  });
});

describe('errors', () => {
  const plain = bytes(65536, 21);
  const params: EncodeParams = { codec: 1, level: 1, cipher: 2, ...sealed(9, plain.length) };
  const good = encodeChunk(plain, params);

  test('a worker error is re-thrown with the same class, code, message and location', async () => {
    const bad = good.stored.slice();
    bad[10]! ^= 1;
    const job: DecodeJob = {
      op: 'decode',
      stored: bad,
      params: { ...params, flags: good.flags, checksum: good.checksum, plainLength: plain.length, at: { chunk: 9, offset: 4096 } },
    };
    let inline: CrimgError | undefined;
    try {
      decodeChunk(job.stored, job.params);
    } catch (e) {
      inline = e as CrimgError;
    }
    await expect(pool.run(job)).rejects.toMatchObject({ code: 'CORRUPT_CHUNK', chunk: 9, offset: 4096, message: inline!.message });
    await expect(pool.run(job)).rejects.toBeInstanceOf(CrimgError);
    const wrongKey: DecodeJob = { ...job, stored: good.stored, params: { ...job.params, dataKey: new Uint8Array(32) } };
    await expect(pool.run(wrongKey)).rejects.toMatchObject({ code: 'AUTH_FAILED', chunk: 9 });
    await expect(pool.encode(plain, { codec: 1, level: 0, cipher: 0 })).rejects.toBeInstanceOf(RangeError);
  });

  test('a worker that cannot start rejects its jobs instead of hanging', async () => {
    const broken = new ChunkPool({ size: 1, workerScript: new URL('file:///nonexistent/crimg-worker.js') });
    await expect(broken.encode(bytes(4096, 1), { codec: 0, level: 0, cipher: 0 })).rejects.toThrow(/chunk worker/);
    await broken.close();
  });
});

describe('inline mode and shutdown', () => {
  test('size 0 runs jobs on the calling thread with the same results', async () => {
    const inline = new ChunkPool({ size: 0 });
    const plain = bytes(65536, 8);
    const r = await inline.encode(plain, { codec: 1, level: 1, cipher: 0 });
    expect(r.checksum).toBe(encodeChunk(plain, { codec: 1, level: 1, cipher: 0 }).checksum);
    await expect(inline.encode(plain, { codec: 1, level: 0, cipher: 0 })).rejects.toBeInstanceOf(RangeError);
    expect(inline.threads).toBe(0);
    await inline.close();
  });

  test('inlineBelow keeps tiny jobs on the calling thread', async () => {
    const p = new ChunkPool({ size: 1, inlineBelow: 8192 });
    await p.encode(bytes(4096, 1), { codec: 1, level: 1, cipher: 0 });
    expect(p.threads).toBe(0);
    await p.encode(bytes(65536, 1), { codec: 1, level: 1, cipher: 0 });
    expect(p.threads).toBe(1);
    await p.close();
  });

  test('close() waits for submitted jobs, ends the threads, and refuses later jobs', async () => {
    const p = new ChunkPool({ size: 2 });
    const pending = [p.encode(bytes(1 << 20, 1), { codec: 1, level: 6, cipher: 0 }), p.encode(bytes(1 << 20, 2), { codec: 1, level: 6, cipher: 0 })];
    expect(p.threads).toBe(2);
    const closing = p.close();
    expect(p.close()).toBe(closing);
    const results = await Promise.all(pending);
    expect(results.every((r) => r.stored.length > 0)).toBe(true);
    await closing;
    expect(p.threads).toBe(0);
    await expect(p.encode(bytes(4096, 1), { codec: 0, level: 0, cipher: 0 })).rejects.toThrow(/closed/);
  });

  test('misuse', () => {
    expect(() => new ChunkPool({ size: -1 })).toThrow(RangeError);
    expect(() => new ChunkPool({ size: 1.5 })).toThrow(RangeError);
  });
});
