/**
 * The CLI against hostile images (issue 14): tables of 125,000+ regions, a megabyte bitmap with
 * every bit set, names full of terminal controls, a bitmap keyed `__proto__`. Each test runs the
 * built binary and asserts what reaches stdout and stderr; times only through budget().
 */
import { closeSync, lstatSync, openSync, readFileSync, readSync, readdirSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { ImageWriter, openImage } from '../index.js';
import { HOSTILE } from './hostile-corpus.js';
import { LIMITS } from '../format/index.js';
import { flipByte as flip, tempDir } from './helpers.js';
import { budget } from './machine.js';
import { crimg, ensureBuilt, json, type CliResult } from './cli-helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());
beforeAll(() => ensureBuilt());

/** A name with every kind of character a terminal acts on: C0 (ESC, BEL, CR, LF), DEL, C1 (CSI), bidi, U+2028. */
const EVIL = 'a\x1b[2J\x07\r\n\x7f\x9b\u202e\u2066\u200f\u061c\u2028z';
/** EVIL as text output shows it. */
const EVIL_SHOWN = 'a\\x1b[2J\\x07\\x0d\\x0a\\x7f\\x9b\\u202e\\u2066\\u200f\\u061c\\u2028z';
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** No raw control or bidi character in the output; LF only as the end of a line. */
function expectSafe(r: CliResult, what: string, whole = true): void {
  for (const [name, text] of [['stdout', r.stdout], ['stderr', r.stderr]] as const) {
    const m = RAW.exec(text);
    if (m) throw new Error(`${what}: raw U+${m[0].charCodeAt(0).toString(16).padStart(4, '0')} on ${name}: ${JSON.stringify(text.slice(Math.max(0, m.index - 40), m.index + 40))}`);
    // Every shown name is whole on its line (escaped as text or in JSON quotes): a raw LF would have cut it.
    for (const line of whole ? text.split('\n') : []) {
      if (line.split(/a\\(?:x1b|u001b)\[2J/).length !== line.split('\\u2028z').length) throw new Error(`${what}: a name cut on ${name}: ${JSON.stringify(line)}`);
    }
  }
}


describe('item 2: tables of 125,000 regions and more', () => {
  test('inspect, stats and diff print every row (no stack overflow from a spread)', async () => {
    const img = t.path('many.img');
    const w = await ImageWriter.create(img, { fsync: false });
    await w.addRegion({ address: 0x1000n, data: new Uint8Array(4096).fill(3), name: 'data' });
    const N = 130_000;
    for (let i = 0; i < N; i++) await w.addGap({ address: 0x10000000n + BigInt(i) * 0x2000n, length: 4096n, name: i === N - 1 ? 'last' : '' });
    await w.finish();
    const small = t.path('one.img');
    const w2 = await ImageWriter.create(small, { fsync: false });
    await w2.addRegion({ address: 0x1000n, data: new Uint8Array(4096).fill(3), name: 'data' });
    await w2.finish();
    const [inspect, stats, diff, self] = await Promise.all([
      crimg(['inspect', img]), crimg(['stats', img]), crimg(['diff', img, small]), crimg(['diff', img, img, '--exit-code']),
    ]);
    for (const r of [inspect, stats, diff, self]) expect(r.stderr).toBe('');
    expect(inspect.status).toBe(0);
    expect(inspect.stdout).toContain(`regions (${N + 1})`);
    expect(inspect.stdout).toMatch(new RegExp(`\\n\\s+${N}\\s+0x${(0x10000000 + (N - 1) * 0x2000).toString(16)}\\s.*\\slast\\n`));
    expect(stats.status).toBe(0);
    expect(diff.status).toBe(0);
    // One "- region" line per removed gap.
    expect(diff.stdout.split('\n').filter((l) => l.startsWith('- region ')).length).toBe(N);
    expect(self.status).toBe(0);
    expect(self.stdout).toContain('identical');
  });
});

describe('item 4: a megabyte bitmap with every bit set', () => {
  const img = t.path('bitmap.img');
  // As large as a validation block allows (1 MiB in all, section 9): 8,355,840 bits.
  const bytes = LIMITS.maxValidationSize - 4096;
  beforeAll(async () => {
    const w = await ImageWriter.create(img, { fsync: false, validation: { architecture: 'x86_64', bitmaps: { big: new Uint8Array(bytes).fill(0xff) } } });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(4096).fill(1) });
    await w.finish();
  });

  test('check and inspect summarise: a count and the first runs, in bounded output and time', async () => {
    const start = performance.now();
    const [check, checkJson, inspect, inspectJson] = await Promise.all([
      crimg(['check', img]), crimg(['check', img, '--json']), crimg(['inspect', img]), crimg(['inspect', img, '--json']),
    ]);
    const took = performance.now() - start;
    const bits = bytes * 8;
    expect(check.status).toBe(1);
    expect(check.stdout).toContain(`  bitmap big: host lacks bit 0 bit 1 `);
    expect(check.stdout).toContain(`bit 63 ... ${bits - 64} more\n`);
    expect(check.stdout.length).toBeLessThan(4096);
    const report = json<{ bitmaps: { key: string; count: number; missing: number[]; names: string[] }[] }>(checkJson);
    expect(report.bitmaps).toEqual([{ key: 'big', count: bits, missing: Array.from({ length: 64 }, (_, i) => i), names: Array.from({ length: 64 }, (_, i) => `bit ${i}`) }]);
    expect(checkJson.stdout.length).toBeLessThan(16384);
    expect(inspect.status).toBe(0);
    expect(inspect.stdout).toMatch(new RegExp(`\\n  bitmap\\s+big=(ff){64}\\.\\.\\. \\(${bytes} bytes\\) \\(${bits} bits: 0-${bits - 1}\\)\\n`));
    expect(inspect.stdout.length).toBeLessThan(4096);
    // --json is complete: the bitmap as hex.
    const d = json<{ validation: { bitmaps: Record<string, string> } }>(inspectJson);
    expect(d.validation.bitmaps['big']).toBe('ff'.repeat(bytes));
    // Four processes at once; each took 4-14 s before (1 GiB, 99.5 MB of output).
    expect(took).toBeLessThan(budget(3000));
  });

  test('runs of set bits: single bits and ranges, then a count of the rest', async () => {
    const bits = new Uint8Array(64);
    bits[0] = 0b0000_0101; // bits 0, 2
    bits[1] = 0xff; // 8-15
    for (let i = 4; i < 64; i += 2) bits[i] = 1; // 32, 48, ... one bit each
    const p = t.path('runs.img');
    const w = await ImageWriter.create(p, { fsync: false, validation: { bitmaps: { k: bits } } });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(4096).fill(1) });
    await w.finish();
    const r = await crimg(['inspect', p]);
    const total = 2 + 8 + 30;
    const listed = 2 + 8 + 13; // 16 items: 0, 2, 8-15, then 13 single bits
    expect(r.stdout).toContain(`(${total} bits: 0 2 8-15 32 48 64 80 96 112 128 144 160 176 192 208 224 ... ${total - listed} more)`);
  });
});

