/**
 * Lazy restore (restore/_lazy.ts, native-mmap/src/uffd.cc): bytes exact in every suite, the
 * recorded protections once done, the first-fault profile, a corrupt chunk never reaching
 * memory, release while faults are pending, two restores at once, and the fallbacks (user-mode
 * only as nobody, copy when no userfaultfd can be had, /dev/userfaultfd under a seccomp filter).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, openSync, closeSync, write, writeFileSync, realpathSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageWriter, openImage, optimizeImage } from '../index.js';
import { readMaps } from '../restore/_maps.js';
import { CHUNK, LAYOUT, PAGE, regionBytes, writeFixture, freeBase } from './restore-fixture.js';
import { flipByte, installedCopy, memoryLike, smapsMappings, tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEY = new Uint8Array(32).fill(7);
const t = tempDir();
const SUITES = [
  { name: 'raw', options: {} },
  { name: 'deflate:1', options: { compress: 'deflate:1' } },
  { name: 'zstd:1 + chacha20-poly1305', options: { compress: 'zstd:1', encrypt: 'chacha20-poly1305', key: KEY } },
  { name: 'deflate:6 + aes-256-gcm', options: { compress: 'deflate:6', encrypt: 'aes-256-gcm', key: KEY } },
] as const;

afterAll(() => t.cleanup());

/** The VmFlags of the mapping holding `address` (`dc`: not inherited by fork). */
function vmFlags(address: bigint): string[] {
  const m = smapsMappings().find((x) => x.start <= address && address < x.end);
  if (!m) throw new Error(`no mapping holds ${address.toString(16)}`);
  return m.flags;
}

describe.each(SUITES)('lazy restore of the fixture, $name', ({ name, options }) => {
  test('returns lazily, every readable region byte-exact, recorded protections once done', async () => {
    const file = t.path(`${name.replace(/\W+/g, '_')}.img`);
    await writeFixture(file, freeBase(), options as never);
    const image = await openImage(file, 'key' in options ? { key: KEY } : {});
    const r = await image.restore({ mode: 'lazy' });
    try {
      expect(r.mode).toBe('lazy');
      expect(r.reason).toBeUndefined();
      for (const [i, l] of LAYOUT.entries()) {
        const e = r.regions[i]!;
        if (l.gap !== undefined || !l.prot.startsWith('r')) {
          expect(e.memory).toBeUndefined();
          continue;
        }
        expect(Buffer.from(e.memory!).equals(regionBytes(l, i))).toBe(true);
      }
      await r.done;
      const maps = readMaps();
      const code = r.regions[2]!;
      expect(maps.find((m) => m.start <= code.address && code.address < m.end)!.perms).toBe('r-xp');
      const none = r.regions[3]!;
      expect(maps.find((m) => m.start <= none.address && none.address < m.end)!.perms).toBe('---p');
      expect(r.lazyStats()!.settled).toBe(r.lazyStats()!.total);
    } finally {
      r.release();
      await image.close();
    }
  });
});

test('a selection of regions with a hot list across all of them: exact, chunk numbers are the image\'s', async () => {
  // Chunks: heap 0-11, code 12-14, no access 15-16, zeros 17-19, tiny 20. The session numbers
  // only the selected regions' chunks; the hot list and the profile speak the image's numbers.
  const base = freeBase();
  const src = t.path('selection.img');
  const hot = t.path('selection-hot.img');
  await writeFixture(src, base, { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY });
  await optimizeImage(src, hot, { profile: [19, 13, 2, 20, 16, 8], key: KEY });
  const image = await openImage(hot, { key: KEY });
  try {
    const picked = [2, 4, 5];
    const r = await image.restore({ mode: 'lazy', regions: picked });
    try {
      await r.done;
      picked.forEach((i, k) => {
        if (LAYOUT[i]!.prot.startsWith('r')) expect(Buffer.from(r.regions[k]!.memory!).equals(regionBytes(LAYOUT[i]!, i))).toBe(true);
      });
      expect(r.lazyStats()).toMatchObject({ total: 7, settled: 7 });
    } finally {
      r.release();
    }
    const lazy = await image.restore({ mode: 'lazy', regions: [0, 5, 2], prefetch: false });
    try {
      const tiny = new Uint8Array(lazy.regions[2]!.memory!);
      const code = new Uint8Array(lazy.regions[1]!.memory!);
      const heap = new Uint8Array(lazy.regions[0]!.memory!);
      expect([tiny[PAGE + 99], code[2 * CHUNK + 1], heap[11 * CHUNK + 4999], heap[0]]).toEqual(
        [regionBytes(LAYOUT[5]!, 5)[PAGE + 99], regionBytes(LAYOUT[2]!, 2)[2 * CHUNK + 1], regionBytes(LAYOUT[0]!, 0)[11 * CHUNK + 4999], regionBytes(LAYOUT[0]!, 0)[0]]);
      expect(lazy.accessProfile()).toEqual([20, 14, 11, 0]);
      expect(lazy.lazyStats()).toMatchObject({ total: 16, faultInstalls: 4, prefetched: 0 });
    } finally {
      lazy.release();
    }
  } finally {
    await image.close();
  }
});

