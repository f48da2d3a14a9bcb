/**
 * ELF core interoperability (capture/elf-*.ts, `crimg import-core`, `crimg export-core`): the
 * pure structures, a failure corpus of hostile cores (each named by its expected error code),
 * random damage that must end in a CrimgError or an image and never a crash, the segment
 * rules of import, and export/import round trips checked with readelf and gdb (both required).
 */
import { jest } from '@jest/globals';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ImageWriter, openImage, isCrimgError, featureBitmap } from '../index.js';
import {
  CRIMG_NOTE_NAME, ELF_HEADER_SIZE, ET_CORE, NT_CRIMG_REGIONS, NT_FILE, NT_PRSTATUS, PF_R, PF_W, PF_X, PHDR_SIZE, PN_XNUM,
  PT_LOAD, PT_NOTE, archByName, decodeCrimgRegions, decodeElfHeader, decodeFileNote, decodeNotes, decodeProgramHeaders,
  decodeSectionZeroCount, encodeCrimgRegions, encodeFileNote, encodeNote, encodePrStatus, encodeSectionZero, layoutCore, sectionZeroRange,
} from '../capture/elf-core.js';
import { importCore } from '../capture/elf-import.js';
import { captureProcess } from '../capture/process.js';
import { exportCore, fileMappings } from '../capture/elf-export.js';
import { CORRUPT_CORE } from '../capture/_codes.js';
import { prng, tempDir } from './helpers.js';
import { crimg, json } from './cli-helpers.js';
import { ensureCaptureBuilt, gcore, gdbBytes, requireTool } from './capture-fixture.js';

jest.setTimeout(40000);

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const PAGE = 4096;
const X86 = archByName('x86_64')!;

/** One segment of a hand-made core. */
interface Seg {
  vaddr: bigint;
  flags: number;
  data?: Uint8Array;
  memsz?: bigint;
  /** Overrides (hostile cores). */
  filesz?: bigint;
  offset?: bigint;
}

/**
 * A core laid out as gcore does (unaligned, back to back): ELF header, program headers (the
 * PT_NOTE first), notes, segment bytes. `patch` edits the bytes afterwards.
 */
function buildCore(segs: Seg[], notes: Uint8Array[] = [], patch?: (b: Buffer, dv: DataView) => void): Buffer {
  const noteBytes = Buffer.concat(notes);
  const phnum = segs.length + (notes.length ? 1 : 0);
  const notesAt = ELF_HEADER_SIZE + phnum * PHDR_SIZE;
  let at = notesAt + noteBytes.length;
  const offsets = segs.map((s) => { const o = at; at += s.data?.length ?? 0; return o; });
  const b = Buffer.alloc(at);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, ET_CORE, true);
  dv.setUint16(18, X86.machine, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(32, BigInt(ELF_HEADER_SIZE), true);
  dv.setUint16(52, ELF_HEADER_SIZE, true);
  dv.setUint16(54, PHDR_SIZE, true);
  dv.setUint16(56, phnum, true);
  let i = 0;
  const ph = (type: number, flags: number, offset: bigint, vaddr: bigint, filesz: bigint, memsz: bigint): void => {
    const o = ELF_HEADER_SIZE + i++ * PHDR_SIZE;
    dv.setUint32(o, type, true);
    dv.setUint32(o + 4, flags, true);
    dv.setBigUint64(o + 8, offset, true);
    dv.setBigUint64(o + 16, vaddr, true);
    dv.setBigUint64(o + 32, filesz, true);
    dv.setBigUint64(o + 40, memsz, true);
    dv.setBigUint64(o + 48, 1n, true);
  };
  if (notes.length) ph(PT_NOTE, 0, BigInt(notesAt), 0n, BigInt(noteBytes.length), 0n);
  segs.forEach((s, k) => {
    const filesz = s.filesz ?? BigInt(s.data?.length ?? 0);
    ph(PT_LOAD, s.flags, s.offset ?? BigInt(offsets[k]!), s.vaddr, filesz, s.memsz ?? filesz);
  });
  b.set(noteBytes, notesAt);
  segs.forEach((s, k) => { if (s.data) b.set(s.data, offsets[k]!); });
  patch?.(b, dv);
  return b;
}

const bytes = (n: number, seed: number): Buffer => {
  const r = prng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
};

