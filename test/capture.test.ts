/**
 * Capture of a live process (capture/process.ts, `crimg capture`) against the C child of
 * test/capture-fixture.ts, cross-checked with gcore (imported with import-core) and with gdb
 * reading crimg's exported core: all must show the child's known bytes at the same addresses.
 * Nothing skips: gcc, gcore and gdb are installed by `.ci/run` (and the README's set-up), and a
 * kernel that forbids reading another process's memory fails the first test, saying so.
 */
import { jest } from '@jest/globals';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openImage, describeHost, type Image } from '../index.js';
import { captureProcess } from '../capture/process.js';
import { importCore } from '../capture/elf-import.js';
import { exportCore } from '../capture/elf-export.js';
import { MAX_READABLE_ADDRESS, parseFileGapName, parseMaps, parseSmapsWritten, planMapping, type MapsEntry } from '../capture/proc-maps.js';
import { NT_FILE, PT_NOTE, decodeElfHeader, decodeFileNote, decodeNotes, decodeProgramHeaders } from '../capture/elf-core.js';
import { parseStat } from '../capture/proc.js';
import { NO_SUCH_PROCESS, PROCESS_EXITED } from '../capture/_codes.js';
import { isTempOf } from '../image/_output-file.js';
import { installedCopy, tempDir } from './helpers.js';
import { crimg, json } from './cli-helpers.js';
import {
  canReadMemory, compileMemfill, ensureCaptureBuilt, expectedPattern, gcore, gdbBytes, requireTool, startMemfill,
  type Child, type PatternInfo,
} from './capture-fixture.js';

jest.setTimeout(40000);

const SEED = 7;
const PAGE = 4096;
const tmp = tempDir();
chmodSync(tmp.dir, 0o755);
const memfill = compileMemfill(tmp.dir);
const child: Child<PatternInfo> | null = await startMemfill(memfill, ['pattern', String(SEED)]);

test('this machine lets a process read another process\'s memory (every capture test needs it)', () => {
  expect(canReadMemory(child!.info.pid, child!.info.heap)).toEqual({ ok: true });
});

afterAll(() => {
  child?.kill();
  tmp.cleanup();
});

const info = (): PatternInfo => child!.info;
const heapBytes = (): Buffer => expectedPattern(SEED, 1, info().heapLen);
const mmapBytes = (): Buffer => expectedPattern(SEED, 2, info().mmapLen);
const stackBytes = (): Buffer => expectedPattern(SEED, 3, info().stackLen);

/**
 * The temporary files of output `path` left in its directory (`.NAME.<hex>.crimg-tmp`,
 * image/_output-file.ts; NAME.tmp is a name no writer uses any more).
 */
function tempsOf(path: string): string[] {
  return readdirSync(dirname(path)).filter((n) => isTempOf(n, basename(path)));
}

/** The state letter of /proc/PID/stat. */
function state(pid: number): string {
  return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).state;
}

async function waitState(pid: number, want: (s: string) => boolean): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const s = state(pid);
    if (want(s)) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
  return state(pid);
}

/**
 * Checks the three blocks of the pattern child in an image. The guard page was written before
 * it was made PROT_NONE: its bytes are kept (issue 13, item 2), as gcore keeps them.
 */
async function expectPattern(image: Image): Promise<void> {
  const i = info();
  expect((await image.read(i.heap, i.heapLen)).equals(heapBytes())).toBe(true);
  const m = mmapBytes();
  expect((await image.read(i.mmap, i.mmapLen)).equals(m)).toBe(true);
  expect((await image.read(i.stack, i.stackLen)).equals(stackBytes())).toBe(true);
}

