/**
 * Issue 13: a capture a production runtime can trust, against real processes (the C target of
 * bench/c/capture_target.c, python3 and node children): written memory made unreadable is kept
 * with its protection, untouched memory stays untouched (the target's RSS), thread stacks are
 * named, kinds are honest, one capture of a process at a time (PROCESS_BUSY), the encoding runs
 * after the stop, and no failure or signal leaves the target stopped or a temporary file behind.
 */
import { jest } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openImage } from '../index.js';
import { captureProcess } from '../capture/process.js';
import { lockName } from '../capture/lock.js';
import { collectRuns, entryHoldsMemory, runsToRead, type PageRun } from '../capture/pagemap.js';
import { parseStatSp, parseSyscallSp } from '../capture/threads.js';
import { markThreadStacks, parseMaps, planMapping } from '../capture/proc-maps.js';
import { parseStat, waitStopped } from '../capture/proc.js';
import { PROCESS_BUSY } from '../capture/_codes.js';
import { isTempOf } from '../image/_output-file.js';
import { decodeHeader } from '../format/header.js';
import { xxh64 } from '../codec/checksum.js';
import { prng, tempDir } from './helpers.js';
import { crimg } from './cli-helpers.js';
import { writeMemoryLikeFile } from '../bench/memory-like.js';
import {
  ROOT, canReadMemory, compileTarget, ensureCaptureBuilt, procState, residentBytes, startMemfill, startTarget,
  type Child, type TargetInfo,
} from './capture-fixture.js';

jest.setTimeout(120000);

const PAGE = 4096;
const MiB = 1024 * 1024;
const tmp = tempDir();
const target = compileTarget(tmp.dir);
const child: Child<TargetInfo> = await startTarget(target, 3, 2048);
const info = (): TargetInfo => child.info;

afterAll(() => {
  child.kill();
  tmp.cleanup();
});

test("this machine lets a process read another process's memory", () => {
  expect(canReadMemory(info().pid, info().sparse + BigInt(PAGE))).toEqual({ ok: true });
});

/** Waits up to 2 s for the state letter to leave T (SIGCONT wakes the threads asynchronously). */
async function notStopped(pid: number): Promise<string> {
  let s = procState(pid);
  for (let i = 0; i < 200 && (s === 'T' || s === 't'); i++) {
    await new Promise((r) => setTimeout(r, 10));
    s = procState(pid);
  }
  return s;
}

/** Reads `length` bytes of this process's memory at `address` through /proc/self/mem (FOLL_FORCE: PROT_NONE too). */
function readOwnMemory(address: bigint, length: number): Buffer {
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, Number(address));
    return b;
  } finally {
    closeSync(fd);
  }
}

