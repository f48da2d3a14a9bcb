/**
 * The command line on child images (issue 19, spec/FORMAT.md section 8.3): inspect lists the
 * chain, verify covers it and names the image of a problem, flatten writes a standalone image,
 * diff of a child and its parent, extract; a missing parent is PARENT_REQUIRED until --parent
 * names it.
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { ImageWriter, openReader } from '../index.js';
import { crimgInProcess as crimg } from './cli-helpers.js';
import { flipByte, memoryLike, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const HEAP = 0x7f0000000000n;
const base = t.path('base.img');
const child = t.path('child.img');
let heap: Buffer;
let changed: Buffer;

beforeAll(async () => {
  heap = memoryLike(64, 7);
  changed = Buffer.from(heap);
  changed.fill(0x33, 10 * 4096, 11 * 4096);
  for (const [out, data, parent] of [[base, heap, undefined], [child, changed, base]] as const) {
    const w = await ImageWriter.create(out, { fsync: false, compress: 'deflate', ...(parent ? { parent } : {}) });
    await w.addRegion({ address: HEAP, data, kind: 'heap', name: 'heap' });
    await w.finish();
  }
});

test('inspect shows the chain; verify checks it; flatten, diff and extract work on a child', async () => {
  const baseImg = await openReader(base);
  const baseId = baseImg.imageId;
  await baseImg.close();
  const ins = await crimg(['inspect', child]);
  expect(ins.status).toBe(0);
  expect(ins.stdout).toContain('parent chain (1 image below)');
  expect(ins.stdout).toContain(`1. ${baseId} at ${base}: ok`);
  const insJson = JSON.parse((await crimg(['inspect', child, '--json'])).stdout) as { chain: { level: number; imageId: string; status: string }[] };
  expect(insJson.chain).toEqual([{ level: 1, imageId: baseId, location: base, status: 'ok' }]);
  const plain = JSON.parse((await crimg(['inspect', base, '--json'])).stdout) as Record<string, unknown>;
  expect('chain' in plain).toBe(false);

  const v = await crimg(['verify', child]);
  expect([v.status, v.stdout]).toEqual([0, expect.stringContaining('ok: ')]);

  const flat = t.path('flat.img');
  const f = await crimg(['flatten', child, '-o', flat]);
  expect([f.status, f.stderr]).toEqual([0, '']);
  expect(f.stdout).toContain(`flattened ${child} to ${flat}`);
  const flatImg = await openReader(flat);
  expect(flatImg.isChild).toBe(false);
  expect((await flatImg.read(HEAP, changed.length)).equals(changed)).toBe(true);
  await flatImg.close();

  const d = JSON.parse((await crimg(['diff', child, base, '--json'])).stdout) as { memory: { ranges: { start: string; end: string }[] }[] };
  expect(d.memory.map((m) => m.ranges)).toEqual([[{ start: `0x${(HEAP + 10n * 4096n).toString(16)}`, end: `0x${(HEAP + 11n * 4096n).toString(16)}`, pages: 1 }]]);

  const st = await crimg(['stats', child]);
  expect(st.stdout).toMatch(/chunks 16: zero \d+ \(.*\), raw 0 \(0%\), encoded 1 \(.*\), encrypted 0 \(0%\), in parent \d+ /);
  const stJson = JSON.parse((await crimg(['stats', child, '--json'])).stdout) as { totals: { chunks: { total: number; zero: number; encoded: number; inParent: number } } };
  const c = stJson.totals.chunks;
  expect(c.zero + c.encoded + c.inParent).toBe(c.total);
  expect('inParent' in (JSON.parse((await crimg(['stats', base, '--json'])).stdout) as { totals: { chunks: object } }).totals.chunks).toBe(false);

  const out = t.path('heap.bin');
  const x = await crimg(['extract', child, '--region', '0', '-o', out]);
  expect([x.status, x.stderr]).toEqual([0, '']);
  expect(readFileSync(out).equals(changed)).toBe(true);
});

test('a missing parent is PARENT_REQUIRED (exit 1) until --parent names it; a damaged one is reported as parent 1', async () => {
  const moved = t.path('elsewhere');
  mkdirSync(moved, { recursive: true });
  renameSync(base, `${moved}/base.img`);
  try {
    const v = await crimg(['verify', child]);
    expect(v.status).toBe(1);
    expect(v.stdout).toContain('PARENT_REQUIRED in parent 1');
    const out = t.path('never.img');
    const f = await crimg(['flatten', child, '-o', out]);
    expect(f.status).toBe(1);
    expect(f.stderr).toMatch(/^crimg: PARENT_REQUIRED: /);
    expect(existsSync(out)).toBe(false);
    const ins = await crimg(['inspect', child]);
    expect(ins.status).toBe(0);
    expect(ins.stdout).toContain('PARENT_REQUIRED');
    const given = await crimg(['verify', child, '--parent', `${moved}/base.img`]);
    expect(given.status).toBe(0);
    // A damaged chunk of the parent: verify of the child names it as parent 1's.
    const r = await openReader(`${moved}/base.img`);
    const rec = (await r.chunkTable()).get(1, r.chunkSize);
    await r.close();
    flipByte(`${moved}/base.img`, rec.offset + 3);
    const bad = await crimg(['verify', child, '--parent', `${moved}/base.img`, '--json']);
    expect(bad.status).toBe(1);
    const j = JSON.parse(bad.stdout) as { errors: { code: string; image?: number; chunk?: number }[] };
    expect(j.errors).toEqual([expect.objectContaining({ code: 'CORRUPT_CHUNK', image: 1, chunk: 1 })]);
    const text = await crimg(['verify', child, '--parent', `${moved}/base.img`]);
    expect(text.stdout).toMatch(/CORRUPT_CHUNK in parent 1 \([0-9a-f]{32}\) region 0 chunk 1/);
  } finally {
    renameSync(`${moved}/base.img`, base);
  }
});