describe('/proc parsing (pure)', () => {
  const MAPS = [
    '55dc7ce22000-55dc7ce23000 r--p 00000000 fe:00 2146504                    /tmp/memfill',
    '55dc7ce23000-55dc7ce24000 r-xp 00001000 fe:00 2146504                    /tmp/memfill',
    '55dc968e0000-55dc96a01000 rw-p 00000000 00:00 0                          [heap]',
    '7fd74ee00000-7fd74ef00000 rw-p 00000000 00:00 0 ',
    '7fd74ef00000-7fd74ef01000 ---p 00000000 00:00 0 ',
    '7fd74ef01000-7fd74ef02000 rw-s 00000000 00:05 12                         /memfd:my data (deleted)',
    '7fd74ef02000-7fd74ef03000 rw-p 00000000 00:00 0                          [anon:arena]',
    '7fd74f5e3000-7fd74f5e7000 r--p 00000000 00:00 0                          [vvar]',
    '7fd74f5e7000-7fd74f5e9000 r--p 00000000 00:00 0                          [vvar_vclock]',
    '7fd74f5e9000-7fd74f5eb000 r-xp 00000000 00:00 0                          [vdso]',
    '7fffa04c3000-7fffa04e4000 rw-p 00000000 00:00 0                          [stack]',
    'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]',
    '',
  ].join('\n');

  it('parses every field, paths with spaces included', () => {
    const m = parseMaps(MAPS);
    expect(m).toHaveLength(12);
    expect(m[1]).toEqual<MapsEntry>({ start: 0x55dc7ce23000n, end: 0x55dc7ce24000n, perms: 'r-xp', offset: 0x1000n, dev: 'fe:00', inode: 2146504, path: '/tmp/memfill' });
    expect(m[3]!.path).toBe('');
    expect(m[5]!.path).toBe('/memfd:my data (deleted)');
  });

  it('turns each mapping into a region or a gap by the documented rules', () => {
    const plans = parseMaps(MAPS).map((e) => planMapping(e));
    const brief = plans.map((p) => (p.action === 'gap' ? `gap ${p.name}` : `${p.kind} ${p.prot} ${p.name}`));
    expect(brief).toEqual([
      'file r-- /tmp/memfill', 'code r-x /tmp/memfill', 'heap rw- [heap]', 'anonymous rw- ', 'anonymous --- ',
      'anonymous rw- /memfd:my data (deleted)', 'anonymous rw- [anon:arena]', 'gap [vvar]', 'gap [vvar_vclock]',
      'code r-x [vdso]', 'stack rw- [stack]', 'gap [vsyscall]',
    ]);
    // Only private anonymous memory reads as zeros where the pagemap shows no page.
    expect(plans.map((p) => (p.action === 'region' ? `${p.zeroWhenAbsent}${p.noRead ? ' noRead' : ''}` : '-'))).toEqual([
      'false', 'false', 'true', 'true', 'true noRead', 'false', 'true', '-', '-', 'false', 'true', '-',
    ]);
    expect(plans.filter((p) => p.note).map((p) => p.name)).toEqual(['[vvar]', '[vvar_vclock]', '[vdso]', '[vsyscall]']);
  });

  it("fileMappings 'gap': only unwritten read-only mappings of existing files become gaps", () => {
    const maps = parseMaps(MAPS);
    // The first mapping was written (resident and swapped out); the second has dirty page-cache
    // pages (its file was just written), which does not make it written by the process.
    const smaps = maps.map((e, i) => `${e.start.toString(16)}-${e.end.toString(16)} ${e.perms} 00000000 00:00 0 ${e.path}\nSize: 4 kB\n`
      + `Private_Dirty: ${i === 1 ? 4 : 0} kB\nAnonymous: ${i === 0 ? 4 : 0} kB\nSwap: ${i === 0 ? 8 : 0} kB\nPrivate_Hugetlb: 0 kB\nVmFlags: rd mr mw me\n`).join('');
    const writtenKb = parseSmapsWritten(smaps);
    expect(writtenKb.size).toBe(maps.length);
    expect(writtenKb.get(maps[0]!.start)).toBe(12);
    const plans = maps.map((e) => planMapping(e, { fileMappings: 'gap', writtenKb }));
    const brief = plans.map((p) => (p.action === 'gap' ? `gap ${p.name}` : `${p.kind} ${p.prot} ${p.name}`));
    expect(brief).toEqual([
      'file r-- /tmp/memfill', // written (RELRO-like): copied
      'gap /tmp/memfill @0x1000 r-x', // clean code: left to the file, with what to map
      'heap rw- [heap]', 'anonymous rw- ', 'anonymous --- ',
      'anonymous rw- /memfd:my data (deleted)', // memory only: no file to map it from
      'anonymous rw- [anon:arena]', 'gap [vvar]', 'gap [vvar_vclock]', 'code r-x [vdso]', 'stack rw- [stack]', 'gap [vsyscall]',
    ]);
    expect(plans[1]!.note).toMatch(/unwritten read-only mapping of a file, left for the restorer to map from the file/);
    // A swapped-out written page counts as written.
    const swapped = parseSmapsWritten(`${maps[1]!.start.toString(16)}-${maps[1]!.end.toString(16)} r-xp 00001000 fe:00 2146504 /tmp/memfill\nAnonymous: 0 kB\nSwap: 4 kB\n`);
    expect(planMapping(maps[1]!, { fileMappings: 'gap', writtenKb: swapped }).action).toBe('region');
    // Without smaps figures nothing is left out.
    expect(maps.map((e) => planMapping(e, { fileMappings: 'gap' }).action)).toEqual(maps.map((e) => planMapping(e).action));
  });

  it('reads back the names of file gaps, and nothing else', () => {
    expect(parseFileGapName('/usr/lib/a b.so @0x28000 r-x')).toEqual({ path: '/usr/lib/a b.so', offset: 0x28000n, prot: 'r-x' });
    expect(parseFileGapName('/x @0xffffffffffffffff r--')).toEqual({ path: '/x', offset: 0xffffffffffffffffn, prot: 'r--' });
    for (const name of ['guard', '/x', '/x @0x1 rwxp', 'x @0x1 r--', '/x @0x10000000000000000 r--', '/x @0xZZ r--', `/x @0x${'f'.repeat(4000)} r--`]) {
      expect(parseFileGapName(name)).toBeNull();
    }
  });

  it('makes a readable mapping above 2^53 a gap with a note', () => {
    const start = MAX_READABLE_ADDRESS + 1n - (MAX_READABLE_ADDRESS + 1n) % 4096n;
    const p = planMapping({ start, end: start + 0x2000n, perms: 'rw-p', offset: 0n, dev: '00:00', inode: 0, path: '' });
    expect(p.action).toBe('gap');
    expect(p.note).toMatch(/above 2\^53/);
  });

  it('refuses lines that are not maps lines, and maps out of order', () => {
    expect(() => parseMaps('hello\n')).toThrow(/line 1/);
    expect(() => parseMaps('2000-3000 rw-p 00000000 00:00 0\n1000-2000 rw-p 00000000 00:00 0\n')).toThrow(/ascending/);
    expect(() => parseMaps('3000-2000 rw-p 00000000 00:00 0\n')).toThrow(/ascending/);
  });

  it('reads a stat line whose command name holds spaces and parentheses', () => {
    expect(parseStat('123 (a) b (c)) S 1 123 123 0 -1')).toMatchObject({ pid: 123, comm: 'a) b (c)', state: 'S', ppid: 1 });
  });
});

