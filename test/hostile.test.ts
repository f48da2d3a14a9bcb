/**
 * Issue 14 for the library: every file of the hostile corpus (test/hostile-corpus.ts) opens, or
 * is refused with the right code, in time and memory bounded by its size rather than by what
 * its tables claim; scrypt work is capped at the writers' default unless raised; a closed image
 * refuses reads with a CrimgError; the region section read in place keeps the rules, codes and
 * messages of the decoder it replaces (differential test against a copy of it).
 *
 * Time and memory are measured in a fresh child process per file (the built library), so one
 * file's garbage never counts against another. Time budgets go through test/machine.ts.
 */
import { spawnSync } from 'node:child_process';
import { isUtf8 } from 'node:buffer';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CrimgError, ImageWriter, openImage } from '../index.js';
import { FileSource } from '../image/index.js';
import { DEFAULT_SCRYPT_LIMITS, checkScryptLimits } from '../codec/keys.js';
import {
  KIND_GAP, LIMITS, REGION_RECORD, REGION_RECORD_SIZE, decodeFields, encodeRegionSection, hex, kindName, offsetOf, protToString,
  type Region, type RegionRecord, type RegionSectionContext,
} from '../format/index.js';
import { RegionTable } from '../format/region-table.js';
import { HOSTILE, HOSTILE_PASSPHRASE, assemble, distinctNameGaps, manyRegions, patternPage, scryptHeavy, sharedNameGaps, writeHostileCorpus, type RawRegion } from './hostile-corpus.js';
import { crimg, ensureBuilt } from './cli-helpers.js';
import { budget, slowdown } from './machine.js';
import { prng, tempDir } from './helpers.js';
import { nativeAddon } from '../native-mmap/index.js';

const native = nativeAddon()!;

const t = tempDir();
afterAll(() => t.cleanup());
let files: Record<string, string>;
beforeAll(() => {
  ensureBuilt(); // the children run the built library
  files = writeHostileCorpus(join(t.dir, 'corpus'));
}, budget(60_000));

const MiB = 1 << 20;

/**
 * The child: opens FILE (with a passphrase when asked) and runs the operations a user runs on
 * any image (region lookups, a page read, the host check, close, a read after close), printing
 * each one's time and the process's memory growth after it as JSON.
 */
const CHILD = `
const [lib, file, passphrase] = process.argv.slice(2);
const { openImage, describeHost } = await import(lib);
const tiny = process.argv[5];
// Warm up: load the addon, the checksum and the code paths on a small image, then measure.
await (await openImage(tiny, { workers: 0 })).close();
describeHost();
globalThis.gc(); globalThis.gc();
const m0 = process.memoryUsage();
const out = { ops: {}, peakRss: 0, peakHeap: 0 };
const sample = () => {
  const m = process.memoryUsage();
  out.peakRss = Math.max(out.peakRss, m.rss - m0.rss);
  out.peakHeap = Math.max(out.peakHeap, m.heapUsed + m.external - (m0.heapUsed + m0.external)); // external includes arrayBuffers
};
const op = async (name, f) => {
  const t0 = performance.now();
  try { await f(); out.ops[name] = { ms: performance.now() - t0 }; }
  catch (e) { out.ops[name] = { ms: performance.now() - t0, code: e.code ?? String(e) }; }
  sample();
};
let img;
await op('open', async () => { img = await openImage(file, { workers: 0, ...(passphrase ? { key: { passphrase } } : {}) }); });
if (img) {
  if (!img.indexLocked) {
    await op('regionCount', () => { out.regionCount = img.regionCount; });
    await op('region', () => { const r = img.region(img.regionCount - 1); out.lastName = r.name.length; });
    await op('regionAt', () => { const r = img.region(0); out.found = img.regionAt(r.address)?.index; });
    await op('read', async () => { const r = img.region(0); if (!r.isGap) out.read = (await img.read(r.address, Math.min(4096, Number(r.length)))).length; });
  }
  await op('checkCompatibility', () => { img.checkCompatibility(describeHost()); });
  await op('close', () => img.close());
  await op('read after close', () => img.read(0, 1));
}
console.log(JSON.stringify(out));
`;

interface ChildResult {
  ops: Record<string, { ms: number; code?: string }>;
  peakRss: number;
  peakHeap: number;
  regionCount?: number;
  found?: number;
}

