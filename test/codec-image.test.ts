/**
 * Compressed and encrypted images end to end: every codec x suite x engine round trips,
 * engines read each other's images, and each attack gives its code (spec/FORMAT.md 7.3, 7.4).
 * Worker threads load build/ (npm test builds first).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ImageWriter, openImage, CrimgError } from '../index.js';
import { tempDir, memoryLike } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());
const KEY = Buffer.alloc(32, 0x42);
const OTHER = Buffer.alloc(32, 0x43);

async function make(path: string, opts: Record<string, unknown>, data: Buffer[], extra: Record<string, unknown> = {}): Promise<void> {
  const w = await ImageWriter.create(path, { chunkSize: 16384, fsync: false, ...opts, ...extra });
  let addr = 0x7f0000000000n;
  for (const d of data) {
    await w.addRegion({ address: addr, data: d, kind: 'heap', name: `r${addr}` });
    addr += BigInt(Math.ceil(d.length / 4096) * 4096) + 0x10000n;
  }
  await w.finish();
}

const data = [memoryLike(50, 11), Buffer.concat([memoryLike(7, 12), Buffer.alloc(100, 3)])];
const combos = [
  { compress: 'deflate:1' }, { compress: 'deflate:9' },
  { encrypt: 'aes-256-gcm', key: KEY }, { encrypt: 'chacha20-poly1305', key: KEY },
  { compress: 'deflate:6', encrypt: 'aes-256-gcm', key: KEY }, { compress: 'deflate:1', encrypt: 'chacha20-poly1305', key: KEY },
];

describe.each(combos)('image %o', (combo) => {
  // 'node' writes on libuv's pool (the default), 'node-workers' on worker threads.
  test.each([['node', 'portable'], ['node-workers', 'portable'], ['portable', 'node'], ['node-workers', 'node']])('written by %s engine, read by %s', async (we, re) => {
    const p = t.path(`c-${we}.img`);
    const writer = we === 'node' ? { engine: 'node' } : we === 'node-workers' ? { engine: 'node', workers: 2 } : { engine: 'portable', workers: 0 };
    await make(p, combo, data, writer);
    const img = await openImage(p, { key: 'key' in combo ? KEY : undefined, engine: re as 'node' });
    expect(img.mappable).toBe(false);
    const rs = img.regions;
    for (let i = 0; i < data.length; i++) expect((await img.read(rs[i]!.address, data[i]!.length)).equals(data[i]!)).toBe(true);
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });
});

describe('attacks on encrypted images', () => {
  const p = t.path('enc.img');
  let good: Buffer;
  beforeAll(async () => {
    await make(p, { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY }, data);
    good = readFileSync(p);
  });
  const open = (b: Buffer, key: Uint8Array | undefined = KEY) => openImage(b, key ? { key } : {});
  async function chunkOffsets(): Promise<{ off: number; len: number }[]> {
    const img = await open(good);
    const table = await img.chunkTable();
    const out = [];
    for (const r of img.regions) for (let j = 0; j < r.chunkCount; j++) {
      const rec = table.get(r.firstChunk + j, img.plainLength(r, j));
      if (rec.storedLength) out.push({ off: rec.offset, len: rec.storedLength });
    }
    await img.close();
    return out;
  }
  async function failure(b: Buffer): Promise<string | null> {
    try {
      const img = await open(b);
      for (const r of img.regions) await img.read(r.address, Number(r.length));
      const v = await img.verify();
      await img.close();
      return v.ok ? null : v.errors[0]!.code;
    } catch (e) {
      if (!(e instanceof CrimgError)) throw e;
      return e.code;
    }
  }

  test('without a key: header and validation open, index gives KEY_REQUIRED', async () => {
    const img = await openImage(good);
    expect(img.indexLocked).toBe(true);
    expect(img.encryption).toBe('aes-256-gcm');
    expect(() => img.regions).toThrow(/no key was given/);
    await expect(img.verify()).rejects.toMatchObject({ code: 'KEY_REQUIRED' });
  });
  test('wrong key is WRONG_KEY', async () => {
    await expect(open(good, OTHER)).rejects.toMatchObject({ code: 'WRONG_KEY' });
  });
  test('swapped chunk records fail authentication (reordering)', async () => {
    // Swap two chunk-table records of equal stored length and re-seal nothing: the index is
    // sealed, so build the swap on an image whose index we may rewrite: plain checksums hold,
    // the AEAD (nonce and AAD carry the chunk number) must refuse.
    const cs = await chunkOffsets();
    const pair = cs.findIndex((c, i) => i > 0 && c.len === cs[i - 1]!.len);
    const bad = Buffer.from(good);
    if (pair > 0) {
      const [a, b] = [cs[pair - 1]!, cs[pair]!];
      good.copy(bad, a.off, b.off, b.off + b.len);
      good.copy(bad, b.off, a.off, a.off + a.len);
    } else {
      bad[cs[0]!.off]! ^= 1;
    }
    expect(await failure(bad)).not.toBeNull();
  });
  test('a tampered header field is AUTH_FAILED, a tampered index is caught', async () => {
    const bad = Buffer.from(good);
    bad.writeBigUInt64LE(BigInt(Date.now()), 56); // created
    const { xxh64 } = await import('../codec/checksum.js');
    bad.writeBigUInt64LE(xxh64(bad.subarray(0, 120)), 120);
    expect(await failure(bad)).toBe('AUTH_FAILED');
    const bad2 = Buffer.from(good);
    const f = bad2.length - 96;
    const regionOff = Number(bad2.readBigUInt64LE(f + 40));
    bad2[regionOff + 3]! ^= 1;
    expect(['CORRUPT_INDEX', 'AUTH_FAILED']).toContain(await failure(bad2));
  });
  test('a chunk copied from another image with the same key fails authentication', async () => {
    const p2 = t.path('enc2.img');
    await make(p2, { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY }, data);
    const other = readFileSync(p2);
    const cs = await chunkOffsets();
    const bad = Buffer.from(good);
    // same layout (same data, same sizes): splice chunk 0 of the other image, fix no checksum
    other.copy(bad, cs[0]!.off, cs[0]!.off, cs[0]!.off + cs[0]!.len);
    expect(['CORRUPT_CHUNK', 'AUTH_FAILED']).toContain(await failure(bad));
  });
  test('no key material in error messages', async () => {
    const e = await open(good, OTHER).catch((x) => x);
    expect(String(e.message)).not.toContain(OTHER.toString('hex'));
    expect(String(e.message)).not.toContain('CCCC');
  });
  test('passphrase images derive with scrypt and refuse hostile cost', async () => {
    const pp = t.path('pp.img');
    await make(pp, { encrypt: 'chacha20-poly1305', key: { passphrase: 'correct horse' }, scrypt: { log2N: 10, r: 8, p: 1 } }, data);
    const img = await openImage(pp, { key: { passphrase: 'correct horse' } });
    expect((await img.read(img.regions[0]!.address, data[0]!.length)).equals(data[0]!)).toBe(true);
    await img.close();
    await expect(openImage(pp, { key: { passphrase: 'wrong' } })).rejects.toMatchObject({ code: 'WRONG_KEY' });
    await expect(openImage(pp, { key: { passphrase: 'correct horse' }, scryptCaps: { maxMemory: 1024 } })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    writeFileSync(t.path('x'), '');
  });
});