describe('pure parts', () => {
  it('reads the stack pointer from task syscall and stat lines', () => {
    expect(parseSyscallSp('0 0x3 0x7f0f101fedbf 0x1 0x7f0f943afb60 0x0 0x55b248583460 0x7f0f101fed80 0x7f0f944982ec\n')).toBe(0x7f0f101fed80n);
    expect(parseSyscallSp('-1 0x7ffd1000 0x401000\n')).toBe(0x7ffd1000n);
    expect(parseSyscallSp('running\n')).toBeNull();
    expect(parseSyscallSp('')).toBeNull();
    expect(parseSyscallSp('0 0x1 0x2')).toBeNull();
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[26] = '140737488346112';
    expect(parseStatSp(`12 (a b) ${fields.join(' ')}`)).toBe(140737488346112n);
    fields[26] = '0';
    expect(parseStatSp(`12 (a) ${fields.join(' ')}`)).toBeNull();
  });

  it('turns pagemap entries into runs of present or swapped pages', () => {
    const entries = new Uint8Array(8 * 8);
    const v = new DataView(entries.buffer);
    const set = (i: number, hi: number): void => v.setUint32(i * 8 + 4, hi, true);
    set(1, 0x80000000); // present
    set(2, 0x40000000); // swapped
    set(3, 0x00800000); // soft-dirty only: no memory
    set(5, 0x81000000); // present, exclusive
    set(7, 0x80000000);
    const runs: PageRun[] = [{ start: 0x1000n, end: 0x10000n }];
    collectRuns(entries, 0x10000n, PAGE, runs);
    expect(runs).toEqual([{ start: 0x1000n, end: 0x10000n }, { start: 0x11000n, end: 0x13000n }, { start: 0x15000n, end: 0x16000n }, { start: 0x17000n, end: 0x18000n }]);
    // A run reaching the previous end merges with it.
    const merged: PageRun[] = [{ start: 0x0n, end: 0x11000n }];
    collectRuns(entries.subarray(8, 24), 0x11000n, PAGE, merged);
    expect(merged).toEqual([{ start: 0x0n, end: 0x13000n }]);
    expect(entryHoldsMemory(1n << 63n)).toBe(true);
    expect(entryHoldsMemory(1n << 55n)).toBe(false);
  });

  it('reads the page map of anonymous and unreadable mappings only, and falls back with a note when it cannot be read', async () => {
    const i = info();
    const pagemap = await open(`/proc/${i.pid}/pagemap`, 'r');
    const notes: string[] = [];
    try {
      const sparse = { start: i.sparse, end: i.sparse + BigInt(i.sparseLen), zeroWhenAbsent: true };
      expect(await runsToRead(pagemap, sparse, PAGE, notes)).toEqual([1, 100, i.sparseLen / PAGE - 1].map((p) => ({ start: i.sparse + BigInt(p * PAGE), end: i.sparse + BigInt((p + 1) * PAGE) })));
      expect(await runsToRead(pagemap, { start: i.reserve, end: i.reserve + 64n * BigInt(MiB), zeroWhenAbsent: true, noRead: true }, PAGE, notes)).toEqual([]);
      expect(await runsToRead(pagemap, { ...sparse, zeroWhenAbsent: false }, PAGE, notes)).toBeNull();
      expect(await runsToRead(null, sparse, PAGE, notes)).toBeNull();
      expect(notes).toEqual([]);
    } finally {
      await pagemap.close();
    }
    // A page map that fails to read (here a directory: EISDIR): read whole, said once.
    const broken = await open(tmp.dir, 'r');
    try {
      const sparse = { start: i.sparse, end: i.sparse + BigInt(i.sparseLen), zeroWhenAbsent: true };
      expect(await runsToRead(broken, sparse, PAGE, notes)).toBeNull();
      expect(await runsToRead(broken, sparse, PAGE, notes)).toBeNull();
      expect(notes).toEqual([expect.stringMatching(/^\/proc\/PID\/pagemap could not be read \(EISDIR\): private anonymous mappings were read whole/)]);
    } finally {
      await broken.close();
    }
  });

  it('gives memory-only mappings the anonymous kind and files the file kind', () => {
    const maps = parseMaps([
      '7f0000000000-7f0000100000 rw-p 00000000 00:05 3 /dev/zero',
      '7f0000100000-7f0000200000 rw-s 00000000 00:01 4 /dev/zero (deleted)',
      '7f0000200000-7f0000300000 rw-s 00000000 00:01 5 /memfd:cache (deleted)',
      '7f0000400000-7f0000600000 rw-p 00000000 00:10 6 /anon_hugepage (deleted)',
      '7f0000600000-7f0000800000 rw-s 00000000 00:01 7 /SYSV0000002a (deleted)',
      '7f0000800000-7f0000a00000 rw-s 00000000 00:2d 8 /dev/hugepages/pool',
      '7f0000a00000-7f0000a01000 -w-p 00000000 00:00 0 ',
      '',
    ].join('\n'));
    expect(maps.map((e) => planMapping(e)).map((p) => (p.action === 'region' ? `${p.kind} ${p.zeroWhenAbsent}${p.noRead ? ' noRead' : ''}` : 'gap'))).toEqual([
      'anonymous true', 'anonymous false', 'anonymous false', 'anonymous false', 'anonymous false', 'file false', 'anonymous true noRead',
    ]);
  });

  it('names the anonymous mapping holding each thread stack pointer, and nothing else', () => {
    const plans = parseMaps([
      '7f0000000000-7f0000001000 ---p 00000000 00:00 0 ',
      '7f0000001000-7f0000801000 rw-p 00000000 00:00 0 ',
      '7f0000801000-7f0000802000 rw-p 00001000 fe:00 9 /lib/x.so',
      '7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]',
      '',
    ].join('\n')).map((e) => planMapping(e));
    const marked = markThreadStacks(plans, new Map([[11, 0x7f0000800ff0n], [10, 0x7ffc00020000n], [12, 0x7f0000801010n], [13, 0x7f0000000800n], [14, 0x1000n]]));
    expect(marked.map((p) => `${p.action === 'region' ? p.kind : 'gap'} ${p.name}`)).toEqual([
      'anonymous ', 'stack [stack:11]', 'file /lib/x.so', 'stack [stack]',
    ]);
  });

  it('keys the lock by pid and start time, so a reused pid is another lock', () => {
    expect(lockName(42, '1000')).toBe('\0crimg-capture:42:1000');
    expect(lockName(42, '1000')).not.toBe(lockName(42, '1001'));
  });

  it('names the real option in the stop timeout hint', async () => {
    // A sleeping process that nobody stopped does not stop within 0 ms.
    await expect(waitStopped(info().pid, 0)).rejects.toMatchObject({ hint: expect.stringMatching(/crimg capture --stop-timeout MS/) });
  });
});

