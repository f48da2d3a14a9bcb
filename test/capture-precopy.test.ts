/**
 * Pre-copy capture (issue 19, capture/_precopy.ts) and the memory log every encoded capture
 * goes through (capture/_mem-log.ts, capture/_replay.ts), against bench/c/rewriter.c: a process
 * whose writer thread rewrites whole pages with generation numbers on a schedule the test
 * computes, so an image shows whether each page holds the generation it held at the stop.
 * Also `crimg capture --pre-copy --parent`, and the fallback to a full stop.
 */
import { jest } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openImage, type Image } from '../index.js';
import { captureProcess, type CaptureResult } from '../capture/process.js';
import { isTempOf } from '../image/_output-file.js';
import { softDirtyUnavailable, stopPass } from '../capture/_precopy.js';
import { complement, overlay, replay, slicesFrom, unionRuns, type RegionPlan, type Slice } from '../capture/_replay.js';
import { collectWhere } from '../capture/pagemap.js';
import { MemLog, type LogPiece } from '../capture/_mem-log.js';
import { parseMaps, planMapping } from '../capture/proc-maps.js';
import { ImageWriter } from '../image/writer.js';
import { open as openFile } from 'node:fs/promises';
import { installedCopy, protectedPages, tempDir } from './helpers.js';
import { crimg, json } from './cli-helpers.js';
import { ROOT, ensureCaptureBuilt, requireTool } from './capture-fixture.js';

jest.setTimeout(60000);

const PAGE = 4096;
const tmp = tempDir();

interface Rewriter {
  pid: number;
  header: bigint;
  gen: bigint;
  pages: number;
  zap: bigint;
  gone: bigint;
  kw: bigint;
  /** Sends a one-letter command and resolves with its JSON answer. */
  command(c: string): Promise<Record<string, unknown>>;
  kill(): void;
}

function compileRewriter(): string {
  requireTool('gcc');
  const out = join(tmp.dir, 'rewriter');
  const r = spawnSync('gcc', ['-O2', '-pthread', '-o', out, join(ROOT, 'bench', 'c', 'rewriter.c')], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`gcc failed: ${r.stderr}`);
  return out;
}
const binary = compileRewriter();

/**
 * Starts the rewriter. Its threads' rseq areas are off (GLIBC_TUNABLES): the kernel rewrites a
 * thread's rseq cpu_id whenever it moves to another CPU, even while "paused", and the tests
 * compare images taken at different moments.
 */
function startRewriter(mib: number, perSecond: number, dataFile?: string, env: Record<string, string> = {}): Promise<Rewriter> {
  return new Promise((resolve, reject) => {
    const p: ChildProcess = spawn(binary, [String(mib), String(perSecond), ...(dataFile ? [dataFile] : [])], {
      stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, GLIBC_TUNABLES: 'glibc.pthread.rseq=0', ...env },
    });
    let buf = '';
    const waiting: ((v: Record<string, unknown>) => void)[] = [];
    let first = true;
    p.on('error', reject);
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const v = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if (first) {
          first = false;
          resolve({
            pid: v['pid'] as number, header: BigInt(v['header'] as string), gen: BigInt(v['gen'] as string), pages: v['pages'] as number,
            zap: BigInt(v['zap'] as string), gone: BigInt(v['gone'] as string), kw: BigInt(v['kw'] as string),
            command: (c) => new Promise((r) => { waiting.push(r); p.stdin!.write(c); }),
            kill: () => {
              try { process.kill(p.pid!, 'SIGCONT'); } catch { /* gone */ }
              p.stdin!.destroy();
              p.kill('SIGKILL');
            },
          });
        } else waiting.shift()?.(v);
      }
    });
  });
}

/** page_of(g) of rewriter.c: splitmix64(g) mod pages. */
function pageOf(g: bigint, pages: number): number {
  const M = (1n << 64n) - 1n;
  let x = (g + 0x9e3779b97f4a7c15n) & M;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M;
  return Number((x ^ (x >> 31n)) % BigInt(pages));
}

/**
 * Checks that every page of the rewriter's gen mapping in `image` holds, in all its words, the
 * generation it held when the header said G (the header's value in the same image): the last
 * g <= G that wrote it, or its initial value (0, or as the data file says); the page of G + 1
 * may hold G + 1. Returns G.
 */
async function expectConsistent(image: Image, w: Rewriter, initial: (page: number) => bigint = () => 0n): Promise<bigint> {
  const head = await image.read(w.header, 32);
  expect(head.subarray(0, 8).toString('latin1')).toBe('GENHEAD\0');
  const G = head.readBigUInt64LE(8);
  const expected = Array.from({ length: w.pages }, (_, p) => initial(p));
  for (let g = 1n; g <= G; g++) expected[pageOf(g, w.pages)] = g;
  const next = pageOf(G + 1n, w.pages);
  const bytes = await image.read(w.gen, w.pages * PAGE);
  const bad: string[] = [];
  for (let p = 0; p < w.pages; p++) {
    const page = bytes.subarray(p * PAGE, (p + 1) * PAGE);
    const first = page.readBigUInt64LE(0);
    if (!page.equals(Buffer.alloc(PAGE, page.subarray(0, 8)))) bad.push(`page ${p} is torn: not every word is word 0's ${first}`);
    if (first !== expected[p] && !(p === next && first === G + 1n)) bad.push(`page ${p} holds generation ${first}, expected ${expected[p]} (header ${G})`);
  }
  expect(bad.slice(0, 5)).toEqual([]);
  return G;
}