/** A valid little core: code of a file, a heap-like block, a stack with a thread's SP in it. */
function goodCore(): Buffer {
  const prstatus = encodePrStatus(X86, 4242);
  new DataView(prstatus.buffer).setBigUint64(112 + X86.spIndex * 8, 0x7ffd0000_1800n, true);
  const files = encodeFileNote(PAGE, [{ start: 0x400000n, end: 0x402000n, pageOffset: 0n, name: '/usr/bin/app' }]);
  return buildCore([
    { vaddr: 0x400000n, flags: PF_R | PF_X, data: bytes(2 * PAGE, 1) },
    { vaddr: 0x600000n, flags: PF_R | PF_W, data: bytes(3 * PAGE, 2) },
    { vaddr: 0x610000n, flags: 0, memsz: BigInt(PAGE) },
    { vaddr: 0x7ffd0000_0000n, flags: PF_R | PF_W, data: bytes(2 * PAGE, 3) },
  ], [encodeNote('CORE', NT_PRSTATUS, prstatus), encodeNote('CORE', NT_FILE, files)]);
}

async function importBuffer(core: Uint8Array, name: string, options = {}): Promise<ReturnType<typeof importCore>> {
  const path = tmp.path(`${name}.core`);
  writeFileSync(path, core);
  return importCore(path, tmp.path(`${name}.img`), { fsync: false, ...options });
}

describe('ELF structures (pure)', () => {
  it('lays out a core that decodes back: header, PT_NOTE first, page-aligned PT_LOADs, gaps without file bytes', () => {
    const notes = encodeNote('CORE', NT_PRSTATUS, encodePrStatus(X86, 7));
    const l = layoutCore(X86.machine, [
      { address: 0x10000n, length: 5000n, protBits: 3, hasData: true },
      { address: 0x20000n, length: 0x2000n, protBits: 0, hasData: false },
      { address: 0x30000n, length: 0x1000n, protBits: 5, hasData: true },
    ], notes, PAGE);
    const h = decodeElfHeader(l.head);
    expect(h).toMatchObject({ type: ET_CORE, machine: 62, phoff: 64n, phnum: 4 });
    const ph = decodeProgramHeaders(l.head.subarray(64), 4, 64);
    expect(ph.map((p) => p.type)).toEqual([PT_NOTE, PT_LOAD, PT_LOAD, PT_LOAD]);
    expect(ph[0]).toMatchObject({ offset: BigInt(l.notesOffset), filesz: BigInt(notes.length) });
    expect(ph.slice(1).map((p) => [p.vaddr, p.filesz, p.memsz, p.flags, Number(p.offset) % PAGE])).toEqual([
      [0x10000n, 5000n, 5000n, PF_R | PF_W, 0], [0x20000n, 0n, 0x2000n, 0, 0], [0x30000n, 0x1000n, 0x1000n, PF_R | PF_X, 0],
    ]);
    expect(l.offsets[2]).toBe(l.offsets[0]! + 8192);
    expect(l.fileSize).toBe(l.offsets[2]! + PAGE);
  });

  it('uses extended numbering (PN_XNUM) past 65534 segments', () => {
    const segs = Array.from({ length: 70000 }, (_, i) => ({ address: BigInt(i) * 0x2000n, length: 0x1000n, protBits: 0, hasData: false }));
    const l = layoutCore(X86.machine, segs, new Uint8Array(0), PAGE);
    const h = decodeElfHeader(l.head);
    expect(h.phnum).toBe(PN_XNUM);
    expect(sectionZeroRange(h, l.fileSize + 64)).toEqual({ offset: l.notesOffset, length: 64 });
    expect(decodeSectionZeroCount(encodeSectionZero(70001))).toBe(70001);
  });

  it('round-trips notes, NT_FILE and the CRIMG regions note', () => {
    const files = [{ start: 0x1000n, end: 0x3000n, pageOffset: 2n, name: '/lib/libc.so.6' }, { start: 0x5000n, end: 0x6000n, pageOffset: 0n, name: '/tmp/a file (deleted)' }];
    const regions = [
      { address: 0x1000n, length: 0x2000n, kindId: 3, protBits: 5, name: 'code ✓' }, { address: 0x9000n, length: 0x1000n, kindId: 6, protBits: 0, name: '' },
      { address: 0xa000n, length: 0x1000n, kindId: 5, protBits: 3, name: '/dev/shm/x', shared: true },
    ];
    const seg = Buffer.concat([encodeNote('CORE', NT_FILE, encodeFileNote(PAGE, files)), encodeNote(CRIMG_NOTE_NAME, NT_CRIMG_REGIONS, encodeCrimgRegions(regions))]);
    const notes = decodeNotes(seg, 1000);
    expect(notes.map((n) => [n.name, n.type])).toEqual([['CORE', NT_FILE], [CRIMG_NOTE_NAME, NT_CRIMG_REGIONS]]);
    expect(notes[0]!.offset).toBe(1000);
    expect(decodeFileNote(notes[0]!.desc, 0)).toEqual({ pageSize: 4096n, files });
    expect(decodeCrimgRegions(notes[1]!.desc, 0)).toEqual(regions);
  });

  it('refuses notes and NT_FILE descriptors that run past their bytes', () => {
    const n = encodeNote('CORE', NT_FILE, encodeFileNote(PAGE, [{ start: 0n, end: 1n, pageOffset: 0n, name: 'x' }]));
    expect(() => decodeNotes(n.subarray(0, n.length - 8), 0)).toThrow(expect.objectContaining({ code: CORRUPT_CORE }));
    const d = encodeFileNote(PAGE, [{ start: 0n, end: 1n, pageOffset: 0n, name: 'x' }]);
    expect(() => decodeFileNote(d.subarray(0, d.length - 1), 0)).toThrow(/no terminating NUL/);
    const big = Buffer.from(d);
    big.writeBigUInt64LE(1000n, 0);
    expect(() => decodeFileNote(big, 0)).toThrow(/claims 1000 files/);
    expect(() => decodeCrimgRegions(Uint8Array.of(9, 0, 0, 0, 0, 0, 0, 0), 0)).toThrow(/claims 9 regions/);
  });
});