describe('memory written, then made unreadable', () => {
  it('is captured with its protection (C: PROT_NONE and write-only), dumped, and restored in copy mode; an untouched reservation stays a gap', async () => {
    const i = info();
    const path = tmp.path('noread.img');
    const r = await captureProcess(i.pid, path, { fsync: false });
    expect(await notStopped(i.pid)).not.toBe('T');
    const image = await openImage(path);
    try {
      expect(image.regionAt(i.hidden)).toMatchObject({ isGap: false, prot: '---', kind: 'anonymous', length: BigInt(MiB) });
      expect((await image.read(i.hidden, 4)).toString()).toBe('DATA');
      expect((await image.read(i.hidden + 5n * BigInt(PAGE), 5)).toString()).toBe('DATA5');
      expect((await image.read(i.hidden + 4n, PAGE)).every((b) => b === 0)).toBe(true);
      expect(image.regionAt(i.wonly)).toMatchObject({ isGap: false, prot: '-w-', kind: 'anonymous' });
      expect((await image.read(i.wonly, 5)).toString()).toBe('WONLY');
      expect(image.regionAt(i.reserve)).toMatchObject({ isGap: true, length: 64n * BigInt(MiB) });
      // The stack guard pages below the threads' stacks were never written: gaps.
      expect(image.regions.filter((g) => g.isGap && g.length === BigInt(PAGE) && g.name === '').length).toBeGreaterThanOrEqual(3);
      expect(r.notes.filter((n) => /has no read permission but holds memory/.test(n))).toHaveLength(2);
      expect((await image.verify()).ok).toBe(true);
      const index = image.regions.findIndex((g) => g.address === i.hidden);
      const restored = await image.restore({ mode: 'copy', regions: [index] });
      try {
        expect(restored.degraded).toBe(false);
        const region = restored.regions.find((g) => g.recordedAddress === i.hidden)!;
        expect(region).toMatchObject({ prot: '---', length: BigInt(MiB) });
        expect(region.memory).toBeUndefined();
        expect(readOwnMemory(region.address, 4).toString()).toBe('DATA');
        expect(readOwnMemory(region.address + 5n * BigInt(PAGE), 5).toString()).toBe('DATA5');
        const maps = readFileSync('/proc/self/maps', 'utf8');
        expect(maps).toMatch(new RegExp(`^${region.address.toString(16)}-[0-9a-f]+ ---p`, 'm'));
      } finally {
        restored.release();
      }
    } finally {
      await image.close();
    }
    ensureCaptureBuilt();
    const d = await crimg(['dump', path, '--address', `0x${i.hidden.toString(16)}`, '--length', '4', '--raw']);
    expect(d.status).toBe(0);
    expect(d.stdoutBytes.toString()).toBe('DATA');
  });

  it('is captured from a python process (mmap, then mprotect PROT_NONE)', async () => {
    const script = [
      'import ctypes, json, mmap, os, sys',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]',
      'm = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)',
      "m[:4] = b'DATA'",
      'a = ctypes.addressof(ctypes.c_char.from_buffer(m))',
      'assert libc.mprotect(a, 1 << 20, 0) == 0',
      'z = mmap.mmap(os.open("/dev/zero", os.O_RDWR), 1 << 16, flags=mmap.MAP_PRIVATE)',
      "z[:4] = b'ZERO'",
      'fd = os.memfd_create("crimg-test")',
      'os.ftruncate(fd, 1 << 16)',
      'f = mmap.mmap(fd, 1 << 16)',
      "f[:5] = b'MEMFD'",
      'za = ctypes.addressof(ctypes.c_char.from_buffer(z))',
      'fa = ctypes.addressof(ctypes.c_char.from_buffer(f))',
      'print(json.dumps({"pid": os.getpid(), "a": hex(a), "z": hex(za), "f": hex(fa)}), flush=True)',
      'sys.stdin.read()',
    ].join('\n');
    const py = await startMemfill<{ pid: number; a: bigint; z: bigint; f: bigint }>('python3', ['-c', script]);
    try {
      const path = tmp.path('python.img');
      await captureProcess(py.info.pid, path, { fsync: false });
      expect(await notStopped(py.info.pid)).not.toBe('T');
      const image = await openImage(path);
      try {
        expect(image.regionAt(py.info.a)).toMatchObject({ prot: '---', isGap: false });
        expect((await image.read(py.info.a, 4)).toString()).toBe('DATA');
        expect(image.regionAt(py.info.z)).toMatchObject({ kind: 'anonymous', name: '/dev/zero' });
        expect((await image.read(py.info.z, 4)).toString()).toBe('ZERO');
        expect(image.regionAt(py.info.f)).toMatchObject({ kind: 'anonymous', name: '/memfd:crimg-test (deleted)' });
        expect((await image.read(py.info.f, 5)).toString()).toBe('MEMFD');
      } finally {
        await image.close();
      }
      ensureCaptureBuilt();
      const d = await crimg(['dump', path, '--address', `0x${py.info.a.toString(16)}`, '--length', '4', '--raw']);
      expect(d.stdoutBytes.toString()).toBe('DATA');
    } finally {
      py.kill();
    }
  });
});