/** Every region and gap of an image with its bytes, for comparing two images' contents. */
async function contents(image: Image): Promise<{ table: string[]; bytes: Map<string, Buffer> }> {
  const table: string[] = [];
  const bytes = new Map<string, Buffer>();
  for (const r of image.regions) {
    const row = `${r.address.toString(16)} ${r.length} ${r.kind} ${r.prot} ${r.name} ${r.shared} ${r.fileOffset ?? ''}`;
    table.push(row);
    if (r.kind !== 'gap') bytes.set(row, await image.read(r.address, Number(r.length)));
  }
  return { table, bytes };
}

/**
 * Expects `other` to hold the regions and gaps of `image`, and the same bytes in each but thread
 * stacks (they hold the paused threads' sleeping frames, which differ from capture to capture).
 */
async function expectSameContents(image: Image, other: Image): Promise<void> {
  const [a, b] = await Promise.all([contents(image), contents(other)]);
  expect(b.table).toEqual(a.table);
  for (const row of a.table) {
    if (row.includes(' stack ')) continue;
    expect([row, b.bytes.get(row)?.equals(a.bytes.get(row)!)]).toEqual([row, a.bytes.has(row) ? true : undefined]);
  }
}

function tempsIn(dir: string, base: string): string[] {
  return readdirSync(dir).filter((n) => isTempOf(n, base));
}

describe('run arithmetic and page map bits (pure)', () => {
  const piece = (address: number, length: number, seq: number): LogPiece => ({ address: BigInt(address), length, offset: 0, seq });
  const run = (a: number, b: number) => ({ start: BigInt(a), end: BigInt(b) });
  const plain = (xs: Slice[]) => xs.map((x) => [Number(x.start), Number(x.end), x.piece.seq]);
  it('lays the stop\'s slices over the running pass\'s, which give way only where told', () => {
    const a = piece(0, 0x4000, 1);
    const b = piece(0x6000, 0x2000, 2);
    const base: Slice[] = [{ start: 0n, end: 0x4000n, piece: a }, { start: 0x6000n, end: 0x8000n, piece: b }];
    const fresh = piece(0x1000, 0x1000, 3);
    const out = overlay(base, [run(0x1000, 0x2000), run(0x3000, 0x7000)], [{ start: 0x1000n, end: 0x2000n, piece: fresh }]);
    expect(plain(out)).toEqual([[0, 0x1000, 1], [0x1000, 0x2000, 3], [0x2000, 0x3000, 1], [0x7000, 0x8000, 2]]);
    expect(plain(overlay(base, [], []))).toEqual([[0, 0x4000, 1], [0x6000, 0x8000, 2]]);
    expect(plain(overlay(base, [run(0, 0x10000)], []))).toEqual([]);
  });
  it('complements and merges runs', () => {
    expect(complement([run(0x1000, 0x2000), run(0x3000, 0x4000)], 0n, 0x5000n)).toEqual([run(0, 0x1000), run(0x2000, 0x3000), run(0x4000, 0x5000)]);
    expect(complement([], 0n, 0x1000n)).toEqual([run(0, 0x1000)]);
    expect(unionRuns([run(0, 0x1000), run(0x3000, 0x4000)], [run(0x1000, 0x2000), run(0x3800, 0x5000)])).toEqual([run(0, 0x2000), run(0x3000, 0x5000)]);
  });
  it('reads soft-dirty (bit 55) among present or swapped entries', () => {
    const e = Buffer.alloc(8 * 6);
    const hi = [0x80800000, 0x80000000, 0x00800000, 0x40800000, 0, 0x80800000]; // present+sd, present, sd only, swapped+sd, none, present+sd
    hi.forEach((h, i) => e.writeUInt32LE(h >>> 0, i * 8 + 4));
    const dirty: { start: bigint; end: bigint }[] = [];
    collectWhere(e, 0x10000n, 4096, dirty, (h) => (h & 0xc0000000) !== 0 && (h & (1 << 23)) !== 0);
    expect(dirty).toEqual([run(0x10000, 0x11000), run(0x13000, 0x14000), run(0x15000, 0x16000)]);
  });
});

const softDirty = await softDirtyUnavailable();
/**
 * How a pre-copy finds written pages here by default: soft-dirty bits where the kernel has
 * them, else write protection (Linux 6.7+ on x86-64, as on the machines CI runs on).
 */
const tracking = softDirty === null ? 'soft-dirty' : 'uffd-wp';

/** The userfaultfds process `pid` holds, and how many descriptors. */
function descriptors(pid: number): { uffds: number; count: number } {
  const names = readdirSync(`/proc/${pid}/fd`);
  const links = names.map((n) => { try { return readlinkSync(`/proc/${pid}/fd/${n}`); } catch { return ''; } });
  return { uffds: links.filter((l) => l.includes('userfaultfd')).length, count: names.length };
}


test('the soft-dirty check agrees with the kernel configuration (CONFIG_MEM_SOFT_DIRTY)', () => {
  const config = spawnSync('sh', ['-c', 'zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r) 2>/dev/null'], { encoding: 'utf8' }).stdout;
  expect(config).toMatch(/MEM_SOFT_DIRTY/);
  const has = /^CONFIG_MEM_SOFT_DIRTY=y$/m.test(config);
  expect(softDirty).toBe(has ? null : 'this kernel does not track soft-dirty pages (no CONFIG_MEM_SOFT_DIRTY)');
});