/** Hostile cores, each named by the error code import-core must give. */
const CORPUS: [string, string, () => Uint8Array][] = [
  ['not ELF', 'BAD_MAGIC', () => Buffer.from('hello, this is not a core file at all, just text\n'.repeat(3))],
  ['empty file', 'BAD_MAGIC', () => new Uint8Array(0)],
  ['cut inside the ELF header', 'TRUNCATED', () => goodCore().subarray(0, 40)],
  ['ELF32', 'UNSUPPORTED_FEATURE', () => buildCore([], [], (b) => { b[4] = 1; })],
  ['big-endian', 'UNSUPPORTED_FEATURE', () => buildCore([], [], (b) => { b[5] = 2; })],
  ['an executable, not a core', 'UNSUPPORTED_FEATURE', () => buildCore([], [], (_b, dv) => dv.setUint16(16, 2, true))],
  ['program header size 32', CORRUPT_CORE, () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1) }], [], (_b, dv) => dv.setUint16(54, 32, true))],
  ['program headers past the end', 'TRUNCATED', () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1) }], [], (_b, dv) => dv.setBigUint64(32, 1n << 40n, true))],
  ['PN_XNUM without section header', CORRUPT_CORE, () => buildCore([], [], (_b, dv) => dv.setUint16(56, PN_XNUM, true))],
  ['PN_XNUM claiming 4 billion segments', 'LIMIT_EXCEEDED', () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1) }], [], (b, dv) => {
    dv.setUint16(56, PN_XNUM, true);
    dv.setBigUint64(40, BigInt(b.length - 64), true);
    dv.setUint16(58, 64, true);
    dv.setUint16(60, 1, true);
    dv.setUint32(b.length - 64 + 44, 0xffffffff, true);
  })],
  ['segment bytes past the end', 'TRUNCATED', () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1), filesz: 1n << 20n, memsz: 1n << 20n }])],
  ['segment offset near 2^64', 'TRUNCATED', () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1), offset: (1n << 64n) - 16n }])],
  ['more file bytes than memory', CORRUPT_CORE, () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1), memsz: 16n }])],
  ['memory past 2^64', CORRUPT_CORE, () => buildCore([{ vaddr: 0xffffffff_fffff000n, flags: PF_R, data: bytes(PAGE, 1), memsz: 0x10000n }])],
  ['overlapping segments', CORRUPT_CORE, () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(2 * PAGE, 1) }, { vaddr: 0x2000n, flags: PF_R, data: bytes(PAGE, 2) }])],
  ['unaligned segment', CORRUPT_CORE, () => buildCore([{ vaddr: 0x1010n, flags: PF_R, data: bytes(PAGE, 1) }])],
  ['no segment with memory', CORRUPT_CORE, () => buildCore([], [encodeNote('CORE', NT_PRSTATUS, encodePrStatus(X86, 1))])],
  ['note running past its segment', CORRUPT_CORE, () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1) }], [encodeNote('CORE', NT_PRSTATUS, encodePrStatus(X86, 1))], (b) => { b.writeUInt32LE(0x10000, 64 + 2 * 56 + 4); })],
  ['NT_FILE claiming more files than it holds', CORRUPT_CORE, () => {
    const d = Buffer.from(encodeFileNote(PAGE, [{ start: 0x1000n, end: 0x2000n, pageOffset: 0n, name: '/x' }]));
    d.writeBigUInt64LE(1n << 60n, 0);
    return buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1) }], [encodeNote('CORE', NT_FILE, d)]);
  }],
  ['zero tail of 1 TiB', 'LIMIT_EXCEEDED', () => buildCore([{ vaddr: 0x1000n, flags: PF_R | PF_W, data: bytes(PAGE, 1), memsz: 1n << 40n }])],
  ['damaged CRIMG validation note', 'CORRUPT_VALIDATION', () => buildCore([{ vaddr: 0x1000n, flags: PF_R, data: bytes(PAGE, 1) }], [encodeNote(CRIMG_NOTE_NAME, 0x43520001, new Uint8Array(24))])],
];