describe('untouched memory', () => {
  it('is not read: an untouched 2 GiB NORESERVE mapping adds under 16 MiB to the target, and the image holds what it wrote', async () => {
    const i = info();
    const before = residentBytes(i.pid);
    const path = tmp.path('sparse.img');
    const r = await captureProcess(i.pid, path, { fsync: false });
    const growth = residentBytes(i.pid) - before;
    expect({ growthMiB: growth / MiB, under: growth < 16 * MiB }).toMatchObject({ under: true });
    expect(r.bytesRead).toBeLessThan(16 * MiB);
    const image = await openImage(path);
    try {
      const region = image.regionAt(i.sparse)!;
      expect(region).toMatchObject({ kind: 'anonymous', prot: 'rw-', length: BigInt(i.sparseLen) });
      const want = (offset: number, length: number): Buffer => {
        const b = Buffer.alloc(length);
        for (const [page, text] of [[1, 'PAGE0001'], [100, 'PAGE0100'], [i.sparseLen / PAGE - 1, 'PAGELAST']] as const) {
          const at = page * PAGE - offset;
          if (at >= 0 && at < length) b.write(text, at);
        }
        return b;
      };
      // A raw image has page-sized chunks: every page but the three written ones is a zero
      // chunk, and those three hold what the child wrote.
      expect(image.chunkSize).toBe(PAGE);
      expect(region).toMatchObject({ chunkCount: i.sparseLen / PAGE, zeroChunks: i.sparseLen / PAGE - 3 });
      for (const page of [0, 1, 2, 99, 100, 101, i.sparseLen / PAGE - 2, i.sparseLen / PAGE - 1]) {
        expect((await image.read(i.sparse + BigInt(page * PAGE), PAGE)).equals(want(page * PAGE, PAGE))).toBe(true);
      }
      expect((await image.verify()).ok).toBe(true);
    } finally {
      await image.close();
    }
  });
});

describe('thread stacks', () => {
  it('names the mapping of each of 3 blocked threads [stack:TID], with its bytes', async () => {
    const i = info();
    const path = tmp.path('threads.img');
    await captureProcess(i.pid, path, { fsync: false });
    const image = await openImage(path);
    try {
      const stacks = image.regions.filter((g) => /^\[stack:\d+\]$/.test(g.name));
      expect(stacks.map((g) => g.name).sort()).toEqual(i.tids.map((t) => `[stack:${t}]`).sort());
      for (const [k, tid] of i.tids.entries()) {
        const at = BigInt(i.stacks[k]!);
        expect(image.regionAt(at)).toMatchObject({ kind: 'stack', name: `[stack:${tid}]` });
        expect((await image.read(at, 6)).toString()).toBe('THREAD');
      }
      expect(image.regions.filter((g) => g.name === '[stack]')).toHaveLength(1);
    } finally {
      await image.close();
    }
  });

  it('names the thread stacks of a node process', async () => {
    const node = await startMemfill<{ pid: number }>(process.execPath, ['-e', "console.log(JSON.stringify({ pid: process.pid })); process.stdin.resume(); process.stdin.on('end', () => process.exit(0));"]);
    try {
      const tids = readdirSync(`/proc/${node.info.pid}/task`).map(Number).filter((t) => t !== node.info.pid);
      expect(tids.length).toBeGreaterThanOrEqual(4);
      const path = tmp.path('node.img');
      await captureProcess(node.info.pid, path, { fsync: false });
      const image = await openImage(path);
      try {
        const named = image.regions.filter((g) => /^\[stack:\d+\]$/.test(g.name)).map((g) => Number(g.name.slice(7, -1)));
        // Every thread's stack is named after a thread of the process (a few may share none).
        expect(named.length).toBeGreaterThanOrEqual(4);
        for (const t of named) expect(tids).toContain(t);
      } finally {
        await image.close();
      }
    } finally {
      node.kill();
    }
  });
});

