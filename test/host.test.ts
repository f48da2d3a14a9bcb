/**
 * The `cpu.features` table (image/host.ts, spec/FORMAT.md section 4): one bit per flag per
 * architecture, covering what /proc/cpuinfo prints on x86 ("flags") and aarch64 ("Features");
 * the bits first published keep their numbers; this machine's flags all map to bits of its own
 * architecture and to none of the other; images written before (x86 aes also set aarch64's aes
 * bit) still match the host that wrote them.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { machine } from 'node:os';
import {
  CPU_FEATURES, CPU_FEATURE_TABLE, describeHost, featureBitmap, featureName, offeredFeatures, readCpuFlags,
} from '../image/host.js';
import { ImageWriter } from '../image/writer.js';
import { openReader } from '../image/reader.js';
import { tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

const FIRST = 143; // bits as first published: 109 x86 flags, then 34 aarch64 ones
const bitsOf = (bitmap: Uint8Array): number[] => {
  const out: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if ((bitmap[i >> 3]! >> (i & 7)) & 1) out.push(i);
  return out;
};
/** The bitmap the first table's featureBitmap made: every bit whose name is given, whatever its architecture. */
const firstTableBitmap = (names: string[]): Uint8Array => {
  const b = new Uint8Array(Math.ceil(FIRST / 8));
  for (let i = 0; i < FIRST; i++) if (names.includes(CPU_FEATURES[i]!)) b[i >> 3]! |= 1 << (i & 7);
  return b;
};

test('the bits first published keep their numbers and names', () => {
  expect(createHash('sha256').update(JSON.stringify(CPU_FEATURES.slice(0, FIRST))).digest('hex'))
    .toBe('b04e94aa8ccd29e24b814b8884834b02e89589993a165e8198ad21b02d198ca6');
  expect(CPU_FEATURE_TABLE.slice(0, FIRST).map((f) => f.architecture)).toEqual([
    ...Array<string>(109).fill('x86_64'), ...Array<string>(34).fill('aarch64'),
  ]);
  expect([CPU_FEATURES[41], CPU_FEATURES[110], CPU_FEATURES[118]]).toEqual(['aes', 'aes', 'cpuid']);
  expect(CPU_FEATURES).toEqual(CPU_FEATURE_TABLE.map((f) => f.name));
});

test('one bit per flag per architecture, each name once per architecture', () => {
  for (const arch of ['x86_64', 'aarch64']) {
    const names = CPU_FEATURE_TABLE.filter((f) => f.architecture === arch).map((f) => f.name);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    for (const n of names) expect(n).toMatch(/^[a-z0-9_]+$/);
  }
  const x86 = CPU_FEATURE_TABLE.filter((f) => f.architecture === 'x86_64').map((f) => f.name);
  const arm = CPU_FEATURE_TABLE.filter((f) => f.architecture === 'aarch64').map((f) => f.name);
  // The kernels' lists: x86 cpufeatures.h shown names, arm64 hwcap_str[].
  expect(x86).toEqual(expect.arrayContaining(['fsrm', 'avx512_vp2intersect', 'constant_tsc', 'cpuid', 'tsc_known_freq', 'arat', 'sme', 'rng', 'amx_tile', 'user_shstk']));
  expect(arm).toEqual(expect.arrayContaining(['fp', 'evtstrm', 'aes', 'cpuid', 'sve2', 'sme', 'rng', 'mte', 'gcs', 'smesmop4']));
  expect(x86.length).toBeGreaterThan(280);
  expect(arm.length).toBeGreaterThan(100);
});

test('aes sets the bit of the architecture given, not the other', () => {
  expect(bitsOf(featureBitmap(['aes', 'sse2'], 'x86_64'))).toEqual([21, 41]);
  expect(bitsOf(featureBitmap(['aes', 'asimd'], 'aarch64'))).toEqual([109, 110]);
  expect(featureBitmap(['aes'], 'riscv64')).toEqual(new Uint8Array(1));
  // Up to the last set bit's byte: bits beyond a bitmap's end count as zero.
  expect(featureBitmap(['sse2'], 'x86_64')).toEqual(Uint8Array.of(0, 0, 0x20));
  expect(featureBitmap(['avx512_vp2intersect'], 'x86_64').length).toBe((CPU_FEATURES.indexOf('avx512_vp2intersect') >> 3) + 1);
  expect(featureName(41)).toBe('aes');
  expect(featureName(100000)).toBe('bit 100000');
});

