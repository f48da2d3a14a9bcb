/**
 * The native ops restore adds to the shim: placeRuns (many MAP_FIXED runs into a reservation in
 * one call) and view (one ArrayBuffer over part of a reservation). Hostile arguments end in a
 * TypeError, a RangeError or a clean errno error; lifecycles never leave a buffer over
 * unreadable pages. Garbage collection runs in a child process (--expose-gc).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  mapAnonymous, mapFile, pageSize, placeRuns, protect, reserve, unmap, view, type Reservation,
} from '../native-mmap/index.js';
import { readMaps } from '../restore/_maps.js';
import { requireNative } from './native-fixture.js';

const native = requireNative();

const TYPE = 'TypeError:ERR_INVALID_ARG_TYPE';
const RANGE = 'RangeError:ERR_INVALID_ARG_VALUE';

function outcome(fn: () => unknown): string {
  try {
    const v = fn();
    if (v instanceof ArrayBuffer || (v !== null && typeof v === 'object' && 'byteLength' in v)) unmap(v as ArrayBuffer);
    return 'ok';
  } catch (err) {
    const e = err as { name?: string; code?: string };
    return `${e.name}:${e.code}`;
  }
}

/** "perms path" of the page at `a`. */
function pageAt(a: bigint): string {
  const e = readMaps().find((x) => x.start <= a && a < x.end);
  return e === undefined ? 'unmapped' : `${e.perms}${e.path ? ` ${e.path}` : ''}`;
}

