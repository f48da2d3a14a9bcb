/**
 * Whole-image operations in bounded memory (issue 14 leftovers): verify, chunkStats, diff and
 * convert visit regions one at a time from the region section in place (`regionCount`,
 * `region(i)`), never `image.regions` (one object per region, about 250 bytes each: 2^20
 * regions are about 260 MiB), on the hostile corpus's 'many-regions' image (2^20 regions).
 * And the writer stores each distinct region name once when names stored once per region
 * would pass section 9's string table: 2^20 gaps naming one 4 KiB string convert.
 *
 * Each operation runs in a fresh child process (the built library) whose heap is capped with
 * --max-old-space-size: an operation that made every region runs out of heap and the child
 * dies. Before: verify +324 MiB RSS, chunkStats +438 MiB, diff(a, a) +573 MiB, convert
 * +1148 MiB; 2^20 gaps sharing a 4 KiB name refused by convert (LIMIT_EXCEEDED).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { KIND_GAP, LIMITS, REGION_RECORD, REGION_RECORD_SIZE, encodeRegionSection, offsetOf, type RegionRecord } from '../format/index.js';
import { assemble, writeHostileCorpus, type RawRegion } from './hostile-corpus.js';
import { ensureBuilt } from './cli-helpers.js';
import { budget } from './machine.js';
import { prng, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());
let files: Record<string, string>;
beforeAll(() => {
  ensureBuilt(); // the children run the built library
  files = writeHostileCorpus(join(t.dir, 'corpus'));
}, budget(60_000));

const MiB = 1 << 20;

/**
 * The child: opens FILE, runs OP once, prints its result, its time and the process's peak RSS
 * growth (sampled every 10 ms and at the end) as JSON.
 */
const CHILD = `
const [lib, op, file, out] = process.argv.slice(2);
const { openImage, chunkStats, diffImages, convertImage } = await import(lib);
const image = await openImage(file, { workers: 0 });
globalThis.gc(); globalThis.gc();
const rss0 = process.memoryUsage().rss;
let peak = 0;
const sample = () => { peak = Math.max(peak, process.memoryUsage().rss - rss0); };
const timer = setInterval(sample, 10);
const t0 = performance.now();
const result = {};
try {
  if (op === 'verify') {
    const v = await image.verify();
    Object.assign(result, { ok: v.ok, chunks: v.chunksChecked, errors: v.errors.length });
  } else if (op === 'chunkStats') {
    let seen = 0;
    const s = await chunkStats(image, { onRegion: (r) => { if (r.region.index === 2) result.name2 = r.region.name; seen++; } });
    Object.assign(result, { seen, kept: s.regions.length, regions: s.totals.regions, zero: s.totals.chunks.zero, raw: s.totals.chunks.raw });
  } else if (op === 'diff') {
    const other = out ? await openImage(out, { workers: 0 }) : image;
    const d = await diffImages(image, other);
    Object.assign(result, { identical: d.identical });
    if (other !== image) await other.close();
  } else if (op === 'convert') {
    const w = await convertImage(image, out, { fsync: false, workers: 0 });
    result.regions = w.regions;
  }
} catch (e) { result.code = e.code ?? String(e); }
result.ms = performance.now() - t0;
sample();
clearInterval(timer);
result.peakRss = peak;
await image.close();
console.log(JSON.stringify(result));
`;

interface OpResult {
  ms: number;
  peakRss: number;
  code?: string;
  [k: string]: unknown;
}