describe('captureProcess preCopy', () => {
  it.each([['auto', tracking], ['checksums', 'checksums']] as const)('%s: reads while the process rewrites pages, stops only for the written ones, and shows each page at its generation as of the stop', async (choice, expected) => {
    const w = await startRewriter(16, 2000);
    try {
      const key = randomBytes(32);
      const path = tmp.path(`pre-${choice}.img`);
      let mapped = 0n;
      const fds = descriptors(w.pid);
      const r: CaptureResult = await captureProcess(w.pid, path, {
        fsync: false, preCopy: true, preCopyTracking: choice, compress: 'deflate:1', encrypt: 'aes-256-gcm', key,
        // Between the passes: drop the zap pages, unmap gone, map a new mapping, have the
        // kernel write a page of kw (read(2) from a pipe).
        beforeStop: async () => {
          await w.command('z');
          // Mapped before gone is unmapped, so that it cannot take gone's place.
          mapped = BigInt((await w.command('n'))['mapped'] as string);
          await w.command('u');
          await w.command('k');
        },
      });
      expect(r.preCopy).toMatchObject({ used: true, tracking: expected });
      expect(r.staged).toBe(true);
      const { runningBytes, changedBytes } = r.preCopy as { runningBytes: number; changedBytes: number };
      expect(runningBytes).toBeGreaterThanOrEqual(w.pages * PAGE);
      // The stop took what changed from the process: less than the running pass read (the
      // writer rewrites 2000 of 4096 pages a second).
      expect(changedBytes).toBeLessThan(runningBytes);
      // Written pages known: the stop reads only those; checksums: it reads everything again.
      if (expected !== 'checksums') expect(r.stoppedBytesRead).toBe(changedBytes);
      else expect(r.stoppedBytesRead).toBeGreaterThan(changedBytes);
      if (expected === 'uffd-wp') {
        // Catch-up passes ran while the process did; a thread was stopped to set it up.
        const pre = r.preCopy as { catchUp?: { rounds: number; bytes: number }; attachMs?: number };
        expect(pre.catchUp!.rounds).toBeGreaterThanOrEqual(1);
        expect(pre.catchUp!.bytes).toBeGreaterThan(0);
        expect(pre.attachMs).toBeGreaterThan(0);
      }
      expect(r.bytesRead).toBe(runningBytes + r.stoppedBytesRead);
      expect(tempsIn(tmp.dir, `pre-${choice}.img`)).toEqual([]);
      // The process keeps no descriptor of ours, no page stays protected, and it answers (the
      // read(2) it sat in when a thread was stopped went on).
      expect(descriptors(w.pid)).toEqual(fds);
      expect(protectedPages(w.pid, w.gen, w.pages)).toBe(0);
      expect(await w.command('p')).toHaveProperty('paused');
      const image = await openImage(path, { key });
      try {
        await expectConsistent(image, w);
        expect((await image.read(w.zap, 64 * 1024)).equals(Buffer.alloc(64 * 1024))).toBe(true);
        expect(image.regions.some((x) => x.kind !== 'gap' && x.address <= w.gone && w.gone < x.address + x.length)).toBe(false);
        const fresh = await image.read(mapped, 64 * 1024);
        expect(fresh.subarray(0, 6).toString()).toBe('NEWMAP');
        expect(fresh.subarray(6).equals(Buffer.alloc(64 * 1024 - 6, 'N'))).toBe(true);
        // The kernel's write (no user instruction wrote the page) is in the image.
        expect((await image.read(w.kw, 64 * 1024)).toString('latin1')).toBe('K'.repeat(PAGE) + 'W'.repeat(PAGE) + 'K'.repeat(14 * PAGE));
      } finally {
        await image.close();
      }
    } finally {
      w.kill();
    }
  });

  it.each([['auto', tracking], ['checksums', 'checksums']] as const)('%s: writes what a full stop writes, region for region and byte for byte (writer paused)', async (choice, expected) => {
    const w = await startRewriter(8, 2000);
    try {
      await new Promise((r) => setTimeout(r, 200));
      await w.command('p');
      const key = randomBytes(32);
      // The direct path (raw), the log (deflate + cipher) and a pre-copy.
      await captureProcess(w.pid, tmp.path('full-raw.img'), { fsync: false });
      await captureProcess(w.pid, tmp.path('full-enc.img'), { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key });
      const pre = await captureProcess(w.pid, tmp.path('pre-raw.img'), { fsync: false, preCopy: true, preCopyTracking: choice });
      expect(pre.preCopy).toMatchObject({ used: true, tracking: expected });
      // Checksums: nothing changed. Written pages: the paused threads' stacks, which their
      // sleep loops write (with the same bytes), and nothing else.
      const { changedBytes } = pre.preCopy as { changedBytes: number };
      // File mappings (the program, libc, ld.so): read in the stop with written-page tracking.
      const fileBytes = parseMaps(readFileSync(`/proc/${w.pid}/maps`, 'utf8'))
        .filter((e) => e.path.startsWith('/') && e.perms[0] === 'r').reduce((n, e) => n + Number(e.end - e.start), 0);
      if (expected === 'checksums') expect(changedBytes).toBe(0);
      else {
        expect(changedBytes).toBeLessThanOrEqual(16 * PAGE + fileBytes);
        // ... and the stop read only those (every other page was protected, and stayed so),
        // as did the catch-up passes.
        expect(pre.stoppedBytesRead).toBe(changedBytes);
        if (expected === 'uffd-wp') expect((pre.preCopy as { catchUp: { bytes: number } }).catchUp.bytes).toBeLessThanOrEqual(16 * PAGE);
      }
      const images = [await openImage(tmp.path('full-raw.img')), await openImage(tmp.path('full-enc.img'), { key }), await openImage(tmp.path('pre-raw.img'))];
      try {
        await expectSameContents(images[0]!, images[1]!);
        await expectSameContents(images[0]!, images[2]!);
        await expectConsistent(images[2]!, w);
      } finally {
        for (const i of images) await i.close();
      }
    } finally {
      w.kill();
    }
  });

  it('falls back to a full stop for a process already stopped, and says why', async () => {
    const w = await startRewriter(4, 1000);
    try {
      process.kill(w.pid, 'SIGSTOP');
      const r = await captureProcess(w.pid, tmp.path('stopped.img'), { fsync: false, preCopy: true });
      expect(r.preCopy).toEqual({ used: false, fallback: 'the process was already stopped' });
      expect(r.wasStopped).toBe(true);
      expect(r.stoppedBytesRead).toBe(r.bytesRead);
      const image = await openImage(tmp.path('stopped.img'));
      try {
        await expectConsistent(image, w);
      } finally {
        await image.close();
      }
    } finally {
      w.kill();
    }
  });

  it('refuses preCopy with encodeWhileStopped', async () => {
    await expect(captureProcess(process.ppid, tmp.path('x.img'), { preCopy: true, encodeWhileStopped: true })).rejects.toThrow(RangeError);
  });
});

