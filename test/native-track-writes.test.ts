/**
 * The addon's write tracking of another process (native-mmap/src/track_writes.cc): a userfaultfd
 * the target is made to open, asynchronous write protection, PAGEMAP_SCAN. Against a small C
 * target whose writes the test chooses, so every scan has an exact expected answer.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireNative, outcome } from './native-fixture.js';
import { protectedPages, tempDir } from './helpers.js';

const native = requireNative();
const t = tempDir();
afterAll(() => t.cleanup());
const PAGE = 4096;
const PAGES = 8192;

// Maps PAGES pages (all written: present), prints the address, then per line on stdin:
// "w K" writes every K-th page, "s A B" writes pages [A, B), "d P" drops page P
// (MADV_DONTNEED); answers "ok" after each.
const SOURCE = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
int main(void) {
  size_t n = ${PAGES};
  char *p = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *q = mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(p, 1, n * 4096);
  memset(q, 1, 16 * 4096);
  printf("%p %p\\n", (void *)p, (void *)q);
  fflush(stdout);
  char c;
  long a, b;
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "w %ld", &a) == 1) { for (size_t i = 0; i < n; i += a) p[i * 4096]++; }
    else if (sscanf(line, "s %ld %ld", &a, &b) == 2) { for (long i = a; i < b; i++) p[i * 4096]++; }
    else if (sscanf(line, "d %ld", &a) == 1) madvise(p + a * 4096, 4096, MADV_DONTNEED);
    (void)c;
    printf("ok\\n");
    fflush(stdout);
  }
  return 0;
}
`;

function build(): string {
  writeFileSync(join(t.dir, 'target.c'), SOURCE);
  const out = join(t.dir, 'target');
  const r = spawnSync('gcc', ['-O2', '-o', out, join(t.dir, 'target.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc failed: ${r.stderr}`);
  return out;
}
const binary = build();

interface Target { proc: ChildProcess; pid: number; base: bigint; other: bigint; ask(line: string): Promise<void> }

function start(): Promise<Target> {
  return new Promise((resolve, reject) => {
    const proc = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    const waiting: (() => void)[] = [];
    let first = true;
    proc.on('error', reject);
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (first) {
          first = false;
          const [a, b] = line.split(' ');
          resolve({ proc, pid: proc.pid!, base: BigInt(a!), other: BigInt(b!), ask: (l) => new Promise((r) => { waiting.push(r); proc.stdin!.write(`${l}\n`); }) });
        } else waiting.shift()?.();
      }
    });
  });
}

/** Page numbers (from `base`) of the scan's [start, end) pairs. */
function pages(pairs: BigUint64Array, base: bigint): number[] {
  const out: number[] = [];
  for (let i = 0; i < pairs.length; i += 2) for (let a = pairs[i]!; a < pairs[i + 1]!; a += BigInt(PAGE)) out.push(Number((a - base) / BigInt(PAGE)));
  return out;
}


function uffdsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((n) => { try { return readlinkSync(`/proc/${pid}/fd/${n}`).includes('userfaultfd'); } catch { return false; } }).length;
}