/** Starts a node process holding the capture lock of `pid`; it exits when its stdin closes. */
async function holdLock(pid: number): Promise<Child<{ held: boolean }>> {
  const start = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).startTime;
  const code = `const s = require('net').createServer().listen(${JSON.stringify(lockName(pid, start))}, () => console.log(JSON.stringify({ held: true })));
process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
  return startMemfill<{ held: boolean }>(process.execPath, ['-e', code]);
}

describe('one capture of a process at a time', () => {
  it('fails a capture with PROCESS_BUSY while another holds the lock, leaving the target running and no file', async () => {
    const holder = await holdLock(info().pid);
    try {
      const path = tmp.path('busy.img');
      await expect(captureProcess(info().pid, path, { fsync: false })).rejects.toMatchObject({ code: PROCESS_BUSY, category: 'process', message: expect.stringMatching(/being captured by another capture/) });
      expect(procState(info().pid)).not.toBe('T');
      expect(existsSync(path)).toBe(false);
      expect(readdirSync(tmp.dir).filter((n) => isTempOf(n, 'busy.img'))).toEqual([]); // no .busy.img.<hex>.crimg-tmp
      ensureCaptureBuilt();
      const cli = await crimg(['capture', '--pid', String(info().pid), path]);
      expect(cli.status).toBe(2);
      expect(cli.stderr).toMatch(/^crimg: PROCESS_BUSY: .*--lock-wait MS/);
    } finally {
      holder.kill();
    }
  });

  it('crimg capture --lock-wait waits for the holder; --encode-while-stopped and bad numbers', async () => {
    ensureCaptureBuilt();
    const holder = await holdLock(info().pid);
    setTimeout(() => holder.process.stdin!.end(), 300);
    const dir = tmp.path('cli-options');
    spawnSync('mkdir', [dir]);
    try {
      const r = await crimg(['capture', '--pid', String(info().pid), join(dir, 'w.img'), '--lock-wait', '30000', '--compress', 'deflate:1', '--encode-while-stopped', '--stop-timeout', '10000']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/stopped for \d+ ms, then resumed\n/);
      expect(r.stdout).not.toMatch(/encoded after the stop/);
    } finally {
      holder.kill();
    }
    for (const [option, value] of [['--lock-wait', '-1'], ['--stop-timeout', '5s'], ['--lock-wait', '1e3']]) {
      const bad = await crimg(['capture', '--pid', String(info().pid), join(dir, 'bad.img'), `${option}=${value}`]);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(new RegExp(`INVALID_ARGUMENT: expected ${option} as a whole number of milliseconds`));
    }
    expect(readdirSync(dir)).toEqual(['w.img']);
  });

  it('takes over the lock of a holder that was killed, and waits for one that finishes (lockWaitMs)', async () => {
    const dead = await holdLock(info().pid);
    dead.process.kill('SIGKILL');
    await new Promise((r) => dead.process.once('exit', r));
    await captureProcess(info().pid, tmp.path('stale.img'), { fsync: false });
    const holder = await holdLock(info().pid);
    setTimeout(() => holder.process.stdin!.end(), 300);
    const r = await captureProcess(info().pid, tmp.path('waited.img'), { fsync: false, lockWaitMs: 20000 });
    expect(r.resumed).toBe(true);
    holder.kill();
  });

  it('of two overlapping captures, the second fails or waits; neither image is torn and the target runs', async () => {
    const pid = info().pid;
    const [a, b] = await Promise.allSettled([
      captureProcess(pid, tmp.path('first.img'), { fsync: false }),
      captureProcess(pid, tmp.path('second.img'), { fsync: false }),
    ]);
    expect([a.status, b.status].sort()).toEqual(['fulfilled', 'rejected']);
    const rejected = (a.status === 'rejected' ? a : b) as PromiseRejectedResult;
    expect(rejected.reason).toMatchObject({ code: PROCESS_BUSY });
    const both = await Promise.all([
      captureProcess(pid, tmp.path('w1.img'), { fsync: false, lockWaitMs: 60000 }),
      captureProcess(pid, tmp.path('w2.img'), { fsync: false, lockWaitMs: 60000 }),
    ]);
    // Each stopped a running process and resumed it: neither saw the other's stop.
    for (const r of both) expect(r).toMatchObject({ wasStopped: false, resumed: true });
    expect(await notStopped(pid)).not.toBe('T');
    for (const name of ['w1.img', 'w2.img']) {
      const image = await openImage(tmp.path(name));
      expect((await image.verify()).ok).toBe(true);
      expect((await image.read(info().hidden, 4)).toString()).toBe('DATA');
      await image.close();
    }
  });
});

describe('kernel threads', () => {
  it('says pid 2 (kthreadd) is a kernel thread, in the library and on the command line (exit 2)', async () => {
    expect(readFileSync('/proc/2/comm', 'utf8').trim()).toBe('kthreadd');
    await expect(captureProcess(2, tmp.path('k.img'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/process 2 \(kthreadd\) is a kernel thread/) });
    ensureCaptureBuilt();
    const r = await crimg(['capture', '--pid', '2', tmp.path('k.img')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/kernel thread/);
    expect(r.stderr).not.toMatch(/NO_SUCH_PROCESS/);
  });
});

describe('encoding after the stop', () => {
  it('stages raw pages beside the output while stopped, encodes after SIGCONT, and leaves only the image', async () => {
    const dir = tmp.path('staged');
    spawnSync('mkdir', [dir]);
    const key = randomBytes(32);
    const out = join(dir, 'enc.img');
    const seen: string[] = [];
    const modes: number[] = [];
    const r = await captureProcess(info().pid, out, {
      fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key,
      onProgress: () => {
        if (seen.length > 0) return;
        seen.push(...readdirSync(dir));
        for (const f of seen) modes.push(statSync(join(dir, f)).mode & 0o777);
      },
    });
    expect(r.staged).toBe(true);
    // While stopped: the memory log and the image's temporary file (the writer is created
    // before the stop), both temporary names of the output, owner-only.
    expect(seen).toHaveLength(2);
    for (const f of seen) expect(f).toMatch(/^\.enc\.img\.[0-9a-f]{16}\.crimg-tmp$/);
    expect(modes).toEqual([0o600, 0o600]);
    expect(readdirSync(dir)).toEqual(['enc.img']);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const image = await openImage(out, { key });
    try {
      expect(image.compression).toBe('deflate:1');
      expect(image.encryption).toBe('aes-256-gcm');
      expect(image.chunkSize).toBe(16384);
      expect((await image.read(info().hidden, 4)).toString()).toBe('DATA');
      expect((await image.read(info().sparse + 100n * BigInt(PAGE), 8)).toString()).toBe('PAGE0100');
      expect(image.validation).toMatchObject({ producerName: 'crimg-capture', metrics: { 'capture.pid': info().pid } });
      expect((await image.verify()).ok).toBe(true);
    } finally {
      await image.close();
    }
    const old = await captureProcess(info().pid, join(dir, 'old.img'), { fsync: false, compress: 'deflate:1', encodeWhileStopped: true, mode: 0o640 });
    expect(old.staged).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['enc.img', 'old.img']);
    expect(statSync(join(dir, 'old.img')).mode & 0o777).toBe(0o640);
    // The command line: --mode, and the staged image's mode too.
    ensureCaptureBuilt();
    const cli = await crimg(['capture', '--pid', String(info().pid), join(dir, 'cli.img'), '--compress', 'deflate:1', '--mode', '644']);
    expect(cli.stderr).toBe('');
    expect(cli.stdout).toMatch(/stopped for \d+ ms, then resumed; encoded after the stop/);
    expect(statSync(join(dir, 'cli.img')).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir).sort()).toEqual(['cli.img', 'enc.img', 'old.img']);
    const bad = await crimg(['capture', '--pid', String(info().pid), join(dir, 'bad.img'), '--mode', '999']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT: expected --mode as octal/);
  });
});

describe('what crimg capture prints', () => {
  it('escapes a command name with terminal controls (prctl PR_SET_NAME "ev\\x1b[2Jil\\x07"), in text; --json keeps it whole', async () => {
    ensureCaptureBuilt();
    const py = spawn('python3', ['-c', `import ctypes, os, sys
