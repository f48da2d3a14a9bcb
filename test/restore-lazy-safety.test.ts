/**
 * Lazy restore's descriptors, readers and numbers (restore/_lazy.ts, native-mmap/src/uffd.cc):
 * a collected session writes into no file that reused its eventfd's number; the image may be
 * closed (and its number reused) before `done`; a failure found after close keeps its own code;
 * the JavaScript reader of a non-fd source is let go once the session ends; a child's profile and
 * failures name the child's chunk numbers; a release while a read() is pending rejects `done` as
 * released, not as an I/O error. And the same for decodeBatch (copy restore, verify): its file
 * closed, its number reused, while the job reads.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { ImageWriter, openImage } from '../index.js';
import { decodeBatch } from '../native-mmap/index.js';
import type { RandomAccessSource } from '../image/source.js';
import { flipByte, memoryLike, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const t = tempDir();
const CHUNK = 16384;
const data = memoryLike(1024, 41); // 4 MiB: 256 chunks
const file = t.path('plain.img');

beforeAll(async () => {
  const w = await ImageWriter.create(file, { fsync: false, chunkSize: CHUNK });
  await w.addRegion({ address: 0x340000000n, data, prot: 'rw-', kind: 'heap', name: 'heap' });
  await w.finish();
});
afterAll(() => t.cleanup());

/** Runs `script` (ESM; @LIB@ is the built library, @FILE@ the image, @DIR@ a scratch folder) in a child node with --expose-gc. */
function child(script: string): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const js = t.path(`child-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(js, script.replaceAll('@LIB@', path.join(ROOT, 'build', 'index.js'))
    .replaceAll('@FILE@', file).replaceAll('@DIR@', t.dir));
  const r = spawnSync(process.execPath, ['--expose-gc', js], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

test('a released session, once collected, writes into no file that reused its descriptors', () => {
  const out = child(`
import { openImage } from '@LIB@';
import { openSync, writeSync, closeSync, readFileSync } from 'node:fs';
const image = await openImage('@FILE@');
let r = await image.restore({ mode: 'lazy' });
await r.done;
r.release();
r = null;
const fds = [];
for (let i = 0; i < 6; i++) { const fd = openSync('@DIR@/victim' + i, 'w'); writeSync(fd, 'victim ' + i + '\\n'); fds.push(fd); }
for (let i = 0; i < 10; i++) { globalThis.gc(); await new Promise((res) => setTimeout(res, 10)); }
for (const fd of fds) closeSync(fd);
for (let i = 0; i < 6; i++) console.log(JSON.stringify(readFileSync('@DIR@/victim' + i, 'latin1')));
await image.close();
`);
  expect(out.stderr).toBe('');
  expect(out.stdout.trim().split('\n')).toEqual([0, 1, 2, 3, 4, 5].map((i) => JSON.stringify(`victim ${i}\n`)));
  expect(out.status).toBe(0);
});

test('the image closed before done, its number reused by another file: every page exact, done resolves', () => {
  writeFileSync(t.path('other.bin'), memoryLike(1536, 42));
  const out = child(`
import { openImage } from '@LIB@';
import { openSync, closeSync, readFileSync } from 'node:fs';
const data = readFileSync('@FILE@');
const image = await openImage('@FILE@');
const r = await image.restore({ mode: 'lazy', prefetch: false });
const before = image.source.fd;
await image.close();
const other = openSync('@DIR@/other.bin', 'r');
console.log('reused', other === before);
const mem = new Uint8Array(r.regions[0].memory);
const copy = Buffer.from(mem);
await r.done.then(() => console.log('done ok'), (e) => console.log('done', e.code));
const ref = await openImage('@FILE@');
console.log('exact', copy.equals(Buffer.from(await ref.read(0x340000000n, mem.length))));
await ref.close();
closeSync(other);
r.release();
`);
  expect(out.stderr).toBe('');
  expect(out.signal).toBeNull();
  expect(out.stdout).toContain('reused true');
  expect(out.stdout).toContain('done ok');
  expect(out.stdout).toContain('exact true');
  expect(out.status).toBe(0);
});

test('a damaged chunk found after the image is closed rejects done with its own code', async () => {
  const bad = t.path('bad.img');
  writeFileSync(bad, readFileSync(file));
  const probe = await openImage(bad);
  const rec = (await probe.chunkTable()).get(200, CHUNK);
  await probe.close();
  flipByte(bad, rec.offset + 100);
  const image = await openImage(bad);
  const r = await image.restore({ mode: 'lazy' });
  await image.close(); // before the prefetch threads reach chunk 200
  try {
    await expect(r.done).rejects.toMatchObject({ code: 'CORRUPT_CHUNK', chunk: 200, message: expect.stringMatching(/installed nothing/) });
    const m = new Uint8Array(r.regions[0]!.memory!);
    expect(Buffer.from(m.subarray(0, 200 * CHUNK)).equals(data.subarray(0, 200 * CHUNK))).toBe(true);
    expect(Buffer.from(m.subarray(201 * CHUNK)).equals(data.subarray(201 * CHUNK))).toBe(true);
  } finally {
    r.release();
  }
});

test('25 lazy restores of images opened from bytes let each image go (arrayBuffers bounded)', () => {
  const out = child(`
import { openImage } from '@LIB@';
import { readFileSync } from 'node:fs';
const file = readFileSync('@FILE@');
for (let i = 0; i < 25; i++) {
  const image = await openImage(new Uint8Array(file));
  const r = await image.restore({ mode: 'lazy' });
  await r.done;
  r.release();
  await image.close();
}
for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((res) => setTimeout(res, 20)); }
console.log(JSON.stringify({ mib: process.memoryUsage().arrayBuffers / 2 ** 20 }));
`);
  expect(out.stderr).toBe('');
  // Each image is 4 MiB: kept alive by its reader, 25 of them would be 100 MiB.
  expect(JSON.parse(out.stdout).mib).toBeLessThan(24);
  expect(out.status).toBe(0);
});

test("a child's profile and failures name the child's chunk numbers, not its parent's", async () => {
  const A = 0x7f0000000000n;
  const B = 0x7f1000000000n;
  const a = memoryLike(16, 43);
  const b = memoryLike(16, 44);
  const parent = t.path('p.img');
  const pw = await ImageWriter.create(parent, { fsync: false, chunkSize: 4096 });
  await pw.addRegion({ address: 0x7e0000000000n, data: memoryLike(16, 45), kind: 'heap' }); // parent chunks 0..15
  await pw.addRegion({ address: A, data: a, kind: 'heap' }); // 16..31
  await pw.addRegion({ address: B, data: b, kind: 'heap' }); // 32..47
  await pw.finish();
  const childFile = t.path('c.img');
  const cw = await ImageWriter.create(childFile, { fsync: false, chunkSize: 4096, parent });
  await cw.addRegion({ address: A, data: memoryLike(16, 46), kind: 'heap' }); // child chunks 0..15
  await cw.addRegion({ address: B, data: b, kind: 'heap' }); // 16..31, IN_PARENT (the parent's 32..47)
  await cw.finish();
  // A chunk of region B stored in the parent (memoryLike has zero pages, stored as ZERO).
  const ptable = await (await openImage(parent)).chunkTable();
  let j = 0;
  while (ptable.get(32 + j, 4096).storedLength === 0) j++;
  const image = await openImage(childFile);
  expect(image.regions[1]!.firstChunk).toBe(16);
  const r = await image.restore({ mode: 'lazy', prefetch: false });
  try {
    expect(new Uint8Array(r.regions[1]!.memory!)[j * 4096 + 7]).toBe(b[j * 4096 + 7]);
    expect(r.accessProfile()).toEqual([16 + j]);
  } finally {
    r.release();
    await image.close();
  }
  // The parent's chunk 32 + j (the child's 16 + j) damaged: done names 16 + j.
  flipByte(parent, ptable.get(32 + j, 4096).offset + 10);
  const image2 = await openImage(childFile);
  const r2 = await image2.restore({ mode: 'lazy' });
  try {
    await expect(r2.done).rejects.toMatchObject({ chunk: 16 + j, message: expect.stringMatching(new RegExp(`^chunk ${16 + j} of the child`)) });
  } finally {
    r2.release();
    await image2.close();
  }
});

test('a release while a read() is pending rejects done as released, not as an I/O error', async () => {
  const bytes = readFileSync(file);
  const probe = await openImage(bytes);
  const table = await probe.chunkTable();
  const last = table.get(255, CHUNK);
  // The last 2 MiB span (chunks 128..255) goes in whole when half of it or more is stored.
  let stored = 0;
  for (let c = 128; c < 256; c++) if (table.get(c, CHUNK).storedLength > 0) stored++;
  await probe.close();
  let hung = false;
  const source: RandomAccessSource = {
    size: bytes.length,
    name: 'slow',
    read: (offset, length) => {
      if (offset === last.offset) {
        hung = true;
        return new Promise(() => {});
      }
      return Promise.resolve(new Uint8Array(bytes.subarray(offset, offset + length)));
    },
    close: async () => {},
  };
  const image = await openImage(source);
  const r = await image.restore({ mode: 'lazy', prefetchThreads: 1 });
  // The hung read holds its chunk, or, installed whole in a huge page, its 2 MiB span's 128.
  const held = r.lazyStats()!.spans > 0 && stored * 2 >= 128 ? (2 << 20) / CHUNK : 1;
  for (let i = 0; i < 500 && !(hung && r.lazyStats()!.settled === 256 - held); i++) await new Promise((res) => setTimeout(res, 10));
  expect(hung).toBe(true);
  expect(r.lazyStats()!.settled).toBe(256 - held);
  r.release();
  await expect(r.done).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/released before every chunk/) });
  await image.close();
});

test('decodeBatch reads its own dup: the file closed and its number reused while the job runs', async () => {
  const image = await openImage(file);
  const table = await image.chunkTable();
  const region = image.regions[0]!;
  const items = new BigUint64Array(256 * 8);
  for (let c = 0; c < 256; c++) {
    const rec = table.get(c, CHUNK);
    items.set([BigInt(rec.offset), BigInt(c), region.address + BigInt(c * CHUNK), rec.checksum,
      BigInt(rec.storedLength) | (BigInt(CHUNK) << 32n), BigInt(rec.flags) | (c === 255 ? 1n << 16n : 0n) | (BigInt(region.index) << 32n),
      0xffffffffffffffffn, 0n], c * 8);
  }
  const h = image.header;
  await image.close();
  writeFileSync(t.path('other2.bin'), memoryLike(1536, 47));
  const fd = openSync(file, 'r');
  const job = decodeBatch({ fd, codec: h.codec, cipher: h.cipher, chunkSize: h.chunkSize, items, all: true, threads: 1 });
  closeSync(fd);
  const other = openSync(t.path('other2.bin'), 'r');
  try {
    expect(other).toBe(fd);
    expect((await job).failures).toEqual([]);
  } finally {
    closeSync(other);
  }
});

test('without poison, faults on a failed chunk wait until release: not woken into a loop of faults', async () => {
  const bad = t.path('bad-nopoison.img');
  writeFileSync(bad, readFileSync(file));
  const probe = await openImage(bad);
  const rec = (await probe.chunkTable()).get(200, CHUNK);
  await probe.close();
  flipByte(bad, rec.offset + 100);
  // Two write(2) calls at once from the failed chunk's pages, on libuv's threads (kernel-mode faults
  // wait on the descriptor; the JavaScript thread stays free to count the faults).
  const js = t.path('nopoison.mjs');
  writeFileSync(js, `
