/**
 * The CLI against hostile images (issue 14): tables of 125,000+ regions, a megabyte bitmap with
 * every bit set, names full of terminal controls, a bitmap keyed `__proto__`. Each test runs the
 * built binary and asserts what reaches stdout and stderr; times only through budget().
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { ImageWriter, openImage } from '../index.js';
import { LIMITS } from '../format/index.js';
import { tempDir } from './helpers.js';
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

function flip(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0]! ^= 0xff;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
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
    expect(inspect.stdout).toMatch(new RegExp(`\\n  bitmap\\s+big=(ff){32}\\.\\.\\. \\(${bytes} bytes\\) \\(${bits} bits: 0-${bits - 1}\\)\\n`));
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