describe('placeRuns and view: hostile arguments', () => {
  type Loose = (...args: unknown[]) => unknown;
  const raw = native as unknown as Record<'placeRuns' | 'view', Loose>;
  let dir: string;
  let file: string;
  let fd: number;
  let page: number;
  let r: Reservation;
  let released: Reservation;
  let live: ArrayBuffer;

  beforeAll(() => {
    page = pageSize();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-restore-native-'));
    file = path.join(dir, 'f.bin');
    fs.writeFileSync(file, Buffer.alloc(4 * page, 0x5a));
    fd = fs.openSync(file, 'r');
    r = reserve(16 * page);
    released = reserve(page);
    unmap(released);
    live = view(r, 12 * page, page, 'r--');
  });

  afterAll(() => {
    unmap(live);
    unmap(r);
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const runs = (...v: number[]): Float64Array => Float64Array.from(v);
  const cases: [string, () => unknown, string][] = [
    ['placeRuns()', () => raw.placeRuns(), TYPE],
    ['placeRuns look-alike reservation', () => raw.placeRuns({ address: r.address, length: r.length }, -1, runs(0, page, -1), 'rw-'), TYPE],
    ['placeRuns released reservation', () => raw.placeRuns(released, -1, runs(0, page, -1), 'rw-'), RANGE],
    ['placeRuns fd as string', () => raw.placeRuns(r, '3', runs(0, page, -1), 'rw-'), TYPE],
    ['placeRuns fd -2', () => raw.placeRuns(r, -2, runs(0, page, -1), 'rw-'), RANGE],
    ['placeRuns fd 1.5', () => raw.placeRuns(r, 1.5, runs(0, page, -1), 'rw-'), RANGE],
    ['placeRuns runs as an array', () => raw.placeRuns(r, -1, [0, page, -1], 'rw-'), TYPE],
    ['placeRuns runs as Float32Array', () => raw.placeRuns(r, -1, Float32Array.of(0, page, -1), 'rw-'), TYPE],
    ['placeRuns runs as BigInt64Array', () => raw.placeRuns(r, -1, BigInt64Array.of(0n, 4096n, -1n), 'rw-'), TYPE],
    ['placeRuns no runs', () => raw.placeRuns(r, -1, runs(), 'rw-'), RANGE],
    ['placeRuns 4 numbers', () => raw.placeRuns(r, -1, runs(0, page, -1, 0), 'rw-'), RANGE],
    ['placeRuns offset NaN', () => raw.placeRuns(r, -1, runs(NaN, page, -1), 'rw-'), RANGE],
    ['placeRuns offset -4096', () => raw.placeRuns(r, -1, runs(-page, page, -1), 'rw-'), RANGE],
    ['placeRuns offset unaligned', () => raw.placeRuns(r, -1, runs(100, page, -1), 'rw-'), RANGE],
    ['placeRuns offset 2^60', () => raw.placeRuns(r, -1, runs(2 ** 60, page, -1), 'rw-'), RANGE],
    ['placeRuns length 0', () => raw.placeRuns(r, -1, runs(0, 0, -1), 'rw-'), RANGE],
    ['placeRuns length 1.5', () => raw.placeRuns(r, -1, runs(0, 1.5, -1), 'rw-'), RANGE],
    ['placeRuns length Infinity', () => raw.placeRuns(r, -1, runs(0, Infinity, -1), 'rw-'), RANGE],
    ['placeRuns file offset -2', () => raw.placeRuns(r, fd, runs(0, page, -2), 'rw-'), RANGE],
    ['placeRuns file offset unaligned', () => raw.placeRuns(r, fd, runs(0, page, 100), 'rw-'), RANGE],
    ['placeRuns past the reservation end', () => raw.placeRuns(r, -1, runs(15 * page, 2 * page, -1), 'rw-'), RANGE],
    ['placeRuns 2^53-1 bytes', () => raw.placeRuns(r, -1, runs(0, 2 ** 53 - 1, -1), 'rw-'), RANGE],
    ['placeRuns overlapping runs', () => raw.placeRuns(r, -1, runs(0, 2 * page, -1, page, page, -1), 'rw-'), RANGE],
    ['placeRuns descending runs', () => raw.placeRuns(r, -1, runs(page, page, -1, 0, page, -1), 'rw-'), RANGE],
    ['placeRuns over a live view', () => raw.placeRuns(r, -1, runs(11 * page, 2 * page, -1), 'rw-'), RANGE],
    ['placeRuns file run without fd', () => raw.placeRuns(r, -1, runs(0, page, 0), 'rw-'), RANGE],
    ['placeRuns file run past end-of-file', () => raw.placeRuns(r, fd, runs(0, 4 * page + 1, 0), 'rw-'), RANGE],
    ['placeRuns file run wholly past end-of-file', () => raw.placeRuns(r, fd, runs(0, page, 4 * page), 'rw-'), RANGE],
    ['placeRuns fd of a directory', () => { const d = fs.openSync(dir, 'r'); try { return raw.placeRuns(r, d, runs(0, page, 0), 'r--'); } finally { fs.closeSync(d); } }, RANGE],
    ['placeRuns closed fd', () => { const c = fs.openSync(file, 'r'); fs.closeSync(c); return raw.placeRuns(r, c, runs(0, page, 0), 'r--'); }, 'Error:EBADF'],
    ['placeRuns prot "abc"', () => raw.placeRuns(r, -1, runs(0, page, -1), 'abc'), RANGE],
    ['placeRuns prot missing', () => raw.placeRuns(r, -1, runs(0, page, -1)), TYPE],
    ['placeRuns prot "---" (no buffer: allowed)', () => raw.placeRuns(r, -1, runs(0, page, -1), '---'), 'ok'],
    ['view()', () => raw.view(), TYPE],
    ['view look-alike reservation', () => raw.view({ address: r.address, length: r.length }, 0, page, 'r--'), TYPE],
    ['view released reservation', () => raw.view(released, 0, page, 'r--'), RANGE],
    ['view offset unaligned', () => raw.view(r, 100, page, 'r--'), RANGE],
    ['view offset as bigint', () => raw.view(r, 0n, page, 'r--'), TYPE],
    ['view length 0', () => raw.view(r, 0, 0, 'r--'), RANGE],
    ['view past the reservation end', () => raw.view(r, 15 * page, page + 1, 'r--'), RANGE],
    ['view offset past the reservation', () => raw.view(r, 2 ** 52, page, 'r--'), RANGE],
    ['view prot "---"', () => raw.view(r, 0, page, '---'), RANGE],
    ['view prot "-w-"', () => raw.view(r, 0, page, '-w-'), RANGE],
    ['view overlapping a live view', () => raw.view(r, 11 * page, 2 * page, 'r--'), RANGE],
    ['view of untouched reservation pages (zeros)', () => raw.view(r, 2 * page, page, 'r--'), 'ok'],
  ];

  test.each(cases)('%s', (_label, call, expected) => {
    expect(outcome(call)).toBe(expected);
  });

  test('messages read "expected X, got Y"', () => {
    const message = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        return (e as Error).message;
      }
      return 'no throw';
    };
    expect(message(() => raw.placeRuns(r, -1, runs(page, page, -1, 0, page, -1), 'rw-'))).toBe(
      `expected runs in ascending order without overlap, got run 1 at offset 0 before the end of the previous run at ${2 * page}`,
    );
    expect(message(() => raw.placeRuns(r, -1, runs(0, -1, -1), 'rw-'))).toBe(
      'expected run 0 to be integers [offset >= 0, length >= 1, fileOffset >= -1], got [0, -1, -1]',
    );
    expect(message(() => raw.view(r, 0, page, '---'))).toBe("expected a readable prot ('r..') for a view handed out as an ArrayBuffer, got '---'");
  });

  test('a view over 4 GiB is refused before mapping (Node 20 caps ArrayBuffers)', () => {
    const big = reserve(2 ** 33);
    try {
      expect(outcome(() => view(big, 0, 2 ** 33, 'r--'))).toBe(RANGE);
    } finally {
      unmap(big);
    }
  });
});

