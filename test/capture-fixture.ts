/**
 * The process the capture and ELF tests capture: bench/c/memfill.c compiled with gcc into a
 * temp dir, started in `pattern` mode. It holds a heap block, an anonymous mapping with a guard
 * page and a stack array, each filled with a known pattern ({@link expectedPattern}), prints
 * their addresses and waits until its stdin closes. Also: gdb output parsing, tool detection.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');
export const MEMFILL_SOURCE = join(ROOT, 'bench', 'c', 'memfill.c');
const PAGE = 4096;

/** Debian packages of the tools the tests run; `.ci/run` installs them where missing. */
const PACKAGE_OF: Record<string, string> = { gcc: 'gcc', gdb: 'gdb', gcore: 'gdb', readelf: 'binutils' };

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' }).status === 0;
}

/**
 * Throws, naming the package to install, when `name` is not on PATH. The tests never skip for a
 * missing tool: CI installs every tool they need (`.ci/run`), and so does the README's set-up.
 */
export function requireTool(name: string): void {
  if (!hasTool(name)) throw new Error(`${name} is required by this test and is not installed: apt-get install ${PACKAGE_OF[name] ?? name} (see the README's set-up)`);
}

/** Compiles memfill into `dir`. @throws Error when gcc is missing or fails. */
export function compileMemfill(dir: string): string {
  requireTool('gcc');
  const out = join(dir, 'memfill');
  const r = spawnSync('gcc', ['-O2', '-o', out, MEMFILL_SOURCE], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`gcc failed to compile ${MEMFILL_SOURCE}: ${r.stderr}`);
  return out;
}

/** bench/c/capture_target.c (issue 13's target: sparse, unreadable and thread-stack memory). */
export const TARGET_SOURCE = join(ROOT, 'bench', 'c', 'capture_target.c');

/** Compiles capture_target into `dir`. @throws Error when gcc is missing or fails. */
export function compileTarget(dir: string): string {
  requireTool('gcc');
  const out = join(dir, 'capture_target');
  const r = spawnSync('gcc', ['-O2', '-pthread', '-o', out, TARGET_SOURCE], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`gcc failed to compile ${TARGET_SOURCE}: ${r.stderr}`);
  return out;
}

/** What capture_target prints (see bench/c/capture_target.c). */
export interface TargetInfo {
  pid: number;
  sparse: bigint;
  sparseLen: number;
  hidden: bigint;
  wonly: bigint;
  reserve: bigint;
  data: bigint | null;
  dataLen: number;
  tids: number[];
  stacks: string[];
}

/** Starts `capture_target THREADS RESERVE_MIB [DATA_FILE]`. */
export function startTarget(binary: string, threads: number, reserveMiB: number, dataFile?: string): Promise<Child<TargetInfo>> {
  return startMemfill<TargetInfo>(binary, [String(threads), String(reserveMiB), ...(dataFile ? [dataFile] : [])]);
}

/** VmRSS of a process in bytes (/proc/PID/status). */
export function residentBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** The state letter of /proc/PID/stat (R, S, D, T...). */
export function procState(pid: number): string {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[0]!;
}

/** What the pattern child prints. */
export interface PatternInfo {
  pid: number;
  heap: bigint;
  heapLen: number;
  mmap: bigint;
  mmapLen: number;
  guard: bigint;
  stack: bigint;
  stackLen: number;
  /** A 3-page mapping of a deleted 1-page file of 0x5a bytes: pages 2 and 3 are unreadable. */
  short: bigint;
}

export interface Child<T> {
  info: T;
  process: ChildProcess;
  /** Closes stdin and kills it (SIGCONT first, in case it is stopped). Safe to call twice. */
  kill(): void;
}

/** Starts `memfill ARGS...` and waits for its JSON line. */
export function startMemfill<T = PatternInfo>(binary: string, args: string[]): Promise<Child<T>> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(binary, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const kill = (): void => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      try { process.kill(p.pid!, 'SIGCONT'); } catch { /* gone */ }
      p.stdin?.destroy();
      p.kill('SIGKILL');
    };
    p.on('error', reject);
    p.on('exit', (code) => { if (!out.includes('\n')) reject(new Error(`memfill exited with ${code} before printing its addresses`)); });
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const raw = JSON.parse(out.slice(0, nl)) as Record<string, unknown>;
      const info: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(raw)) info[k] = typeof v === 'string' && v.startsWith('0x') ? BigInt(v) : v;
      resolvePromise({ info: info as T, process: p, kill });
    });
  });
}

/**
 * The bytes memfill writes into a block (see bench/c/memfill.c): xorshift32 words seeded
 * `seed * 0x9e3779b9 + tag`, every fourth page zero.
 */
export function expectedPattern(seed: number, tag: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = (Math.imul(seed, 0x9e3779b9) + tag) >>> 0 || 1;
  for (let o = 0; o + 4 <= length; o += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    if (Math.floor(o / PAGE) % 4 !== 3) out.writeUInt32LE(x, o);
  }
  return out;
}

/**
 * Whether this process may read another process's memory here: tries /proc/PID/mem of `pid`
 * at `address`; the capture tests fail with this reason when the kernel forbids it.
 */
export function canReadMemory(pid: number, address: bigint): { ok: true } | { ok: false; reason: string } {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/mem`, 'r');
  } catch (e) {
    return { ok: false, reason: `cannot open /proc/${pid}/mem: ${(e as NodeJS.ErrnoException).code}` };
  }
  try {
    readSync(fd, Buffer.alloc(16), 0, 16, Number(address));
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `cannot read /proc/${pid}/mem: ${(e as NodeJS.ErrnoException).code}` };
  } finally {
    closeSync(fd);
  }
}

/** Runs `gdb -batch -nx -c CORE -ex 'x/8gx ADDR'` and returns the 64 bytes it shows. */
export function gdbBytes(core: string, address: bigint): Buffer {
  const r = spawnSync('gdb', ['-batch', '-nx', '-c', core, '-ex', `x/8gx 0x${address.toString(16)}`], { encoding: 'utf8', timeout: 30000 });
  const words: bigint[] = [];
  for (const line of r.stdout.split('\n')) {
    // "0x55dc968e02a0:	0x4f7bb33cf9c12af3	0x1556ad011a99d9f2"
    const m = /^0x[0-9a-f]+(?: <[^>]*>)?:\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s*$/.exec(line.trim());
    if (m) words.push(BigInt(m[1]!), BigInt(m[2]!));
  }
  if (words.length !== 8) throw new Error(`gdb did not show 8 words at 0x${address.toString(16)} of ${core}:\n${r.stdout}\n${r.stderr}`);
  const out = Buffer.alloc(64);
  words.forEach((w, i) => out.writeBigUInt64LE(w, i * 8));
  return out;
}

/** Runs `gcore -o PREFIX PID`; returns the core's path. */
export function gcore(prefix: string, pid: number): string {
  const r = spawnSync('gcore', ['-o', prefix, String(pid)], { encoding: 'utf8', timeout: 60000 });
  const path = `${prefix}.${pid}`;
  if (r.status !== 0 || !existsSync(path)) throw new Error(`gcore failed (${r.status}): ${r.stderr}`);
  return path;
}

/** Builds (once, under a lock) when build/ is older than the sources: capture tests run built JS. */
export { ensureBuilt as ensureCaptureBuilt } from './cli-helpers.js';
