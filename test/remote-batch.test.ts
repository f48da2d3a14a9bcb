/**
 * decodeBatch from stored bytes in memory (`stored` + `storedBase` instead of `fd`, the path of
 * remote images): the chunks inside the span decode to the file's bytes, into scratch that is
 * dropped; a chunk whose stored bytes lie outside the span is an IO_ERROR failure naming it
 * (never a read past the buffer); a damaged chunk is CORRUPT_CHUNK as from the file.
 */
import { readFileSync } from 'node:fs';
import { ImageWriter, openImage } from '../index.js';
import { BatchItems } from '../image/_native-batch.js';
import { decodeBatch } from '../native-mmap/index.js';
import { memoryLike, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();
const t = tempDir();
afterAll(() => t.cleanup());

test('decodeBatch with stored bytes: inside the span exact, outside it IO_ERROR, damaged CORRUPT_CHUNK', async () => {
  const data = memoryLike(512, 41); // 2 MiB, 32 chunks of 64 KiB
  const file = t.path('a.img');
  const w = await ImageWriter.create(file, { compress: 'deflate:1', chunkSize: 65536, fsync: false });
  await w.addRegion({ address: 0x500000000n, data, name: 'heap' });
  await w.finish();
  const bytes = readFileSync(file);
  const image = await openImage(file);
  try {
    const table = await image.chunkTable();
    const r = image.regions[0]!;
    const items = new BatchItems(image.chunkSize);
    const offsets: number[] = [];
    for (let j = 0; j < r.chunkCount; j++) {
      const rec = table.get(r.firstChunk + j, image.plainLength(r, j));
      if (rec.storedLength === 0) continue;
      items.add({ region: r, j, number: r.firstChunk + j, rec, plainLength: image.plainLength(r, j) });
      offsets.push(rec.offset, rec.offset + rec.storedLength);
    }
    const words = (items as unknown as { words: BigUint64Array }).words.subarray(0, items.count * 8);
    const job = { codec: image.header.codec, cipher: 0, chunkSize: image.chunkSize, items: words, all: true };
    const first = Math.min(...offsets);
    const last = Math.max(...offsets);
    // The whole data area in memory: nothing fails.
    const whole = await decodeBatch({ ...job, stored: bytes.subarray(first, last), storedBase: first });
    expect(whole.failures).toEqual([]);
    // The first ten chunks with exactly their stored bytes: exact; one byte short: the unit
    // holding the last one is unread (IO_ERROR, each chunk named), never read past the buffer.
    const ten = { ...job, items: words.subarray(0, 80) };
    const tenEnd = offsets[19]!;
    expect((await decodeBatch({ ...ten, stored: bytes.subarray(first, tenEnd), storedBase: first })).failures).toEqual([]);
    const short = await decodeBatch({ ...ten, stored: bytes.subarray(first, tenEnd - 1), storedBase: first });
    expect(short.failures.length).toBeGreaterThan(0);
    expect(short.failures.map((f) => f.item)).toContain(9);
    for (const f of short.failures) {
      expect(f.code).toBe('IO_ERROR');
      expect(f.message).toMatch(/^chunk \d+: reading \d+ stored bytes at offset \d+ failed/);
    }
    // A base past the chunks: every one unread.
    const none = await decodeBatch({ ...job, stored: bytes.subarray(first, last), storedBase: last });
    expect(none.failures.length).toBe(items.count);
    // A damaged stored byte: CORRUPT_CHUNK for that chunk only.
    const bad = Buffer.from(bytes.subarray(first, last));
    bad[Math.floor(bad.length / 3)] ^= 0x10;
    const damaged = await decodeBatch({ ...job, stored: bad, storedBase: first });
    expect(damaged.failures.map((f) => f.code)).toEqual(['CORRUPT_CHUNK']);
  } finally {
    await image.close();
  }
});
