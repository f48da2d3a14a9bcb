/**
 * verify() through the native batch decoder (image/_native-batch.ts): the same report, in the
 * same order and with the same words, as the JavaScript path, for good and damaged images of
 * every codec and cipher.
 */
import { openImage, ImageWriter, type WriterOptions } from '../index.js';
import { CHUNK_ZERO } from '../format/constants.js';
import { nativeBatchRefusal } from '../image/_native-batch.js';
import { flipByte, memoryLike, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const key = new Uint8Array(32).fill(3);
const BASE = 0x7d0000000000n;

async function write(path: string, options: WriterOptions, seed: number): Promise<void> {
  const w = await ImageWriter.create(path, { chunkSize: 16384, fsync: false, ...options });
  await w.addRegion({ address: BASE, data: memoryLike(160, seed), prot: 'rw-', kind: 'heap', name: 'heap' });
  await w.addRegion({ address: BASE + 0x200000n, data: memoryLike(33, seed + 1), prot: 'r--', kind: 'anonymous', name: 'tail' });
  await w.finish();
}

/** verify() with the native decoder on or off: the report, and whether native was used. */
async function report(path: string, options: WriterOptions, native: boolean): Promise<unknown> {
  const before = process.env.CRIMG_NATIVE_DECODE;
  process.env.CRIMG_NATIVE_DECODE = native ? '1' : '0';
  try {
    const image = await openImage(path, options.key ? { key: options.key } : {});
    try {
      expect(nativeBatchRefusal(image) === null).toBe(native);
      const progress: number[] = [];
      const r = await image.verify({ onProgress: (done) => progress.push(done) });
      expect(progress[progress.length - 1]).toBe(r.chunksChecked);
      return r;
    } finally {
      await image.close();
    }
  } finally {
    if (before === undefined) delete process.env.CRIMG_NATIVE_DECODE;
    else process.env.CRIMG_NATIVE_DECODE = before;
  }
}

/** File offsets of every `step`-th stored chunk. */
async function storedOffsets(path: string, options: WriterOptions, step: number): Promise<number[]> {
  const image = await openImage(path, options.key ? { key: options.key } : {});
  try {
    const table = await image.chunkTable();
    const out: number[] = [];
    let k = 0;
    for (const r of image.regions) {
      for (let j = 0; j < r.chunkCount; j++) {
        const rec = table.get(r.firstChunk + j, image.plainLength(r, j));
        if (!(rec.flags & CHUNK_ZERO) && k++ % step === 0) out.push(rec.offset + Math.min(7, rec.storedLength - 1));
      }
    }
    return out;
  } finally {
    await image.close();
  }
}

describe.each([
  { name: 'none', options: {} as WriterOptions },
  { name: 'deflate:1', options: { compress: 'deflate:1' } as WriterOptions },
  { name: 'deflate:1 aes-256-gcm', options: { compress: 'deflate:1', encrypt: 'aes-256-gcm', key } as WriterOptions },
  { name: 'none chacha20-poly1305', options: { encrypt: 'chacha20-poly1305', key } as WriterOptions },
  { name: 'zstd:1', options: { compress: 'zstd:1' } as WriterOptions },
  { name: 'zstd:1 aes-256-gcm', options: { compress: 'zstd:1', encrypt: 'aes-256-gcm', key } as WriterOptions },
])('verify of a $name image', ({ name, options }) => {
  const path = t.path(`${name.replace(/[^a-z0-9]/g, '_')}.img`);

  test('native and JavaScript reports are identical, good and with damaged chunks', async () => {
    await write(path, options, name.length);
    const good = await report(path, options, true);
    expect(good).toMatchObject({ ok: true, errors: [] });
    expect(await report(path, options, false)).toEqual(good);
    for (const at of await storedOffsets(path, options, 5)) flipByte(path, at, 0x10);
    const bad = (await report(path, options, true)) as { ok: boolean; errors: { code: string; chunk: number }[] };
    expect(bad.ok).toBe(false);
    expect(bad.errors.length).toBeGreaterThan(3);
    expect(bad.errors.every((e) => e.code === 'CORRUPT_CHUNK')).toBe(true);
    expect(await report(path, options, false)).toEqual(bad);
  });
});
