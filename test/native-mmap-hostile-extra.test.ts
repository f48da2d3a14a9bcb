/**
 * Hostile arguments the first hostile suite (native-mmap-hostile.test.ts) leaves out: the
 * restore entry points placeRuns() and view(), and negative, huge, unaligned and non-finite
 * lengths for reserve/protect/advise. Every call must end in a TypeError, a RangeError or a
 * clean errno Error. Calls that reach mmap(2) with MAP_FIXED (placeRuns with hostile runs, and a
 * runs array changed by another thread while it is checked) run in a child process, so that a
 * crash fails one test instead of killing jest.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { outcome, requireNative } from './native-fixture.js';

const native = requireNative();

const addonPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'native-mmap', 'build', 'Release', 'crimg_mmap.node');

const TYPE = 'TypeError:ERR_INVALID_ARG_TYPE';
const RANGE = 'RangeError:ERR_INVALID_ARG_VALUE';


describe('native-mmap hostile arguments: placeRuns, view, lengths', () => {
  type Loose = (...args: unknown[]) => unknown;
  const raw = native as unknown as Record<'placeRuns' | 'view' | 'reserve' | 'protect' | 'advise' | 'unmap' | 'mapAnonymous' | 'addressOf', Loose>;
  let page: number;
  let r: { address: bigint; length: number };
  let released: { address: bigint; length: number };
  let dir: string;
  let fd: number;
  let closedFd: number;

  beforeAll(() => {
    page = native.pageSize();
    r = native.reserve(8 * page);
    released = native.reserve(page);
    native.unmap(released);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-hostile-extra-'));
    fs.writeFileSync(path.join(dir, 'f.bin'), new Uint8Array(2 * page));
    fd = fs.openSync(path.join(dir, 'f.bin'), 'r');
    closedFd = fs.openSync(path.join(dir, 'f.bin'), 'r');
    fs.closeSync(closedFd);
  });

  afterAll(() => {
    native.unmap(r);
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const runs = (...v: number[]): Float64Array => Float64Array.from(v);
  // Every case is refused before any mmap: the reservation stays untouched.
  const cases = (): Array<[string, () => unknown, string]> => [
    ['placeRuns()', () => raw.placeRuns(), TYPE],
    ['placeRuns look-alike reservation', () => raw.placeRuns({ address: r.address, length: r.length }, -1, runs(0, page, -1), 'rw-'), TYPE],
    ['placeRuns released reservation', () => raw.placeRuns(released, -1, runs(0, page, -1), 'rw-'), RANGE],
    ['placeRuns runs as array', () => raw.placeRuns(r, -1, [0, page, -1], 'rw-'), TYPE],
    ['placeRuns runs as Float32Array', () => raw.placeRuns(r, -1, Float32Array.of(0, page, -1), 'rw-'), TYPE],
    ['placeRuns runs as BigInt64Array', () => raw.placeRuns(r, -1, BigInt64Array.of(0n, 4096n, -1n), 'rw-'), TYPE],
    ['placeRuns empty runs', () => raw.placeRuns(r, -1, new Float64Array(0), 'rw-'), RANGE],
    ['placeRuns runs not triples', () => raw.placeRuns(r, -1, runs(0, page), 'rw-'), RANGE],
    ['placeRuns detached runs', () => { const a = runs(0, page, -1); structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] }); return raw.placeRuns(r, -1, a, 'rw-'); }, RANGE],
    ['placeRuns negative offset', () => raw.placeRuns(r, -1, runs(-page, page, -1), 'rw-'), RANGE],
    ['placeRuns unaligned offset', () => raw.placeRuns(r, -1, runs(100, page, -1), 'rw-'), RANGE],
    ['placeRuns offset NaN', () => raw.placeRuns(r, -1, runs(NaN, page, -1), 'rw-'), RANGE],
    ['placeRuns offset 2^53 - page', () => raw.placeRuns(r, -1, runs(2 ** 53 - page, page, -1), 'rw-'), RANGE],
    ['placeRuns length 0', () => raw.placeRuns(r, -1, runs(0, 0, -1), 'rw-'), RANGE],
    ['placeRuns length -1', () => raw.placeRuns(r, -1, runs(0, -1, -1), 'rw-'), RANGE],
    ['placeRuns length 1.5', () => raw.placeRuns(r, -1, runs(0, 1.5, -1), 'rw-'), RANGE],
    ['placeRuns length Infinity', () => raw.placeRuns(r, -1, runs(0, Infinity, -1), 'rw-'), RANGE],
    ['placeRuns length 2^53', () => raw.placeRuns(r, -1, runs(0, 2 ** 53, -1), 'rw-'), RANGE],
    ['placeRuns length past the reservation', () => raw.placeRuns(r, -1, runs(0, 9 * page, -1), 'rw-'), RANGE],
    ['placeRuns overlapping runs', () => raw.placeRuns(r, -1, runs(0, 2 * page, -1, page, page, -1), 'rw-'), RANGE],
    ['placeRuns descending runs', () => raw.placeRuns(r, -1, runs(page, page, -1, 0, page, -1), 'rw-'), RANGE],
    ['placeRuns file offset -2', () => raw.placeRuns(r, -1, runs(0, page, -2), 'rw-'), RANGE],
    ['placeRuns unaligned file offset', () => raw.placeRuns(r, fd, runs(0, page, 100), 'r--'), RANGE],
    ['placeRuns file offset past end of file', () => raw.placeRuns(r, fd, runs(0, page, 2 * page), 'r--'), RANGE],
    ['placeRuns file offset 2^52', () => raw.placeRuns(r, fd, runs(0, page, 2 ** 52), 'r--'), RANGE],
    ['placeRuns file run without fd', () => raw.placeRuns(r, -1, runs(0, page, 0), 'r--'), RANGE],
    ['placeRuns fd -2', () => raw.placeRuns(r, -2, runs(0, page, 0), 'r--'), RANGE],
    ['placeRuns fd 1.5', () => raw.placeRuns(r, 1.5, runs(0, page, 0), 'r--'), RANGE],
    ['placeRuns fd as string', () => raw.placeRuns(r, '3', runs(0, page, 0), 'r--'), TYPE],
    ['placeRuns closed fd', () => raw.placeRuns(r, closedFd, runs(0, page, 0), 'r--'), 'Error:EBADF'],
    ['placeRuns bad prot', () => raw.placeRuns(r, -1, runs(0, page, -1), 'rwz'), RANGE],
    ['placeRuns prot missing', () => raw.placeRuns(r, -1, runs(0, page, -1)), TYPE],
    ['view()', () => raw.view(), TYPE],
    ['view look-alike reservation', () => raw.view({ address: r.address, length: r.length }, 0, page, 'r--'), TYPE],
    ['view released reservation', () => raw.view(released, 0, page, 'r--'), RANGE],
    ['view negative offset', () => raw.view(r, -page, page, 'r--'), RANGE],
    ['view unaligned offset', () => raw.view(r, 100, page, 'r--'), RANGE],
    ['view offset NaN', () => raw.view(r, NaN, page, 'r--'), RANGE],
    ['view offset as bigint', () => raw.view(r, 0n, page, 'r--'), TYPE],
    ['view length 0', () => raw.view(r, 0, 0, 'r--'), RANGE],
    ['view length -1', () => raw.view(r, 0, -1, 'r--'), RANGE],
    ['view length 2^53 - 1', () => raw.view(r, 0, 2 ** 53 - 1, 'r--'), RANGE],
    ['view past the reservation', () => raw.view(r, page, 8 * page, 'r--'), RANGE],
    ['view unreadable prot', () => raw.view(r, 0, page, '---'), RANGE],
    ['view write-only prot', () => raw.view(r, 0, page, '-w-'), RANGE],
    ['reserve length 0', () => raw.reserve(0), RANGE],
    ['reserve length -1', () => raw.reserve(-1), RANGE],
    ['reserve length NaN', () => raw.reserve(NaN), RANGE],
    ['reserve length 1.5', () => raw.reserve(1.5), RANGE],
    ['reserve length 2^62', () => raw.reserve(2 ** 62), RANGE],
    ['reserve unaligned address hint', () => raw.reserve(page, { address: r.address + 100n }), RANGE],
    ['protect negative length', () => raw.protect(r.address, -page, 'r--'), RANGE],
    ['protect length NaN', () => raw.protect(r.address, NaN, 'r--'), RANGE],
    ['protect unaligned address inside a reservation', () => raw.protect(r.address + 100n, page, 'r--'), RANGE],
    ['protect past the reservation', () => raw.protect(r.address, 9 * page, 'rw-'), RANGE],
    ['advise negative length', () => raw.advise(r.address, -1, 'willneed'), RANGE],
    ['advise length Infinity', () => raw.advise(r.address, Infinity, 'willneed'), RANGE],
    ['advise unaligned address inside a reservation', () => raw.advise(r.address + 1n, page, 'willneed'), RANGE],
    ['mapAnonymous length 0', () => raw.mapAnonymous(0, 'rw-'), RANGE],
    ['mapAnonymous length -4096', () => raw.mapAnonymous(-page, 'rw-'), RANGE],
    ['addressOf a detached mapped buffer', () => { const b = raw.mapAnonymous(page, 'rw-') as ArrayBuffer; raw.unmap(b); return raw.addressOf(b); }, RANGE],
  ];

  test('each hostile call is refused with the documented error', () => {
    const got = Object.fromEntries(cases().map(([name, call]) => [name, outcome(call)]));
    expect(got).toEqual(Object.fromEntries(cases().map(([name, , want]) => [name, want])));
  });

  test('refused calls leave no live buffer in the reservation, which still reads as zeros', () => {
    for (const [, call] of cases()) outcome(call);
    // A view over the whole reservation succeeds only if no refused call left a live buffer
    // in it, and its pages read as zeros.
    const v = native.view(r as never, 0, 8 * page, 'r--');
    expect(new Uint8Array(v).every((b) => b === 0)).toBe(true);
    native.unmap(v);
  });
});

/**
 * In a child: a worker thread rewrites a shared runs array (valid <-> wildly out of range) while
 * the main thread calls placeRuns with it. The addon copies the runs before checking them, so
 * every call is either a valid placement inside the reservation or a RangeError, and nothing
 * outside the reservation is ever mapped.
 */