import { openImage } from '${path.join(ROOT, 'build', 'index.js')}';
import { openSync, write } from 'node:fs';
const image = await openImage(${JSON.stringify(bad)});
const r = await image.restore({ mode: 'lazy', prefetch: false });
const m = new Uint8Array(r.regions[0].memory);
void m[0];
// Each into its own file: writes to one file descriptor take turns (its position lock).
const sink = (i) => openSync(${JSON.stringify(t.dir)} + '/sink' + i, 'w');
const writes = [0, 1].map((i) => new Promise((res) => write(sink(i), m.subarray(200 * ${CHUNK}, 201 * ${CHUNK}), (e) => res(e ? e.code : 'ok'))));
for (let i = 0; i < 200 && r.lazyStats().settled < 2; i++) await new Promise((res) => setTimeout(res, 5));
await new Promise((res) => setTimeout(res, 300));
const s = r.lazyStats();
console.log(JSON.stringify({ poison: s.poison, settled: s.settled, faults: s.faults }));
r.release();
console.log(JSON.stringify(await Promise.all(writes)));
await image.close();
`);
  const out = spawnSync(process.execPath, [js], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, CRIMG_UFFD_POISON: '0' } });
  expect(out.stderr).toBe('');
  const [stats, writes] = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
  expect(stats.poison).toBe(false);
  expect(stats.settled).toBe(2); // chunk 0 and the failed chunk 200
  // One fault per chunk 0 page touched and one per waiting write; a loop makes thousands.
  expect(stats.faults).toBeLessThan(10);
  // Released: the waiting writes fail (unmapped), never read zeros.
  expect(writes).toEqual(['EFAULT', 'EFAULT']);
  expect(out.status).toBe(0);
});
