/**
 * `crimg inspect` and `crimg verify`, and the error conventions (exit status, one-line errors).
 * Runs the built binary: `npm test` builds first; run alone, ensureBuilt() rebuilds if stale.
 */
import { copyFileSync, openSync, readSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { openImage } from '../index.js';
import { flipByte as flip, tempDir } from './helpers.js';
import { crimg, crimgInProcess, demoImage, ensureBuilt, json, GAP_AT, HEAP_AT, STACK_AT } from './cli-helpers.js';

const t = tempDir();
const img = t.path('demo.img');
let heapLength = 0;

beforeAll(async () => {
  ensureBuilt();
  const { heap } = await demoImage(img);
  heapLength = heap.length;
});
afterAll(() => t.cleanup());


describe('crimg inspect', () => {
  test('human output: header, validation block, region table, totals', async () => {
    const r = await crimg(['inspect', img]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    const has = (re: RegExp): void => expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(re)]));
    has(/^format\s+1\.0$/);
    has(/^image id\s+[0-9a-f]{32}$/);
    has(/^created\s+2025-01-02T03:04:05\.000Z$/);
    has(/^page size\s+4096$/);
    has(/^chunk size\s+16 KiB$/);
    has(/^compression\s+none$/);
    has(/^encryption\s+none$/);
    has(/^mappable\s+yes$/);
    has(/^ {2}producer\s+test 1\.0$/);
    has(/^ {2}architecture\s+x86_64$/);
    has(/^ {2}label\s+engine=jvm-21$/);
    has(/^ {2}bitmap\s+cpu\.features=[0-9a-f]+ \(2 bits: sse2 avx512f\)$/);
    has(/^ {2}metric\s+heap\.used=1234$/);
    has(/^regions \(3\)$/);
    has(/^\s+#\s+address\s+end\s+length\s+prot\s+kind\s+chunks\s+zero\s+stored\s+ratio\s+name$/);
    has(/^\s+0\s+0x7f0000000000\s+0x7f0000028000\s+160 KiB\s+rw-\s+heap\s+10\s+\d+\s+[\d.]+ KiB\s+[\d.]+%\s+java heap$/);
    has(/^\s+1\s+0x7f0000100000\s+0x7f0000110000\s+64 KiB\s+---\s+gap\s+-\s+-\s+-\s+-\s+guard$/);
    has(/^\s+2\s+0x7f0000110000\s+0x7f0000113064\s+12.1 KiB\s+rw-\s+stack\s+1\s+0\s+12.1 KiB\s+100%\s+main stack$/);
    has(/^ {2}mapped\s+172 KiB \(176228 bytes\)$/);
    // The table's columns line up: every row's address ends where the header's does.
    const header = lines.find((l) => /#\s+address/.test(l))!;
    const row = lines.find((l) => l.includes('0x7f0000100000'))!;
    expect(row.indexOf('0x7f0000100000') + 14).toBe(header.indexOf('address') + 7);
  });

  test('--json: every field with its type', async () => {
    const d = json<Record<string, unknown>>(await crimg(['inspect', img, '--json']));
    expect(d).toMatchObject({
      version: '1.0', created: '2025-01-02T03:04:05.000Z', pageSize: 4096, chunkSize: 16384,
      compression: 'none', encryption: 'none', mappable: true, layout: 'compact', indexEncrypted: false, indexLocked: false,
    });
    expect(d['imageId']).toMatch(/^[0-9a-f]{32}$/);
    expect(typeof d['fileSize']).toBe('number');
    expect(d['validation']).toEqual({
      producerName: 'test', producerVersion: '1.0', architecture: 'x86_64', pageSize: 4096,
      labels: { engine: 'jvm-21' }, bitmaps: { 'cpu.features': expect.stringMatching(/^([0-9a-f]{2})+$/) },
      metrics: { 'heap.used': 1234 }, skippedRecords: 0,
    });
    const regions = d['regions'] as Record<string, unknown>[];
    expect(regions).toHaveLength(3);
    for (const r of regions) {
      expect(r).toEqual({
        index: expect.any(Number), address: expect.stringMatching(/^0x[0-9a-f]+$/), end: expect.stringMatching(/^0x[0-9a-f]+$/),
        length: expect.any(Number), prot: expect.stringMatching(/^[r-][w-][x-]$/), kind: expect.any(String), name: expect.any(String),
        gap: expect.any(Boolean), storedBytes: expect.any(Number), zeroChunks: expect.any(Number), chunkCount: expect.any(Number), ratio: expect.any(Number),
        shared: false, fileOffset: null, // region flags (section 8.1): this image records none
      });
    }
    expect(regions.map((r) => r['address'])).toEqual(['0x' + HEAP_AT.toString(16), '0x' + GAP_AT.toString(16), '0x' + STACK_AT.toString(16)]);
    expect(regions[0]).toMatchObject({ length: heapLength, kind: 'heap', name: 'java heap', gap: false, chunkCount: 10 });
    expect(regions[1]).toMatchObject({ length: 65536, prot: '---', kind: 'gap', gap: true, chunkCount: 0, storedBytes: 0 });
    const image = await openImage(img);
    const totals = d['totals'] as Record<string, number>;
    expect(totals).toEqual({
      regions: 3, gaps: 1, mapped: heapLength + 12388, reserved: 65536,
      stored: image.regions.reduce((s, r) => s + Number(r.storedBytes), 0),
      zeroChunks: image.regions.reduce((s, r) => s + r.zeroChunks, 0), chunks: image.chunkCount,
      ratio: expect.any(Number),
    });
    expect(totals['ratio']).toBeCloseTo(totals['stored']! / totals['mapped']!);
    await image.close();
  });

  test('reads neither the chunk table nor the data: a damaged chunk table still inspects', async () => {
    const copy = t.path('bad-table.img');
    copyFileSync(img, copy);
    const image = await openImage(copy);
    const at = Number(image.footer.chunkTableOffset) + 2;
    await image.close();
    flip(copy, at);
    expect((await crimg(['inspect', copy])).status).toBe(0);
    const v = await crimg(['verify', copy]);
    expect(v.status).toBe(1);
    expect(v.stderr).toMatch(/^crimg: CORRUPT_INDEX: chunk table checksum mismatch/);
  });
});

describe('crimg verify', () => {
  test('a good image: ok, exit 0', async () => {
    const r = await crimg(['verify', img]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok: 11 chunks, [\d.]+ KiB of data checked\n$/);
    expect(json(await crimg(['verify', img, '--json']))).toEqual({ file: img, ok: true, chunksChecked: 11, bytesChecked: expect.any(Number), errors: [] });
  });

  test('a flipped byte in a stored chunk: listed with region, addresses and offset, exit 1', async () => {
    const copy = t.path('bad-chunk.img');
    copyFileSync(img, copy);
    // Chunk 3 of the heap: find a stored one through the library.
    const image = await openImage(copy);
    const table = await image.chunkTable();
    const heap = image.regions[0]!;
    let j = 3;
    while (table.get(heap.firstChunk + j, image.plainLength(heap, j)).storedLength === 0) j++;
    const rec = table.get(heap.firstChunk + j, image.plainLength(heap, j));
    await image.close();
    flip(copy, rec.offset + 100);
    const start = '0x' + (HEAP_AT + BigInt(j * 16384)).toString(16);
    const end = '0x' + (HEAP_AT + BigInt((j + 1) * 16384)).toString(16);

    const r = await crimg(['verify', copy]);
    expect(r.status).toBe(1);
    expect(r.stdout.split('\n')[0]).toBe(`CORRUPT_CHUNK region 0 (java heap) chunk ${j} ${start}-${end} offset ${rec.offset}: ` +
      `chunk ${j} (region 0, address ${start}) checksum mismatch (at file offset ${rec.offset}); this part of the image is damaged; restore it from a good copy`);
    expect(r.stdout).toMatch(/^FAILED: 1 problem; 11 chunks/m);

    const d = json<{ ok: boolean; errors: Record<string, unknown>[] }>(await crimg(['verify', copy, '--json']));
    expect(d.ok).toBe(false);
    expect(d.errors).toEqual([{ code: 'CORRUPT_CHUNK', message: expect.stringContaining('checksum mismatch'), region: 0, regionName: 'java heap', chunk: j, address: start, end, length: 16384, offset: rec.offset }]);
    expect((await crimg(['verify', copy, '--json'])).status).toBe(1);
  });

  test('--json reports an image that cannot be opened as a failed verification', async () => {
    const junk = t.path('junk.img');
    writeFileSync(junk, Buffer.alloc(4096, 0x55));
    const r = await crimg(['verify', junk, '--json']);
    expect(r.status).toBe(1);
    expect(json(r)).toEqual({ file: junk, ok: false, chunksChecked: 0, bytesChecked: 0, errors: [{ code: 'BAD_MAGIC', message: expect.any(String) }] });
  });
});

describe('errors and exit status', () => {
  test('not an image: one line "crimg: CODE: message", exit 1, no stack', async () => {
    const junk = t.path('junk2.img');
    writeFileSync(junk, 'hello world, this is not a memory image at all'.repeat(10));
    const r = await crimg(['inspect', junk]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^crimg: BAD_MAGIC: [^\n]+\n$/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('--debug adds the stack trace', async () => {
    const r = await crimg(['inspect', t.path('missing.img'), '--debug']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^crimg: IO_ERROR: cannot open .*missing\.img: ENOENT\n/);
    expect(r.stderr).toMatch(/\n\s+at /);
  });

  test('usage errors and missing files exit 2 (in process, through main())', async () => {
    const cases = [[], ['frobnicate'], ['inspect'], ['inspect', img, '--no-such-option'], ['dump', img], ['dump', img, '--address', 'xyz'],
      ['extract', img, '-o', t.path('x.bin')], ['convert', img, t.path('c.img'), '--chunk-size', '1000'], ['inspect', t.path('missing.img')]];
    const results = await Promise.all(cases.map((args) => crimgInProcess(args)));
    results.forEach((r, i) => {
      expect({ args: cases[i], status: r.status, stdout: r.stdout }).toEqual({ args: cases[i], status: 2, stdout: '' });
      expect(r.stderr).toMatch(/^crimg: (INVALID_ARGUMENT|IO_ERROR): [^\n]+\n$/);
    });
    expect(results[8]!.stderr).toMatch(/^crimg: IO_ERROR: cannot open .*missing\.img: ENOENT\n$/);
  });

  test('the binary: a usage error exits 2 with one line', async () => {
    const r = await crimg(['inspect', img, '--bogus']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('crimg: INVALID_ARGUMENT: Unknown argument: bogus; see `crimg --help`\n');
  });

  test('--help shows examples; --version the package version (in process)', async () => {
    const cmds = ['create', 'inspect', 'verify', 'dump', 'extract', 'stats', 'diff', 'convert', 'check'];
    const results = await Promise.all(cmds.map((cmd) => crimgInProcess([cmd, '--help'])));
    results.forEach((r, i) => {
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain(`crimg ${cmds[i]}`);
    });
    const top = await crimgInProcess(['--help']);
    expect({ status: top.status, stderr: top.stderr }).toEqual({ status: 0, stderr: '' });
    expect(top.stdout).toContain('Exit status: 0 success; 1');
    expect(top.stdout).toContain('CRIMG_PROGRESS=1');
    expect((await crimgInProcess(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    // The binary prints the same help.
    expect((await crimg(['--help'])).stdout).toBe(top.stdout);
  });
});
