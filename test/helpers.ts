/** Shared test helpers: temp dirs, memory-like data, byte flips. */
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'crimg-test-'));
  return { dir, path: (n) => join(dir, n), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Memory-like bytes: runs of zero, structured and random pages. */
export function memoryLike(pages: number, seed: number, pageSize = 4096): Buffer {
  const rnd = prng(seed);
  const out = Buffer.alloc(pages * pageSize);
  let p = 0;
  while (p < pages) {
    const run = Math.min(pages - p, 1 + Math.floor(rnd() * 8));
    const kind = rnd();
    for (let i = 0; i < run; i++, p++) {
      const page = out.subarray(p * pageSize, (p + 1) * pageSize);
      if (kind < 0.4) continue;
      if (kind < 0.7) {
        for (let o = 0; o < pageSize; o += 8) page.writeBigUInt64LE(0x7f0000000000n + BigInt(Math.floor(rnd() * 65536) * 16), o);
      } else {
        for (let o = 0; o < pageSize; o += 4) page.writeUInt32LE(Math.floor(rnd() * 4294967296), o);
      }
    }
  }
  return out;
}

/** Flips the bits of `mask` (default all) in the byte of `file` at `at`. */
export function flipByte(file: string, at: number, mask = 0xff): void {
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0]! ^= mask;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * A copy of the package as a user would have it installed (the built code, the CLI, the addon and
 * the production dependencies) at `dest`, readable by every user: tests that run a child as
 * nobody use it, since a checkout under a 0700 directory (as CI's clone is) is unreadable to
 * nobody. Returns `dest`.
 */
export function installedCopy(dest: string): string {
  const root = join(import.meta.dirname, '..');
  const parts = ['package.json', 'bin', 'build', join('native-mmap', 'binding.gyp'), join('native-mmap', 'build', 'Release', 'crimg_mmap.node')];
  const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' });
  if (ls.status !== 0) throw new Error(`npm ls failed: ${ls.stderr}`);
  const deps = ls.stdout.split('\n').map((l) => relative(root, l.trim())).filter((l) => l.startsWith('node_modules'));
  for (const part of [...parts, ...deps]) cpSync(join(root, part), join(dest, part), { recursive: true });
  spawnSync('chmod', ['-R', 'a+rX', dest]);
  return dest;
}

/**
 * How many pages of [address, address + pages pages) of process `pid` are write-protected by a
 * userfaultfd (bit 57 of their /proc/PID/pagemap entries).
 */
export function protectedPages(pid: number, address: bigint, pages: number): number {
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const e = Buffer.alloc(pages * 8);
    readSync(fd, e, 0, e.length, Number(address / 4096n) * 8);
    let n = 0;
    for (let i = 0; i < pages; i++) if ((e.readUInt32LE(i * 8 + 4) & (1 << 25)) !== 0) n++;
    return n;
  } finally {
    closeSync(fd);
  }
}

/** One mapping of this process in /proc/self/smaps. */
export interface SmapsMapping {
  start: bigint;
  end: bigint;
  /** VmFlags: `hg` advised for huge pages, `dc` not inherited by fork(), ... */
  flags: string[];
  /** AnonHugePages, in bytes: memory mapped by 2 MiB pages. */
  anonHuge: number;
}

/** This process's mappings, from /proc/self/smaps. */
export function smapsMappings(): SmapsMapping[] {
  const out: SmapsMapping[] = [];
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    const last = out[out.length - 1];
    if (m) out.push({ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), flags: [], anonHuge: 0 });
    else if (last && line.startsWith('VmFlags:')) last.flags = line.slice(8).trim().split(/\s+/);
    else if (last && line.startsWith('AnonHugePages:')) last.anonHuge = Number(/(\d+)/.exec(line)![1]) * 1024;
  }
  return out;
}