test("this machine's /proc/cpuinfo: every flag printed maps to a bit of its architecture, none of the other", () => {
  const arch = machine();
  expect(['x86_64', 'aarch64']).toContain(arch);
  const text = readFileSync('/proc/cpuinfo', 'utf8');
  const line = new RegExp(`^${arch === 'x86_64' ? 'flags' : 'Features'}\\s*:\\s*(.*)$`, 'm').exec(text);
  if (!line) throw new Error(`/proc/cpuinfo has no ${arch === 'x86_64' ? 'flags' : 'Features'} line`);
  const flags = [...new Set(line[1]!.trim().split(/\s+/))];
  expect(flags.length).toBeGreaterThan(5);
  expect(readCpuFlags().sort()).toEqual([...line[1]!.trim().split(/\s+/)].sort());
  const own = new Set(CPU_FEATURE_TABLE.filter((f) => f.architecture === arch).map((f) => f.name));
  expect(flags.filter((f) => !own.has(f))).toEqual([]);
  const host = describeHost();
  const bits = bitsOf(host.bitmaps['cpu.features']!);
  expect(bits.length).toBe(flags.length);
  expect(bits.map((i) => CPU_FEATURE_TABLE[i]!.architecture).filter((a) => a !== arch)).toEqual([]);
  expect(bits.map((i) => CPU_FEATURES[i]).sort()).toEqual([...flags].sort());
  expect(host.bitmaps['cpu.features']).toEqual(featureBitmap(flags, arch));
});

test('an aarch64 Features line (Graviton 3) maps name by name to aarch64 bits', () => {
  const cpuinfo = 'processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng\nCPU implementer\t: 0x41\n';
  const flags = readCpuFlags(cpuinfo);
  expect(flags).toHaveLength(38);
  const bits = bitsOf(featureBitmap(flags, 'aarch64'));
  expect(bits.map((i) => CPU_FEATURES[i]).sort()).toEqual([...flags].sort());
  expect(bits.every((i) => CPU_FEATURE_TABLE[i]!.architecture === 'aarch64')).toBe(true);
  expect(bits).toContain(110);
  expect(bits).not.toContain(41);
});

test('images written with the first table still match the host that wrote them; other bits do not', async () => {
  const arch = machine();
  const host = describeHost();
  const legacy = firstTableBitmap(host.cpuFlags);
  // The first table set the other architecture's aes (and, on x86, aarch64's cpuid) too.
  if (arch === 'x86_64' && host.cpuFlags.includes('aes')) expect(bitsOf(legacy)).toContain(110);
  const offered = offeredFeatures(host.bitmaps['cpu.features']!, arch);
  expect(bitsOf(legacy).filter((i) => !bitsOf(offered).includes(i))).toEqual([]);
  // Only the first table's aliases are offered: an aarch64-only flag never is.
  expect(bitsOf(offeredFeatures(featureBitmap(['aes', 'cpuid'], 'x86_64'), 'x86_64')).map((i) => [CPU_FEATURE_TABLE[i]!.architecture, CPU_FEATURES[i]]).sort())
    .toEqual([['aarch64', 'aes'], ['aarch64', 'cpuid'], ['x86_64', 'aes'], ['x86_64', 'cpuid']]);
  expect(bitsOf(offeredFeatures(featureBitmap(['aes'], 'aarch64'), 'aarch64'))).toEqual([41, 110]);

  const check = async (name: string, bitmap: Uint8Array) => {
    const path = t.path(`${name}.img`);
    const w = await ImageWriter.create(path, { fsync: false, validation: { architecture: arch, bitmaps: { 'cpu.features': bitmap } } });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(4096) });
    await w.finish();
    const image = await openReader(path);
    try {
      return image.checkCompatibility(host);
    } finally {
      await image.close();
    }
  };
  expect((await check('legacy', legacy)).compatible).toBe(true);
  expect((await check('current', host.bitmaps['cpu.features']!)).compatible).toBe(true);
  const foreign = arch === 'x86_64' ? 'sve' : 'avx2';
  const other = arch === 'x86_64' ? 'aarch64' : 'x86_64';
  const r = await check('foreign', featureBitmap([foreign], other));
  expect(r.compatible).toBe(false);
  expect(r.bitmaps).toEqual([expect.objectContaining({ key: 'cpu.features', count: 1, names: [foreign] })]);
});