describe('item 7: terminal injection', () => {
  test('no raw control or bidi character from an image reaches stdout or stderr of any command', async () => {
    const img = t.path('evil.img');
    const w = await ImageWriter.create(img, {
      fsync: false,
      validation: {
        producerName: EVIL, producerVersion: EVIL, architecture: 'x86_64',
        labels: { [EVIL]: EVIL }, bitmaps: { [EVIL]: new Uint8Array([5]) }, metrics: { [EVIL]: 1 },
      },
    });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(8192).fill(1), name: EVIL, kind: 'heap' });
    await w.addGap({ address: 0x100000n, length: 4096n, name: EVIL });
    await w.addRegion({ address: 0x200000n, data: new Uint8Array(4096).fill(2), name: `/lib/${EVIL}.so`, kind: 'file' });
    await w.finish();
    // The same regions with other names, and a copy with a damaged chunk (verify's error lines).
    const other = t.path('other.img');
    const w2 = await ImageWriter.create(other, { fsync: false });
    await w2.addRegion({ address: 0x10000n, data: new Uint8Array(8192).fill(9), name: `${EVIL}2`, kind: 'stack' });
    await w2.addRegion({ address: 0x300000n, data: new Uint8Array(4096), name: EVIL });
    await w2.finish();
    const bad = t.path('bad.img');
    const image = await openImage(img);
    const dataStart = image.dataStart;
    await image.close();
    const { copyFileSync } = await import('node:fs');
    copyFileSync(img, bad);
    flip(bad, dataStart + 10);
    // A file name with controls in it, as a command line may give.
    const evilOut = t.path(`out${EVIL.replace(/\//g, '')}`);
    const runs: [string, string[]][] = [
      ['inspect', ['inspect', img]],
      ['stats', ['stats', img]],
      ['diff', ['diff', img, other]],
      ['diff reversed', ['diff', other, img]],
      ['verify', ['verify', bad]],
      ['check', ['check', img]],
      ['dump of a gap', ['dump', img, '-a', '0x100000']],
      ['extract of a gap', ['extract', img, '--region', '1', '-o', t.path('gap.bin')]],
      ['extract', ['extract', img, '--region', '0', '-o', evilOut + '.bin']],
      ['convert', ['convert', img, evilOut + '.img']],
      ['export-core', ['export-core', img, evilOut + '.core']],
      ['unknown option', ['inspect', img, `--${EVIL}`]],
    ];
    const results = await Promise.all(runs.map(([, args]) => crimg(args)));
    const importCore = await crimg(['import-core', evilOut + '.core', evilOut + '.imported']);
    results.push(importCore);
    runs.push(['import-core', []]);
    // yargs reports only part of an unknown option's name: that one is checked for raw characters only.
    results.forEach((r, i) => expectSafe(r, runs[i]![0], runs[i]![0] !== 'unknown option'));
    const byName = new Map(runs.map(([n], i) => [n, results[i]!]));
    // The names are there, escaped.
    expect(byName.get('inspect')!.stdout).toContain(`  producer      ${EVIL_SHOWN} ${EVIL_SHOWN}\n`);
    expect(byName.get('inspect')!.stdout).toContain(`  label         ${EVIL_SHOWN}=${EVIL_SHOWN}\n`);
    expect(byName.get('inspect')!.stdout).toContain(`  bitmap        ${EVIL_SHOWN}=05 (2 bits: 0 2)\n`);
    expect(byName.get('inspect')!.stdout).toMatch(/\n\s+0\s+0x10000\s.*heap\s.*a\\x1b\[2J\\x07\\x0d\\x0a/);
    expect(byName.get('stats')!.stdout).toContain(EVIL_SHOWN);
    expect(byName.get('diff')!.stdout).toContain(`~ region 0x10000: kind "heap" -> "stack", name "a\\u001b[2J\\u0007\\r\\n\\x7f\\x9b\\u202e`);
    expect(byName.get('verify')!.status).toBe(1);
    expect(byName.get('verify')!.stdout).toContain(`region 0 (${EVIL_SHOWN})`);
    expect(byName.get('check')!.stdout).toContain(`  bitmap ${EVIL_SHOWN}: host lacks bit 0 bit 2\n`);
    expect(byName.get('dump of a gap')!.stderr).toMatch(/^crimg: NOT_MAPPED: address 0x100000 is in gap 1 \(a\\x1b\[2J\\x07 \\x7f/);
    expect(byName.get('extract of a gap')!.stderr).toMatch(/^crimg: NOT_MAPPED: region 1 \(a\\x1b\[2J/);
    for (const n of ['extract', 'convert', 'export-core', 'import-core']) {
      expect(byName.get(n)!.status).toBe(0);
      expect(byName.get(n)!.stdout).toContain('out' + EVIL_SHOWN);
    }
    // --json stays as it was: the names exactly.
    const d = json<{ regions: { name: string }[]; validation: { producerName: string } }>(await crimg(['inspect', img, '--json']));
    expect(d.regions[0]!.name).toBe(EVIL);
    expect(d.validation.producerName).toBe(EVIL);
  });
});

describe('item 13: a bitmap keyed __proto__, and the export-core progress total', () => {
  test('both inspect outputs show a bitmap keyed __proto__, which check enforces', async () => {
    const img = t.path('proto.img');
    const bitmaps = Object.create(null) as Record<string, Uint8Array>;
    bitmaps['__proto__'] = new Uint8Array([2]);
    const labels = Object.create(null) as Record<string, string>;
    labels['__proto__'] = 'x';
    const w = await ImageWriter.create(img, { fsync: false, validation: { architecture: 'x86_64', bitmaps, labels } });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(4096).fill(1) });
    await w.finish();
    const [text, js, check, checkJs] = await Promise.all([
      crimg(['inspect', img]), crimg(['inspect', img, '--json']), crimg(['check', img]), crimg(['check', img, '--json']),
    ]);
    expect(text.stdout).toContain('  bitmap        __proto__=02 (1 bit: 1)\n');
    expect(text.stdout).toContain('  label         __proto__=x\n');
    const d = json<{ validation: { bitmaps: Record<string, string>; labels: Record<string, string> } }>(js);
    expect(Object.hasOwn(d.validation.bitmaps, '__proto__')).toBe(true);
    expect(d.validation.bitmaps['__proto__']).toBe('02');
    expect(Object.hasOwn(d.validation.labels, '__proto__')).toBe(true);
    expect(check.status).toBe(1);
    expect(check.stdout).toContain('  bitmap __proto__: host lacks bit 1\n');
    expect(json<{ bitmaps: { key: string }[] }>(checkJs).bitmaps.map((b) => b.key)).toEqual(['__proto__']);
    // A constraints file may set them: then the host meets them.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(t.path('proto.host'), 'architecture=x86_64\n__proto__=x\nbitmap:__proto__=02\n');
    const ok = await crimg(['check', img, '--constraints', t.path('proto.host'), '--json']);
    expect(json<{ compatible: boolean; host: { labels: Record<string, string> } }>(ok)).toMatchObject({ compatible: true });
    expect(ok.status).toBe(0);
  });

  test('the export-core progress bar totals the data bytes, not 0 B', async () => {
    const img = t.path('progress.img');
    const w = await ImageWriter.create(img, { fsync: false, validation: { architecture: 'x86_64' } });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(3 * 1024 * 1024).fill(1) });
    await w.finish();
    const r = await crimg(['export-core', img, t.path('progress.core')], { CRIMG_PROGRESS: '1' });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/export \[#+\] 100% 3 MiB\/3 MiB\n$/);
    expect(r.stderr).not.toContain('/0 B');
  });
});

