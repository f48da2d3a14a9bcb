/**
 * `crimg dump`, `extract`, `stats`, `diff` and `convert` against the library's own reads.
 * Runs the built binary: `npm test` builds first; run alone, ensureBuilt() rebuilds if stale.
 */
import { readFileSync } from 'node:fs';
import { openImage } from '../index.js';
import { tempDir } from './helpers.js';
import { crimg, demoImage, ensureBuilt, json, HEAP_AT, STACK_AT } from './cli-helpers.js';

const t = tempDir();
const img = t.path('demo.img');
let heap: Buffer;
let stack: Buffer;

beforeAll(async () => {
  ensureBuilt();
  ({ heap, stack } = await demoImage(img));
});
afterAll(() => t.cleanup());

const hex = (v: bigint): string => '0x' + v.toString(16);

describe('crimg dump', () => {
  test('hexdump lines: address, 16 bytes in two groups, ASCII', async () => {
    const r = await crimg(['dump', img, '--address', hex(HEAP_AT), '--length', '20']);
    expect(r.status).toBe(0);
    const first = heap.subarray(0, 16);
    const bytes = [...first].map((b) => b.toString(16).padStart(2, '0'));
    expect(r.stdout.split('\n')[0]).toBe(`00007f0000000000  ${bytes.slice(0, 8).join(' ')}  ${bytes.slice(8).join(' ')}  |Hello, crimg!${[...first.subarray(13)].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('')}|`);
    // The short last line keeps the ASCII column aligned.
    const lines = r.stdout.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[1]!.indexOf('|')).toBe(lines[0]!.indexOf('|'));
    expect(lines[1]!.startsWith('00007f0000000010  ')).toBe(true);
  });

  test('repeated lines collapse to "*" (the last line is always shown); --all shows them', async () => {
    const [squeezed, all] = await Promise.all([
      crimg(['dump', img, '-a', hex(STACK_AT + 3n * 4096n), '-n', '100']),
      crimg(['dump', img, '-a', hex(STACK_AT + 3n * 4096n), '-n', '100', '--all']),
    ]);
    expect(squeezed.stdout.split('\n')).toEqual([
      `00007f0000113000  ${'41 '.repeat(8)} ${'41 '.repeat(8)} |${'A'.repeat(16)}|`,
      '*',
      `00007f0000113060  41 41 41 41 ${' '.repeat(3 * 12 + 1)} |AAAA|`,
      '',
    ]);
    expect(all.stdout.split('\n')).toHaveLength(8);
  });

  test('--raw writes the bytes; an unmapped address fails with NOT_MAPPED', async () => {
    const [raw, bad] = await Promise.all([
      crimg(['dump', img, '-a', hex(HEAP_AT + 4000n), '-n', '0x2000', '--raw']),
      crimg(['dump', img, '-a', '0x1000']),
    ]);
    expect(raw.status).toBe(0);
    expect(raw.stdoutBytes.equals(heap.subarray(4000, 4000 + 0x2000))).toBe(true);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^crimg: NOT_MAPPED: address 0x1000 is not in any region/);
  });
});

describe('crimg extract', () => {
  test('a region, an address range, and a gap', async () => {
    const [r0, r2, range, gap] = await Promise.all([
      crimg(['extract', img, '--region', '0', '-o', t.path('r0.bin')]),
      crimg(['extract', img, '--region', '2', '-o', t.path('r2.bin'), '--quiet']),
      crimg(['extract', img, '--address', hex(HEAP_AT + 5000n), '--length', '40000', '-o', t.path('range.bin')]),
      crimg(['extract', img, '--region', '1', '-o', t.path('gap.bin')]),
    ]);
    expect(r0.status).toBe(0);
    expect(r0.stdout).toBe(`extracted 0x7f0000000000-0x7f0000028000 (160 KiB) to ${t.path('r0.bin')}\n`);
    expect(r2.stdout).toBe('');
    expect(range.status).toBe(0);
    const image = await openImage(img);
    expect(readFileSync(t.path('r0.bin')).equals(await image.read(HEAP_AT, heap.length))).toBe(true);
    expect(readFileSync(t.path('r2.bin')).equals(stack)).toBe(true);
    expect(readFileSync(t.path('range.bin')).equals(await image.read(HEAP_AT + 5000n, 40000))).toBe(true);
    await image.close();
    expect(gap.status).toBe(1);
    expect(gap.stderr).toBe('crimg: NOT_MAPPED: region 1 (guard) is a gap, which holds no data\n');
  });
});