describe('lazy restore of a memory-like image', () => {
  const file = t.path('big.img');
  const data = memoryLike(2048, 17); // 8 MiB
  beforeAll(async () => {
    const w = await ImageWriter.create(file, { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY, chunkSize: 65536 });
    await w.addRegion({ address: 0x200000000n, data, prot: 'rw-', kind: 'heap', name: 'heap' });
    await w.finish();
  });

  test('without prefetch, the access profile lists chunks in first-touch order and only touched chunks fault', async () => {
    const image = await openImage(file, { key: KEY });
    const r = await image.restore({ mode: 'lazy', prefetch: false });
    try {
      const m = new Uint8Array(r.regions[0]!.memory!);
      const order = [37, 3, 100, 64, 3, 37, 127];
      for (const c of order) expect(m[c * 65536 + 100]).toBe(data[c * 65536 + 100]);
      expect(r.accessProfile()).toEqual([37, 3, 100, 64, 127]);
      const s = r.lazyStats()!;
      expect(s.faultInstalls).toBe(5);
      expect(s.prefetched).toBe(0);
      // The handler's own time on them: decoding, then the copies.
      expect(s.faultDecodeUs).toBeGreaterThan(0);
      expect(s.faultInstallUs).toBeGreaterThan(0);
      // done waits for every chunk; release first rejects it with the reason.
      r.release();
      await expect(r.done).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/released before every chunk/) });
    } finally {
      r.release();
      await image.close();
    }
  });

  test('until done, a fork()ed child does not inherit the memory (its unregistered copy would read missing pages as zeros): VmFlags dc, then not', async () => {
    const image = await openImage(file, { key: KEY });
    const r = await image.restore({ mode: 'lazy', prefetch: false });
    try {
      const region = r.regions[0]!;
      const m = new Uint8Array(region.memory!);
      expect(m[3 * 65536]).toBe(data[3 * 65536]);
      expect(vmFlags(region.address)).toContain('dc');
      expect(vmFlags(region.address + BigInt(data.length - 1))).toContain('dc');
      let sum = 0;
      for (let i = 0; i < m.length; i += 4096) sum += m[i]!;
      await r.done;
      expect(sum).toBeGreaterThan(0);
      expect(vmFlags(region.address)).not.toContain('dc');
      expect(vmFlags(region.address + BigInt(data.length - 1))).not.toContain('dc');
      expect(Buffer.from(m).equals(data)).toBe(true);
    } finally {
      r.release();
      await image.close();
    }
  });

  test('a page of an installed chunk that the process drops (MADV_DONTNEED) reads zeros again, at once: no busy loop of faults', async () => {
    const native = requireNative();
    const image = await openImage(file, { key: KEY });
    const r = await image.restore({ mode: 'lazy', prefetch: false });
    try {
      const region = r.regions[0]!;
      const m = new Uint8Array(region.memory!);
      const at = 5 * 65536 + 4096; // the second page of chunk 5
      expect(m[at + 10]).toBe(data[at + 10]); // installs chunk 5
      const before = r.lazyStats()!.faults;
      native.advise(region.address + BigInt(at), 4096, 'dontneed'); // as an allocator returning memory does
      expect(m[at + 10]).toBe(0); // zeros, as any dropped anonymous page (it hung, faulting, until done)
      expect(m[at + 4096 + 10]).toBe(data[at + 4096 + 10]); // the chunk's next page kept its bytes
      m[at] = 7; // and the dropped page is ordinary memory again
      expect(m[at]).toBe(7);
      const s = r.lazyStats()!;
      expect(s.faults - before).toBeLessThanOrEqual(2);
      expect(s.faultInstalls).toBe(1);
    } finally {
      r.release();
      await image.close();
    }
  });

  test('release while kernel-mode faults are pending: the process lives on, the writes finish or fail with EFAULT', async () => {
    const image = await openImage(file, { key: KEY });
    const r = await image.restore({ mode: 'lazy', prefetch: false });
    const m = new Uint8Array(r.regions[0]!.memory!);
    // write(2) from untouched pages: the libuv threads fault in the kernel and wait on the handler.
    const writes = [0, 1, 2, 3].map((k) => new Promise<string>((resolve) => {
      const fd = openSync(t.path(`w${k}`), 'w');
      write(fd, m.subarray(k * 2 << 20, (k * 2 + 2) << 20), (e) => {
        closeSync(fd);
        resolve(e ? e.code ?? String(e) : 'ok');
      });
    }));
    r.release();
    const outcomes = await Promise.all(writes);
    for (const o of outcomes) expect(['ok', 'EFAULT']).toContain(o);
    await expect(r.done).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await image.close();
  });

  test('twice in one process, at once: both byte-exact, each with its own handler', async () => {
    const image = await openImage(file, { key: KEY });
    const [a, b] = await Promise.all([image.restore({ mode: 'lazy' }), image.restore({ mode: 'lazy' })]);
    try {
      expect(Buffer.from(a.regions[0]!.memory!).equals(data)).toBe(true);
      expect(Buffer.from(b.regions[0]!.memory!).equals(data)).toBe(true);
      await Promise.all([a.done, b.done]);
    } finally {
      a.release();
      b.release();
      await image.close();
    }
  });

  test('the default mode is lazy', async () => {
    const image = await openImage(file, { key: KEY });
    const r = await image.restore();
    try {
      expect(r.mode).toBe('lazy');
      await r.done;
      expect(Buffer.from(r.regions[0]!.memory!).equals(data)).toBe(true);
    } finally {
      r.release();
      await image.close();
    }
  });
});