function measure(file: string, passphrase?: string): ChildResult {
  const script = t.path('child.mjs');
  writeFileSync(script, CHILD);
  const lib = pathToFileURL(join(process.cwd(), 'build', 'index.js')).href;
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const r = spawnSync(process.execPath, ['--expose-gc', script, lib, file, passphrase ?? '', files['unknown-kind']!], { encoding: 'utf8', env, timeout: budget(30_000) });
  if (r.status !== 0) throw new Error(`child for ${file} exited ${r.status} (${r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ChildResult;
}

describe('the hostile corpus: bounded time and memory per file (issue 14)', () => {
  const names = Object.keys(HOSTILE);

  test.each(names)('%s: open and every operation within the bounds, right outcome', (name) => {
    const f = HOSTILE[name]!;
    const size = statSync(files[name]!).size;
    const got = measure(files[name]!, f.passphrase ? HOSTILE_PASSPHRASE : undefined);
    const open = got.ops['open']!;
    // The figures the README's bounds section quotes, shown when a bound fails (no log otherwise).
    const figure = `slowdown ${slowdown.toFixed(2)}: ${name} ${(size / MiB).toFixed(1)} MiB: open ${open.ms.toFixed(0)} ms${open.code ? ` (${open.code})` : ''}, ` +
      `peak +${(got.peakRss / MiB).toFixed(1)} MiB RSS, +${(got.peakHeap / MiB).toFixed(1)} MiB heap+buffers; ` +
      Object.entries(got.ops).filter(([k]) => k !== 'open').map(([k, v]) => `${k} ${v.ms.toFixed(1)} ms`).join(', ');
    const within = (ok: boolean): void => expect({ figure, ok }).toEqual({ figure, ok: true });
    // Outcome: the plain open succeeds; the passphrase open of the scrypt-heavy header is refused before scrypt.
    expect({ name, code: open.code ?? 'ok' }).toEqual({ name, code: f.passphrase ? 'LIMIT_EXCEEDED' : f.open });
    if (!f.passphrase) {
      expect(got.found).toBe(0);
      expect(got.ops['read after close']!.code).toBe('INVALID_ARGUMENT');
    }
    // Time: 100 ms on a quiet machine, whatever the file (a 64 MiB region section is read once
    // in 1 MiB pieces, checked and hashed by the addon as it streams by, and kept in the file:
    // 21-28 ms and 30-52 ms for the two 64 MiB files at load 1.5-4). Before: a crash after 30 s;
    // 2.1 s; 66-182 ms with the section held in memory; 75 ms quiet and 130 ms on a CI run with
    // the record loop in JS (compiled while it ran) and xxhash-wasm.
    within(open.ms < budget(100));
    for (const [op, v] of Object.entries(got.ops)) {
      if (op !== 'open') expect({ name, op, fast: v.ms < budget(100) }).toEqual({ name, op, fast: true });
    }
    // Memory: < 64 MiB whatever the file. A large region section stays in the file, read by
    // pread when asked (its string table, a 2 MiB cache and 8 bytes per 4 KiB are kept): the two
    // 64 MiB files +4-12 MiB here, before +69-73 MiB (the section held in memory).
    within(got.peakRss < 64 * MiB);
    within(got.peakHeap < 64 * MiB);
  }, budget(60_000));
});


test('2^20 gaps naming 2^20 different slices of a string table that is not UTF-8: the same bounds', () => {
  const path = t.path('distinct-name-gaps.img');
  writeFileSync(path, distinctNameGaps());
  const size = statSync(path).size;
  const got = measure(path);
  expect(got.ops['open']!.code).toBeUndefined();
  expect(got.regionCount).toBe(1 << 20);
  expect({ size, ms: got.ops['open']!.ms, fast: got.ops['open']!.ms < budget(100) }).toEqual({ size, ms: got.ops['open']!.ms, fast: true });
  expect(got.peakRss).toBeLessThan(64 * MiB);
}, budget(60_000));

describe('scrypt work a reader accepts (issue 14, item 3)', () => {
  test('the default is the writers\' cost, each parameter on its own, refused before any scrypt work', () => {
    expect(DEFAULT_SCRYPT_LIMITS).toEqual({ log2N: 17, r: 8, p: 1 });
    expect(() => checkScryptLimits(17, 8, 1)).not.toThrow();
    expect(() => checkScryptLimits(10, 8, 1)).not.toThrow();
    for (const [n, r, p] of [[18, 8, 1], [17, 9, 1], [17, 8, 2], [18, 8, 16]] as const) {
      const e = thrown(() => checkScryptLimits(n, r, p));
      expect(e.code).toBe('LIMIT_EXCEEDED');
      expect(e.message).toContain(`log2 N = ${n}, r = ${r}, p = ${p}`);
      expect(e.hint).toContain(`maxScrypt: { log2N: ${n}, r: ${r}, p: ${p} }`);
      expect(e.hint).toContain(`--max-scrypt ${n},${r},${p}`);
    }
    expect(() => checkScryptLimits(18, 8, 16, { log2N: 18, p: 16 })).not.toThrow(); // r keeps its default 8
    expect(() => checkScryptLimits(18, 9, 1, { log2N: 18 })).toThrow(CrimgError);
    expect(() => checkScryptLimits(17, 8, 1, { log2N: 300 })).toThrow(RangeError);
  });

  test('scrypt-heavy: LIMIT_EXCEEDED at open with a passphrase, in no time; without a key it opens locked', async () => {
    const t0 = performance.now();
    const e = await openImage(files['scrypt-heavy']!, { key: { passphrase: HOSTILE_PASSPHRASE } }).catch((x: unknown) => x);
    expect(performance.now() - t0).toBeLessThan(budget(100)); // scrypt at this cost takes ~11 s
    expect(e).toBeInstanceOf(CrimgError);
    expect((e as CrimgError).code).toBe('LIMIT_EXCEEDED');
    expect((e as CrimgError).message).toMatch(/log2 N = 18, r = 8, p = 16 \(256 MiB/);
    const locked = await openImage(files['scrypt-heavy']!);
    expect(locked.indexLocked).toBe(true);
    await locked.close();
    // A raw key is not scrypt work: the key kind is refused as before.
    await expect(openImage(files['scrypt-heavy']!, { key: new Uint8Array(32) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  test('maxScrypt raises the limit: the image\'s scrypt runs (then the wrong key is WRONG_KEY)', async () => {
    const path = t.path('scrypt-p2.img');
    writeFileSync(path, scryptHeavy(11, 8, 2)); // 2 MiB, p = 2: over the default p = 1
    await expect(openImage(path, { key: { passphrase: 'x' } })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    await expect(openImage(path, { key: { passphrase: 'x' }, maxScrypt: { p: 2 } })).rejects.toMatchObject({ code: 'WRONG_KEY' });
    // scryptCaps still applies after maxScrypt when given.
    await expect(openImage(path, { key: { passphrase: 'x' }, maxScrypt: { p: 2 }, scryptCaps: { maxMemory: 1024 } })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
  });

  test('the CLI refuses it by default and takes --max-scrypt LOG2N,R,P', async () => {
    const path = t.path('scrypt-p2.img');
    writeFileSync(path, scryptHeavy(11, 8, 2));
    const pass = t.path('pass.txt');
    writeFileSync(pass, 'x\n');
    const refused = await crimg(['inspect', path, '--passphrase-file', pass]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/LIMIT_EXCEEDED|scrypt/);
    expect(refused.stderr).toContain('--max-scrypt 11,8,2');
    const raised = await crimg(['inspect', path, '--passphrase-file', pass, '--max-scrypt', '11,8,2']);
    expect(raised.stderr).toMatch(/WRONG_KEY|does not match/);
    const bad = await crimg(['inspect', path, '--passphrase-file', pass, '--max-scrypt', '11,x']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('--max-scrypt');
  }, budget(30_000));

  test('the committed passphrase vector (log2 N 10) opens with the default', async () => {
    const v1 = join(process.cwd(), 'spec', 'vectors', 'v1');
    const exp = JSON.parse(readFileSync(join(v1, 'deflate-chacha20-poly1305-passphrase.json'), 'utf8')) as { passphrase: string };
    const img = await openImage(join(v1, 'deflate-chacha20-poly1305-passphrase.img'), { key: { passphrase: exp.passphrase }, workers: 0 });
    expect(img.regionCount).toBeGreaterThan(0);
    await img.close();
  });
});

describe('read after close (issue 14, item 13)', () => {
  test('every reader method that reads or decodes throws CrimgError INVALID_ARGUMENT, not EBADF', async () => {
    const path = t.path('small.img');
    const w = await ImageWriter.create(path, { fsync: false, workers: 0, compress: 'deflate' });
    await w.addRegion({ address: 0x10000n, data: Buffer.from(patternPage(5)), name: 'a' });
    await w.finish();
    const img = await openImage(path, { workers: 0 });
    const r = img.regions[0]!;
    const table = await img.chunkTable();
    await img.close();
    await img.close(); // twice: nothing
    expect(img.isClosed).toBe(true);
    const calls: [string, () => Promise<unknown> | unknown][] = [
      ['read', () => img.read(r.address, 1)],
      ['readInto', () => img.readInto(r.address, new Uint8Array(1))],
      ['readStream', async () => { for await (const piece of img.readStream(r.address, 1)) void piece; }],
      ['chunkTable', () => img.chunkTable()],
      ['verify', () => img.verify()],
      ['chunkStats', () => img.chunkStats()],
      ['decodeChunk', () => img.decodeChunk(r, 0, 0, table.get(0, 4096), new Uint8Array(8))],
      ['restore', () => img.restore({ mode: 'copy' })],
    ];
    for (const [what, call] of calls) {
      const e = await Promise.resolve().then(call).then(() => null, (x: unknown) => x);
      expect({ what, error: e instanceof CrimgError ? e.code : String(e) }).toEqual({ what, error: 'INVALID_ARGUMENT' });
      expect((e as CrimgError).message).toMatch(/closed/);
    }
    // What was read at open stays: header, regions.
    expect(img.regions[0]!.name).toBe('a');
    const src = await FileSource.open(path);
    await src.close();
    await expect(src.read(0, 1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

test('close() while the chunk table loads: that load ends in CrimgError INVALID_ARGUMENT (the 2.5 MiB region section, in huge-page memory, is released by close)', async () => {
  const path = t.path('closing.img');
  writeFileSync(path, manyRegions(40_000)); // a 2.5 MiB section: read whole, into memory released at close
  for (let k = 0; k < 3; k++) {
    const img = await openImage(path, { workers: 0 });
    const pending = img.chunkTable().then(() => null, (e: unknown) => e);
    await img.close();
    const e = await pending;
    // Before: a TypeError from the released (detached) section, when the totals were checked.
    expect({ k, error: e instanceof CrimgError ? e.code : String(e) }).toEqual({ k, error: 'INVALID_ARGUMENT' });
  }
});

/** The region section decoder before issue 14 (every record an object, every name decoded), the reference. */
function referenceDecode(bytes: Uint8Array, c: RegionSectionContext): Region[] {
  const strBase = c.regionCount * REGION_RECORD_SIZE;
  if (bytes.length !== strBase + c.stringTableLength) {
    throw new CrimgError('CORRUPT_INDEX', `region section is ${bytes.length} bytes, expected ${strBase + c.stringTableLength}`, { offset: c.base });
  }
  const dec = new TextDecoder('utf-8', { fatal: true });
  const regions: Region[] = [];
  const chunkSize = BigInt(c.chunkSize);
  let nextChunk = 0;
  let prevEnd = -1n;
  for (let i = 0; i < c.regionCount; i++) {
    const o = i * REGION_RECORD_SIZE;
    const corrupt = (why: string, field: Parameters<typeof offsetOf<(typeof REGION_RECORD.fields)[number]>>[1]): never => {
      throw new CrimgError('CORRUPT_INDEX', `region ${i} ${why}`, { offset: c.base + o + offsetOf(REGION_RECORD, field), region: i });
    };
    const { address, length, firstChunk, chunkCount, storedBytes, zeroChunks, nameOffset, nameLength, protection: protBits, kind: kindId, flags, filePage } = decodeFields(REGION_RECORD, bytes, o);
    if (address % BigInt(c.pageSize) !== 0n) corrupt(`address ${hex(address)} is not page-aligned`, 'address');
    if (length === 0n) corrupt('has length 0', 'length');
    if (address + length > 1n << 64n) corrupt(`${hex(address)} + ${length} runs past the 64-bit address space`, 'length');
    if (address < prevEnd) corrupt(`at ${hex(address)} overlaps or is not after the previous region (ends ${hex(prevEnd)})`, 'address');
    prevEnd = address + length;
    const isGap = kindId === KIND_GAP;
    const expectChunks = isGap ? 0n : (length + chunkSize - 1n) / chunkSize;
    if (chunkCount !== expectChunks) corrupt(`has ${chunkCount} chunks, expected ${expectChunks} for ${length} bytes`, 'chunkCount');
    if (expectChunks > BigInt(LIMITS.maxChunksPerRegion)) {
      throw new CrimgError('LIMIT_EXCEEDED', `region ${i} has ${expectChunks} chunks (limit ${LIMITS.maxChunksPerRegion})`, { offset: c.base + o + offsetOf(REGION_RECORD, 'chunkCount'), region: i });
    }
    if (firstChunk !== BigInt(nextChunk)) corrupt(`first chunk ${firstChunk} should be ${nextChunk}`, 'firstChunk');
    if (zeroChunks > chunkCount) corrupt(`zero chunk count ${zeroChunks} exceeds its chunk count`, 'zeroChunks');
    if (isGap && (protBits !== 0 || storedBytes !== 0n)) corrupt('is a gap with protection or stored bytes', 'protection');
    if (protBits & ~7) corrupt(`protection ${protBits} has reserved bits`, 'protection');
    nextChunk += Number(chunkCount);
    if (nextChunk > c.chunkCount) corrupt(`chunks run past the chunk table's ${c.chunkCount} records`, 'firstChunk');
    if (nameLength > LIMITS.maxNameLength) corrupt(`name length ${nameLength} exceeds ${LIMITS.maxNameLength}`, 'nameLength');
    if (nameOffset + nameLength > c.stringTableLength) corrupt(`name [${nameOffset}, +${nameLength}) lies outside the string table`, 'nameOffset');
    let name = '';
    try { name = dec.decode(bytes.subarray(strBase + nameOffset, strBase + nameOffset + nameLength)); } catch { corrupt('name is not UTF-8', 'nameOffset'); }
    regions.push({
      index: i, address, length, protBits, prot: protToString(protBits), kindId, kind: kindName(kindId), name,
      firstChunk: Number(firstChunk), chunkCount: Number(chunkCount), storedBytes, zeroChunks: Number(zeroChunks), isGap,
      shared: (flags & 1) !== 0, ...(flags & 2 ? { fileOffset: BigInt(filePage) * BigInt(c.pageSize) } : {}),
    });
  }
  if (nextChunk !== c.chunkCount) throw new CrimgError('CORRUPT_INDEX', `regions account for ${nextChunk} chunks, the chunk table has ${c.chunkCount}`, { offset: c.base });
  return regions;
}