describe('import-core refuses hostile cores with a CrimgError', () => {
  it.each(CORPUS)('%s: %s', async (name, code, make) => {
    const file = name.replace(/\W+/g, '-');
    await expect(importBuffer(make(), file)).rejects.toMatchObject({ code });
  });

  it('survives random damage to a good core: an image or a CrimgError, nothing else', async () => {
    const good = goodCore();
    const rnd = prng(2024);
    const outcomes = { ok: 0, refused: 0 };
    for (let i = 0; i < 150; i++) {
      const b = Buffer.from(good);
      if (i % 5 === 0) {
        // truncation anywhere
        const cut = Math.floor(rnd() * b.length);
        await check(b.subarray(0, cut));
        continue;
      }
      // a few bytes anywhere in the structures (header, program headers, notes)
      const structEnd = 64 + 5 * 56 + 600;
      for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) b[Math.floor(rnd() * structEnd)] = Math.floor(rnd() * 256);
      await check(b);
    }
    expect(outcomes.ok + outcomes.refused).toBe(150);
    expect(outcomes.refused).toBeGreaterThan(0);

    async function check(core: Uint8Array): Promise<void> {
      try {
        await importBuffer(core, 'fuzz', { maxZeroFill: 1 << 24 });
        outcomes.ok++;
      } catch (e) {
        if (!isCrimgError(e)) throw new Error(`not a CrimgError: ${(e as Error).stack}`);
        outcomes.refused++;
      }
    }
  });
});

describe('import-core segment rules', () => {
  it('names file mappings from NT_FILE, finds the stack by a thread\'s stack pointer, keeps gaps', async () => {
    const r = await importBuffer(goodCore(), 'good');
    expect(r).toMatchObject({ architecture: 'x86_64', pageSize: PAGE, segments: 4, dataRegions: 3, gaps: 1, fromCrimg: false });
    const image = await openImage(tmp.path('good.img'));
    try {
      expect(image.regions.map((g) => [g.address, g.length, g.prot, g.kind, g.name])).toEqual([
        [0x400000n, 0x2000n, 'r-x', 'code', '/usr/bin/app'],
        [0x600000n, 0x3000n, 'rw-', 'anonymous', ''],
        [0x610000n, 0x1000n, '---', 'gap', ''],
        [0x7ffd00000000n, 0x2000n, 'rw-', 'stack', '[stack]'],
      ]);
      expect((await image.read(0x600000n, 3 * PAGE)).equals(bytes(3 * PAGE, 2))).toBe(true);
      expect(image.validation).toMatchObject({ producerName: 'crimg-import-core', architecture: 'x86_64', pageSize: PAGE, metrics: { 'core.pid': 4242 } });
    } finally {
      await image.close();
    }
  });

  it('fills an anonymous tail with zeros, makes a file tail and a readable segment without bytes gaps', async () => {
    const files = encodeFileNote(PAGE, [{ start: 0x400000n, end: 0x404000n, pageOffset: 0n, name: '/usr/lib/libx.so' }]);
    const core = buildCore([
      { vaddr: 0x400000n, flags: PF_R | PF_X, data: bytes(PAGE, 1), memsz: 4n * BigInt(PAGE) },
      { vaddr: 0x500000n, flags: PF_R | PF_W, data: bytes(PAGE, 2), memsz: 3n * BigInt(PAGE) },
      { vaddr: 0x600000n, flags: PF_R, memsz: 2n * BigInt(PAGE) },
    ], [encodeNote('CORE', NT_FILE, files)]);
    const r = await importBuffer(core, 'tails');
    expect(r.notes.join('\n')).toMatch(/12288 bytes of file content are not in the core; recorded as a gap/);
    expect(r.notes.join('\n')).toMatch(/1 readable segment \(8192 bytes\) have no bytes in the core/);
    const image = await openImage(tmp.path('tails.img'));
    try {
      expect(image.regions.map((g) => [g.address, g.length, g.kind])).toEqual([
        [0x400000n, 0x1000n, 'code'], [0x401000n, 0x3000n, 'gap'], [0x500000n, 0x3000n, 'anonymous'], [0x600000n, 0x2000n, 'gap'],
      ]);
      const anon = await image.read(0x500000n, 3 * PAGE);
      expect(anon.subarray(0, PAGE).equals(bytes(PAGE, 2))).toBe(true);
      expect(anon.subarray(PAGE).every((x) => x === 0)).toBe(true);
      await expect(image.read(0x401000n, 1)).rejects.toMatchObject({ code: 'NOT_MAPPED' });
    } finally {
      await image.close();
    }
  });
});

