/**
 * The native restore shim's low layer against the kernel's own account of the
 * address space, /proc/self/maps: placement, permissions, advice, unmapping.
 * Fails, saying why, when the addon is unavailable (test/native-fixture.ts requireNative).
 */
import { jest } from '@jest/globals';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  addressOf,
  advise,
  isSyscallError,
  mapAnonymous,
  mapFile,
  pageSize,
  protect,
  reserve,
  unmap,
  type Advice,
} from '../native-mmap/index.js';
import { requireNative } from './native-fixture.js';

const native = requireNative();

/** One line of /proc/self/maps. */
interface MapsEntry {
  start: bigint;
  end: bigint;
  perms: string;
  offset: bigint;
  path: string;
}

function readMaps(): MapsEntry[] {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      // "7f..000-7f..000 r--p 00001000 fe:00 2146523    /tmp/x/file.bin"
      const [range, perms, offset, , , ...rest] = line.split(/\s+/);
      const [start, end] = range!.split('-').map((h) => BigInt(`0x${h}`));
      return { start: start!, end: end!, perms: perms!, offset: BigInt(`0x${offset}`), path: rest.join(' ') };
    });
}

/** The entry containing `address`, if any. */
function entryAt(address: bigint): MapsEntry | undefined {
  return readMaps().find((e) => e.start <= address && address < e.end);
}

/** "perms path" of every page in [address, address + pages * page size). */
function pagesAt(address: bigint, pages: number): string[] {
  const entries = readMaps();
  const size = BigInt(pageSize());
  return Array.from({ length: pages }, (_, i) => {
    const a = address + BigInt(i) * size;
    const e = entries.find((x) => x.start <= a && a < x.end);
    return e === undefined ? 'unmapped' : `${e.perms}${e.path ? ` ${e.path}` : ''}`;
  });
}

/**
 * What `fn` throws. The addon's errors come from the realm that loaded it,
 * not jest's test realm, so they are matched by name, never by constructor.
 */
function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected the call to throw');
}

/** Deterministic, non-repeating-per-page content. */
function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 12) * 7 + 1) & 0xff;
  return bytes;
}