function outcome(f: () => Region[]): unknown {
  try {
    return { regions: f() };
  } catch (e) {
    if (!(e instanceof CrimgError)) throw e;
    return { code: e.code, message: e.message, offset: e.offset };
  }
}

function thrown(f: () => unknown): CrimgError {
  try { f(); } catch (e) { if (e instanceof CrimgError) return e; throw e; }
  throw new Error('expected a CrimgError');
}

describe('the region section in place (issue 14, item 1)', () => {
  const NAMES = ['', 'heap', '[stack]', 'libc.so.6', 'données', 'памяти', '記憶', '🦀 crab', 'x'.repeat(40), 'ü'];
  /** A valid section of `n` random regions and gaps, and its context. */
  function section(rnd: () => number, n: number): { bytes: Uint8Array; c: RegionSectionContext } {
    const records: RegionRecord[] = [];
    let address = 0x10000n;
    let chunk = 0;
    for (let i = 0; i < n; i++) {
      address += BigInt(Math.floor(rnd() * 3)) * 4096n;
      const gap = rnd() < 0.3;
      const length = BigInt(1 + Math.floor(rnd() * 9)) * 4096n - (rnd() < 0.2 && !gap ? 100n : 0n);
      const chunkCount = gap ? 0 : Math.ceil(Number(length) / 8192);
      records.push({
        address, length, firstChunk: chunk, chunkCount, storedBytes: gap ? 0n : BigInt(Math.floor(rnd() * 1000)), zeroChunks: gap ? 0 : Math.floor(rnd() * (chunkCount + 1)),
        protBits: gap ? 0 : Math.floor(rnd() * 8), kindId: gap ? KIND_GAP : [0, 1, 2, 3, 5, 200][Math.floor(rnd() * 6)]!, name: NAMES[Math.floor(rnd() * NAMES.length)]!,
        shared: rnd() < 0.2, ...(rnd() < 0.2 ? { fileOffset: BigInt(Math.floor(rnd() * 100)) * 4096n } : {}),
      });
      chunk += chunkCount;
      address += length + 4095n - ((length + 4095n) % 4096n);
    }
    const { bytes, stringTableLength } = encodeRegionSection(records, 4096);
    return { bytes, c: { regionCount: n, stringTableLength, chunkCount: chunk, chunkSize: 8192, pageSize: 4096, base: 5000 } };
  }

  test('2000 damaged sections: the same regions, or the same code, message and offset as the reference decoder', () => {
    const rnd = prng(14);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    let refused = 0;
    let stops = 0;
    for (let k = 0; k < 2000; k++) {
      const { bytes, c } = section(rnd, 1 + Math.floor(rnd() * 12));
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const strBase = c.regionCount * REGION_RECORD_SIZE;
      for (let m = 0; m < 1 + Math.floor(rnd() * 2); m++) {
        const i = Math.floor(rnd() * c.regionCount);
        const o = i * REGION_RECORD_SIZE;
        const f = pick(REGION_RECORD.fields);
        const kind = rnd();
        if (kind < 0.15 && c.stringTableLength > 0) {
          bytes[strBase + Math.floor(rnd() * c.stringTableLength)] = pick([0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff, 0x41]); // a byte of the string table
        } else if (f.size === 8) {
          const cur = dv.getBigUint64(o + f.offset, true);
          dv.setBigUint64(o + f.offset, BigInt.asUintN(64, pick([0n, 1n, cur + 1n, cur - 1n, cur + 4096n, cur - 4096n, cur * 2n, 1n << 63n, (1n << 64n) - 4096n, (1n << 64n) - 1n, 1n << 53n, (1n << 53n) + 1n, 1n << 32n, cur + (1n << 32n)])), true);
        } else if (f.size === 4) {
          const cur = dv.getUint32(o + f.offset, true);
          dv.setUint32(o + f.offset, pick([0, 1, cur + 1, cur - 1 >>> 0, cur + 2, 4096, 4097, 0xffffffff, c.stringTableLength, c.stringTableLength + 1]) >>> 0, true);
        } else if (f.size === 2) {
          dv.setUint16(o + f.offset, Math.floor(rnd() * 65536), true);
        } else if (f.size === 1) {
          bytes[o + f.offset] = pick([0, 1, 6, 7, 8, 200, 255]);
        }
      }
      const want = outcome(() => referenceDecode(bytes, c));
      const got = outcome(() => new RegionTable(bytes, c).all());
      expect({ k, got }).toEqual({ k, got: want });
      // The native fast engine: the same outcome, and it stops exactly at the refused region.
      expect({ k, native: outcome(() => new RegionTable(bytes, c, native).all()) }).toEqual({ k, native: want });
      const stop = native.checkRegionRecords(bytes.subarray(0, c.regionCount * REGION_RECORD_SIZE), 0, Float64Array.of(0, -1, 0),
        Float64Array.of(c.pageSize, c.chunkSize, c.chunkCount, LIMITS.maxChunksPerRegion, LIMITS.maxNameLength, 1024, KIND_GAP),
        bytes.subarray(c.regionCount * REGION_RECORD_SIZE), null, null, null);
      let region: number | undefined = c.regionCount; // where the portable code refuses (undefined: not at a record)
      try { new RegionTable(bytes, c).all(); } catch (e) { region = (e as CrimgError).region; }
      // (Called bare with no clean copy, it takes the string table for UTF-8: only then is its stop comparable.)
      if (region !== undefined && isUtf8(bytes.subarray(c.regionCount * REGION_RECORD_SIZE))) {
        expect({ k, stop, want }).toEqual({ k, stop: region, want });
        stops++;
      }
      if ('code' in (want as object)) refused++;
    }
    expect(refused).toBeGreaterThan(1000);
    expect(stops).toBeGreaterThan(1200);
  });

  test('names: slices of one decoded table, multi-byte characters intact, a name cutting a character refused', () => {
    const rnd = prng(7);
    const { bytes, c } = section(rnd, 200);
    const table = new RegionTable(bytes, c);
    const ref = referenceDecode(bytes, c);
    expect(Array.from({ length: 200 }, (_, i) => table.get(i))).toEqual(ref); // one at a time, before the table is decoded
    expect(table.all()).toEqual(ref);
    // A name record pointing into the middle of "記" (3 bytes): not UTF-8 at its start.
    const names = new TextEncoder().encode('a記b');
    const bad = assemble({ region: () => ({ address: 0x10000, length: 4096, kind: KIND_GAP, prot: 0, name: [2, 3], chunks: 'gap' }), regionCount: 1, stringTable: names });
    return openImage(bad).then(() => { throw new Error('opened'); }, (e: CrimgError) => {
      expect(e.code).toBe('CORRUPT_INDEX');
      expect(e.message).toMatch(/region 0 name is not UTF-8/);
    });
  });

  test('string tables of random bytes: every name judged and decoded as a fatal TextDecoder does, in O(1) per name', () => {
    const rnd = prng(99);
    const alphabet = [0x41, 0x7a, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff];
    const valid = [...'aé€😀\u07ff\uffff'].map((ch) => new TextEncoder().encode(ch));
    let accepted = 0;
    let refused = 0;
    for (let k = 0; k < 250; k++) {
      // A table of well-formed characters and stray bytes, and 40 gaps naming random slices of it.
      const parts: number[] = [];
      while (parts.length < 64) {
        if (rnd() < 0.3) parts.push(alphabet[Math.floor(rnd() * alphabet.length)]!);
        else parts.push(...valid[Math.floor(rnd() * valid.length)]!);
      }
      const table = Uint8Array.from(parts);
      const records: RegionRecord[] = Array.from({ length: 40 }, (_, i) => ({
        address: 0x10000n + BigInt(i) * 8192n, length: 4096n, firstChunk: 0, chunkCount: 0, storedBytes: 0n, zeroChunks: 0, protBits: 0, kindId: KIND_GAP, name: '',
      }));
      const { bytes } = encodeRegionSection(records, 4096);
      const section = new Uint8Array(bytes.length + table.length);
      section.set(bytes);
      section.set(table, bytes.length);
      const dv = new DataView(section.buffer);
      for (let i = 0; i < 40; i++) {
        const start = Math.floor(rnd() * (table.length + 1));
        dv.setUint32(i * 64 + 48, start, true);
        dv.setUint32(i * 64 + 52, Math.floor(rnd() * (table.length - start + 1)), true);
      }
      // One record at a time, so that each slice is judged (the first bad one stops a decode).
      for (let i = 0; i < 40; i++) {
        const one = new Uint8Array(64 + table.length);
        one.set(section.subarray(i * 64, i * 64 + 64));
        one.set(table, 64);
        new DataView(one.buffer).setBigUint64(0, 0x10000n, true);
        const c = { regionCount: 1, stringTableLength: table.length, chunkCount: 0, chunkSize: 4096, pageSize: 4096, base: 0 };
        const want = outcome(() => referenceDecode(one, c));
        expect({ k, i, got: outcome(() => [new RegionTable(one, c).get(0)]) }).toEqual({ k, i, got: want });
        expect({ k, i, got: outcome(() => new RegionTable(one, c).all()) }).toEqual({ k, i, got: want });
        expect({ k, i, native: outcome(() => new RegionTable(one, c, native).all()) }).toEqual({ k, i, native: want });
        if ('code' in (want as object)) refused++; else accepted++;
      }
    }
    expect(accepted).toBeGreaterThan(600); // both kinds of slice are common
    expect(refused).toBeGreaterThan(600);
  });

  test('a string table that is not UTF-8 as a whole: the names that are UTF-8 still open', async () => {
    const st = Uint8Array.from([...new TextEncoder().encode('good'), 0xff, ...new TextEncoder().encode('also')]);
    const region = (i: number): RawRegion => ({ address: 0x10000 + i * 8192, length: 4096, kind: KIND_GAP, prot: 0, name: i % 2 ? [5, 4] : [0, 4], chunks: 'gap' });
    const img = await openImage(assemble({ region, regionCount: 1000, stringTable: st }));
    expect(img.regions.map((r) => r.name).slice(0, 3)).toEqual(['good', 'also', 'good']);
    expect(img.regions[998]!.name).toBe(img.regions[0]!.name);
    const bad = (i: number): RawRegion => ({ ...region(i), name: i === 7 ? [3, 3] : region(i).name });
    await expect(openImage(assemble({ region: bad, regionCount: 10, stringTable: st }))).rejects.toMatchObject({ code: 'CORRUPT_INDEX', message: expect.stringMatching(/region 7 name is not UTF-8/) });
  });

  test('2^20 gaps naming one 4096-byte string: region(i) and regionAt by binary search in place, no array', async () => {
    const bytes = sharedNameGaps();
    const img = await openImage(bytes);
    expect(img.regionCount).toBe(1 << 20);
    const last = img.region((1 << 20) - 1);
    expect(last.name.length).toBe(4096);
    expect(img.regionAt(last.address + 4095n)?.index).toBe((1 << 20) - 1);
    expect(img.regionAt(last.address + 4096n)).toBeUndefined(); // the hole between gaps
    expect(img.regionAt(0n)).toBeUndefined();
    expect(img.regionAt((1n << 64n) - 1n)).toBeUndefined();
    await expect(img.read(last.address, 1)).rejects.toMatchObject({ code: 'NOT_MAPPED' });
    await img.close();
  }, budget(30_000));

  test('regionAt agrees with a linear search, including a region that ends at 2^64', async () => {
    const top = (1n << 64n) - 8192n;
    const region = (i: number): RawRegion => (i < 99
      ? { address: 0x10000 + i * 12288, length: 4096 + (i % 2) * 4096, kind: i % 3 ? 0 : KIND_GAP, prot: i % 3 ? 3 : 0, name: [0, 0], chunks: i % 3 ? 'zero' : 'gap' }
      : { address: top, length: 8192n, kind: 0, prot: 1, name: [0, 0], chunks: 'zero' });
    const img = await openImage(assemble({ region, regionCount: 100, stringTable: new Uint8Array(0) }));
    const rs = img.regions;
    const rnd = prng(3);
    const probes = [0n, top - 1n, top, (1n << 64n) - 1n, ...rs.flatMap((r) => [r.address - 1n, r.address, r.address + r.length - 1n, r.address + r.length])];
    for (let k = 0; k < 200; k++) probes.push(0x10000n + BigInt(Math.floor(rnd() * 99 * 12288)));
    for (const a of probes) {
      if (a < 0n || a >= 1n << 64n) continue;
      const linear = rs.find((r) => a >= r.address && a < r.address + r.length);
      expect({ a, got: img.regionAt(a)?.index }).toEqual({ a, got: linear?.index });
    }
    await img.close();
  });

  test('a valid 2^20-region image: region(i) without the array, every 997th region as the generator wrote it', async () => {
    const img = await openImage(manyRegions());
    expect(img.regionCount).toBe(1 << 20);
    const base = 0x7f00_0000_0000n;
    for (let i = 0; i < 1 << 20; i += 997) {
      const r = img.region(i);
      const gap = i % 2 === 1;
      expect(r).toEqual({
        index: i, address: base + BigInt(i) * 4096n, length: 4096n, protBits: gap ? 0 : 3, prot: gap ? '---' : 'rw-', kindId: gap ? KIND_GAP : 0,
        kind: gap ? 'gap' : 'anonymous', name: gap ? '' : `r${i}`, firstChunk: Math.ceil(i / 2), chunkCount: gap ? 0 : 1,
        storedBytes: i === 0 ? 4096n : 0n, zeroChunks: gap || i === 0 ? 0 : 1, isGap: gap, shared: false,
      });
      expect(img.regionAt(r.address + 4095n)?.index).toBe(i);
    }
    expect(Buffer.from(await img.read(img.region(0).address, 4096)).equals(Buffer.from(patternPage(2)))).toBe(true);
    expect(Buffer.from(await img.read(img.region(1000).address, 4096)).equals(Buffer.alloc(4096))).toBe(true);
    await img.close();
    expect(() => img.region(0)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' })); // its bytes were freed
  }, budget(60_000));
});