describe('pre-copy by write protection (uffd-wp)', () => {
  it('restarts the system call a stopped thread sat in: a sleep sleeps its whole time, and exits 0', async () => {
    const t0 = performance.now();
    const sleeper = spawn('sleep', ['1.5'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const r = await captureProcess(sleeper.pid!, tmp.path('sleep.img'), { fsync: false, preCopy: true, preCopyTracking: 'uffd-wp' });
      expect(r.preCopy).toMatchObject({ used: true, tracking: 'uffd-wp' });
      // clock_nanosleep was interrupted (ERESTART_RESTARTBLOCK): restarted, not failed with errno 516.
      const code = await new Promise<number | null>((res) => sleeper.on('exit', (c) => res(c)));
      expect(code).toBe(0);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(1500);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('falls back to checksums in a process under seccomp (a filter could kill it for the injected call), and says why', async () => {
    const w = await startRewriter(4, 1000, undefined, { REWRITER_NO_UFFD: '1' });
    try {
      const fds = descriptors(w.pid);
      const r = await captureProcess(w.pid, tmp.path('sandboxed.img'), { fsync: false, preCopy: true, beforeStop: async () => { await w.command('k'); } });
      expect(r.preCopy).toMatchObject({ used: true, tracking: softDirty === null ? 'soft-dirty' : 'checksums' });
      if (softDirty !== null) {
        expect((r.preCopy as { why: string }).why).toBe(`${softDirty}; write protection (userfaultfd) could not be set up: checking /proc/PID/status: the process runs under seccomp, which may kill it for a system call made for it (EPERM)`);
      }
      expect(descriptors(w.pid)).toEqual(fds);
      expect(await w.command('p')).toHaveProperty('paused');
      const image = await openImage(tmp.path('sandboxed.img'));
      try {
        await expectConsistent(image, w);
        expect((await image.read(w.kw + BigInt(PAGE), PAGE)).equals(Buffer.alloc(PAGE, 'W'))).toBe(true);
      } finally {
        await image.close();
      }
    } finally {
      w.kill();
    }
  });

  // Without CAP_SYS_PTRACE (vm.unprivileged_userfaultfd=0 here) the process's userfaultfd is
  // user-mode only; asynchronous write protection still sees the kernel's writes. nobody runs
  // an installed copy of the package (a checkout under a 0700 directory is unreadable to it),
  // which starts the rewriter as nobody and captures it.
  it('works for an unprivileged user on an unprivileged process, kernel writes included', async () => {
    expect({ uid: process.getuid?.(), why: 'the tests run as root to act as another user' }).toMatchObject({ uid: 0 });
    expect(readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim()).toBe('0');
    // A directory nobody can reach (the suite's own is 0700).
    const open = tempDir();
    chmodSync(open.dir, 0o755);
    const dir = open.path('nobody-pre');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const pkg = installedCopy(open.path('installed'));
    copyFileSync(binary, join(dir, 'rewriter'));
    chmodSync(join(dir, 'rewriter'), 0o755);
    const script = join(dir, 'run.mjs');
    writeFileSync(script, `
import { spawn } from 'node:child_process';
const [pkg, dir] = process.argv.slice(2);
const { captureProcess } = await import(pkg + '/build/capture/process.js');
const p = spawn(dir + '/rewriter', ['4', '1000'], { stdio: ['pipe', 'pipe', 'inherit'], env: { GLIBC_TUNABLES: 'glibc.pthread.rseq=0' } });
const lines = [];
let buf = '';
const waiters = [];
p.stdout.on('data', (d) => {
  buf += d;
  for (let nl = buf.indexOf('\\n'); nl >= 0; nl = buf.indexOf('\\n')) { const v = JSON.parse(buf.slice(0, nl)); buf = buf.slice(nl + 1); (waiters.shift() ?? ((x) => lines.push(x)))(v); }
});
const next = () => new Promise((r) => lines.length ? r(lines.shift()) : waiters.push(r));
const info = await next();
const r = await captureProcess(info.pid, dir + '/nobody.img', { fsync: false, preCopy: true, beforeStop: async () => { p.stdin.write('k'); await next(); } });
p.stdin.write('p');
await next();
process.stdout.write(JSON.stringify({ info, preCopy: r.preCopy }) + '\\n');
p.stdin.end();
`);
    const run = spawnSync(process.execPath, [script, pkg, dir], { uid: 65534, gid: 65534, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 60000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout) as { info: Record<string, string | number>; preCopy: { used: boolean; tracking: string } };
    expect(out.preCopy).toMatchObject({ used: true, tracking });
    const w = { header: BigInt(out.info['header']!), gen: BigInt(out.info['gen']!), pages: Number(out.info['pages']), kw: BigInt(out.info['kw']!) } as Rewriter;
    const image = await openImage(join(dir, 'nobody.img'));
    try {
      await expectConsistent(image, w);
      expect((await image.read(w.kw + BigInt(PAGE), PAGE)).equals(Buffer.alloc(PAGE, 'W'))).toBe(true);
    } finally {
      await image.close();
      open.cleanup();
    }
  });
});

describe('file memory under a pre-copy', () => {
  // A private writable mapping of a file of 0xab: pages 0 and 128 written (0xcd). Commands: 'a'
  // drops page 0 (it reads from the file again), 'b' drops page 128 and reads it back in.
  const SOURCE = `
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDONLY);
  volatile unsigned char *m = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  unsigned long s = 0;
  for (size_t i = 0; i < (1 << 20); i += 4096) s += m[i];
  memset((void *)m, 0xcd, 4096);
  memset((void *)(m + 512 * 1024), 0xcd, 4096);
  printf("%p\\n", (void *)m);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) == 1) {
    if (c == 'a') madvise((void *)m, 4096, MADV_DONTNEED);
    if (c == 'b') { madvise((void *)(m + 512 * 1024), 4096, MADV_DONTNEED); s += m[512 * 1024]; }
    printf("ok %lu\\n", s);
    fflush(stdout);
  }
  return 0;
}`;

  it.each(['auto', 'checksums'] as const)('%s: a page dropped back to the file, and the file written by another process, are in the image as the process sees them', async (choice) => {
    writeFileSync(tmp.path('filemem.c'), SOURCE);
    const cc = spawnSync('gcc', ['-O2', '-o', tmp.path('filemem'), tmp.path('filemem.c')], { encoding: 'utf8' });
    expect(cc.stderr).toBe('');
    const file = tmp.path(`filemem-${choice}.bin`);
    writeFileSync(file, Buffer.alloc(1 << 20, 0xab));
    const p = spawn(tmp.path('filemem'), [file], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const lines: string[] = [];
      const waiters: (() => void)[] = [];
      let buf = '';
      p.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) { lines.push(buf.slice(0, nl)); buf = buf.slice(nl + 1); waiters.shift()?.(); }
      });
      const line = async (): Promise<string> => { if (lines.length === 0) await new Promise<void>((r) => waiters.push(r)); return lines.shift()!; };
      const base = BigInt(await line());
      const cmd = async (c: string): Promise<void> => { p.stdin!.write(c); await line(); };
      const r = await captureProcess(p.pid!, tmp.path(`filemem-${choice}.img`), {
        fsync: false, compress: 'deflate:1', preCopy: true, preCopyTracking: choice,
        beforeStop: async () => {
          await cmd('a');
          await cmd('b');
          const h = await openFile(file, 'r+');
          await h.write(Buffer.alloc(PAGE, 0xee), 0, PAGE, 256 * 1024);
          await h.close();
        },
      });
      expect(r.preCopy).toMatchObject({ used: true, tracking: choice === 'auto' ? tracking : 'checksums' });
      const image = await openImage(tmp.path(`filemem-${choice}.img`));
      try {
        const mem = await openFile(`/proc/${p.pid}/mem`, 'r');
        for (const [what, at, byte] of [['dropped', 0n, 0xab], ['dropped and read back', 512n * 1024n, 0xab], ['written by another process', 256n * 1024n, 0xee], ['untouched', 4096n, 0xab]] as const) {
          const seen = Buffer.alloc(PAGE);
          await mem.read(seen, 0, PAGE, Number(base + at));
          expect([what, seen[0]]).toEqual([what, byte]);
          expect([what, (await image.read(base + at, PAGE)).equals(seen)]).toEqual([what, true]);
        }
        await mem.close();
      } finally {
        await image.close();
      }
    } finally {
      p.kill('SIGKILL');
    }
  });
});

describe('tracking kept past the stop: children that read only what changed since (keepTracking, since)', () => {
  it('captures a chain of three, each reading only the chunks written or dropped since the last, each image the process at its stop', async () => {
    const data = Buffer.alloc(16 * 1024 * 1024);
    const initial = (p: number): bigint => 0xdada000000000000n + BigInt(p);
    for (let p = 0; p < data.length / PAGE; p++) for (let i = 0; i < PAGE; i += 8) data.writeBigUInt64LE(initial(p), p * PAGE + i);
    writeFileSync(tmp.path('since-data.bin'), data);
    const w = await startRewriter(16, 200, tmp.path('since-data.bin'));
    const key = randomBytes(32);
    const enc = { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm' as const, key };
    try {
      const one = await captureProcess(w.pid, tmp.path('since-0.img'), { ...enc, preCopy: true, preCopyTracking: 'uffd-wp', keepTracking: true });
      const kept = one.tracking!;
      expect(kept.open).toBe(true);
      // The first image of a tracked chain: a page per chunk (its children take its chunk size).
      expect(kept.chunkSize).toBe(PAGE);
      expect(kept.mappings.size).toBeGreaterThan(3);
      // Still protected while kept: only pages written since are not.
      expect(protectedPages(w.pid, w.gen, w.pages)).toBeGreaterThan(w.pages / 2);
      await new Promise((r) => setTimeout(r, 300));
      // Dropped and kernel-written pages: in mappings that stay as they were (the rewriter's
      // small mappings share one with its gen pages), so that tracking, not a new mapping, finds them.
      const two = await captureProcess(w.pid, tmp.path('since-1.img'), {
        ...enc, preCopy: true, parent: tmp.path('since-0.img'), since: kept, keepTracking: true,
        beforeStop: async () => {
          await w.command('z');
          await w.command('k');
        },
      });
      expect(kept.open).toBe(false); // taken over
      expect(two.preCopy).toMatchObject({ used: true, tracking: 'uffd-wp' });
      // 200 pages a second for well under 2 s: a small part of the 16 MiB was read, the rest
      // left to the parent without reading it.
      expect(two.bytesRead).toBeLessThan(8 * 1024 * 1024);
      expect(two.summary.inParentChunks).toBeGreaterThan(400);
      for (const [path, k] of [[tmp.path('since-1.img'), two]] as const) {
        const image = await openImage(path, { key });
        try {
          await expectConsistent(image, w, initial);
          expect((await image.read(w.zap, 64 * 1024)).equals(Buffer.alloc(64 * 1024))).toBe(true); // dropped since: zeros
          expect((await image.read(w.kw + BigInt(PAGE), PAGE)).equals(Buffer.alloc(PAGE, 'W'))).toBe(true);
          expect(await image.verify()).toMatchObject({ ok: true });
        } finally {
          await image.close();
        }
        expect(k.tracking!.open).toBe(true);
      }
      // The third, writer paused, after a mapping appeared and one went (they split the one
      // mapping: read whole, compared with the parent): the same regions and bytes as a full
      // capture at that moment.
      await w.command('p');
      const mapped = BigInt((await w.command('n'))['mapped'] as string);
      await w.command('u');
      const three = await captureProcess(w.pid, tmp.path('since-2.img'), { ...enc, preCopy: true, parent: tmp.path('since-1.img'), since: two.tracking! });
      expect(three.tracking).toBeUndefined();
      expect(two.tracking!.open).toBe(false);
      expect(protectedPages(w.pid, w.gen, w.pages)).toBe(0); // closed at its end
      await captureProcess(w.pid, tmp.path('since-full.img'), { ...enc });
      const images = [await openImage(tmp.path('since-2.img'), { key }), await openImage(tmp.path('since-full.img'), { key })];
      try {
        await expectSameContents(images[1]!, images[0]!);
        await expectConsistent(images[0]!, w, initial);
        expect((await images[0]!.read(mapped, 6)).toString()).toBe('NEWMAP');
        expect((await images[0]!.read(w.zap, 64 * 1024)).equals(Buffer.alloc(64 * 1024))).toBe(true);
      } finally {
        for (const i of images) await i.close();
      }
    } finally {
      w.kill();
    }
  });

  it('refuses a tracking that does not fit, leaving it open', async () => {
    const w = await startRewriter(4, 100);
    const other = await startRewriter(4, 100);
    try {
      const one = await captureProcess(w.pid, tmp.path('fit-0.img'), { fsync: false, preCopy: true, preCopyTracking: 'uffd-wp', keepTracking: true });
      await captureProcess(w.pid, tmp.path('fit-other.img'), { fsync: false });
      const kept = one.tracking!;
      const refused = async (pid: number, o: Parameters<typeof captureProcess>[2], message: RegExp): Promise<void> => {
        await expect(captureProcess(pid, tmp.path('fit-x.img'), o)).rejects.toThrow(message);
        expect(kept.open).toBe(true);
      };
      await refused(w.pid, { fsync: false, since: kept, parent: tmp.path('fit-0.img') }, /expected since with preCopy and parent/);
      await refused(w.pid, { fsync: false, preCopy: true, since: kept }, /expected since with preCopy and parent/);
      await refused(w.pid, { fsync: false, keepTracking: true }, /expected keepTracking with preCopy/);
      await refused(w.pid, { fsync: false, preCopy: true, since: kept, parent: tmp.path('fit-other.img') }, /image ids differ/);
      await refused(other.pid, { fsync: false, preCopy: true, since: kept, parent: tmp.path('fit-0.img') }, new RegExp(`expected \`since\` to track process ${other.pid}, got tracking of process ${w.pid}`));
      await captureProcess(w.pid, tmp.path('fit-1.img'), { fsync: false, preCopy: true, since: kept, parent: tmp.path('fit-0.img') });
      await expect(captureProcess(w.pid, tmp.path('fit-2.img'), { fsync: false, preCopy: true, since: kept, parent: tmp.path('fit-0.img') })).rejects.toThrow(/already closed or used by another capture/);
    } finally {
      w.kill();
      other.kill();
    }
  });
});

describe('the memory log', () => {
  it('replays slices that interleave small pieces with large ones reading each piece once', async () => {
    // The "memory": a file read at the addresses (0x10000000 on).
    const AT = 0x10000000;
    const src = tmp.path('interleave.bin');
    const bytes = randomBytes(4 * 65536);
    const put = async (b: Buffer): Promise<void> => {
      const h = await openFile(src, 'w');
      await h.write(b, 0, b.length, AT);
      await h.close();
    };
    await put(bytes);
    const fh = await openFile(src, 'r');
    const log = await MemLog.create(tmp.path('interleave.log'), randomBytes(32), 65536, PAGE);
    try {
      expect(await log.logRuns(fh, 'src', [{ start: BigInt(AT), end: BigInt(AT + bytes.length) }])).toBeNull();
      // Every 3rd page "written since": logged again, page by page.
      const changed = Buffer.from(bytes);
      const runs = [];
      for (let p = 1; p < bytes.length / PAGE; p += 3) runs.push({ start: BigInt(AT + p * PAGE), end: BigInt(AT + (p + 1) * PAGE) });
      for (const r of runs) changed.fill(0x5a, Number(r.start) - AT, Number(r.end) - AT);
      await put(changed);
      const first = log.pieces.length;
      expect(await log.logRuns(fh, 'src', runs)).toBeNull();
      await log.flush();
      const slices = overlay(slicesFrom(log, 0).slice(0, first), runs, slicesFrom(log, first));
      const reads = jest.spyOn(log, 'read');
      const w = await ImageWriter.create(tmp.path('interleave.img'), { fsync: false });
      const entry = parseMaps('10000000-10040000 rw-p 00000000 00:00 0 \n')[0]!;
      await replay(w, log, [{ type: 'region', start: BigInt(AT), end: BigInt(AT + bytes.length), plan: planMapping(entry) as RegionPlan, entry, slices }]);
      await w.finish();
      // 4 large pieces and one per changed page, each read once (a large one was read again
      // at every interleaving).
      expect(reads).toHaveBeenCalledTimes(4 + runs.length);
      const image = await openImage(tmp.path('interleave.img'));
      try {
        expect((await image.read(BigInt(AT), bytes.length)).equals(changed)).toBe(true);
      } finally {
        await image.close();
      }
    } finally {
      await log.close();
      await fh.close();
    }
  });

  it('gives back what was logged, keeps no plaintext on disk when sealed, and refuses a piece changed on disk (AUTH_FAILED)', async () => {
    const src = tmp.path('src.bin');
    const bytes = randomBytes(3 * 65536);
    writeFileSync(src, bytes);
    const fh = await openFile(src, 'r');
    const path = tmp.path('sealed.log');
    const log = await MemLog.create(path, randomBytes(32), 65536, PAGE);
    try {
      expect(await log.logRuns(fh, 'src', [{ start: 0n, end: BigInt(bytes.length) }])).toBeNull();
      await log.flush();
      expect(log.pieces.map((p) => [Number(p.address), p.length])).toEqual([[0, 65536], [65536, 65536], [131072, 65536]]);
      for (const p of log.pieces) expect(Buffer.from(await log.read(p)).equals(bytes.subarray(Number(p.address), Number(p.address) + p.length))).toBe(true);
      const disk = readFileSync(path);
      expect(disk.length).toBe(bytes.length + 3 * 16);
      expect(disk.includes(bytes.subarray(100, 132))).toBe(false);
      const w = await openFile(path, 'r+');
      const one = Buffer.alloc(1);
      await w.read(one, 0, 1, log.pieces[1]!.offset + 5);
      one[0]! ^= 1;
      await w.write(one, 0, 1, log.pieces[1]!.offset + 5);
      await w.close();
      await expect(log.read(log.pieces[1]!)).rejects.toMatchObject({ code: 'AUTH_FAILED' });
      expect(Buffer.from(await log.read(log.pieces[2]!)).equals(bytes.subarray(131072))).toBe(true);
    } finally {
      await log.close();
      await fh.close();
    }
  });
});

describe('the stop of a pre-copy, soft-dirty bits from a page map file written by the test', () => {
  // This machine's kernel has no soft-dirty bits: a file in /proc/PID/pagemap's layout marks the
  // pages the test knows were written (from the rewriter's schedule), so the soft-dirty branch
  // runs here against the real process; checksums run against the real page map.
  it.each(['soft-dirty', 'checksums'] as const)('%s: the stop logs only the written pages (soft-dirty: reads only them) and the image is the process at the stop', async (mode) => {
    const w = await startRewriter(4, 3000);
    const log = await MemLog.create(tmp.path(`log-${mode}`), mode === 'soft-dirty' ? randomBytes(32) : null, 256 * 1024, PAGE);
    const mem = await openFile(`/proc/${w.pid}/mem`, 'r');
    const fake = await openFile(tmp.path(`pagemap-${mode}`), 'w+');
    const real = await openFile(`/proc/${w.pid}/pagemap`, 'r');
    try {
      await new Promise((r) => setTimeout(r, 100));
      const g1 = BigInt((await w.command('p'))['paused'] as number);
      // The mapping that holds the generation pages, cut to them: the kernel may merge the
      // rewriter's anonymous mappings into one, so it need not start at them.
      const end = w.gen + BigInt(w.pages * PAGE);
      const holder = parseMaps(readFileSync(`/proc/${w.pid}/maps`, 'utf8')).find((e) => e.start <= w.gen && end <= e.end);
      expect(holder).toBeDefined();
      const entry = { ...holder!, start: w.gen, end };
      const plan = planMapping(entry) as RegionPlan;
      expect(plan).toMatchObject({ action: 'region', zeroWhenAbsent: true });
      // The running pass (here while paused, so the test knows what it read).
      const first = log.pieces.length;
      expect(await log.logRuns(mem, 'mem', [{ start: plan.start, end: plan.end }], undefined, { hashes: mode === 'checksums' })).toBeNull();
      const base = slicesFrom(log, first);
      await w.command('r');
      await new Promise((r) => setTimeout(r, 150));
      const g2 = BigInt((await w.command('p'))['paused'] as number);
      const written = new Set<number>();
      for (let g = g1 + 1n; g <= g2; g++) written.add(pageOf(g, w.pages));
      expect(written.size).toBeGreaterThan(0);
      expect(written.size).toBeLessThan(w.pages);
      // Every page present; the written ones soft-dirty (bit 55).
      const entries = Buffer.alloc(w.pages * 8);
      for (let p = 0; p < w.pages; p++) entries.writeUInt32LE((written.has(p) ? 0x80800000 : 0x80000000) >>> 0, p * 8 + 4);
      await fake.write(entries, 0, entries.length, Number(w.gen / BigInt(PAGE)) * 8);
      const before = log.readBytes;
      const loggedBefore = log.bytes;
      const item = await stopPass(log, mem, mode === 'soft-dirty' ? fake : real, w.pid, PAGE, plan, entry, base, mode);
      expect(item).not.toBeNull();
      const read = log.readBytes - before;
      if (mode === 'soft-dirty') expect(read).toBe(written.size * PAGE);
      else expect(read).toBe(w.pages * PAGE);
      // Either way only the written pages are sealed and logged.
      expect(log.bytes - loggedBefore).toBe(written.size * PAGE);
      await log.flush();
      const out = tmp.path(`stop-${mode}.img`);
      const writer = await ImageWriter.create(out, { fsync: false });
      await replay(writer, log, [item!]);
      await writer.finish();
      const truth = Buffer.alloc(w.pages * PAGE);
      await mem.read(truth, 0, truth.length, Number(w.gen));
      const image = await openImage(out);
      try {
        expect((await image.read(w.gen, truth.length)).equals(truth)).toBe(true);
      } finally {
        await image.close();
      }
    } finally {
      await mem.close();
      await fake.close();
      await real.close();
      await log.close();
      w.kill();
    }
  });
});

describe('crimg capture --pre-copy --parent', () => {
  it('captures a child image against an earlier capture that reads back as the process; without the addon it says it compared checksums', async () => {
    ensureCaptureBuilt();
    // Every page starts as the data file's: all words 0xdada000000000000 + page number.
    const data = Buffer.alloc(16 * 1024 * 1024);
    const initial = (p: number): bigint => 0xdada000000000000n + BigInt(p);
    for (let p = 0; p < data.length / PAGE; p++) for (let i = 0; i < PAGE; i += 8) data.writeBigUInt64LE(initial(p), p * PAGE + i);
    writeFileSync(tmp.path('data.bin'), data);
    const w = await startRewriter(16, 100, tmp.path('data.bin'));
    try {
      const base = tmp.path('base.img');
      const child = tmp.path('child.img');
      const one = await crimg(['capture', '--pid', String(w.pid), base, '--json', '--pre-copy']);
      expect(one.status).toBe(0);
      expect(json<{ preCopy: { used: boolean; tracking: string } }>(one).preCopy).toMatchObject({ used: true, tracking });
      const two = await crimg(['capture', '--pid', String(w.pid), child, '--pre-copy', '--parent', base]);
      expect(two.status).toBe(0);
      expect(two.stdout).toMatch(tracking === 'soft-dirty'
        ? /pre-copy: read .* while it ran, .* while stopped; changed pages found by soft-dirty bits/
        : /pre-copy: read .* while it ran, .* while stopped; changed pages found by write protection \(userfaultfd\), .* read again in \d catch-up pass(es)? before the stop: this kernel does not track soft-dirty pages/);
      const image = await openImage(child);
      try {
        await expectConsistent(image, w, initial);
      } finally {
        await image.close();
      }
      // 100 of 4096 pages rewritten a second, a second or two between the captures: the child
      // stores those, the parent all 16 MiB.
      const { statSync } = await import('node:fs');
      expect(statSync(child).size).toBeLessThan(statSync(base).size / 4);
      const three = await crimg(['capture', '--pid', String(w.pid), tmp.path('nonative.img'), '--pre-copy'], { CRIMG_NO_NATIVE: '1' });
      expect(three.status).toBe(0);
      expect(three.stdout).toContain('changed pages found by checksum, every page read again while stopped: checking soft-dirty tracking needs the native addon'
        + ' (npm run build:native); write protection needs the native addon (npm run build:native)');
      // Asked for checksums: no ptrace, no userfaultfd.
      const four = await crimg(['capture', '--pid', String(w.pid), tmp.path('sums.img'), '--pre-copy', '--pre-copy-tracking', 'checksums']);
      expect(four.status).toBe(0);
      expect(four.stdout).toMatch(/changed pages found by checksum, every page read again while stopped\n/);
    } finally {
      w.kill();
    }
  });
});

afterAll(() => tmp.cleanup());