/** Runs a command and returns it with its wall time in ms. */
async function timed(args: string[]): Promise<CliResult & { ms: number }> {
  const t0 = performance.now();
  const r = await crimg(args);
  return { ...r, ms: performance.now() - t0 };
}

describe('item 5: zero runs cost O(1) per run', () => {
  const img = t.path('zero-terabyte.img');
  const TiB = 2 ** 40;
  beforeAll(() => writeFileSync(img, HOSTILE['zero-terabyte']!.make()));

  test('convert, export-core, diff with itself and extract -o of 1 TiB of zero chunks take well under a second of work', async () => {
    // Start-up and open, the part that is not the command's work: inspect reads the same index.
    const base = Math.min(...(await Promise.all([timed(['inspect', img]), timed(['inspect', img])])).map((r) => r.ms));
    const convert = await timed(['convert', img, t.path('zt-out.img')]);
    const core = await timed(['export-core', img, t.path('zt.core'), '--arch', 'x86_64']);
    const diff = await timed(['diff', img, img, '--exit-code']);
    const diffConverted = await timed(['diff', img, t.path('zt-out.img'), '--exit-code']);
    const extract = await timed(['extract', img, '--region', '0', '-o', t.path('zt.bin')]);
    for (const [name, r] of Object.entries({ convert, core, diff, diffConverted, extract })) {
      expect({ name, status: r.status, stderr: r.stderr }).toEqual({ name, status: 0, stderr: '' });
      // Each took 1 to 30 minutes, or filled the disk, before.
      expect({ name, work: Math.max(0, r.ms - base) < budget(1000) }).toEqual({ name, work: true });
    }
    // The output keeps 65,536 zero records and stores nothing.
    const out = await openImage(t.path('zt-out.img'));
    try {
      expect(out.regions.map((r) => [r.length, r.zeroChunks, r.storedBytes])).toEqual([[BigInt(TiB), 65536, 0n]]);
    } finally {
      await out.close();
    }
    expect(diff.stdout).toContain('identical');
    expect(diffConverted.stdout).toContain('identical');
    // Holes, not zeros: a terabyte long, a few blocks on disk.
    for (const f of ['zt.core', 'zt.bin']) {
      const st = statSync(t.path(f));
      expect(st.size).toBeGreaterThanOrEqual(TiB);
      expect(st.blocks * 512).toBeLessThan(1024 * 1024);
    }
    expect(statSync(t.path('zt.bin')).size).toBe(TiB);
  });

  test('data between zero runs: extract (file and stdout), convert to other chunk sizes and diff give the same bytes', async () => {
    // 64 pages: data, 16 zero pages, data, a zero tail; the other image has data in the middle of the zero run.
    const page = 4096;
    const bytes = Buffer.alloc(64 * page);
    for (let p = 0; p < 64; p++) if (p < 8 || (p >= 24 && p < 40) || p === 50) bytes.fill(p + 1, p * page, (p + 1) * page);
    bytes[63 * page + 5] = 0; // still zero
    const a = t.path('mixed-a.img');
    const b = t.path('mixed-b.img');
    const wa = await ImageWriter.create(a, { fsync: false, chunkSize: 16384 });
    await wa.addRegion({ address: 0x100000n, data: bytes, name: 'm' });
    await wa.finish();
    const other = Buffer.from(bytes);
    other[13 * page + 100] = 7; // page 13, inside a zero chunk of `a`
    other[61 * page] = 1; // page 61, in the zero tail
    const wb = await ImageWriter.create(b, { fsync: false, chunkSize: 4096 });
    await wb.addRegion({ address: 0x100000n, data: other, name: 'm' });
    await wb.finish();
    const [file, stdout, conv, diff] = await Promise.all([
      crimg(['extract', a, '--region', '0', '-o', t.path('mixed.bin')]),
      crimg(['extract', a, '-a', '0x101000', '-n', String(60 * page), '-o', '-']),
      crimg(['convert', a, t.path('mixed-c.img'), '--chunk-size', '64K', '--compress', 'deflate:1']),
      crimg(['diff', a, b, '--json']),
    ]);
    expect([file.status, stdout.status, conv.status, diff.status]).toEqual([0, 0, 0, 0]);
    expect(readFileSync(t.path('mixed.bin')).equals(bytes)).toBe(true);
    expect(stdout.stdoutBytes.equals(bytes.subarray(page, 61 * page))).toBe(true);
    const c = await openImage(t.path('mixed-c.img'));
    try {
      expect((await c.read(0x100000n, bytes.length)).equals(bytes)).toBe(true);
    } finally {
      await c.close();
    }
    const d = json<{ memory: { ranges: { start: string; end: string }[] }[] }>(diff);
    expect(d.memory[0]!.ranges).toEqual([
      { start: '0x10d000', end: '0x10e000', pages: 1 },
      { start: '0x13d000', end: '0x13e000', pages: 1 },
    ]);
    // diff against the converted copy: identical, whatever the chunk sizes.
    expect((await crimg(['diff', a, t.path('mixed-c.img'), '--exit-code'])).status).toBe(0);
  });
});