/** Runs `script` (ESM, importing the built library) in a child, optionally as nobody and/or under a seccomp filter. */
function child(script: string, opts: { nobody?: boolean; seccomp?: boolean; env?: Record<string, string> } = {}): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const file = t.path(`child-${Math.random().toString(36).slice(2)}.mjs`);
  // nobody cannot read a checkout under a 0700 directory (as CI's clone is): it runs an installed copy.
  const lib = opts.nobody ? path.join(nobodyPackage(), 'build', 'index.js') : path.join(ROOT, 'build', 'index.js');
  writeFileSync(file, script.replaceAll('@LIB@', lib));
  chmodSync(file, 0o644);
  let cmd = process.execPath;
  let args = [file];
  if (opts.seccomp) {
    args = [cmd, ...args];
    cmd = seccompLauncher();
  }
  if (opts.nobody) {
    args = ['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', '--', cmd, ...args];
    cmd = 'setpriv';
  }
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...opts.env } });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

let installed: string | undefined;
/** The package installed where nobody can read it (once per suite). */
function nobodyPackage(): string {
  installed ??= installedCopy(t.path('installed'));
  return installed;
}

let launcher: string | undefined;
/** A tiny launcher that makes userfaultfd(2) fail with EPERM (seccomp, as Docker's default profile does), then execs its arguments. */
function seccompLauncher(): string {
  if (launcher) return launcher;
  const src = t.path('nouffd.c');
  writeFileSync(src, `#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char** argv) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { sizeof f / sizeof f[0], f };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) { perror("seccomp"); return 99; }
  execv(argv[1], argv + 1);
  perror("execv");
  return 98;
}
`);
  launcher = t.path('nouffd');
  execFileSync('cc', ['-O1', '-o', launcher, src]);
  chmodSync(launcher, 0o755);
  return launcher;
}