describe('captureProcess', () => {
  it('captures the heap, mapping and stack bytes at their addresses, the written guard page with its protection, and resumes', async () => {
    const path = tmp.path('lib.img');
    const r = await captureProcess(info().pid, path, { fsync: false });
    expect(r).toMatchObject({ pid: info().pid, comm: 'memfill', resumed: true, wasStopped: false });
    expect(r.dataRegions + r.gaps).toBe(r.summary.regions);
    expect(await waitState(info().pid, (s) => s !== 'T')).not.toBe('T');
    const image = await openImage(path);
    try {
      await expectPattern(image);
      const host = describeHost();
      expect(image.validation).toMatchObject({ producerName: 'crimg-capture', architecture: host.architecture, pageSize: host.pageSize, metrics: { 'capture.pid': info().pid } });
      expect(Buffer.from(image.validation.bitmaps['cpu.features']!).equals(Buffer.from(host.bitmaps['cpu.features']!))).toBe(true);
      expect(image.regionAt(info().heap)).toMatchObject({ kind: 'heap', name: '[heap]', prot: 'rw-' });
      expect(image.regionAt(info().stack)).toMatchObject({ kind: 'stack', name: '[stack]' });
      expect(image.regionAt(info().mmap)).toMatchObject({ kind: 'anonymous', prot: 'rw-' });
      expect(image.regionAt(info().guard)).toMatchObject({ isGap: false, prot: '---', kind: 'anonymous', length: BigInt(PAGE) });
      expect(r.notes.some((n) => /\(---\) has no read permission but holds memory/.test(n))).toBe(true);
      expect(image.regions.some((g) => g.kind === 'code' && g.name === memfill && g.prot === 'r-x')).toBe(true);
      // File mappings keep their file offset and shared flag (region flags); anonymous memory has none.
      const maps = parseMaps(readFileSync(`/proc/${info().pid}/maps`, 'utf8'));
      for (const e of maps.filter((m) => m.path === memfill || m.path.includes('libc'))) {
        expect(image.regionAt(e.start)).toMatchObject({ address: e.start, fileOffset: e.offset, shared: false });
      }
      expect(maps.some((e) => e.path === memfill && e.offset > 0n)).toBe(true);
      expect(image.regionAt(info().short)).toMatchObject({ shared: true, fileOffset: 0n });
      expect(image.regionAt(info().heap)!.fileOffset).toBeUndefined();
      expect(image.regions.some((g) => g.kind === 'code' && g.name === '[vdso]')).toBe(true);
      // Past the end of its file a mapping cannot be read: its first page is data, the rest a gap.
      expect(image.regionAt(info().short)).toMatchObject({ kind: 'file', prot: 'r--', length: BigInt(PAGE), name: expect.stringMatching(/ \(deleted\)$/) });
      expect((await image.read(info().short, PAGE)).every((x) => x === 0x5a)).toBe(true);
      expect(image.regionAt(info().short + BigInt(PAGE))).toMatchObject({ isGap: true, length: 2n * BigInt(PAGE) });
      expect(r.notes.some((n) => /\(deleted\) 0x[0-9a-f]+-0x[0-9a-f]+ \(r--\) recorded as a gap: the kernel refused to read it \(EIO\)/.test(n))).toBe(true);
      const vvar = image.regions.find((g) => g.name === '[vvar]');
      if (vvar) expect(vvar.isGap).toBe(true);
      for (let k = 1; k < image.regions.length; k++) {
        const a = image.regions[k - 1]!;
        expect(a.address + a.length <= image.regions[k]!.address).toBe(true);
      }
      expect((await image.verify()).ok).toBe(true);
    } finally {
      await image.close();
    }
  });

  it("fileMappings 'gap' leaves the program's clean code to its file and still captures the data", async () => {
    const full = await captureProcess(info().pid, tmp.path('full.img'), { fsync: false });
    const slim = await captureProcess(info().pid, tmp.path('slim.img'), { fsync: false, fileMappings: 'gap' });
    const image = await openImage(tmp.path('slim.img'));
    try {
      await expectPattern(image);
      expect(image.regions.some((g) => g.name === memfill && g.prot === 'r-x')).toBe(false);
      expect(image.regions.some((g) => g.isGap && g.name.startsWith(`${memfill} @0x`) && g.name.endsWith(' r-x'))).toBe(true);
      expect(image.regions.some((g) => g.isGap && /libc.* @0x[0-9a-f]+ r-x$/.test(g.name))).toBe(true);
      expect(slim.summary.storedBytes).toBeLessThan(full.summary.storedBytes);
      expect(slim.notes.some((n) => /unwritten read-only mapping of a file/.test(n))).toBe(true);
      for (const g of image.regions.filter((r) => r.isGap && parseFileGapName(r.name))) expect(g.fileOffset).toBe(parseFileGapName(g.name)!.offset);
      expect((await image.verify()).ok).toBe(true);
      // An exported core lists the left-out mappings in NT_FILE, with their file offsets.
      await exportCore(image, tmp.path('slim.core'));
      const core = readFileSync(tmp.path('slim.core'));
      const h = decodeElfHeader(core);
      const notesSeg = decodeProgramHeaders(core.subarray(Number(h.phoff)), h.phnum, Number(h.phoff)).find((p) => p.type === PT_NOTE)!;
      const fileNote = decodeNotes(core.subarray(Number(notesSeg.offset), Number(notesSeg.offset + notesSeg.filesz)), Number(notesSeg.offset)).find((n) => n.type === NT_FILE)!;
      const { files } = decodeFileNote(fileNote.desc, 0);
      for (const g of image.regions.filter((r) => r.isGap && parseFileGapName(r.name))) {
        const left = parseFileGapName(g.name)!;
        expect(files).toContainEqual({ start: g.address, end: g.address + g.length, pageOffset: left.offset / BigInt(PAGE), name: left.path });
      }
    } finally {
      await image.close();
    }
    await expect(captureProcess(info().pid, tmp.path('bad.img'), { fileMappings: 'none' as 'gap' })).rejects.toThrow(RangeError);
  });

  it('leaves the process stopped when asked, and then does not resume one it found stopped', async () => {
    const pid = info().pid;
    const first = await captureProcess(pid, tmp.path('stopped.img'), { fsync: false, leaveStopped: true });
    try {
      expect(first).toMatchObject({ resumed: false, wasStopped: false });
      expect(state(pid)).toBe('T');
      const second = await captureProcess(pid, tmp.path('stopped2.img'), { fsync: false });
      expect(second).toMatchObject({ resumed: false, wasStopped: true });
      expect(state(pid)).toBe('T');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(await waitState(pid, (s) => s !== 'T')).not.toBe('T');
  });

  it('writes compressed and encrypted images that read back the same', async () => {
    const key = randomBytes(32);
    const path = tmp.path('secret.img');
    const r = await captureProcess(info().pid, path, { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key, chunkSize: 16384 });
    expect(r.summary.storedBytes).toBeLessThan(r.summary.plainBytes);
    const image = await openImage(path, { key });
    try {
      expect(image.compression).toBe('deflate:1');
      expect(image.encryption).toBe('aes-256-gcm');
      await expectPattern(image);
    } finally {
      await image.close();
    }
  });

  it('names a pid that is no process', async () => {
    await expect(captureProcess(2147483646, tmp.path('none.img'))).rejects.toMatchObject({ code: NO_SUCH_PROCESS, message: expect.stringMatching(/process 2147483646: no such process/) });
    expect(tempsOf(tmp.path('none.img'))).toEqual([]);
  });

  it('refuses its own pid and pids that are not positive integers', async () => {
    await expect(captureProcess(process.pid, tmp.path('self.img'))).rejects.toThrow(RangeError);
    await expect(captureProcess(0, tmp.path('zero.img'))).rejects.toThrow(RangeError);
    await expect(captureProcess(1.5, tmp.path('x.img'))).rejects.toThrow(RangeError);
  });

  it('reports a process that exits during the capture, and leaves no image behind', async () => {
    const victim = await startMemfill<PatternInfo>(memfill, ['pattern', '3']);
    const path = tmp.path('exited.img');
    try {
      let killed = false;
      const p = captureProcess(victim.info.pid, path, {
        fsync: false, pieceSize: 4 * PAGE,
        onProgress: () => {
          if (!killed) { killed = true; process.kill(victim.info.pid, 'SIGKILL'); }
        },
      });
      await expect(p).rejects.toMatchObject({ code: PROCESS_EXITED, message: expect.stringMatching(/exited during capture/) });
      expect(existsSync(path)).toBe(false);
      expect(tempsOf(path)).toEqual([]);
    } finally {
      victim.kill();
    }
  });
});

describe('crimg capture', () => {
  beforeAll(() => ensureCaptureBuilt());

  it('captures compressed and encrypted with a key file; dump shows the heap', async () => {
    const keyFile = tmp.path('cli.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const out = tmp.path('cli.img');
    const r = await crimg(['capture', '--pid', String(info().pid), out, '--compress', 'deflate:1', '--encrypt', 'aes-256-gcm', '--key-file', keyFile, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = json<{ pid: number; comm: string; resumed: boolean; notes: string[]; summary: { regions: number } }>(r);
    expect(j).toMatchObject({ pid: info().pid, comm: 'memfill', resumed: true });
    const d = await crimg(['dump', out, '--address', `0x${info().heap.toString(16)}`, '--length', '256', '--raw', '--key-file', keyFile]);
    expect(d.status).toBe(0);
    expect(d.stdoutBytes.equals(heapBytes().subarray(0, 256))).toBe(true);
  });

  it('prints a summary with the notes in text mode', async () => {
    const r = await crimg(['capture', '--pid', String(info().pid), tmp.path('text.img')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^captured process ${info().pid} \\(memfill\\) into .*text\\.img: \\d+ regions`));
    expect(r.stdout).toMatch(/stopped for \d+ ms, then resumed/);
    expect(r.stdout).toMatch(/note: \[vdso\] at 0x[0-9a-f]+-0x[0-9a-f]+ captured as code/);
  });

  it('exits 2 naming a pid that is no process, and refuses a pid that is not a number', async () => {
    const r = await crimg(['capture', '--pid', '2147483646', tmp.path('none.img')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^crimg: \w+: process 2147483646: no such process/);
    const bad = await crimg(['capture', '--pid', '12abc', tmp.path('none.img')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT: expected --pid as a positive decimal process id/);
  });

  // The CLI runs as nobody against root's process, so the refusal comes from the kernel, as it
  // would for a user. nobody runs a copy of the package as a user would have it installed (the
  // built code, the addon and the production dependencies): a checkout under a 0700 directory,
  // as CI's clone is, is unreadable to nobody.
  it('explains a permission refusal as another user, naming ptrace_scope and CAP_SYS_PTRACE', async () => {
    expect({ uid: process.getuid?.(), why: 'the tests run as root to act as another user' }).toMatchObject({ uid: 0 });
    const dir = tmp.path('nobody');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const pkg = installedCopy(tmp.path('installed'));
    const r = spawnSync(process.execPath, [join(pkg, 'bin', 'crimg.js'), 'capture', '--pid', String(info().pid), join(dir, 'x.img')], {
      uid: 65534, gid: 65534, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/permission denied/);
    // kill(pid, 0) is the first thing refused (issue 13 item 9: the message names the process once).
    expect(r.stderr).toMatch(new RegExp(`^crimg: PERMISSION_DENIED: permission denied: cannot signal \\(and so stop\\) process ${info().pid} \\(EPERM\\)`));
    expect(r.stderr).toMatch(/ptrace_scope|Yama/);
    expect(r.stderr).toMatch(/CAP_SYS_PTRACE/);
    expect(state(info().pid)).not.toBe('T');
  });
});

/**
 * The package as `npm install` leaves it, copied to `dest` (world-readable): package.json, bin/,
 * build/, the addon, and the production dependencies that npm lists.
 */

describe('gcore, import-core, export-core and gdb agree', () => {
  it('show the same bytes at the same addresses as the capture', async () => {
    requireTool('gcore');
    requireTool('gdb');
    const i = info();
    const mine = tmp.path('cross.img');
    await captureProcess(i.pid, mine, { fsync: false });
    // gcore's core, imported.
    const theirs = gcore(tmp.path('gcore'), i.pid);
    const imported = tmp.path('gcore.img');
    const r = await importCore(theirs, imported, { fsync: false });
    expect(r.architecture).toBe(describeHost().architecture);
    expect(r.fromCrimg).toBe(false);
    const a = await openImage(imported);
    try {
      // gcore dumps the guard page (as readable zeros): it is data there, not a gap.
      await expectPattern(a);
      expect(a.regionAt(i.stack)).toMatchObject({ kind: 'stack', name: '[stack]' });
      expect(a.validation.metrics['core.pid']).toBe(i.pid);
    } finally {
      await a.close();
    }
    // crimg's image, exported, read by gdb; and gdb on gcore's core.
    const core = tmp.path('cross.core');
    const image = await openImage(mine);
    try {
      await exportCore(image, core, { fsync: false });
    } finally {
      await image.close();
    }
    const spots: [bigint, Buffer][] = [
      [i.heap, heapBytes()], [i.heap + 3n * BigInt(PAGE) + 8n, heapBytes().subarray(3 * PAGE + 8)],
      [i.mmap + 5n * BigInt(PAGE), mmapBytes().subarray(5 * PAGE)], [i.guard + BigInt(PAGE), mmapBytes().subarray(257 * PAGE)],
      [i.stack, stackBytes()],
    ];
    for (const [address, want] of spots) {
      expect(gdbBytes(core, address).equals(want.subarray(0, 64))).toBe(true);
      expect(gdbBytes(theirs, address).equals(want.subarray(0, 64))).toBe(true);
    }
  });
});
