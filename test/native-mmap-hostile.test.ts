/**
 * Hostile callers of the native restore shim: every argument a script can
 * pass must end in a TypeError, a RangeError or a clean errno Error, never in
 * a crash. Calls that reach the kernel with addresses of memory the process
 * depends on (MAP_FIXED, mprotect, madvise over foreign ranges), huge lengths,
 * bad fds and lifecycle abuse run in a child process, so that a crash fails
 * one test instead of killing jest.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { outcome, requireNative } from './native-fixture.js';

const native = requireNative();

const addonPath = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'native-mmap',
  'build',
  'Release',
  'crimg_mmap.node',
);


const TYPE = 'TypeError:ERR_INVALID_ARG_TYPE';
const RANGE = 'RangeError:ERR_INVALID_ARG_VALUE';

describe('native-mmap hostile arguments, in process', () => {
  // The raw addon with its types erased, to pass what TypeScript would refuse.
  type Loose = (...args: unknown[]) => unknown;
  const raw = native as unknown as Record<
    'mapFile' | 'mapAnonymous' | 'reserve' | 'unmap' | 'protect' | 'advise' | 'addressOf',
    Loose
  >;
  let dir: string;
  let fd: number;
  let page: number;
  let buf: ArrayBuffer;

  beforeAll(() => {
    page = native.pageSize();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-hostile-'));
    fs.writeFileSync(path.join(dir, 'f.bin'), new Uint8Array(2 * page));
    fd = fs.openSync(path.join(dir, 'f.bin'), 'r');
    buf = native.mapAnonymous(page, 'rw-');
  });

  afterAll(() => {
    native.unmap(buf);
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, () => unknown, string]> = [
    ['mapFile()', () => raw.mapFile(), TYPE],
    ['mapFile fd as string', () => raw.mapFile('3', 0, page, 'r--'), TYPE],
    ['mapFile fd -1', () => raw.mapFile(-1, 0, page, 'r--'), RANGE],
    ['mapFile fd NaN', () => raw.mapFile(NaN, 0, page, 'r--'), RANGE],
    ['mapFile fd 1.5', () => raw.mapFile(1.5, 0, page, 'r--'), RANGE],
    ['mapFile fd 2^31', () => raw.mapFile(2 ** 31, 0, page, 'r--'), RANGE],
    ['mapFile offset -4096', () => raw.mapFile(fd, -page, page, 'r--'), RANGE],
    ['mapFile offset unaligned', () => raw.mapFile(fd, 100, page, 'r--'), RANGE],
    ['mapFile offset as bigint', () => raw.mapFile(fd, 0n, page, 'r--'), TYPE],
    ['mapFile offset Infinity', () => raw.mapFile(fd, Infinity, page, 'r--'), RANGE],
    ['mapFile length 0', () => raw.mapFile(fd, 0, 0, 'r--'), RANGE],
    ['mapFile length -1', () => raw.mapFile(fd, 0, -1, 'r--'), RANGE],
    ['mapFile length NaN', () => raw.mapFile(fd, 0, NaN, 'r--'), RANGE],
    ['mapFile length 2^62', () => raw.mapFile(fd, 0, 2 ** 62, 'r--'), RANGE],
    ['mapFile length as object', () => raw.mapFile(fd, 0, {}, 'r--'), TYPE],
    ['mapFile prot missing', () => raw.mapFile(fd, 0, page), TYPE],
    ['mapFile prot as number', () => raw.mapFile(fd, 0, page, 7), TYPE],
    ['mapFile prot "rw"', () => raw.mapFile(fd, 0, page, 'rw'), RANGE],
    ['mapFile prot "RW-"', () => raw.mapFile(fd, 0, page, 'RW-'), RANGE],
    ['mapFile prot "rwxx"', () => raw.mapFile(fd, 0, page, 'rwxx'), RANGE],
    ['mapFile prot "---" (unreadable buffer)', () => raw.mapFile(fd, 0, page, '---'), RANGE],
    ['mapFile prot "-w-" (unreadable buffer)', () => raw.mapFile(fd, 0, page, '-w-'), RANGE],
    ['mapFile opts as string', () => raw.mapFile(fd, 0, page, 'r--', 'fixed'), TYPE],
    ['mapFile opts as function', () => raw.mapFile(fd, 0, page, 'r--', () => 0), TYPE],
    ['opts.address as number', () => raw.mapAnonymous(page, 'rw-', { address: 4096 }), TYPE],
    ['opts.address negative', () => raw.mapAnonymous(page, 'rw-', { address: -4096n }), RANGE],
    ['opts.address 0n', () => raw.mapAnonymous(page, 'rw-', { address: 0n }), RANGE],
    ['opts.address 2^64', () => raw.mapAnonymous(page, 'rw-', { address: 2n ** 64n }), RANGE],
    ['opts.address unaligned', () => raw.mapAnonymous(page, 'rw-', { address: 0x10001n }), RANGE],
    ['opts.fixed as string', () => raw.mapAnonymous(page, 'rw-', { address: 0x10000n, fixed: 'yes' }), TYPE],
    ['opts.fixed without address', () => raw.mapAnonymous(page, 'rw-', { fixed: true }), TYPE],
    ['opts.fixedNoReplace without address', () => raw.mapAnonymous(page, 'rw-', { fixedNoReplace: true }), TYPE],
    ['opts.fixed and fixedNoReplace', () =>
      raw.mapAnonymous(page, 'rw-', { address: 0x10000n, fixed: true, fixedNoReplace: true }), RANGE],
    ['opts.populate as number', () => raw.mapAnonymous(page, 'rw-', { populate: 1 }), TYPE],
    ['opts getter that throws', () =>
      raw.mapAnonymous(page, 'rw-', { get address(): bigint { throw new Error('boom'); } }), 'Error:undefined'],
    ['mapAnonymous()', () => raw.mapAnonymous(), TYPE],
    ['mapAnonymous length as string', () => raw.mapAnonymous('4096', 'rw-'), TYPE],
    ['mapAnonymous length 1.5', () => raw.mapAnonymous(1.5, 'rw-'), RANGE],
    ['reserve()', () => raw.reserve(), TYPE],
    ['reserve length null', () => raw.reserve(null), TYPE],
    ['reserve with fixed', () => raw.reserve(page, { address: 0x10000n, fixed: true }), RANGE],
    ['reserve with populate', () => raw.reserve(page, { populate: true }), RANGE],
    ['unmap()', () => raw.unmap(), TYPE],
    ['unmap(42)', () => raw.unmap(42), TYPE],
    ['unmap(foreign ArrayBuffer)', () => raw.unmap(new ArrayBuffer(page)), RANGE],
    ['unmap(a view of a mapped buffer)', () => raw.unmap(new Uint8Array(buf)), TYPE],
    ['unmap(Buffer)', () => raw.unmap(Buffer.alloc(16)), TYPE],
    ['unmap(look-alike reservation)', () => raw.unmap({ address: 0x10000n, length: page }), TYPE],
    ['protect()', () => raw.protect(), TYPE],
    ['protect address as number', () => raw.protect(4096, page, 'r--'), TYPE],
    ['protect reservation object', () => raw.protect({ address: 0x10000n, length: page }, page, 'r--'), TYPE],
    ['protect unaligned address', () => raw.protect(0x10001n, page, 'r--'), RANGE],
    ['protect length 0', () => raw.protect(buf, 0, 'r--'), RANGE],
    ['protect prot "abc"', () => raw.protect(buf, page, 'abc'), RANGE],
    ['protect foreign ArrayBuffer', () => raw.protect(new ArrayBuffer(page), page, 'r--'), RANGE],
    ['advise unknown advice', () => raw.advise(buf, page, 'free'), RANGE],
    ['advise advice as number', () => raw.advise(buf, page, 4), TYPE],
    ['advise advice missing', () => raw.advise(buf, page), TYPE],
    ['addressOf()', () => raw.addressOf(), TYPE],
    ['addressOf(foreign ArrayBuffer)', () => raw.addressOf(new ArrayBuffer(8)), RANGE],
    ['addressOf(SharedArrayBuffer)', () => raw.addressOf(new SharedArrayBuffer(8)), TYPE],
  ];

  test.each(cases)('%s', (_label, call, expected) => {
    expect(outcome(call)).toBe(expected);
  });

  test('messages read "expected X, got Y"', () => {
    const messages = [
      () => raw.mapAnonymous(-1, 'rw-'),
      () => raw.mapFile(fd, 100, page, 'r--'),
      () => raw.mapAnonymous(page, 'rwz'),
      () => raw.advise(buf, page, 'free'),
      () => raw.unmap('x'),
    ].map((call) => {
      try {
        call();
      } catch (err) {
        return (err as Error).message;
      }
      return 'no throw';
    });
    expect(messages).toEqual([
      'expected length to be an integer in [1, 9007199254740991], got -1',
      'expected offset to be a multiple of the page size (4096), got 100',
      "expected prot to match /^[r-][w-][x-]$/, got 'rwz'",
      "expected advice to be one of 'willneed', 'sequential', 'random', 'hugepage', 'nohugepage', 'dontneed', got 'free'",
      "expected an ArrayBuffer from mapFile()/mapAnonymous() or a reservation from reserve(), got 'x'",
    ]);
  });
});

/**
 * Runs in a child node. Prints a JSON object: case name -> outcome
 * ("ok", "Name:code", or a list of distinct outcomes for a sweep).
 */