describe('a corrupt chunk never reaches memory, and the fallbacks', () => {
  let file: string;
  const data = memoryLike(256, 5); // 1 MiB, 16 chunks of 64 KiB
  let firstStored = 0;
  beforeAll(async () => {
    const dir = realpathSync(t.dir);
    chmodSync(dir, 0o755);
    file = path.join(dir, 'shared.img');
    const w = await ImageWriter.create(file, { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key: KEY, chunkSize: 65536 });
    await w.addRegion({ address: 0x300000000n, data, prot: 'r--', kind: 'heap', name: 'heap' });
    await w.finish();
    chmodSync(file, 0o644);
    const image = await openImage(file, { key: KEY });
    const table = await image.chunkTable();
    for (let c = 0; c < 16 && firstStored === 0; c++) {
      const rec = table.get(c, 65536);
      if (rec.storedLength > 0 && c >= 2) firstStored = c;
    }
    await image.close();
  });

  const KEYHEX = Buffer.from(KEY).toString('hex');
  const restoreScript = (body: string, img = () => file): string => `
import { openImage } from '@LIB@';
import { writeSync, openSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
const image = await openImage(${JSON.stringify(img())}, { key: Buffer.from('${KEYHEX}', 'hex') });
${body}
// Closed, not left to the garbage collector (whose warning on stderr would fail the child's check).
await image.close();
`;

  /** A copy of the image named `name` with a byte of chunk `firstStored` flipped. */
  const corruptCopy = async (name: string): Promise<string> => {
    const bad = t.path(name);
    await fsp.copyFile(file, bad);
    const image = await openImage(bad, { key: KEY });
    const rec = (await image.chunkTable()).get(firstStored, 65536);
    await image.close();
    flipByte(bad, rec.offset + 10);
    chmodSync(bad, 0o644);
    return bad;
  };

  test('corrupt chunk: done rejects naming it, the other chunks are exact, and a touch of its pages is a SIGBUS', async () => {
    const bad = await corruptCopy('bad.img');
    const img2 = await openImage(bad, { key: KEY });
    const r = await img2.restore({ mode: 'lazy' });
    await expect(r.done).rejects.toMatchObject({ code: 'CORRUPT_CHUNK', chunk: firstStored, message: expect.stringMatching(/installed nothing/) });
    const m = new Uint8Array(r.regions[0]!.memory!);
    for (let c = 0; c < 16; c++) {
      if (c === firstStored) continue;
      expect(Buffer.from(m.subarray(c * 65536, (c + 1) * 65536)).equals(data.subarray(c * 65536, (c + 1) * 65536))).toBe(true);
    }
    // Still not inherited by a fork()ed child, in which the failed chunk's pages would read as zeros.
    expect(vmFlags(r.regions[0]!.address)).toContain('dc');
    r.release();
    await img2.close();
    // In a child: touching the failed chunk is a SIGBUS, never its bytes.
    const out = child(restoreScript(`
const r = await image.restore({ mode: 'lazy' });
await r.done.catch((e) => console.log('done', e.code));
console.log('touching');
console.log('got', new Uint8Array(r.regions[0].memory)[${firstStored} * 65536 + 10]);
`, () => bad));
    expect(out.stdout).toContain('done CORRUPT_CHUNK');
    expect(out.stdout).toContain('touching');
    expect(out.stdout).not.toContain('got');
    expect(out.signal).toBe('SIGBUS');
  });

  test.each([
    ['its range split by an mprotect: poisoned page by page, a write(2) from it fails at once', true, /write EFAULT[\s\S]*releasing/],
    ['without poisoning (CRIMG_UFFD_POISON=0): its page waits until release, the handler serving on', false, /releasing\s+write EFAULT/],
  ])('a corrupt chunk never reads as zeros, %s; a page dropped from a good chunk after done reads zeros', async (_name, split, order) => {
    const bad = await corruptCopy(`bad-${split ? 'split' : 'nopoison'}.img`);
    const out = child(restoreScript(`
const { advise, protect } = await import(${JSON.stringify(path.join(ROOT, 'build', 'native-mmap', 'index.js'))});
const { write } = await import('node:fs');
const r = await image.restore({ mode: 'lazy' });
const region = r.regions[0];
// A page inside the corrupt chunk made r-- while the memory is rw- splits its mapping there:
// one UFFDIO_POISON over the chunk's range does not cross mappings (ENOENT).
if (${split}) protect(region.address + BigInt(${firstStored} * 65536 + 4096), 4096, 'r--');
await r.done.catch((e) => console.log('done', e.code));
// After done: a page the process drops from a good chunk reads zeros, as any dropped anonymous
// page (without poisoning the descriptor stays open, and it waited for a handler that had ended).
const good = ${firstStored} === 2 ? 3 : 2;
advise(region.address + BigInt(good * 65536), 4096, 'dontneed');
console.log('dropped page reads', new Uint8Array(region.memory)[good * 65536 + 9]);
const sink = tmpdir() + '/crimg-split-' + process.pid;
const fd = openSync(sink, 'w');
unlinkSync(sink);
write(fd, new Uint8Array(region.memory, ${firstStored} * 65536, 4096), 0, 4096, null, (err) => console.log('write', err ? err.code : 'ok'));
await new Promise((resolve) => setTimeout(resolve, 300));
console.log('releasing');
r.release();
await new Promise((resolve) => setTimeout(resolve, 100));
`, () => bad), { env: split ? {} : { CRIMG_UFFD_POISON: '0' } });
    expect(out.stderr).toBe('');
    expect(out.stdout).toContain('done CORRUPT_CHUNK');
    // Never 'write ok': the chunk's pages once read as zeros when its poison was refused.
    expect(out.stdout).toMatch(order);
    expect(out.stdout).toContain('dropped page reads 0');
  });

  test('a good chunk whose range the process split (mprotect of one of its pages) before it came in is installed page by page, exact', () => {
    const out = child(restoreScript(`
const { protect } = await import(${JSON.stringify(path.join(ROOT, 'build', 'native-mmap', 'index.js'))});
const { createHash } = await import('node:crypto');
const r = await image.restore({ mode: 'lazy', prefetch: false });
const region = r.regions[0];
// One page in the middle of chunk 5 made r-- while the memory is rw-: its mapping is split
// there, and one UFFDIO_COPY of the whole chunk does not cross mappings (ENOENT).
protect(region.address + BigInt(5 * 65536 + 4096 * 7), 4096, 'r--');
const m = new Uint8Array(region.memory);
console.log('byte', m[5 * 65536 + 4096 * 7 + 3], 'stats', JSON.stringify({ installs: r.lazyStats().faultInstalls }));
for (let i = 0; i < m.length; i += 4096) void m[i];
await r.done;
console.log('sha', createHash('sha256').update(m).digest('hex'));
r.release();
`));
    expect(out.stderr).toBe('');
    expect(out.signal).toBeNull();
    expect(out.stdout).toContain(`byte ${data[5 * 65536 + 4096 * 7 + 3]} stats {"installs":1}`);
    expect(out.stdout).toContain(`sha ${createHash('sha256').update(data).digest('hex')}`);
  });

  test('as nobody (vm.unprivileged_userfaultfd=0): user-mode-only lazy restore; write(2) from a page not yet in place fails with EFAULT', () => {
    const out = child(restoreScript(`
const r = await image.restore({ mode: 'lazy', prefetch: false });
console.log(JSON.stringify({ mode: r.mode, reason: r.reason }));
const m = new Uint8Array(r.regions[0].memory);
const sink = tmpdir() + '/crimg-efault-' + process.pid;
const fd = openSync(sink, 'w');
unlinkSync(sink);
try { writeSync(fd, m.subarray(5 * 65536, 6 * 65536)); console.log('write ok'); } catch (e) { console.log('write', e.code); }
console.log('byte', m[5 * 65536 + 1]);
try { writeSync(fd, m.subarray(5 * 65536, 6 * 65536)); console.log('write after touch ok'); } catch (e) { console.log('write after touch', e.code); }
r.release();
`), { nobody: true });
    expect(out.stderr).toBe('');
    const info = JSON.parse(out.stdout.split('\n')[0]!);
    expect(info.mode).toBe('lazy');
    expect(info.reason).toMatch(/user mode only.*EFAULT/);
    expect(out.stdout).toContain(`byte ${data[5 * 65536 + 1]}`);
    expect(out.stdout).toContain('write EFAULT');
    expect(out.stdout).toContain('write after touch ok');
    expect(out.status).toBe(0);
  });

  test('with userfaultfd(2) forbidden (seccomp): as root through /dev/userfaultfd; as nobody copy mode, saying why', () => {
    const script = restoreScript(`
const r = await image.restore();
await r.done;
console.log(JSON.stringify({ mode: r.mode, reason: r.reason, ok: Buffer.from(r.regions[0].memory).subarray(0, 8).toString('hex') }));
r.release();
`);
    const first = data.subarray(0, 8).toString('hex');
    const root = child(script, { seccomp: true });
    expect(root.stderr).toBe('');
    expect(JSON.parse(root.stdout)).toEqual({ mode: 'lazy', ok: first });
    const nobody = child(script, { seccomp: true, nobody: true });
    expect(nobody.stderr).toBe('');
    const info = JSON.parse(nobody.stdout);
    expect(info.mode).toBe('copy');
    expect(info.ok).toBe(first);
    expect(info.reason).toMatch(/lazy restore is not possible: userfaultfd is not available \(syscall: Operation not permitted; \/dev\/userfaultfd: Permission denied; syscall \(user mode only\): Operation not permitted\)/);
  });
});