describe('placeRuns and view: lifecycle', () => {
  let dir: string;
  let file: string;
  let fd: number;
  let page: number;

  beforeAll(() => {
    page = pageSize();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-restore-native-'));
    file = path.join(fs.realpathSync(dir), 'f.bin');
    const bytes = Buffer.alloc(4 * page);
    for (let i = 0; i < 4; i++) bytes.fill(0x10 + i, i * page, (i + 1) * page);
    fs.writeFileSync(file, bytes);
    fd = fs.openSync(file, 'r');
  });

  afterAll(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('file runs, zero runs and untouched pages in one view; a short last page', () => {
    const r = reserve(8 * page);
    try {
      // pages 0-1: file pages 2-3; pages 2-3: zero; page 4: file page 0 (100 bytes asked).
      placeRuns(r, fd, Float64Array.of(0, 2 * page, 2 * page, 2 * page, 2 * page, -1, 4 * page, 100, 0), 'rw-');
      const v = view(r, 0, 6 * page, 'r--');
      const b = new Uint8Array(v);
      expect([b[0], b[2 * page - 1], b[2 * page], b[4 * page], b[4 * page + 99], b[5 * page]]).toEqual([0x12, 0x13, 0, 0x10, 0x10, 0]);
      expect(pageAt(r.address)).toBe(`r--p ${file}`);
      expect(pageAt(r.address + 2n * BigInt(page))).toBe('r--p');
      expect(pageAt(r.address + 5n * BigInt(page))).toBe('r--p');
      expect(pageAt(r.address + 6n * BigInt(page))).toBe('---p');
      unmap(v);
      expect(v.byteLength).toBe(0);
      // The pages are the reservation's: dropping the view changes nothing.
      expect(pageAt(r.address)).toBe(`r--p ${file}`);
      const again = view(r, 0, page, 'r--');
      expect(new Uint8Array(again)[0]).toBe(0x12);
      unmap(again);
    } finally {
      unmap(r);
    }
    expect(pageAt(r.address)).toBe('unmapped');
  });

  test('a view pins its pages readable: protect to unreadable and placements over it are refused', () => {
    const r = reserve(4 * page);
    const v = view(r, page, 2 * page, 'rw-');
    try {
      expect(outcome(() => protect(r.address, 4 * page, '---'))).toBe(RANGE);
      expect(outcome(() => protect(v, 2 * page, '-w-'))).toBe(RANGE);
      expect(outcome(() => protect(v, 2 * page, 'r--'))).toBe('ok');
      expect(outcome(() => mapAnonymous(page, 'rw-', { address: r.address + BigInt(page), fixed: true }))).toBe(RANGE);
      expect(outcome(() => mapFile(fd, 0, page, 'r--', { address: r.address + 2n * BigInt(page), fixed: true }))).toBe(RANGE);
      expect(outcome(() => protect(r.address, page, '---'))).toBe('ok');
    } finally {
      unmap(v);
      unmap(r);
    }
  });

  test('a view outlives the release of its reservation, then unmaps its pages', () => {
    const r = reserve(4 * page);
    placeRuns(r, fd, Float64Array.of(0, 2 * page, 0), 'r--');
    const v = view(r, 0, page, 'r--');
    unmap(r);
    expect(new Uint8Array(v)[0]).toBe(0x10);
    expect(pageAt(r.address)).toBe(`r--p ${file}`);
    expect(pageAt(r.address + BigInt(page))).toBe('unmapped');
    unmap(v);
    expect(pageAt(r.address)).toBe('unmapped');
  });

  test('views are untransferable (a transfer copies) and not counted as V8 external memory', () => {
    expect(native.unaccountedViews).toBe(true);
    const size = 256 * 1024 * 1024;
    const r = reserve(size + page);
    try {
      const external = process.memoryUsage().external;
      const v = view(r, 0, size, 'r--');
      expect(process.memoryUsage().external - external).toBeLessThan(1024 * 1024);
      const small = view(r, size, page, 'r--');
      const clone = structuredClone(small, { transfer: [small] });
      expect([small.byteLength, clone.byteLength]).toEqual([page, page]);
      expect(outcome(() => unmap(clone))).toBe(RANGE); // a copy, foreign to the addon
      unmap(small);
      unmap(v);
    } finally {
      unmap(r);
    }
  });

  test('all or nothing: a failing mmap puts the runs already placed back to PROT_NONE', () => {
    const wfile = path.join(dir, 'w.bin');
    fs.writeFileSync(wfile, Buffer.alloc(page));
    const wfd = fs.openSync(wfile, 'a'); // write-only: its mmap fails with EACCES
    const r = reserve(4 * page);
    try {
      const err = (() => {
        try {
          placeRuns(r, wfd, Float64Array.of(0, page, -1, page, page, -1, 2 * page, page, 0), 'rw-');
        } catch (e) {
          return e as { code?: string; syscall?: string; address?: bigint };
        }
        return null;
      })();
      expect(err).toMatchObject({ code: 'EACCES', syscall: 'mmap', address: r.address + 2n * BigInt(page) });
      expect([0, 1, 2, 3].map((p) => pageAt(r.address + BigInt(p * page)))).toEqual(['---p', '---p', '---p', '---p']);
    } finally {
      fs.closeSync(wfd);
      unmap(r);
    }
  });
});

const addonPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'native-mmap', 'build', 'Release', 'crimg_mmap.node');