const CHILD = String.raw`
const m = require(process.argv[1]);
const fs = require('fs'), os = require('os'), path = require('path');
const { Worker } = require('worker_threads');
const page = m.pageSize();
const P = BigInt(page);
const out = {};
const outcome = (fn) => {
  try { const v = fn(); if (v instanceof ArrayBuffer) m.unmap(v); return 'ok'; }
  catch (e) { return e && e.name + ':' + e.code; }
};
const run = (name, fn) => { out[name] = outcome(fn); };
const sweep = (name, entries, fn) => {
  out[name] = [...new Set(entries.map((e) => outcome(() => fn(e))))].sort();
};
const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean).map((l) => {
  const [range, perms, , , , ...rest] = l.split(/\s+/);
  const [start, end] = range.split('-').map((h) => BigInt('0x' + h));
  return { start, end, perms, path: rest.join(' ') };
});
const pathAt = (a) => { const e = maps().find((x) => x.start <= a && a < x.end); return e ? e.perms + ' ' + e.path : 'unmapped'; };

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-hostile-child-'));
  const file = path.join(dir, 'image.bin');
  fs.writeFileSync(file, Buffer.alloc(3 * page, 0x5a));
  const fd = fs.openSync(file, 'r');

  // Every mapping that exists now belongs to node, V8, libc or the kernel.
  const foreign = maps();
  sweep('fixed anonymous over every foreign mapping', foreign,
    (e) => m.mapAnonymous(page, 'rw-', { address: e.start, fixed: true }));
  sweep('fixed file run over every foreign mapping', foreign,
    (e) => m.mapFile(fd, 0, page, 'r--', { address: e.start, fixed: true }));
  sweep('protect --- every foreign mapping', foreign, (e) => m.protect(e.start, page, '---'));
  sweep('advise dontneed every foreign mapping', foreign, (e) => m.advise(e.start, page, 'dontneed'));
  sweep('fixedNoReplace reserve over every foreign mapping', foreign,
    (e) => m.reserve(page, { address: e.start, fixedNoReplace: true }));
  sweep('fixedNoReplace map over every foreign mapping', foreign,
    (e) => m.mapAnonymous(page, 'rw-', { address: e.start, fixedNoReplace: true }));

  // Lengths and address arithmetic at the edges.
  run('mapAnonymous length 2^62', () => m.mapAnonymous(2 ** 62, 'rw-'));
  run('mapAnonymous length 2^53-1', () => m.mapAnonymous(2 ** 53 - 1, 'rw-'));
  run('reserve length 2^53-1', () => m.reserve(2 ** 53 - 1));
  run('mapAnonymous 8 GiB (beyond Node 20 buffer max, or no memory)', () => m.mapAnonymous(2 ** 33, 'r--'));
  run('fixed at the top of the address space (overflow)',
    () => m.mapAnonymous(2 ** 52, 'rw-', { address: 0xfffffffffffff000n, fixed: true }));
  run('hint at the top of the address space (overflow)',
    () => m.mapAnonymous(page, 'rw-', { address: 0xfffffffffffff000n }));
  run('advise with address + length overflowing', () => m.advise(0xfffffffffffff000n, 2 ** 53 - 1, 'willneed'));
  run('protect with address + length overflowing', () => m.protect(0xfffffffffffff000n, 2 * page, 'rw-'));

  // File descriptors and file bounds.
  const closed = fs.openSync(file, 'r'); fs.closeSync(closed);
  run('closed fd', () => m.mapFile(closed, 0, page, 'r--'));
  run('fd of a directory', () => { const d = fs.openSync(dir, 'r'); try { return m.mapFile(d, 0, page, 'r--'); } finally { fs.closeSync(d); } });
  run('fd of /dev/zero', () => { const z = fs.openSync('/dev/zero', 'r'); try { return m.mapFile(z, 0, page, 'r--'); } finally { fs.closeSync(z); } });
  run('fd of a pipe (stdin)', () => m.mapFile(0, 0, page, 'r--'));
  run('write-only fd', () => { const w = fs.openSync(path.join(dir, 'w.bin'), 'w'); fs.writeSync(w, Buffer.alloc(page)); try { return m.mapFile(w, 0, page, 'r--'); } finally { fs.closeSync(w); } });
  run('length past end of file', () => m.mapFile(fd, 0, 3 * page + 1, 'r--'));
  run('offset past end of file', () => m.mapFile(fd, 4 * page, 1, 'r--'));
  run('offset 2^52 past end of file', () => m.mapFile(fd, 2 ** 52, page, 'r--'));
  run('length 2^53-1 past end of file', () => m.mapFile(fd, 0, 2 ** 53 - 1, 'r--'));
  run('empty file', () => { const e = path.join(dir, 'empty'); fs.writeFileSync(e, ''); const f = fs.openSync(e, 'r'); try { return m.mapFile(f, 0, 1, 'r--'); } finally { fs.closeSync(f); } });

  // Reservations and placement.
  const r = m.reserve(8 * page);
  const placed = m.mapFile(fd, 0, 2 * page, 'r--', { address: r.address + P, fixed: true });
  run('placement straddling the reservation end',
    () => m.mapAnonymous(2 * page, 'rw-', { address: r.address + 7n * P, fixed: true }));
  run('placement over a live placement',
    () => m.mapAnonymous(page, 'rw-', { address: r.address + 2n * P, fixed: true }));
  run('protect --- over a placed buffer', () => m.protect(r.address, 3 * page, '---'));
  const lone = m.mapAnonymous(page, 'rw-');
  run('protect beyond a standalone buffer', () => m.protect(lone, 2 * page, 'r--'));
  m.unmap(lone);
  run('protect a free part of the reservation', () => m.protect(r.address + 4n * P, page, 'rw-'));
  run('advise dontneed the whole reservation', () => m.advise(r.address, 8 * page, 'dontneed'));
  run('look-alike reservation copy', () => m.unmap({ ...r }));
  run('unmap reservation', () => m.unmap(r));
  run('unmap reservation twice', () => m.unmap(r));
  run('placement into a released reservation',
    () => m.mapAnonymous(page, 'rw-', { address: r.address + 4n * P, fixed: true }));
  out['placed run readable after release'] = new Uint8Array(placed)[page] === 0x5a && pathAt(r.address + P);
  const r2 = m.reserve(4 * page);
  run('opts getter releasing the reservation mid-call', () => m.mapAnonymous(page, 'rw-', {
    get address() { m.unmap(r2); return r2.address; }, fixed: true }));
  run('unmap placed buffer', () => m.unmap(placed));
  run('unmap placed buffer twice', () => m.unmap(placed));
  run('protect detached buffer', () => m.protect(placed, page, 'r--'));
  run('advise detached buffer', () => m.advise(placed, page, 'willneed'));

  // Transferring a mapped buffer: Node marks external buffers untransferable,
  // so structuredClone copies; whichever buffer still holds the mapping is the
  // only one unmap accepts.
  const moved = m.mapAnonymous(page, 'rw-');
  let clone;
  run('transfer a mapped buffer with structuredClone', () => { clone = structuredClone(moved, { transfer: [moved] }); });
  out['transfer detached the original'] = moved.byteLength === 0;
  if (clone) {
    run('unmap the clone', () => m.unmap(clone));
    run('unmap the original', () => m.unmap(moved));
  }

  // A worker shares the process registry: it may place into our reservation,
  // but a structured-cloned handle has lost its tag. Its buffers are released
  // when the worker's environment is torn down.
  const r3 = m.reserve(4 * page);
  const fromWorker = await new Promise((resolve, reject) => {
    const w = new Worker('const { parentPort, workerData } = require("worker_threads");' +
      'const m = require(workerData.addon); const o = {};' +
      'const t = (n, f) => { try { f(); o[n] = "ok"; } catch (e) { o[n] = e.name + ":" + e.code; } };' +
      'let kept; t("place into main reservation", () => { kept = m.mapAnonymous(4096, "rw-", { address: workerData.at, fixed: true }); new Uint8Array(kept)[0] = 1; });' +
      't("unmap cloned handle", () => m.unmap(workerData.handle));' +
      'parentPort.postMessage(o);',
      { eval: true, workerData: { addon: process.argv[1], at: r3.address + P, handle: { address: r3.address, length: r3.length } } });
    let msg;
    w.on('message', (v) => { msg = v; });
    w.on('error', reject);
    w.on('exit', (code) => resolve({ ...msg, exitCode: code }));
  });
  out['worker'] = fromWorker;
  for (let i = 0; i < 20 && pathAt(r3.address + P) !== '---p '; i++) await new Promise((res) => setTimeout(res, 5));
  out['worker placement returned to the reservation on worker exit'] = pathAt(r3.address + P);
  m.unmap(r3);

  // Finalizers: dropped buffers and reservations are unmapped by GC.
  const dropped = [];
  (() => {
    for (let i = 0; i < 4; i++) dropped.push(m.addressOf(m.mapFile(fd, 0, page, 'r--')));
    for (let i = 0; i < 4; i++) dropped.push(m.reserve(2 * page).address);
    const rr = m.reserve(4 * page);
    m.mapAnonymous(page, 'rw-', { address: rr.address, fixed: true });
    dropped.push(rr.address, rr.address + P);
  })();
  let live = dropped;
  for (let i = 0; i < 50 && live.length > 0; i++) {
    global.gc();
    await new Promise((res) => setImmediate(res));
    live = dropped.filter((a) => pathAt(a) !== 'unmapped');
  }
  out['unreachable buffers and reservations unmapped by GC'] = live.length === 0 ? 'all' : live.map((a) => pathAt(a));

  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(2); });
`;

