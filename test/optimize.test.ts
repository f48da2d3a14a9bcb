/**
 * optimizeImage and `crimg optimize` (issue 17, spec/FORMAT.md section 4.1): a profile recorded
 * by a lazy restore becomes the output's hot list (record type 9 with optional feature bit 2),
 * the memory stays byte-exact and in chunk-table order (verify passes), a lazy restore of the
 * output reads the list; a profile of another image is refused before anything is written;
 * convert keeps the list for the same chunk size and drops it for another; a hot list that
 * breaks a rule is CORRUPT_VALIDATION at open.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ImageWriter, openImage, optimizeImage, convertImage } from '../index.js';
import { hotListOf } from '../restore/_lazy.js';
import { HOT_LIST_RECORD, OPTIONAL_HOT_LIST, encodeHotList } from '../image/optimize-hot-list.js';
import { crimg, ensureBuilt, json } from './cli-helpers.js';
import { memoryLike, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const KEY = new Uint8Array(32).fill(9);
const CHUNK = 65536;
const t = tempDir();
const data = memoryLike(1024, 23); // 4 MiB: 64 chunks
const BASE = 0x310000000n;
const src = t.path('src.img');

beforeAll(async () => {
  ensureBuilt();
  const w = await ImageWriter.create(src, { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY, chunkSize: CHUNK });
  await w.addRegion({ address: BASE, data, prot: 'rw-', kind: 'heap', name: 'heap' });
  await w.finish();
});
afterAll(() => t.cleanup());

async function recordProfile(file: string, chunks: readonly number[]): Promise<number[]> {
  const image = await openImage(file, { key: KEY });
  const r = await image.restore({ mode: 'lazy', prefetch: false });
  try {
    const m = new Uint8Array(r.regions[0]!.memory!);
    for (const c of chunks) expect(m[c * CHUNK + 7]).toBe(data[c * CHUNK + 7]);
    return r.accessProfile();
  } finally {
    r.release();
    await image.close();
  }
}

test('a recorded profile becomes the hot list; memory, order of stored chunks and verify unchanged', async () => {
  const touched = [40, 41, 42, 5, 63, 0, 17];
  const profile = await recordProfile(src, touched);
  expect(profile).toEqual(touched);
  const out = t.path('hot.img');
  const s = await optimizeImage(src, out, { profile: [...profile, 41, 5], key: KEY });
  expect(s.hotChunks).toBe(7);
  const image = await openImage(out, { key: KEY });
  try {
    expect(image.header.optionalFeatures & OPTIONAL_HOT_LIST).toBe(OPTIONAL_HOT_LIST);
    expect(image.encryption).toBe('aes-256-gcm');
    expect(image.compression).toBe('deflate:1');
    // 40, 41, 42 are one run: 5 runs of 12 bytes.
    expect(image.validation.skipped.find((r) => r.type === HOT_LIST_RECORD)!.payload.length).toBe(5 * 12);
    expect(hotListOf(image)).toEqual(touched);
    const report = await image.verify();
    expect(report.ok).toBe(true);
    expect(Buffer.from(await image.read(BASE, data.length)).equals(data)).toBe(true);
    const r = await image.restore({ mode: 'lazy' });
    try {
      await r.done;
      expect(Buffer.from(r.regions[0]!.memory!).equals(data)).toBe(true);
    } finally {
      r.release();
    }
  } finally {
    await image.close();
  }
});

test('a profile of another image is refused before the output exists; an empty one writes no list', async () => {
  const out = t.path('refused.img');
  await expect(optimizeImage(src, out, { profile: [3, 64], key: KEY })).rejects.toThrow(/profile entry 1 to be a chunk number from 0 to 63, got 64/);
  await expect(optimizeImage(src, out, { profile: [1.5], key: KEY })).rejects.toThrow(RangeError);
  expect(existsSync(out)).toBe(false);
  const none = t.path('none.img');
  expect((await optimizeImage(src, none, { profile: [], key: KEY })).hotChunks).toBe(0);
  const image = await openImage(none, { key: KEY });
  expect(image.header.optionalFeatures & OPTIONAL_HOT_LIST).toBe(0n);
  expect(hotListOf(image)).toEqual([]);
  await image.close();
});

test('convert keeps the hot list for the same chunk size and drops it for another', async () => {
  const hot = t.path('hot-conv.img');
  await optimizeImage(src, hot, { profile: [9, 2, 50], key: KEY });
  const same = t.path('same.img');
  const other = t.path('other.img');
  await convertImage(hot, same, { key: KEY, compress: 'none', encrypt: 'none' });
  await convertImage(hot, other, { key: KEY, chunkSize: CHUNK * 2 });
  const a = await openImage(same);
  expect(hotListOf(a)).toEqual([9, 2, 50]);
  expect(a.header.optionalFeatures & OPTIONAL_HOT_LIST).toBe(OPTIONAL_HOT_LIST);
  expect(a.mappable).toBe(true);
  await a.close();
  const b = await openImage(other, { key: KEY });
  expect(b.header.optionalFeatures & OPTIONAL_HOT_LIST).toBe(0n);
  expect(b.validation.skipped.some((r) => r.type === HOT_LIST_RECORD)).toBe(false);
  await b.close();
});

test('a broken hot list is CORRUPT_VALIDATION at open', async () => {
  const write = async (name: string, payload: Uint8Array): Promise<string> => {
    const f = t.path(name);
    const w = await ImageWriter.create(f, { fsync: false, chunkSize: CHUNK, validation: { skipped: [{ type: HOT_LIST_RECORD, payload }] } });
    await w.addRegion({ address: BASE, data: data.subarray(0, 4 * CHUNK), prot: 'rw-', kind: 'heap', name: 'heap' });
    await w.finish();
    return f;
  };
  const ok = await openImage(await write('ok.img', encodeHotList([3, 0])));
  expect(hotListOf(ok)).toEqual([3, 0]);
  await ok.close();
  const cases: [string, Uint8Array, RegExp][] = [
    ['range.img', encodeHotList([2, 4]), /run 1 names chunks 4 to 4, beyond the image's 4 chunks/],
    ['twice.img', Uint8Array.from([...encodeHotList([1, 2]), ...encodeHotList([2])]), /names chunk 2 twice/],
    ['length.img', encodeHotList([1]).subarray(0, 11), /payload is 11 bytes, not a non-zero multiple of 12/],
    ['zero.img', new Uint8Array(12), /run 0 has count 0/],
  ];
  for (const [name, payload, message] of cases) {
    const f = await write(name, payload);
    await expect(openImage(f)).rejects.toMatchObject({ code: 'CORRUPT_VALIDATION', message });
  }
});

test('crimg optimize IMG --profile P -o OUT writes the list; a bad profile is a usage error', async () => {
  const keyFile = t.path('k.key');
  writeFileSync(keyFile, Buffer.from(KEY).toString('hex') + '\n', { mode: 0o600 });
  const p = t.path('p.json');
  writeFileSync(p, JSON.stringify([12, 13, 1]));
  const out = t.path('cli.img');
  const r = await crimg(['optimize', src, '--profile', p, '-o', out, '--key-file', keyFile, '--json']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(json(r).hotChunks).toBe(3);
  const image = await openImage(out, { key: KEY });
  expect(hotListOf(image)).toEqual([12, 13, 1]);
  expect(Buffer.from(await image.read(BASE, data.length)).equals(data)).toBe(true);
  await image.close();
  // inspect names the list (two runs: 12-13, then 1), never "a record of unknown type".
  const shown = await crimg(['inspect', out, '--key-file', keyFile, '--json']);
  expect(json(shown).validation).toMatchObject({ hotList: { chunks: 3, runs: 2 }, skippedRecords: 0 });
  const text = await crimg(['inspect', out, '--key-file', keyFile]);
  expect(text.stdout).toMatch(/hot list +3 chunks fetched first by a lazy restore \(2 runs\)/);
  expect(text.stdout).not.toMatch(/unknown type/);
  writeFileSync(p, '{"chunks": [1]}');
  const bad = await crimg(['optimize', src, '--profile', p, '-o', t.path('bad.img'), '--key-file', keyFile]);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/is not a JSON array of chunk numbers/);
  writeFileSync(p, '[1, 99]');
  const range = await crimg(['optimize', src, '--profile', p, '-o', t.path('bad.img'), '--key-file', keyFile]);
  expect(range.status).toBe(bad.status);
  expect(range.stderr).toMatch(/got 99/);
  expect(existsSync(t.path('bad.img'))).toBe(false);
  expect(readFileSync(p, 'utf8')).toBe('[1, 99]');
});