/** An image with every kind, a gap, a short region, a file region and restore constraints. */
async function sourceImage(path: string, options: { key?: Uint8Array; architecture?: string | null } = {}): Promise<Map<bigint, Buffer>> {
  const data = new Map<bigint, Buffer>([
    [0x400000n, bytes(3 * PAGE, 10)],
    [0x5500_0000_0000n, Buffer.concat([bytes(5 * PAGE, 11), Buffer.alloc(40 * PAGE), bytes(PAGE + 123, 12)])],
    [0x7f00_0000_0000n, bytes(2 * PAGE, 13)],
    [0x7ffc_0000_0000n, bytes(8 * PAGE, 14)],
  ]);
  const w = await ImageWriter.create(path, {
    fsync: false, chunkSize: 16384,
    ...(options.key ? { encrypt: 'aes-256-gcm' as const, key: options.key, compress: 'deflate:1' } : {}),
    validation: {
      producerName: 'test', producerVersion: '9', ...(options.architecture === null ? {} : { architecture: options.architecture ?? 'x86_64' }),
      labels: { engine: 'jvm-21' }, bitmaps: { 'cpu.features': featureBitmap(['sse2', 'avx2']) }, metrics: { 'capture.pid': 777 },
    },
  });
  await w.addRegion({ address: 0x400000n, data: data.get(0x400000n)!, prot: 'r-x', kind: 'code', name: '/usr/bin/java' });
  await w.addRegion({ address: 0x5500_0000_0000n, data: data.get(0x5500_0000_0000n)!, kind: 'heap', name: 'java heap' });
  await w.addGap({ address: 0x5600_0000_0000n, length: 0x100000n, name: 'reserved' });
  await w.addRegion({ address: 0x7f00_0000_0000n, data: data.get(0x7f00_0000_0000n)!, prot: 'r--', kind: 'metadata', name: 'metaspace' });
  await w.addRegion({ address: 0x7ffc_0000_0000n, data: data.get(0x7ffc_0000_0000n)!, kind: 'stack', name: 'main stack' });
  await w.finish();
  return data;
}