const CHILD = String.raw`
const m = require(process.argv[1]);
const { Worker } = require('worker_threads');
const page = m.pageSize();
const r = m.reserve(4 * page);
const sab = new SharedArrayBuffer(3 * 8);
const runs = new Float64Array(sab);
runs.set([0, page, -1]);
const stop = new Int32Array(new SharedArrayBuffer(4));
const w = new Worker('const { workerData } = require("worker_threads");' +
  'const runs = new Float64Array(workerData.sab); const stop = new Int32Array(workerData.stop);' +
  'const hostile = [-4096, 2 ** 40, 1e300, NaN, 4096 * 1000];' +
  'let i = 0; while (Atomics.load(stop, 0) === 0) { runs[0] = i % 2 ? hostile[i % 5] : 0; runs[1] = i % 3 ? 4096 : hostile[i % 5]; i++; }',
  { eval: true, workerData: { sab, stop: stop.buffer } });
const seen = {};
const t0 = Date.now();
let calls = 0;
(async () => {
  await new Promise((res) => w.once('online', res));
  while (Date.now() - t0 < 1500) {
    for (let k = 0; k < 200; k++, calls++) {
      let o;
      try { m.placeRuns(r, -1, runs, 'rw-'); o = 'ok'; } catch (e) { o = e.name + ':' + e.code; }
      seen[o] = (seen[o] || 0) + 1;
    }
    await new Promise((res) => setImmediate(res));
  }
  Atomics.store(stop, 0, 1);
  await w.terminate();
  // The placed zero runs read back as zeros through a view of the whole reservation.
  const placed = new Uint8Array(m.view(r, 0, 4 * page, 'r--'));
  const zeros = placed.every((b) => b === 0);
  m.unmap(r);
  process.stdout.write(JSON.stringify({ seen, calls, zeros }));
})().catch((e) => { console.error(e); process.exit(2); });
`;

describe('placeRuns with a runs array changed by another thread while it is checked', () => {
  test('every call is a valid placement or a RangeError, and the child survives', () => {
    const child = spawnSync(process.execPath, ['-e', CHILD, addonPath], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } });
    expect({ status: child.status, signal: child.signal, stderr: child.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    const out = JSON.parse(child.stdout) as { seen: Record<string, number>; calls: number; zeros: boolean };
    expect(Object.keys(out.seen).filter((k) => k !== 'ok' && k !== RANGE)).toEqual([]);
    // The race really happened: both valid and hostile runs were seen.
    expect(out.seen.ok ?? 0).toBeGreaterThan(0);
    expect(out.seen[RANGE] ?? 0).toBeGreaterThan(0);
    expect(out.zeros).toBe(true);
  });
});