describe('native-mmap', () => {
  let dir: string;
  let file: string;
  let fd: number;
  let page: number;
  let content: Uint8Array;

  beforeAll(() => {
    page = pageSize();
    dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-mmap-')));
    file = path.join(dir, 'image.bin');
    content = pattern(4 * page + 100);
    fs.writeFileSync(file, content);
    fd = fs.openSync(file, 'r');
  });

  afterAll(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('pageSize is a power of two of at least 4 KiB', () => {
    expect(page).toBeGreaterThanOrEqual(4096);
    expect(page & (page - 1)).toBe(0);
    expect(native.pageSize()).toBe(page);
  });

  test('mapFile returns the file bytes, listed in /proc/self/maps with perms, offset and path', () => {
    const length = page + 100; // ends inside the file's last partial page
    const run = mapFile(fd, 2 * page, length, 'r--');
    expect(run.byteLength).toBe(length);
    expect(new Uint8Array(run)).toEqual(content.subarray(2 * page, 2 * page + length));

    const entry = entryAt(addressOf(run));
    expect(entry).toMatchObject({ start: addressOf(run), perms: 'r--p', offset: BigInt(2 * page), path: file });
    unmap(run);
  });

  test('a file mapping stays readable after its fd is closed', () => {
    const own = fs.openSync(file, 'r');
    const run = mapFile(own, 0, page, 'r--');
    fs.closeSync(own);
    expect(new Uint8Array(run)).toEqual(content.subarray(0, page));
    unmap(run);
  });

  test('a private rw file mapping is copy-on-write: writes never reach the file', () => {
    const run = mapFile(fd, 0, page, 'rw-');
    new Uint8Array(run).fill(0xee);
    expect(fs.readFileSync(file).subarray(0, page)).toEqual(Buffer.from(content.subarray(0, page)));
    expect(entryAt(addressOf(run))?.perms).toBe('rw-p');
    unmap(run);
  });

  test('mapAnonymous is zero-filled, writable and private', () => {
    const zeros = mapAnonymous(3 * page, 'rw-', { populate: true });
    const view = new Uint8Array(zeros);
    expect(view.every((b) => b === 0)).toBe(true);
    view[view.length - 1] = 42;
    expect(view[view.length - 1]).toBe(42);
    expect(entryAt(addressOf(zeros))).toMatchObject({ perms: 'rw-p', path: '' });
    unmap(zeros);
  });

  test('reserve + fixed placement: file and zero runs inside, ---p around them', () => {
    const r = reserve(8 * page);
    expect(Object.isFrozen(r)).toBe(true);
    expect(r.length).toBe(8 * page);
    expect(pagesAt(r.address, 8)).toEqual(Array(8).fill('---p'));

    const P = BigInt(page);
    const fileRun = mapFile(fd, page, 2 * page, 'r--', { address: r.address + P, fixed: true });
    const zeroRun = mapAnonymous(2 * page, 'rw-', { address: r.address + 4n * P, fixed: true });
    expect(addressOf(fileRun)).toBe(r.address + P);
    expect(addressOf(zeroRun)).toBe(r.address + 4n * P);
    expect(new Uint8Array(fileRun)).toEqual(content.subarray(page, 3 * page));
    expect(new Uint8Array(zeroRun).every((b) => b === 0)).toBe(true);
    expect(pagesAt(r.address, 8)).toEqual([
      '---p', `r--p ${file}`, `r--p ${file}`, '---p', 'rw-p', 'rw-p', '---p', '---p',
    ]);

    // A placement cannot land on another live one.
    expect(thrown(() => mapAnonymous(page, 'rw-', { address: r.address + 2n * P, fixed: true }))).toMatchObject({
      name: 'RangeError',
      message: expect.stringMatching(/overlapping the live mapping/),
    });

    // Unmapping a placed run hands its pages back to the reservation.
    unmap(zeroRun);
    expect(zeroRun.byteLength).toBe(0);
    expect(pagesAt(r.address + 4n * P, 2)).toEqual(['---p', '---p']);

    // Releasing the reservation frees its free parts; the live run survives.
    unmap(r);
    expect(pagesAt(r.address, 8)).toEqual([
      'unmapped', `r--p ${file}`, `r--p ${file}`, 'unmapped', 'unmapped', 'unmapped', 'unmapped', 'unmapped',
    ]);
    expect(new Uint8Array(fileRun)[0]).toBe(content[page]);
    unmap(fileRun);
    expect(pagesAt(r.address + P, 2)).toEqual(['unmapped', 'unmapped']);
  });

  test('fixed placement outside any reservation is refused with a RangeError', () => {
    const taken = mapAnonymous(page, 'rw-');
    new Uint8Array(taken)[0] = 7;
    expect(thrown(() => mapAnonymous(page, 'rw-', { address: addressOf(taken), fixed: true }))).toMatchObject({
      name: 'RangeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: expect.stringMatching(/^expected opts.address inside a live reservation/),
    });
    expect(new Uint8Array(taken)[0]).toBe(7); // untouched
    unmap(taken);
  });

  test('fixedNoReplace at a taken address throws EEXIST like a Node system error', () => {
    const taken = mapAnonymous(page, 'r--');
    const at = addressOf(taken);
    let caught: unknown;
    try {
      mapAnonymous(page, 'rw-', { address: at, fixedNoReplace: true });
    } catch (err) {
      caught = err;
    }
    expect(isSyscallError(caught)).toBe(true);
    expect(caught).toMatchObject({ code: 'EEXIST', errno: os.constants.errno.EEXIST, syscall: 'mmap', address: at });
    expect((caught as Error).message).toBe(`EEXIST: mmap failed at 0x${at.toString(16)}: File exists`);
    // A reservation occupies its range just the same.
    const r = reserve(2 * page);
    expect(() => reserve(page, { address: r.address + BigInt(page), fixedNoReplace: true })).toThrow(
      expect.objectContaining({ code: 'EEXIST' }),
    );
    unmap(r);
    unmap(taken);
  });

  test('fixedNoReplace at a free address maps exactly there', () => {
    // Free a range, then claim it. Another thread (V8's) may take it in
    // between, which is EEXIST and legitimate, so allow a few attempts.
    for (let attempt = 0; ; attempt++) {
      const probe = reserve(4 * page);
      const at = probe.address;
      unmap(probe);
      try {
        const r = reserve(4 * page, { address: at, fixedNoReplace: true });
        expect(r.address).toBe(at);
        const run = mapFile(fd, 0, page, 'r--', { address: at + BigInt(page), fixed: true });
        expect(pagesAt(at, 2)).toEqual(['---p', `r--p ${file}`]);
        unmap(run);
        unmap(r);
        return;
      } catch (err) {
        if (attempt >= 4 || !isSyscallError(err) || err.code !== 'EEXIST') throw err;
      }
    }
  });

  test('protect changes the permissions /proc/self/maps reports', () => {
    const buf = mapAnonymous(2 * page, 'rw-');
    protect(buf, page, 'r--');
    expect(pagesAt(addressOf(buf), 2)).toEqual(['r--p', 'rw-p']);
    protect(addressOf(buf) + BigInt(page), page, 'r-x');
    expect(pagesAt(addressOf(buf), 2)).toEqual(['r--p', 'r-xp']);
    // Pages behind a live ArrayBuffer must stay readable.
    expect(thrown(() => protect(buf, page, '---')).name).toBe('RangeError');

    // Free parts of a reservation take any prot.
    const r = reserve(2 * page);
    protect(r.address, page, 'rw-');
    expect(pagesAt(r.address, 2)).toEqual(['rw-p', '---p']);
    protect(r.address, page, '---');
    expect(pagesAt(r.address, 2)).toEqual(['---p', '---p']);
    unmap(r);
    unmap(buf);
  });

  test.each<Advice>(['willneed', 'sequential', 'random', 'hugepage', 'nohugepage', 'dontneed'])(
    'advise %s works or fails with a clean errno',
    (advice) => {
      const buf = mapAnonymous(4 * page, 'rw-');
      try {
        advise(buf, 4 * page, advice);
      } catch (err) {
        // Kernels without transparent huge pages refuse (no)hugepage.
        expect(advice).toMatch(/hugepage/);
        expect(err).toMatchObject({ code: 'EINVAL', syscall: 'madvise' });
      } finally {
        unmap(buf);
      }
    },
  );

  test('advise dontneed drops private pages: zeros for anonymous, file bytes for a file', () => {
    const anon = mapAnonymous(page, 'rw-');
    new Uint8Array(anon).fill(9);
    advise(anon, page, 'dontneed');
    expect(new Uint8Array(anon).every((b) => b === 0)).toBe(true);

    const run = mapFile(fd, 0, page, 'rw-');
    new Uint8Array(run).fill(9);
    advise(addressOf(run), page, 'dontneed');
    expect(new Uint8Array(run)).toEqual(content.subarray(0, page));
    unmap(anon);
    unmap(run);
  });

  test('unmap removes the mapping from /proc/self/maps and detaches the buffer', () => {
    const run = mapFile(fd, 0, 2 * page, 'r--');
    const view = new Uint8Array(run);
    const at = addressOf(run);
    expect(entryAt(at)?.path).toBe(file);
    unmap(run);
    expect(run.byteLength).toBe(0);
    expect(view.length).toBe(0);
    const after = entryAt(at);
    expect(after === undefined || after.path !== file).toBe(true);
    expect(thrown(() => addressOf(run)).name).toBe('RangeError');
    expect(thrown(() => unmap(run)).message).toMatch(/already unmapped/);
  });
});

describe('native-mmap fallback', () => {
  test('CRIMG_NO_NATIVE=1 reports the addon absent and the functions say why', async () => {
    let mod: typeof import('../native-mmap/index.js') | undefined;
    const saved = process.env.CRIMG_NO_NATIVE;
    process.env.CRIMG_NO_NATIVE = '1';
    try {
      await jest.isolateModulesAsync(async () => {
        mod = await import('../native-mmap/index.js');
      });
    } finally {
      if (saved === undefined) delete process.env.CRIMG_NO_NATIVE;
      else process.env.CRIMG_NO_NATIVE = saved;
    }
    expect(mod?.nativeAddon()).toBeNull();
    expect(mod?.nativeStatus()).toEqual({ available: false, reason: 'disabled by CRIMG_NO_NATIVE=1' });
    expect(() => mod?.pageSize()).toThrow(expect.objectContaining({ code: 'ERR_CRIMG_NATIVE_UNAVAILABLE' }));
    expect(() => mod?.mapAnonymous(4096, 'rw-')).toThrow(/CRIMG_NO_NATIVE=1; use the portable path/);
  });

  /**
   * A fresh instance of the loader, loaded while the addon's module record holds `exports`
   * (it takes the cached record, no second dlopen), then the real exports back.
   */
  async function loadWithExports(
    make: (real: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<{ file: string; real: Record<string, unknown>; mod: typeof import('../native-mmap/index.js') | undefined }> {
    const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'native-mmap', 'build', 'Release', 'crimg_mmap.node');
    const entry = createRequire(import.meta.url).cache[file];
    expect(entry).toBeDefined();
    const real = entry!.exports as Record<string, unknown>;
    let mod: typeof import('../native-mmap/index.js') | undefined;
    entry!.exports = make(real);
    try {
      await jest.isolateModulesAsync(async () => {
        mod = await import('../native-mmap/index.js');
      });
      expect(mod?.nativeAddon()).toBeNull();
    } finally {
      entry!.exports = real;
    }
    return { file, real, mod };
  }

  test('a stale build lacking functions of NativeMmap counts as unavailable, naming them', async () => {
    const { file, mod } = await loadWithExports(({ hashChunks: _h, writeBack: _w, ...stale }) => stale);
    expect(mod?.nativeStatus()).toEqual({
      available: false,
      reason: `stale build: ${file} lacks hashChunks, writeBack (rebuild: node native-mmap/install.mjs)`,
    });
    expect(() => mod?.pageSize()).toThrow(/stale build: .* lacks hashChunks, writeBack/);
  });

  test('a stale build with every function but another ABI version counts as unavailable', async () => {
    // A build from before aeadSeal took the format's cipher ids has every name and no abiVersion;
    // accepting it would seal 'aes-256-gcm' with ChaCha20-Poly1305.
    const expected = native.abiVersion;
    expect(Number.isInteger(expected)).toBe(true);
    const older = await loadWithExports((real) => ({ ...real, abiVersion: expected - 1 }));
    expect(older.mod?.nativeStatus()).toEqual({
      available: false,
      reason: `stale build: ${older.file} has ABI ${expected - 1}, expected ${expected}; rebuild with node native-mmap/install.mjs`,
    });
    expect(() => older.mod?.pageSize()).toThrow(`has ABI ${expected - 1}, expected ${expected}`);

    const unnumbered = await loadWithExports(({ abiVersion: _abi, ...real }) => real);
    expect(unnumbered.mod?.nativeStatus()).toEqual({
      available: false,
      reason: `stale build: ${unnumbered.file} has no ABI version, expected ${expected}; rebuild with node native-mmap/install.mjs`,
    });
  });
});