describe('export-core', () => {
  it('round-trips through import-core: regions, kinds, names, gaps, bytes and restore constraints', async () => {
    const key = randomBytes(32);
    const data = await sourceImage(tmp.path('src.img'), { key });
    const src = await openImage(tmp.path('src.img'), { key });
    let r;
    try {
      r = await exportCore(src, tmp.path('src.core'), { fsync: false });
    } finally {
      await src.close();
    }
    expect(r).toMatchObject({ architecture: 'x86_64', segments: 5, gapSegments: 1, files: 1 });
    const st = statSync(tmp.path('src.core'));
    expect(st.size).toBe(r.fileSize);
    const back = await importCore(tmp.path('src.core'), tmp.path('back.img'), { fsync: false });
    expect(back.fromCrimg).toBe(true);
    const a = await openImage(tmp.path('src.img'), { key });
    const b = await openImage(tmp.path('back.img'));
    try {
      const brief = (i: typeof a): unknown[] => i.regions.map((g) => [g.address, g.length, g.prot, g.kind, g.name]);
      expect(brief(b)).toEqual(brief(a));
      expect(b.validation).toEqual(a.validation);
      for (const [address, bytesAt] of data) expect((await b.read(address, bytesAt.length)).equals(bytesAt)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('writes what readelf reads without warnings, with zero chunks as holes', async () => {
    await sourceImage(tmp.path('plain.img'));
    const image = await openImage(tmp.path('plain.img'));
    try {
      await exportCore(image, tmp.path('plain.core'), { fsync: false });
    } finally {
      await image.close();
    }
    const st = statSync(tmp.path('plain.core'));
    expect(st.blocks * 512).toBeLessThan(st.size); // the 40 zero pages are a hole
    requireTool('readelf');
    const r = spawnSync('readelf', ['-lhnW', tmp.path('plain.core')], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/Type:\s+CORE/);
    expect(r.stdout).toMatch(/Machine:\s+Advanced Micro Devices X86-64/);
    const loads = r.stdout.split('\n').filter((l) => /^\s+LOAD/.test(l));
    expect(loads).toHaveLength(5);
    for (const l of loads) expect(Number.parseInt(l.trim().split(/\s+/)[1]!, 16) % PAGE).toBe(0);
    expect(r.stdout).toMatch(/NT_PRSTATUS/);
    expect(r.stdout).toMatch(/NT_FILE/);
  });

  it('is read by gdb at the recorded addresses', async () => {
    requireTool('gdb');
    const data = await sourceImage(tmp.path('gdb.img'));
    const image = await openImage(tmp.path('gdb.img'));
    try {
      await exportCore(image, tmp.path('gdb.core'), { fsync: false });
    } finally {
      await image.close();
    }
    const heap = data.get(0x5500_0000_0000n)!;
    expect(gdbBytes(tmp.path('gdb.core'), 0x5500_0000_0000n).equals(heap.subarray(0, 64))).toBe(true);
    expect(gdbBytes(tmp.path('gdb.core'), 0x5500_0000_0000n + 45n * BigInt(PAGE)).equals(heap.subarray(45 * PAGE, 45 * PAGE + 64))).toBe(true);
    expect(gdbBytes(tmp.path('gdb.core'), 0x400000n + 8n).equals(data.get(0x400000n)!.subarray(8, 72))).toBe(true);
  });

  it('refuses an image without a known architecture unless one is given', async () => {
    await sourceImage(tmp.path('noarch.img'), { architecture: null });
    const image = await openImage(tmp.path('noarch.img'));
    try {
      await expect(exportCore(image, tmp.path('noarch.core'))).rejects.toMatchObject({ code: 'UNSUPPORTED_FEATURE', message: expect.stringMatching(/records no architecture/) });
      const r = await exportCore(image, tmp.path('noarch.core'), { architecture: 'aarch64', fsync: false });
      expect(r.architecture).toBe('aarch64');
      const back = await importCore(tmp.path('noarch.core'), tmp.path('noarch-back.img'), { fsync: false });
      expect(back.architecture).toBe('aarch64');
    } finally {
      await image.close();
    }
  });
});

describe('crimg import-core and export-core', () => {
  beforeAll(() => ensureCaptureBuilt());

  it('convert both ways with --json, and read encrypted images with key options', async () => {
    const key = randomBytes(32);
    writeFileSync(tmp.path('cli.key'), key, { mode: 0o600 });
    await sourceImage(tmp.path('cli.img'), { key });
    const e = await crimg(['export-core', tmp.path('cli.img'), tmp.path('cli.core'), '--key-file', tmp.path('cli.key'), '--json']);
    expect(e.stderr).toBe('');
    expect(json(e)).toMatchObject({ architecture: 'x86_64', segments: 5, gapSegments: 1 });
    const i = await crimg(['import-core', tmp.path('cli.core'), tmp.path('cli-back.img'), '--compress', 'deflate:1']);
    expect(i.status).toBe(0);
    expect(i.stdout).toMatch(/^imported .*cli\.core into .*cli-back\.img: 5 regions/);
    expect(i.stdout).toMatch(/from its CRIMG notes/);
    const v = await crimg(['verify', tmp.path('cli-back.img')]);
    expect(v.status).toBe(0);
  });

  it('exit 1 with the code for a file that is not a core, or a damaged one; 2 for a missing file', async () => {
    writeFileSync(tmp.path('text.core'), 'not a core\n');
    const a = await crimg(['import-core', tmp.path('text.core'), tmp.path('x.img')]);
    expect(a.status).toBe(1);
    expect(a.stderr).toMatch(/^crimg: BAD_MAGIC: not an ELF file/);
    writeFileSync(tmp.path('overlap.core'), CORPUS.find(([n]) => n === 'overlapping segments')![2]());
    const b = await crimg(['import-core', tmp.path('overlap.core'), tmp.path('x.img')]);
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/overlaps segment/);
    const c = await crimg(['import-core', tmp.path('missing.core'), tmp.path('x.img')]);
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/IO_ERROR: cannot open .*missing\.core: ENOENT/);
  });
});

/** `info proc mappings` of a core as gdb prints it: start, end, file offset, file name. */
function gdbMappings(core: string): { start: bigint; end: bigint; offset: bigint; file: string }[] {
  const r = spawnSync('gdb', ['-batch', '-nx', '-c', core, '-ex', 'info proc mappings'], { encoding: 'utf8', timeout: 30000 });
  const out = [];
  for (const line of r.stdout.split('\n')) {
    // "      0x7f0068cba000     0x7f0068e10000   0x156000    0x26000 /usr/lib/x86_64-linux-gnu/libc.so.6"
    const m = /^\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+(\S.*)$/.exec(line);
    if (m) out.push({ start: BigInt(m[1]!), end: BigInt(m[2]!), offset: BigInt(m[3]!), file: m[4]! });
  }
  if (out.length === 0) throw new Error(`gdb listed no file mappings of ${core}:\n${r.stdout}\n${r.stderr}`);
  return out;
}

describe('file offsets and shared mappings (region flags, spec section 8.1)', () => {
  const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';

  it('NT_FILE lists recorded offsets, gaps included; regions without one keep offset 0; import-core gives them back', async () => {
    const w = await ImageWriter.create(tmp.path('offsets.img'), { fsync: false, validation: { architecture: 'x86_64' } });
    await w.addRegion({ address: 0x7f00_0000_0000n, data: bytes(2 * PAGE, 20), prot: 'r--', kind: 'file', name: LIBC, fileOffset: 0 });
    await w.addRegion({ address: 0x7f00_0000_2000n, data: bytes(3 * PAGE, 21), prot: 'r-x', kind: 'code', name: LIBC, fileOffset: 0x26000n });
    await w.addGap({ address: 0x7f00_0000_5000n, length: 0x1000n, name: LIBC, fileOffset: 0x29000n });
    await w.addRegion({ address: 0x7f00_0000_6000n, data: bytes(PAGE, 22), prot: 'rw-', kind: 'file', name: '/dev/shm/crimg-shared', shared: true, fileOffset: 0x3000n });
    await w.addRegion({ address: 0x7f00_0001_0000n, data: bytes(PAGE, 23), prot: 'r--', kind: 'file', name: '/srv/old-image-style' });
    await w.addRegion({ address: 0x7f00_0002_0000n, data: bytes(PAGE, 24), name: 'private anonymous' });
    await w.finish();
    const image = await openImage(tmp.path('offsets.img'));
    try {
      expect(fileMappings(image.regions, PAGE)).toEqual([
        { start: 0x7f00_0000_0000n, end: 0x7f00_0000_2000n, pageOffset: 0n, name: LIBC },
        { start: 0x7f00_0000_2000n, end: 0x7f00_0000_5000n, pageOffset: 0x26n, name: LIBC },
        { start: 0x7f00_0000_5000n, end: 0x7f00_0000_6000n, pageOffset: 0x29n, name: LIBC },
        { start: 0x7f00_0000_6000n, end: 0x7f00_0000_7000n, pageOffset: 3n, name: '/dev/shm/crimg-shared' },
        { start: 0x7f00_0001_0000n, end: 0x7f00_0001_1000n, pageOffset: 0n, name: '/srv/old-image-style' },
      ]);
      expect((await exportCore(image, tmp.path('offsets.core'), { fsync: false })).files).toBe(5);
    } finally {
      await image.close();
    }
    requireTool('gdb');
    const seen = gdbMappings(tmp.path('offsets.core'));
    expect(seen.find((m) => m.start === 0x7f00_0000_2000n)).toEqual({ start: 0x7f00_0000_2000n, end: 0x7f00_0000_5000n, offset: 0x26000n, file: LIBC });
    expect(seen.find((m) => m.start === 0x7f00_0000_5000n)?.offset).toBe(0x29000n);
    expect(seen.find((m) => m.start === 0x7f00_0000_6000n)?.offset).toBe(0x3000n);

    await importCore(tmp.path('offsets.core'), tmp.path('offsets-back.img'), { fsync: false });
    const back = await openImage(tmp.path('offsets-back.img'));
    try {
      // The offsets come back from NT_FILE, SHARED from the CRIMG regions note.
      expect(back.regions.map((r) => [r.address, r.shared, r.fileOffset])).toEqual([
        [0x7f00_0000_0000n, false, 0n], [0x7f00_0000_2000n, false, 0x26000n], [0x7f00_0000_5000n, false, 0x29000n],
        [0x7f00_0000_6000n, true, 0x3000n], [0x7f00_0001_0000n, false, 0n], [0x7f00_0002_0000n, false, undefined],
      ]);
    } finally {
      await back.close();
    }
  });

  it('a live process: captured or gcore\'d, then exported: gdb shows libc\'s mappings at their real offsets', async () => {
    requireTool('gdb');
    requireTool('gcore');
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      // Wait until sleep (not the forked node) maps libc.
      let maps: { start: bigint; end: bigint; perms: string; offset: bigint; file: string }[] = [];
      for (let i = 0; i < 100 && !maps.some((m) => m.perms === 'r-xp' && m.file.endsWith('/libc.so.6')); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        maps = readFileSync(`/proc/${child.pid}/maps`, 'utf8').split('\n').flatMap((l) => {
          // "7f4b38224000-7f4b3837a000 r-xp 00026000 fe:00 339380   /usr/lib/x86_64-linux-gnu/libc.so.6"
          const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ \d+\s+(\/\S*)$/.exec(l);
          return m ? [{ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), perms: m[3]!, offset: BigInt(`0x${m[4]}`), file: m[5]! }] : [];
        });
      }
      const libc = maps.filter((m) => m.file.endsWith('/libc.so.6'));
      const text = libc.find((m) => m.perms === 'r-xp');
      if (!text) throw new Error(`sleep maps no r-xp libc.so.6:\n${maps.map((m) => `${m.perms} ${m.file}`).join('\n')}`);
      expect(text.offset).toBeGreaterThan(0n);

      // Captured: every libc mapping is a region (r-x included) at its offset.
      await captureProcess(child.pid!, tmp.path('sleep.img'), { fsync: false });
      const image = await openImage(tmp.path('sleep.img'));
      try {
        const r = image.regions.find((g) => g.address === text.start)!;
        expect({ name: r.name, kind: r.kind, shared: r.shared, fileOffset: r.fileOffset }).toEqual({ name: text.file, kind: 'code', shared: false, fileOffset: text.offset });
        await exportCore(image, tmp.path('sleep-captured.core'), { fsync: false });
      } finally {
        await image.close();
      }
      const exported = gdbMappings(tmp.path('sleep-captured.core'));
      for (const m of libc) expect({ start: m.start, offset: exported.find((e) => e.start === m.start)?.offset }).toEqual({ start: m.start, offset: m.offset });

      // gcore'd then imported: the segments gcore dumps keep the offsets of its NT_FILE
      // (gcore leaves unmodified r-x file mappings out, so these are libc's data segments).
      const core = gcore(tmp.path('sleep'), child.pid!);
      await importCore(core, tmp.path('sleep-gcore.img'), { fsync: false });
      const imported = await openImage(tmp.path('sleep-gcore.img'));
      let dumped: bigint[];
      try {
        dumped = libc.filter((m) => imported.regions.some((g) => g.address === m.start && !g.isGap)).map((m) => m.start);
        expect(dumped.some((a) => libc.find((m) => m.start === a)!.offset > 0n)).toBe(true);
        for (const a of dumped) expect(imported.regions.find((g) => g.address === a)!.fileOffset).toBe(libc.find((m) => m.start === a)!.offset);
        await exportCore(imported, tmp.path('sleep-imported.core'), { fsync: false });
      } finally {
        await imported.close();
      }
      const again = gdbMappings(tmp.path('sleep-imported.core'));
      for (const a of dumped) expect(again.find((e) => e.start === a)?.offset).toBe(libc.find((m) => m.start === a)!.offset);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