describe('crimg stats', () => {
  test('numbers add up per region, per kind and in total', async () => {
    interface Usage { mapped: number; stored: number; zero: number; ratio: number; chunks: { total: number; zero: number; raw: number; encoded: number; encrypted: number } }
    const r = await crimg(['stats', img, '--json']);
    expect(r.status).toBe(0);
    const s = json<{ regions: (Usage & { index: number; kind: string })[]; kinds: (Usage & { kind: string; regions: number })[]; totals: Usage & { regions: number } }>(r);
    const image = await openImage(img);
    expect(s.regions.map((x) => x.index)).toEqual([0, 2]);
    for (const x of s.regions) {
      const region = image.regions[x.index]!;
      expect(x.mapped).toBe(Number(region.length));
      expect(x.stored).toBe(Number(region.storedBytes));
      expect(x.chunks.total).toBe(region.chunkCount);
      expect(x.chunks.zero).toBe(region.zeroChunks);
      expect(x.chunks.zero + x.chunks.raw + x.chunks.encoded).toBe(x.chunks.total);
      expect(x.chunks.encrypted).toBe(0);
      expect(x.ratio).toBeCloseTo(x.stored / x.mapped);
    }
    const sum = (xs: Usage[], f: (u: Usage) => number): number => xs.reduce((a, u) => a + f(u), 0);
    for (const f of [(u: Usage) => u.mapped, (u: Usage) => u.stored, (u: Usage) => u.zero, (u: Usage) => u.chunks.total, (u: Usage) => u.chunks.zero, (u: Usage) => u.chunks.raw]) {
      expect(sum(s.regions, f)).toBe(f(s.totals));
      expect(sum(s.kinds, f)).toBe(f(s.totals));
    }
    expect(s.totals.chunks.total).toBe(image.chunkCount);
    expect(s.totals.mapped).toBe(heap.length + stack.length);
    // Zero bytes are whole zero chunks: 16 KiB each here.
    expect(s.totals.zero).toBe(s.totals.chunks.zero * 16384);
    expect(s.kinds.map((k) => [k.kind, k.regions])).toEqual([['heap', 1], ['stack', 1]]);
    await image.close();

    const text = (await crimg(['stats', img])).stdout;
    expect(text).toMatch(/^by kind$/m);
    expect(text).toMatch(/^ {2}kind\s+regions\s+mapped\s+stored\s+zero\s+ratio\s+chunks\s+zero\s+raw\s+encoded$/m);
    expect(text).toMatch(new RegExp(`^ {2}chunks 11: zero ${s.totals.chunks.zero} \\([\\d.]+%\\), raw ${s.totals.chunks.raw} \\([\\d.]+%\\), encoded 0 \\(0%\\), encrypted 0 \\(0%\\)$`, 'm'));
  });
});

describe('crimg diff', () => {
  test('a changed page is reported as its page range; --exit-code makes differences exit 1', async () => {
    const other = t.path('changed.img');
    await demoImage(other, { editHeap: (h) => { h[5 * 4096 + 7] ^= 1; h[6 * 4096] ^= 1; h[9 * 4096 + 4095] ^= 1; } });
    const [text, j, code, same] = await Promise.all([
      crimg(['diff', img, other]),
      crimg(['diff', img, other, '--json']),
      crimg(['diff', img, other, '--exit-code']),
      crimg(['diff', img, img, '--exit-code']),
    ]);
    expect(text.status).toBe(0);
    expect(text.stdout).toBe([
      `--- ${img}`, `+++ ${other}`,
      '~ region 0x7f0000000000 "java heap": 3 pages differ',
      '    0x7f0000005000-0x7f0000007000 (2 pages)',
      '    0x7f0000009000-0x7f000000a000 (1 page)',
      'images differ', '',
    ].join('\n'));
    expect(json(j)).toEqual({
      a: img, b: other, identical: false, pageSize: 4096, added: [], removed: [], changed: [],
      memory: [{ address: '0x7f0000000000', name: 'java heap', ranges: [
        { start: '0x7f0000005000', end: '0x7f0000007000', pages: 2 },
        { start: '0x7f0000009000', end: '0x7f000000a000', pages: 1 },
      ] }],
    });
    expect(code.status).toBe(1);
    expect(same.status).toBe(0);
    expect(same.stdout).toMatch(/identical: same regions, same memory\n$/);
  });

  test('regions added, removed and changed', async () => {
    const { ImageWriter } = await import('../index.js');
    const other = t.path('regions.img');
    const w = await ImageWriter.create(other, { chunkSize: 16384, fsync: false });
    await w.addRegion({ address: HEAP_AT, data: heap.subarray(0, 8192), prot: 'r--', kind: 'heap', name: 'java heap' });
    await w.addRegion({ address: 0x7f0000200000n, data: Buffer.alloc(4096, 1), name: 'new' });
    await w.finish();
    const d = json<Record<string, unknown>>(await crimg(['diff', img, other, '--json']));
    expect(d['identical']).toBe(false);
    expect(d['added']).toEqual([{ index: 1, address: '0x7f0000200000', length: 4096, prot: 'rw-', kind: 'anonymous', name: 'new' }]);
    expect((d['removed'] as { name: string }[]).map((r) => r.name)).toEqual(['guard', 'main stack']);
    expect(d['changed']).toEqual([{ address: '0x7f0000000000', a: expect.objectContaining({ length: heap.length, prot: 'rw-' }), b: expect.objectContaining({ length: 8192, prot: 'r--' }), fields: ['length', 'prot'] }]);
    expect(d['memory']).toEqual([]);
  });
});

describe('crimg convert', () => {
  test('plain to plain with another chunk size: same memory, gaps and validation kept', async () => {
    const out = t.path('converted.img');
    const r = await crimg(['convert', img, out, '--chunk-size', '4K']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^converted ${img} to ${out}: 3 regions, \\d+ chunks \\(\\d+ zero\\), 172 KiB mapped`));
    const a = await openImage(img);
    const b = await openImage(out);
    expect(b.chunkSize).toBe(4096);
    expect(b.imageId).not.toBe(a.imageId);
    expect(b.header.created).toBe(a.header.created);
    expect(b.validation).toEqual(a.validation);
    const strip = (r: { address: bigint; length: bigint; prot: string; kind: string; name: string }): unknown => [r.address, r.length, r.prot, r.kind, r.name];
    expect(b.regions.map(strip)).toEqual(a.regions.map(strip));
    expect((await b.read(HEAP_AT, heap.length)).equals(heap)).toBe(true);
    expect((await b.read(STACK_AT, stack.length)).equals(stack)).toBe(true);
    expect((await b.verify()).ok).toBe(true);
    await a.close();
    await b.close();
    const d = await crimg(['diff', img, out, '--exit-code']);
    expect(d.status).toBe(0);
  });
});