describe('item 6: convert carries what this version does not know', () => {
  test('a region of unknown kind 200 and a validation block of exactly the maximum size', async () => {
    const unknown = t.path('unknown-kind.img');
    const maxed = t.path('max-validation.img');
    writeFileSync(unknown, HOSTILE['unknown-kind']!.make());
    writeFileSync(maxed, HOSTILE['max-validation']!.make());
    const [u, m] = await Promise.all([
      crimg(['convert', unknown, t.path('unknown-out.img')]),
      crimg(['convert', maxed, t.path('max-out.img'), '--compress', 'deflate:1']),
    ]);
    expect([u.status, u.stderr, m.status, m.stderr]).toEqual([0, '', 0, '']);
    const pairs = [[unknown, t.path('unknown-out.img')], [maxed, t.path('max-out.img')]] as const;
    for (const [from, to] of pairs) {
      const x = await openImage(from);
      const y = await openImage(to);
      try {
        // The same block, byte for byte (a block at the maximum stays at it), the same regions and bytes.
        expect(Buffer.from(y.validationBytes).equals(Buffer.from(x.validationBytes))).toBe(true);
        expect(y.regions.map((r) => [r.address, r.length, r.kindId, r.kind, r.name, r.prot])).toEqual(x.regions.map((r) => [r.address, r.length, r.kindId, r.kind, r.name, r.prot]));
        const r = x.regions[0]!;
        expect((await y.read(r.address, Number(r.length))).equals(await x.read(r.address, Number(r.length)))).toBe(true);
      } finally {
        await x.close();
        await y.close();
      }
    }
    const shown = json<{ regions: { kind: string }[] }>(await crimg(['inspect', t.path('unknown-out.img'), '--json']));
    expect(shown.regions[0]!.kind).toBe('unknown(200)');
  });
});