describe('native-mmap hostile arguments, in a child process', () => {
  let result: { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };
  let out: Record<string, unknown>;

  beforeAll(() => {
    // stdin stays a pipe on purpose: one case maps fd 0.
    const child = spawnSync(process.execPath, ['--expose-gc', '-e', CHILD, addonPath], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    result = { status: child.status, signal: child.signal, stdout: child.stdout, stderr: child.stderr };
    out = child.status === 0 ? (JSON.parse(child.stdout) as Record<string, unknown>) : {};
  });

  test('the child exits normally (no SIGSEGV, SIGBUS or abort)', () => {
    expect({ status: result.status, signal: result.signal, stderr: result.stderr }).toEqual({
      status: 0,
      signal: null,
      stderr: '',
    });
  });

  test('MAP_FIXED, mprotect and madvise never touch foreign memory', () => {
    expect(out['fixed anonymous over every foreign mapping']).toEqual([RANGE]);
    expect(out['fixed file run over every foreign mapping']).toEqual([RANGE]);
    expect(out['protect --- every foreign mapping']).toEqual([RANGE]);
    expect(out['advise dontneed every foreign mapping']).toEqual([RANGE]);
    // EEXIST where something is mapped; ENOMEM for [vsyscall] above the
    // user address space.
    for (const key of ['fixedNoReplace reserve over every foreign mapping', 'fixedNoReplace map over every foreign mapping']) {
      const outcomes = out[key] as string[];
      expect(outcomes).toContain('Error:EEXIST');
      expect(outcomes.every((o) => /^Error:E[A-Z]+$/.test(o))).toBe(true);
    }
  });

  test('huge lengths and overflowing address arithmetic', () => {
    expect(out['mapAnonymous length 2^62']).toBe(RANGE);
    expect(out['mapAnonymous length 2^53-1']).toBe('Error:ENOMEM');
    expect(out['reserve length 2^53-1']).toBe('Error:ENOMEM');
    // Node 20 refuses ArrayBuffers over 4 GiB; a small machine refuses the
    // memory; a newer Node maps it lazily.
    expect(['Error:ERR_BUFFER_TOO_LARGE', 'Error:ENOMEM', 'ok']).toContain(
      out['mapAnonymous 8 GiB (beyond Node 20 buffer max, or no memory)'],
    );
    expect(out['fixed at the top of the address space (overflow)']).toBe(RANGE);
    expect(out['hint at the top of the address space (overflow)']).toBe(RANGE);
    expect(out['advise with address + length overflowing']).toBe(RANGE);
    expect(out['protect with address + length overflowing']).toBe(RANGE);
  });

  test('bad file descriptors and ranges past end-of-file', () => {
    expect(out['closed fd']).toBe('Error:EBADF');
    expect(out['fd of a directory']).toBe(RANGE);
    expect(out['fd of /dev/zero']).toBe(RANGE);
    expect(out['fd of a pipe (stdin)']).toBe(RANGE);
    expect(out['write-only fd']).toBe('Error:EACCES');
    expect(out['length past end of file']).toBe(RANGE);
    expect(out['offset past end of file']).toBe(RANGE);
    expect(out['offset 2^52 past end of file']).toBe(RANGE);
    expect(out['length 2^53-1 past end of file']).toBe(RANGE);
    expect(out['empty file']).toBe(RANGE);
  });

  test('reservation and placement lifecycle abuse', () => {
    expect(out['placement straddling the reservation end']).toBe(RANGE);
    expect(out['placement over a live placement']).toBe(RANGE);
    expect(out['protect --- over a placed buffer']).toBe(RANGE);
    expect(out['protect beyond a standalone buffer']).toBe(RANGE);
    expect(out['protect a free part of the reservation']).toBe('ok');
    expect(out['advise dontneed the whole reservation']).toBe('ok');
    expect(out['look-alike reservation copy']).toBe(TYPE);
    expect(out['unmap reservation']).toBe('ok');
    expect(out['unmap reservation twice']).toBe(RANGE);
    expect(out['placement into a released reservation']).toBe(RANGE);
    expect(out['placed run readable after release']).toMatch(/^r--p \/.*image\.bin$/);
    expect(out['opts getter releasing the reservation mid-call']).toBe(RANGE);
    expect(out['unmap placed buffer']).toBe('ok');
    expect(out['unmap placed buffer twice']).toBe(RANGE);
    expect(out['protect detached buffer']).toBe(RANGE);
    expect(out['advise detached buffer']).toBe(RANGE);
  });

  test('a transferred buffer is unmapped through its owner only', () => {
    if (out['transfer a mapped buffer with structuredClone'] !== 'ok') {
      // A runtime may refuse to transfer external buffers outright.
      expect(out['transfer a mapped buffer with structuredClone']).toMatch(/^DataCloneError/);
    } else if (out['transfer detached the original']) {
      expect([out['unmap the clone'], out['unmap the original']]).toEqual(['ok', RANGE]);
    } else {
      // Node 20: the clone is a copy, foreign to the addon.
      expect([out['unmap the clone'], out['unmap the original']]).toEqual([RANGE, 'ok']);
    }
  });

  test('worker threads share the registry; cloned handles are refused', () => {
    expect(out['worker']).toEqual({ 'place into main reservation': 'ok', 'unmap cloned handle': TYPE, exitCode: 0 });
    expect(out['worker placement returned to the reservation on worker exit']).toBe('---p ');
  });

  test('finalizers unmap unreachable buffers and reservations', () => {
    expect(out['unreachable buffers and reservations unmapped by GC']).toBe('all');
  });
});