describe('trackWrites*', () => {
  let target: Target;
  let pagemap: number;
  let uffd: number;
  const end = (): bigint => target.base + BigInt(PAGES * PAGE);
  beforeAll(async () => {
    target = await start();
    pagemap = openSync(`/proc/${target.pid}/pagemap`, 'r');
    uffd = native.trackWritesOpen(target.pid);
  });
  afterAll(() => {
    native.closeFd(uffd);
    closeSync(pagemap);
    target.proc.stdin!.end();
    target.proc.kill('SIGKILL');
  });

  it('opens a userfaultfd of the target that the target itself does not keep', () => {
    expect(uffd).toBeGreaterThan(2);
    expect(uffdsOf(target.pid)).toBe(0);
    expect(uffdsOf(process.pid)).toBe(1);
  });

  it('protects a mapping, then lists exactly the pages written since, across more regions than one scan returns', async () => {
    expect(native.trackWritesProtect(uffd, pagemap, target.base, end())).toBe(0);
    expect(protectedPages(target.pid, target.base, PAGES)).toBe(PAGES);
    expect(native.trackWritesScan(pagemap, target.base, end(), false)).toEqual(new BigUint64Array(0));
    // Every 3rd page: 2,731 separate runs. The kernel returns at most 1,024 per call here, and
    // a call that returns more than 512 without filling the vector reports a walk_end below
    // its last 512 regions (Linux 6.18): a scan that went on from there listed them twice.
    await target.ask('w 3');
    const expected = Array.from({ length: Math.ceil(PAGES / 3) }, (_, k) => 3 * k);
    const once = native.trackWritesScan(pagemap, target.base, end(), false);
    expect(once.length).toBe(2 * expected.length);
    expect(pages(once, target.base)).toEqual(expected);
    // Listing again without protecting lists the same; protecting again empties the list.
    expect(native.trackWritesScan(pagemap, target.base, end(), false)).toEqual(once);
    expect(native.trackWritesScan(pagemap, target.base, end(), true)).toEqual(once);
    expect(native.trackWritesScan(pagemap, target.base, end(), false)).toEqual(new BigUint64Array(0));
    expect(protectedPages(target.pid, target.base, PAGES)).toBe(PAGES);
    // A stretch merges into one run; a dropped page holds no memory and is not listed.
    await target.ask('s 100 200');
    await target.ask('d 150');
    const stretch = native.trackWritesScan(pagemap, target.base, end(), true);
    expect(pages(stretch, target.base)).toEqual([...Array.from({ length: 50 }, (_, k) => 100 + k), ...Array.from({ length: 49 }, (_, k) => 151 + k)]);
    // A part of a mapping is scanned alone.
    await target.ask('s 10 20');
    expect(pages(native.trackWritesScan(pagemap, target.base + 12n * BigInt(PAGE), target.base + 15n * BigInt(PAGE), false), target.base)).toEqual([12, 13, 14]);
  });

  it('refuses a mapping it does not track, and ranges that are not mappings', () => {
    const e = (() => { try { native.trackWritesScan(pagemap, target.other, target.other + 16n * BigInt(PAGE), false); return null; } catch (x) { return x as { code?: string; syscall?: string }; } })();
    expect(e).toMatchObject({ code: 'EPERM', syscall: 'PAGEMAP_SCAN' });
    // Past the end of the mapping: registration refuses (a hole in the range).
    expect(native.trackWritesProtect(uffd, pagemap, target.base, end() + 1024n * 1024n * 1024n)).not.toBe(0);
  });

  it('checks its arguments', () => {
    expect(outcome(() => native.trackWritesOpen(0))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(outcome(() => native.trackWritesOpen('1' as unknown as number))).toBe('TypeError:ERR_INVALID_ARG_TYPE');
    expect(outcome(() => native.trackWritesOpen(1, 10001))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(outcome(() => native.trackWritesProtect(uffd, pagemap, 0x2000n, 0x1000n))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(outcome(() => native.trackWritesProtect(uffd, pagemap, 0x1001n, 0x3000n))).toBe('RangeError:ERR_INVALID_ARG_VALUE');
    expect(outcome(() => native.trackWritesScan(pagemap, 0x1000n, 0x2000n, 1 as unknown as boolean))).toBe('TypeError:ERR_INVALID_ARG_TYPE');
  });

  it('says why a process cannot be tracked', () => {
    const dead = spawnSync('true').pid!;
    const e = (() => { try { native.trackWritesOpen(dead); return null; } catch (x) { return x as { code?: string; syscall?: string }; } })();
    expect(e).toMatchObject({ code: 'ESRCH', syscall: 'choosing a thread that is running or in an interruptible sleep' });
  });

  it('leaves no page protected once closed', async () => {
    const other = native.trackWritesOpen(target.pid);
    expect(native.trackWritesProtect(other, pagemap, target.other, target.other + 16n * BigInt(PAGE))).toBe(0);
    expect(protectedPages(target.pid, target.other, 16)).toBe(16);
    native.closeFd(other);
    expect(protectedPages(target.pid, target.other, 16)).toBe(0);
    await target.ask('s 0 1'); // still answers
  });
});

// A process whose sibling thread, the moment its leader is in a ptrace stop ('t'), sends the
// leader SIGSTOP ("stop") or ends the process ("exit"). It is the child of a parent process
// that prints what waitpid(WUNTRACED) told it: the stop or the exit must reach that parent.
const RACER = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static pid_t leader;
static const char *mode;
static char state(pid_t t) {
  char p[64], b[512];
  snprintf(p, sizeof p, "/proc/self/task/%d/stat", t);
  int fd = open(p, O_RDONLY);
  if (fd < 0) return 0;
  int n = read(fd, b, sizeof b - 1);
  close(fd);
  if (n <= 0) return 0;
  b[n] = 0;
  char *c = strrchr(b, ')');
  return c ? c[2] : 0;
}
static void *watch(void *a) {
  (void)a;
  time_t until = time(0) + 20;  /* never traced: gone on its own */
  while (time(0) < until) if (state(leader) == 't') {
    if (!strcmp(mode, "stop")) syscall(SYS_tgkill, getpid(), leader, SIGSTOP); else syscall(SYS_exit_group, 7);
    return 0;
  }
  syscall(SYS_exit_group, 9);
  return 0;
}
int main(int argc, char **argv) {
  (void)argc;
  mode = argv[1];
  pid_t c = fork();
  if (c) {
    printf("%d\\n", c);
    fflush(stdout);
    int st;
    waitpid(c, &st, WUNTRACED);
    printf("%s\\n", WIFSTOPPED(st) ? "stopped" : WIFEXITED(st) ? "exited" : "other");
    fflush(stdout);
    if (WIFSTOPPED(st)) { kill(c, SIGKILL); waitpid(c, &st, 0); }
    return 0;
  }
  leader = getpid();
  pthread_t t;
  pthread_create(&t, 0, watch, 0);
  for (;;) pause();
}
`;

describe('trackWritesOpen and the target\'s own life', () => {
  const racer = (() => {
    writeFileSync(join(t.dir, 'racer.c'), RACER);
    const r = spawnSync('gcc', ['-O2', '-pthread', '-o', join(t.dir, 'racer'), join(t.dir, 'racer.c')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`gcc failed: ${r.stderr}`);
    return join(t.dir, 'racer');
  })();
  const run = (mode: string): Promise<{ opened: string; parent: string }> => new Promise((resolve, reject) => {
    const p = spawn(racer, [mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    let opened = '';
    let pid = 0;
    p.on('error', reject);
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      if (opened === '' && pid === 0 && lines.length > 1) {
        pid = Number(lines[0]);
        setTimeout(() => {
          // Held stopped 300 ms mid-injection: the sibling sees it traced even on a loaded machine.
          try { native.closeFd(native.trackWritesOpen(pid, 300)); opened = 'ok'; } catch (e) { opened = (e as { code?: string }).code ?? 'error'; }
        }, 100);
      }
      if (lines.length > 2) resolve({ opened, parent: lines[1]! });
    });
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`no answer from the racer's parent: ${JSON.stringify(buf)}`));
    }, 10000);
    p.on('exit', () => clearTimeout(timer));
  });
  it('a SIGSTOP that arrives while the injected calls run still stops the process', async () => {
    const r = await run('stop');
    expect(r).toEqual({ opened: 'ok', parent: 'stopped' });
  });
  it('an exit while the thread is traced reaches the process\'s parent', async () => {
    const r = await run('exit');
    expect(r).toEqual({ opened: 'ESRCH', parent: 'exited' });
  });
});