/** Runs `op` on `file` in a child whose old space is capped at `heapMiB`. */
function run(op: string, file: string, heapMiB: number, out = ''): OpResult {
  const script = t.path('child.mjs');
  writeFileSync(script, CHILD);
  const lib = pathToFileURL(join(process.cwd(), 'build', 'index.js')).href;
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const r = spawnSync(process.execPath, ['--expose-gc', `--max-old-space-size=${heapMiB}`, script, lib, op, file, out], { encoding: 'utf8', env, timeout: budget(120_000) });
  if (r.status !== 0) throw new Error(`${op} of ${file} exited ${r.status} (${r.signal}) under a ${heapMiB} MiB heap: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout) as OpResult;
}

describe("many-regions (2^20 regions): one region at a time", () => {
  const figures: string[] = [];
  afterAll(() => console.log(`bounded operations on many-regions:\n${figures.join('\n')}`));
  const note = (op: string, r: OpResult): void => {
    figures.push(`  ${op.padEnd(10)} ${r.ms.toFixed(0)} ms, peak +${(r.peakRss / MiB).toFixed(0)} MiB RSS`);
  };

  test('verify: every chunk checked, in a 64 MiB heap, +64 MiB RSS at most', () => {
    const r = run('verify', files['many-regions']!, 64);
    note('verify', r);
    expect(r).toMatchObject({ ok: true, chunks: (1 << 20) / 2, errors: 0 });
    expect(r.peakRss).toBeLessThan(64 * MiB);
    expect(r.ms).toBeLessThan(budget(5_000));
  }, budget(120_000));

  test('chunkStats with onRegion: every data region seen, none kept, in a 64 MiB heap', () => {
    const r = run('chunkStats', files['many-regions']!, 64);
    note('chunkStats', r);
    expect(r).toMatchObject({ seen: (1 << 20) / 2, kept: 0, regions: (1 << 20) / 2, zero: (1 << 20) / 2 - 1, raw: 1, name2: 'r2' });
    expect(r.peakRss).toBeLessThan(64 * MiB);
    expect(r.ms).toBeLessThan(budget(5_000));
  }, budget(120_000));

  test('diff of the image with itself: identical, in a 64 MiB heap', () => {
    const r = run('diff', files['many-regions']!, 64);
    note('diff', r);
    expect(r).toMatchObject({ identical: true });
    expect(r.peakRss).toBeLessThan(64 * MiB);
    expect(r.ms).toBeLessThan(budget(15_000));
  }, budget(120_000));

  test('convert: the writer keeps one record per region (about 170 MiB for 2^20), no Region besides: a 256 MiB heap', () => {
    const out = t.path('many-regions-converted.img');
    const r = run('convert', files['many-regions']!, 256, out);
    note('convert', r);
    expect(r).toMatchObject({ regions: 1 << 20 });
    expect(r.code).toBeUndefined();
    expect(r.ms).toBeLessThan(budget(60_000));
    // The output holds the same regions: its own verify and stats in the same bounds.
    expect(run('verify', out, 64)).toMatchObject({ ok: true, chunks: (1 << 20) / 2, errors: 0 });
    expect(run('chunkStats', out, 64)).toMatchObject({ seen: (1 << 20) / 2, regions: (1 << 20) / 2, name2: 'r2' });
  }, budget(240_000));
});

describe('region names stored once per distinct name past the string table (section 9)', () => {
  const rec = (i: number, name: string): RegionRecord => ({
    address: BigInt(0x10000 + i * 0x2000), length: 4096n, firstChunk: 0, chunkCount: 0, storedBytes: 0n, zeroChunks: 0, protBits: 0, kindId: KIND_GAP, name,
  });

  test('within the limit a repeated name is stored once per region (the layout of every image so far)', () => {
    const s = encodeRegionSection([rec(0, 'libc'), rec(1, ''), rec(2, 'libc'), rec(3, 'é')], 4096);
    expect(s.stringTableLength).toBe(4 + 4 + 2);
    expect(Buffer.from(s.bytes.subarray(4 * REGION_RECORD_SIZE)).toString()).toBe('libclibcé');
  });

  test('past the limit each distinct name is stored once, where it first occurs', () => {
    const long = 'n'.repeat(LIMITS.maxNameLength);
    const count = LIMITS.maxStringTable / long.length + 2; // once per region, the long names pass the limit by one
    const records = Array.from({ length: count }, (_, i) => rec(i, i === 1 ? 'other' : long));
    const s = encodeRegionSection(records, 4096);
    expect(s.stringTableLength).toBe(long.length + 'other'.length);
    const dv = new DataView(s.bytes.buffer, s.bytes.byteOffset);
    const at = (i: number, f: 'nameOffset' | 'nameLength'): number => dv.getUint32(i * REGION_RECORD_SIZE + offsetOf(REGION_RECORD, f), true);
    const nameAt = (i: number): [number, number] => [at(i, 'nameOffset'), at(i, 'nameLength')];
    expect([nameAt(0), nameAt(1), nameAt(2), nameAt(count - 1)]).toEqual([[0, long.length], [long.length, 5], [0, long.length], [0, long.length]]);
  });

  test("shared-name-gaps (2^20 gaps naming one 4 KiB string) converts: a 4 KiB string table, in a 256 MiB heap", () => {
    const out = t.path('shared-name-gaps-converted.img');
    const r = run('convert', files['shared-name-gaps']!, 256, out);
    expect(r.code).toBeUndefined();
    expect(r.ms).toBeLessThan(budget(60_000));
    // Same size as the input: 2^20 records, one 4096-byte name, the same structures.
    expect(statSync(out).size).toBe(statSync(files['shared-name-gaps']!).size);
    expect(r).toMatchObject({ regions: 1 << 20 });
    // Every gap kept, at its address, with its name: the input and the output do not differ.
    expect(run('diff', files['shared-name-gaps']!, 64, out)).toMatchObject({ identical: true });
  }, budget(240_000));

  test('2^20 different names of about 4 KiB: convert refuses them before creating the output (LIMIT_EXCEEDED)', () => {
    // Gaps naming 2^20 different slices of 8 KiB of random letters: about 4 GiB of distinct names.
    const letters = prng(14);
    const table = Uint8Array.from({ length: 8192 }, () => 0x61 + Math.floor(letters() * 26));
    const region = (i: number): RawRegion => ({
      address: 0x7f00_0000_0000 + i * 8192, length: 4096, kind: KIND_GAP, prot: 0, name: [i & 4095, 4096 - ((i >> 12) & 255)], chunks: 'gap',
    });
    const input = t.path('distinct-long-names.img');
    writeFileSync(input, assemble({ region, regionCount: 1 << 20, stringTable: table }));
    const out = t.path('distinct-long-names-converted.img');
    const r = run('convert', input, 256, out);
    expect(r.code).toBe('LIMIT_EXCEEDED');
    expect(existsSync(out)).toBe(false);
    expect(r.ms).toBeLessThan(budget(5_000));
  }, budget(120_000));
});