/** Files in `dir` whose names mark them temporary. */
function temps(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.includes('crimg-tmp') || n.endsWith('.tmp'));
}

describe('item 10: extract -o writes a temporary file and renames it', () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());
  const img = dir.path('x.img');
  const bad = dir.path('bad.img');
  const region = Buffer.alloc(3 * 4096, 0x5a);
  beforeAll(async () => {
    const w = await ImageWriter.create(img, { fsync: false, validation: { architecture: 'x86_64' } });
    await w.addRegion({ address: 0x10000n, data: region, name: 'r' });
    await w.finish();
    const { copyFileSync } = await import('node:fs');
    copyFileSync(img, bad);
    const image = await openImage(img);
    flip(bad, image.dataStart + 4096 + 7); // the second chunk: reading fails after the first is written
    await image.close();
  });

  test('never deletes a file it did not create: keep.bin stays when reading fails, or opening does', async () => {
    writeFileSync(dir.path('keep.bin'), 'keep\n');
    const failing = await crimg(['extract', bad, '--region', '0', '-o', dir.path('keep.bin')]);
    expect(failing.status).toBe(1);
    expect(failing.stderr).toMatch(/^crimg: CORRUPT_CHUNK: /);
    writeFileSync(dir.path('not-an-image'), 'x');
    const unopened = await crimg(['extract', dir.path('not-an-image'), '--region', '0', '-o', dir.path('keep.bin')]);
    expect(unopened.status).toBe(1);
    expect(readFileSync(dir.path('keep.bin'), 'utf8')).toBe('keep\n');
    expect(temps(dir.dir)).toEqual([]);
  });

  test('a symlink at the output path is replaced, never followed: its target is unchanged', async () => {
    writeFileSync(dir.path('victim'), 'victim\n');
    symlinkSync(dir.path('victim'), dir.path('link.bin'));
    symlinkSync(dir.path('victim'), dir.path('link.core'));
    const [r, core] = await Promise.all([
      crimg(['extract', img, '--region', '0', '-o', dir.path('link.bin')]),
      crimg(['export-core', img, dir.path('link.core')]),
    ]);
    expect([r.status, r.stderr, core.status, core.stderr]).toEqual([0, '', 0, '']);
    expect(readFileSync(dir.path('victim'), 'utf8')).toBe('victim\n');
    expect(lstatSync(dir.path('link.bin')).isSymbolicLink()).toBe(false);
    expect(lstatSync(dir.path('link.core')).isSymbolicLink()).toBe(false);
    expect(readFileSync(dir.path('link.bin')).equals(region)).toBe(true);
    expect(temps(dir.dir)).toEqual([]);
  });

  test('--mode: files are 0600 by default (create, convert, export-core, extract), --mode widens', async () => {
    const mem = dir.path('mem.bin');
    writeFileSync(mem, region);
    const runs: [string, string[]][] = [
      ['create', ['create', dir.path('m-create.img'), '--region', `0x10000:${mem}`]],
      ['convert', ['convert', img, dir.path('m-convert.img')]],
      ['export-core', ['export-core', img, dir.path('m-export.core')]],
      ['extract', ['extract', img, '--region', '0', '-o', dir.path('m-extract.bin')]],
    ];
    const results = await Promise.all(runs.flatMap(([, args]) => [crimg(args), crimg([...args.map((x) => x.replace('/m-', '/w-')), '--mode', '644'])]));
    for (const r of results) expect([r.status, r.stderr]).toEqual([0, '']);
    for (const [, args] of runs) {
      const out = args.find((x) => x.includes(`${dir.dir}/m-`))!;
      expect({ out, mode: statSync(out).mode & 0o777 }).toEqual({ out, mode: 0o600 });
      const wide = out.replace('/m-', '/w-');
      expect({ wide, mode: statSync(wide).mode & 0o777 }).toEqual({ wide, mode: 0o644 });
    }
    const badMode = await crimg(['extract', img, '--region', '0', '-o', dir.path('n.bin'), '--mode', '999']);
    expect(badMode.status).toBe(2);
    expect(badMode.stderr).toMatch(/^crimg: INVALID_ARGUMENT: expected --mode as octal/);
  });
});

describe('long names in text output', () => {
  test('inspect, stats and diff cut a name at 256 characters and count the rest; --json has it whole', async () => {
    const long = 'n'.repeat(300) + '\x1b';
    const img = t.path('long.img');
    const w = await ImageWriter.create(img, { fsync: false });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(4096).fill(1), name: long });
    await w.finish();
    const other = t.path('long2.img');
    const w2 = await ImageWriter.create(other, { fsync: false });
    await w2.addRegion({ address: 0x20000n, data: new Uint8Array(4096).fill(1), name: long });
    await w2.finish();
    const [inspect, stats, diff, js] = await Promise.all([
      crimg(['inspect', img]), crimg(['stats', img]), crimg(['diff', img, other]), crimg(['inspect', img, '--json']),
    ]);
    const cut = `${'n'.repeat(256)}... (45 more characters)`;
    expect(inspect.stdout).toContain(`  ${cut}\n`);
    expect(stats.stdout).toContain(`  ${cut}\n`);
    expect(diff.stdout).toContain(`- region 0x10000 4 KiB rw- anonymous "${'n'.repeat(256)}"... (45 more characters)\n`);
    expect(json<{ regions: { name: string }[] }>(js).regions[0]!.name).toBe(long);
  });
});