ctypes.CDLL(None).prctl(15, b"ev\\x1b[2Jil\\x07", 0, 0, 0)
sys.stdout.write(str(os.getpid()) + "\\n"); sys.stdout.flush()
sys.stdin.read()`], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const pid = Number(await new Promise<string>((r) => py.stdout.once('data', (d: Buffer) => r(d.toString()))));
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8')).toBe('ev\x1b[2Jil\x07\n');
      const dir = tmp.path('evil-comm');
      spawnSync('mkdir', [dir]);
      const r = await crimg(['capture', '--pid', String(pid), join(dir, 'e\x1bvil.img')]);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
      expect(r.stdout).toContain(`captured process ${pid} (ev\\x1b[2Jil\\x07) into ${join(dir, 'e\\x1bvil.img')}: `);
      expect(r.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
      const j = await crimg(['capture', '--pid', String(pid), join(dir, 'j.img'), '--json']);
      expect(JSON.parse(j.stdout)).toMatchObject({ pid, comm: 'ev\x1b[2Jil\x07' });
    } finally {
      py.kill();
    }
  });
});

describe('an encrypted capture never puts plaintext on disk', () => {
  it('seals the stage with a one-time key: no file beside the output ever holds the plaintext; the image decrypts to it', async () => {
    const marker = Buffer.from(`CRIMG-PLAINTEXT-${randomBytes(6).toString('hex')}:`);
    // A python3 child holding 16 MiB of the marker in private anonymous memory.
    const py = spawn('python3', ['-c', `import os, sys
m = bytearray(${JSON.stringify(marker.toString())}.encode() * (16 * 1024 * 1024 // ${marker.length}))
sys.stdout.write(str(os.getpid()) + "\\n"); sys.stdout.flush()
sys.stdin.read()`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const pid = Number(await new Promise<string>((r) => py.stdout.once('data', (d: Buffer) => r(d.toString()))));
    const dir = tmp.path('sealed-stage');
    spawnSync('mkdir', [dir]);
    const out = join(dir, 'secret.img');
    const key = randomBytes(32);
    let scans = 0;
    let scannedBytes = 0;
    const leaks: string[] = [];
    const stageCiphers: number[] = [];
    const piece = Buffer.alloc(MiB);
    /** Reads every file in the directory: none may hold the marker; complete headers are noted. */
    const scan = (): void => {
      scans++;
      for (const f of readdirSync(dir)) {
        let fd: number;
        try { fd = openSync(join(dir, f), 'r'); } catch { continue; } // renamed or removed meanwhile
        try {
          // 1 MiB pieces into one buffer, each overlapping the last by the marker's length.
          for (let at = 0, n = 0, first = true; ; at += n - marker.length, first = false) {
            n = readSync(fd, piece, 0, piece.length, at);
            scannedBytes += n;
            if (piece.subarray(0, n).includes(marker)) leaks.push(f);
            if (first && n >= 128 && /^\.secret\.img\.[0-9a-f]{16}\.crimg-tmp$/.test(f)) {
              try { stageCiphers.push(decodeHeader(piece.subarray(0, 128), xxh64).cipher); } catch { /* header not written yet */ }
            }
            if (n < piece.length) break;
          }
        } finally {
          closeSync(fd);
        }
      }
    };
    // While stopped (onProgress, every 8 MiB read) and while encoding (a timer).
    let next = 0;
    const onProgress = (done: number): void => {
      if (done < next) return;
      next = done + 8 * MiB;
      scan();
    };
    const timer = setInterval(scan, 50);
    try {
      const r = await captureProcess(pid, out, { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key, onProgress });
      expect(r.staged).toBe(true);
    } finally {
      clearInterval(timer);
      py.kill();
    }
    expect(leaks).toEqual([]);
    expect(scans).toBeGreaterThan(3);
    expect(scannedBytes).toBeGreaterThan(16 * MiB); // the stage was read while it held the pages
    // Every complete header seen there (the stage once renamed, the final image) is sealed.
    expect(stageCiphers.length).toBeGreaterThan(0);
    expect(stageCiphers.every((c) => c !== 0)).toBe(true);
    expect(readdirSync(dir)).toEqual(['secret.img']);
    expect(readFileSync(out).includes(marker)).toBe(false);
    const image = await openImage(out, { key });
    try {
      expect(image.encryption).toBe('aes-256-gcm');
      let found = 0;
      for (const g of image.regions) {
        if (g.isGap || g.length > 64n * BigInt(MiB)) continue;
        if ((await image.read(g.address, Number(g.length))).includes(marker)) found++;
      }
      expect(found).toBeGreaterThan(0);
    } finally {
      await image.close();
    }
  });
});

describe('failures and signals', () => {
  it('an exception inside the capture resumes the target and removes the temporary files', async () => {
    const dir = tmp.path('boom');
    spawnSync('mkdir', [dir]);
    for (const options of [{}, { compress: 'deflate:1' }]) {
      await expect(captureProcess(info().pid, join(dir, 'x.img'), { fsync: false, ...options, onProgress: () => { throw new Error('boom'); } })).rejects.toThrow('boom');
      expect(await notStopped(info().pid)).not.toBe('T');
      expect(readdirSync(dir)).toEqual([]);
    }
  });

  it('a failure after the stop (the output is a directory) resumes the target and removes the stage and temporary files', async () => {
    const dir = tmp.path('fail-late');
    spawnSync('mkdir', ['-p', join(dir, 'x.img')]);
    for (const options of [{}, { compress: 'deflate:1' }]) {
      // A directory is not a file to replace (image/_output-file.ts): refused before the stop,
      // staged or not (the image's writer is created first).
      await expect(captureProcess(info().pid, join(dir, 'x.img'), { fsync: false, ...options })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(await notStopped(info().pid)).not.toBe('T');
      expect(readdirSync(dir)).toEqual(['x.img']);
    }
    // A key the writer would refuse is refused before the process is stopped.
    await expect(captureProcess(info().pid, join(dir, 'y.img'), { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: new Uint8Array(5) })).rejects.toThrow(/32 bytes/);
    expect(readdirSync(dir)).toEqual(['x.img']);
  });

  it.each(['SIGINT', 'SIGHUP', 'SIGTERM'] as const)('%s while the target is stopped: crimg dies of it, the target runs, no file is left', async (sig) => {
    ensureCaptureBuilt();
    const data = tmp.path('stop-data.bin');
    if (!existsSync(data)) await writeMemoryLikeFile(data, 96 * MiB, 14);
    const victim = await startTarget(target, 1, 64, data);
    const dir = tmp.path(`during-${sig}`);
    spawnSync('mkdir', [dir]);
    try {
      for (const extra of [[], ['--compress', 'deflate:1']]) {
        const p = spawn(process.execPath, [join(ROOT, 'bin', 'crimg.js'), 'capture', '--pid', String(victim.info.pid), join(dir, 'x.img'), '--quiet', ...extra], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
        const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => p.once('exit', (c, s) => r([c, s])));
        // Wait for the stop itself, then signal crimg.
        let seen = false;
        while (!seen && p.exitCode === null) {
          seen = procState(victim.info.pid) === 'T';
          if (!seen) await new Promise((r) => setImmediate(r));
        }
        expect(seen).toBe(true);
        p.kill(sig);
        expect(await exited).toEqual([null, sig]);
        expect(await notStopped(victim.info.pid)).not.toBe('T');
        expect(readdirSync(dir)).toEqual([]);
      }
    } finally {
      victim.kill();
    }
  });

  it('SIGKILL while the stage is encoded leaves the stage: the next capture of that name warns CRIMG_STALE_TEMP naming it', async () => {
    ensureCaptureBuilt();
    const data = tmp.path('stop-data.bin');
    if (!existsSync(data)) await writeMemoryLikeFile(data, 96 * MiB, 14);
    const victim = await startTarget(target, 1, 64, data);
    const dir = tmp.path('killed-stage');
    spawnSync('mkdir', [dir]);
    const own = /^\.x\.img\.[0-9a-f]{16}\.crimg-tmp$/; // the memory log, and the image's temporary file
    try {
      const p = spawn(process.execPath, [join(ROOT, 'bin', 'crimg.js'), 'capture', '--pid', String(victim.info.pid), join(dir, 'x.img'), '--quiet', '--compress', 'deflate:6'], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => p.once('exit', (c, s) => r([c, s])));
      // The log exists before the stop; once the target runs again (SIGCONT), the image is
      // written from the log (deflate:6 of 96 MiB: seconds).
      let stopped = false;
      while (p.exitCode === null) {
        const t = procState(victim.info.pid) === 'T';
        if (stopped && !t) break;
        stopped ||= t;
        await new Promise((r) => setImmediate(r));
      }
      expect(stopped).toBe(true);
      const stage = readdirSync(dir).find((f) => own.test(f));
      expect(stage).toBeDefined();
      p.kill('SIGKILL');
      expect(await exited).toEqual([null, 'SIGKILL']);
      expect(await notStopped(victim.info.pid)).not.toBe('T');
      const left = readdirSync(dir);
      expect(left).toContain(stage);
      expect(left.every((f) => own.test(f))).toBe(true);
      const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
      try {
        await captureProcess(victim.info.pid, join(dir, 'x.img'), { fsync: false, compress: 'deflate:1' });
        const warnings = spy.mock.calls.filter(([, o]) => typeof o === 'object' && (o as { code?: string }).code === 'CRIMG_STALE_TEMP').map(([m]) => String(m));
        // Reported once per writer that found them (the stage's, the image's), never the live stage.
        expect(warnings.length).toBeGreaterThan(0);
        for (const w of warnings) {
          expect(w).toContain(`${left.length} temporary file(s) of ${join(dir, 'x.img')} found`);
          for (const f of left) expect(w).toContain(join(dir, f));
        }
      } finally {
        spy.mockRestore();
      }
      expect(readdirSync(dir).sort()).toEqual([...left, 'x.img'].sort()); // reported, never removed
    } finally {
      victim.kill();
    }
  });

  it('SIGTERM while stopped with --leave-stopped: the target stays stopped as asked, no file is left', async () => {
    ensureCaptureBuilt();
    const data = tmp.path('stop-data.bin');
    if (!existsSync(data)) await writeMemoryLikeFile(data, 96 * MiB, 14);
    const victim = await startTarget(target, 1, 64, data);
    const dir = tmp.path('leave-stopped');
    spawnSync('mkdir', [dir]);
    try {
      const p = spawn(process.execPath, [join(ROOT, 'bin', 'crimg.js'), 'capture', '--pid', String(victim.info.pid), join(dir, 'x.img'), '--quiet', '--leave-stopped'], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => p.once('exit', (c, s) => r([c, s])));
      let seen = false;
      while (!seen && p.exitCode === null) {
        seen = procState(victim.info.pid) === 'T';
        if (!seen) await new Promise((r) => setImmediate(r));
      }
      expect(seen).toBe(true);
      p.kill('SIGTERM');
      expect(await exited).toEqual([null, 'SIGTERM']);
      await new Promise((r) => setTimeout(r, 200));
      expect(procState(victim.info.pid)).toBe('T');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      victim.kill();
    }
  });

  it('SIGTERM at a random point of 20 captures, half of them inside the stop: never a stopped target, a temporary file or a half image', async () => {
    ensureCaptureBuilt();
    const data = tmp.path('victim-data.bin');
    await writeMemoryLikeFile(data, 96 * MiB, 13);
    const victim = await startTarget(target, 2, 2048, data);
    const dir = tmp.path('sigterm');
    spawnSync('mkdir', [dir]);
    const random = prng(20261205);
    const outcomes: string[] = [];
    /** The target's state letter (/proc/PID/stat) just before each SIGTERM was sent. */
    const statesAtKill: string[] = [];
    try {
      for (let k = 0; k < 20; k++) {
        const out = join(dir, `c${k}.img`);
        const args = ['capture', '--pid', String(victim.info.pid), out, '--quiet', ...(k % 4 >= 2 ? ['--compress', 'deflate:1'] : [])];
        const p = spawn(process.execPath, [join(ROOT, 'bin', 'crimg.js'), ...args], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
        const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => p.once('exit', (c, s) => r([c, s])));
        const kill = (): void => {
          if (p.exitCode !== null || p.signalCode !== null) return;
          statesAtKill.push(procState(victim.info.pid));
          p.kill('SIGTERM');
        };
        let timer: NodeJS.Timeout | undefined;
        if (k % 2 === 0) {
          // Inside the stop: wait for state T, then a seeded 0-9 ms (the stop of 96 MiB lasts longer).
          const delay = Math.floor(random() * 10);
          while (p.exitCode === null && procState(victim.info.pid) !== 'T') await new Promise((r) => setImmediate(r));
          const until = performance.now() + delay;
          while (performance.now() < until) { /* spin: a timer could fire late */ }
          kill();
        } else {
          // Anywhere: Node's start-up takes most of the first ~250 ms; the capture runs after it.
          timer = setTimeout(kill, Math.floor(random() * 900));
        }
        const [code, sig] = await exited;
        clearTimeout(timer);
        outcomes.push(sig ?? `exit ${code}`);
        expect(sig === 'SIGTERM' || code === 0).toBe(true);
        expect(await notStopped(victim.info.pid)).not.toBe('T');
        const left = readdirSync(dir).filter((f) => f !== `c${k}.img` && !/^c\d+\.img$/.test(f));
        expect(left).toEqual([]);
        if (existsSync(out)) {
          const image = await openImage(out);
          expect((await image.verify()).ok).toBe(true);
          await image.close();
        }
      }
    } finally {
      victim.kill();
    }
    // At least a quarter of the kills landed while the target was stopped, and each of those
    // killed crimg (its cleanup resumed the target, checked above).
    const inStop = statesAtKill.filter((st) => st === 'T').length;
    expect({ outcomes, statesAtKill, inStop: inStop >= 5 }).toMatchObject({ inStop: true });
    expect(outcomes.filter((o) => o === 'SIGTERM').length).toBeGreaterThanOrEqual(inStop);
  });
});