/** Garbage collection of views and reservations, in a child with --expose-gc. */
const CHILD = String.raw`
const m = require(process.argv[1]);
const fs = require('fs');
const page = m.pageSize();
const pathAt = (a) => {
  const l = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean).find((x) => {
    const [s, e] = x.split(' ')[0].split('-').map((h) => BigInt('0x' + h));
    return s <= a && a < e;
  });
  return l ? l.split(/\s+/)[1] : 'unmapped';
};
const collect = async () => { for (let i = 0; i < 10; i++) { global.gc(); await new Promise((r) => setImmediate(r)); } };
async function main() {
  const out = {};
  // A dropped view leaves its pages to the live reservation.
  const r = m.reserve(4 * page);
  m.placeRuns(r, -1, Float64Array.of(0, 2 * page, -1), 'rw-');
  (() => { new Uint8Array(m.view(r, 0, 2 * page, 'rw-'))[0] = 7; })();
  await collect();
  out.afterViewCollected = pathAt(r.address);
  out.contentKept = new Uint8Array(m.view(r, 0, page, 'r--'))[0];
  // A dropped reservation leaves the pages of a live view mapped.
  let kept;
  (() => { const r2 = m.reserve(4 * page); m.placeRuns(r2, -1, Float64Array.of(0, page, -1), 'rw-'); kept = m.view(r2, 0, page, 'rw-'); new Uint8Array(kept)[1] = 9; })();
  const at = m.addressOf(kept);
  await collect();
  out.viewAfterReservationCollected = pathAt(at) + ':' + new Uint8Array(kept)[1] + ':' + pathAt(at + BigInt(page));
  kept = null;
  await collect();
  out.viewCollected = pathAt(at);
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(2); });
`;

describe('placeRuns and view: garbage collection', () => {
  test('views and reservations are released by their finalizers, never under a live buffer', () => {
    const child = spawnSync(process.execPath, ['--expose-gc', '-e', CHILD, addonPath], {
      encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect({ status: child.status, signal: child.signal, stderr: child.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(JSON.parse(child.stdout)).toEqual({
      afterViewCollected: 'rw-p',
      contentKept: 7,
      viewAfterReservationCollected: 'rw-p:9:unmapped',
      viewCollected: 'unmapped',
    });
  });
});

describe('placeRuns and view: without a working markAsUntransferable', () => {
  test('views fall back to accounted N-API buffers, still untransferable', () => {
    const script = String.raw`
      require('worker_threads').markAsUntransferable = () => {};
      const m = require(process.argv[1]);
      const r = m.reserve(8192);
      m.placeRuns(r, -1, Float64Array.of(0, 8192, -1), 'rw-');
      const v = m.view(r, 0, 8192, 'rw-');
      new Uint8Array(v)[0] = 5;
      const clone = structuredClone(v, { transfer: [v] });
      process.stdout.write(JSON.stringify({ fast: m.unaccountedViews, kept: v.byteLength, first: new Uint8Array(clone)[0] }));
      m.unmap(v); m.unmap(r);`;
    const child = spawnSync(process.execPath, ['-e', script, addonPath], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } });
    expect({ status: child.status, stderr: child.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(child.stdout)).toEqual({ fast: false, kept: 8192, first: 5 });
  });
});
