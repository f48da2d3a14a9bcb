/**
 * Lazy restore against copy and map (issue 17): a memory-like image (CRIMG_BENCH_LAZY_MIB,
 * default 1024 MiB, CRIMG_BENCH_LAZY_CHUNK bytes per chunk, default 64 KiB) zstd:1 (deflate:1 with CRIMG_BENCH_LAZY_CODEC=deflate:1)
 * + aes-256-gcm, and raw. Medians of CRIMG_BENCH_RUNS (default 3) of:
 * - restore() to the first readable byte (lazy: one fault; copy: the whole decode);
 * - a 10 % working set (10 % of the chunks, chosen at random, one byte of every page read, in
 *   random order) then stop: lazy vs copy; then lazy on the same image rewritten by
 *   optimizeImage with that working set's recorded access profile as its hot list (chunks the
 *   handler installed for a fault, and "assists": faults on a chunk a prefetch thread had in
 *   hand, which the handler decoded too, counted in both);
 * - touching every page (then `done`): lazy vs copy, and lazy in 4 KiB pages (advise
 *   'nohugepage': no whole 2 MiB spans, native-mmap/src/uffd.h kWholeSpans);
 * - raw: first byte and touch-all, lazy vs map (checked, the default map);
 * - the floor of the working-set figure on this machine, decode left out: bench/c/uffd_floor.c
 *   touching the same chunks in the same order, each fault answered by a bare UFFDIO_COPY of an
 *   already-made chunk (nothing to read, check or decode), 4 KiB pages like any UFFDIO_COPY.
 * Prints one line per figure, with what the handler's installs cost it (read, check and decode;
 * UFFDIO_COPY): the rest of a fault is the kernel's round trip and the touching thread's; how
 * many of them the warm thread read ahead of the touching thread, how often the handler
 * moved to the touching thread's CPU (native-mmap/src/uffd.h kWarm, kFollowFaulter), and how
 * many 2 MiB spans went in whole (kWholeSpans). The series of one figure run interleaved, as
 * the VM's supply of fresh pages drifts. The machine is shared: report the load with the figures.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { ImageWriter, openImage, optimizeImage } from '../index.js';
import { memoryLikePieces } from './memory-like.js';
import { compileC } from './restore-setup.js';

const MIB = Number(process.env.CRIMG_BENCH_LAZY_MIB ?? 1024);
const RUNS = Number(process.env.CRIMG_BENCH_RUNS ?? 3);
const CODEC = process.env.CRIMG_BENCH_LAZY_CODEC ?? 'zstd:1';
const CHUNK = Number(process.env.CRIMG_BENCH_LAZY_CHUNK ?? 65536);
const PAGE = 4096;
const SPAN = 2 << 20;
const KEY = new Uint8Array(32).fill(3);
const BASE = 0x500000000000n;

const dir = mkdtempSync(path.join(tmpdir(), 'crimg-bench-lazy-'));
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

async function write(file: string, options: object): Promise<void> {
  const w = await ImageWriter.create(file, { fsync: false, chunkSize: CHUNK, ...options });
  const data = Buffer.concat([...memoryLikePieces(MIB << 20)]);
  await w.addRegion({ address: BASE, data, prot: 'rw-', kind: 'heap', name: 'heap' });
  await w.finish();
}

/** 10 % of the chunks in a fixed random order. */
function workingSet(): number[] {
  const chunks = (MIB << 20) / CHUNK;
  const r = rng(42);
  const all = Array.from({ length: chunks }, (_, i) => i);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, Math.ceil(chunks / 10));
}

/**
 * bench/c/uffd_floor.c on the working set: the milliseconds of each of RUNS runs (and the
 * faults its handler served), or why it could not run.
 */
function uffdFloor(set: readonly number[]): { ms: number[]; faults: number } | string {
  const cc = compileC('uffd_floor', dir);
  if ('skipped' in cc) return cc.skipped;
  const binary = cc.binary;
  const file = path.join(dir, 'set.bin');
  writeFileSync(file, new Uint8Array(Uint32Array.from(set).buffer));
  const run = spawnSync(binary, [String(MIB), String(CHUNK), file, String(RUNS)], { encoding: 'utf8' });
  if (run.status !== 0) return `uffd_floor failed: ${(run.stderr || String(run.error)).trim().slice(0, 200)}`;
  const lines = run.stdout.trim().split('\n').map((l) => l.split(' ').map(Number));
  return { ms: lines.map((l) => l[0]!), faults: lines[0]?.[1] ?? 0 };
}

let sink = 0;
function touch(m: Uint8Array, chunks: readonly number[]): void {
  for (const c of chunks) for (let p = 0; p < CHUNK; p += PAGE) sink += m[c * CHUNK + p]!;
}

interface Run { ms: number; faults: number; assists: number; decodeUs: number; installUs: number; warmed: number; moves: number; spans: number; spanUs: number; moveUs: number }

async function measure(file: string, mode: 'lazy' | 'copy' | 'map', what: 'first' | 'set' | 'all', opts: object, set: number[], advise?: 'nohugepage'): Promise<Run> {
  const image = await openImage(file, opts);
  await image.chunkTable();
  const t0 = now();
  const r = await image.restore({ mode, ...(advise && { advise }) });
  const m = new Uint8Array(r.regions[0]!.memory!);
  if (what === 'first') sink += m[(MIB << 19) + 5]!;
  else if (what === 'set') touch(m, set);
  else {
    for (let i = 0; i < m.length; i += PAGE) sink += m[i]!;
    await r.done;
  }
  const ms = now() - t0;
  const stats = r.lazyStats();
  r.release();
  await image.close();
  const per = (us: number | undefined): number => (stats && stats.faultInstalls > 0 ? (us ?? 0) / stats.faultInstalls : 0);
  return { ms, faults: stats?.faultInstalls ?? 0, assists: stats?.assists ?? 0, decodeUs: per(stats?.faultDecodeUs), installUs: per(stats?.faultInstallUs), warmed: stats?.warmed ?? 0, moves: stats?.handlerMoves ?? 0, spans: stats?.spansMoved ?? 0, spanUs: stats && stats.spansMoved > 0 ? stats.spanDecodeUs / stats.spansMoved : 0, moveUs: stats && stats.spansMoved > 0 ? stats.spanMoveUs / stats.spansMoved : 0 };
}

/**
 * Runs each of `pairs` RUNS times, interleaved, after one untimed round (the VM's supply of
 * fresh pages drifts: a process's first GiB came 2-4x slower), and prints each median.
 */
async function series(...pairs: [string, () => Promise<Run>][]): Promise<number[]> {
  const runs: Run[][] = pairs.map(() => []);
  for (const [, f] of pairs) await f();
  for (let i = 0; i < RUNS; i++) for (const [k, [, f]] of pairs.entries()) runs[k]!.push(await f());
  return pairs.map(([label], k) => report(label, runs[k]!));
}

function report(label: string, runs: Run[]): number {
  const ms = median(runs.map((x) => x.ms));
  const faults = median(runs.map((x) => x.faults));
  const assists = median(runs.map((x) => x.assists));
  const decode = median(runs.map((x) => x.decodeUs));
  const install = median(runs.map((x) => x.installUs));
  const warmed = median(runs.map((x) => x.warmed));
  const moves = median(runs.map((x) => x.moves));
  const spans = median(runs.map((x) => x.spans));
  const whole = spans > 0 ? ` (each ${median(runs.map((x) => x.spanUs)).toFixed(0)} us to read, check and decode, ${median(runs.map((x) => x.moveUs)).toFixed(0)} us to move)` : '';
  const split = faults > 0 ? `; per handler install ${decode.toFixed(1)} us read+check+decode, ${install.toFixed(1)} us UFFDIO_COPY/ZEROPAGE; warmed ${warmed}, handler moves ${moves}` : '';
  console.log(`${label.padEnd(52)} ${ms.toFixed(2).padStart(10)} ms  (runs ${runs.map((x) => x.ms.toFixed(0)).join(' ')}) handler installs ${faults}, assists ${assists}, 2 MiB spans moved in ${spans}${whole}${split}`);
  return ms;
}

async function main(): Promise<void> {
  console.log(`lazy restore bench: ${MIB} MiB memory-like, ${CHUNK / 1024} KiB chunks, ${CODEC} + aes-256-gcm and raw; ${RUNS} runs, medians; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const enc = path.join(dir, 'enc.img');
  const raw = path.join(dir, 'raw.img');
  const hot = path.join(dir, 'hot.img');
  const o = { key: KEY };
  await write(enc, { compress: CODEC, encrypt: 'aes-256-gcm', key: KEY });
  await write(raw, {});
  const set = workingSet();
  // The profile of the working set, recorded without prefetch (prefetched chunks never fault).
  const image = await openImage(enc, o);
  const r = await image.restore({ mode: 'lazy', prefetch: false });
  touch(new Uint8Array(r.regions[0]!.memory!), set);
  const profile = r.accessProfile();
  r.release();
  await image.close();
  await optimizeImage(enc, hot, { profile, key: KEY }); // crimg optimize's library call

  const [lazyFirst, copyFirst] = await series(['encoded: first byte, lazy', () => measure(enc, 'lazy', 'first', o, set)], ['encoded: first byte, copy', () => measure(enc, 'copy', 'first', o, set)]);
  const [lazySet, copySet, hotSet] = await series(
    ['encoded: 10 % working set, lazy', () => measure(enc, 'lazy', 'set', o, set)],
    ['encoded: 10 % working set, copy', () => measure(enc, 'copy', 'set', o, set)],
    ['encoded: 10 % working set, lazy + hot list', () => measure(hot, 'lazy', 'set', o, set)],
  );
  const [lazyAll, copyAll, smallAll] = await series(
    ['encoded: touch every page, lazy', () => measure(enc, 'lazy', 'all', o, set)],
    ['encoded: touch every page, copy', () => measure(enc, 'copy', 'all', o, set)],
    ['encoded: touch every page, lazy, 4 KiB pages', () => measure(enc, 'lazy', 'all', o, set, 'nohugepage')],
  );
  const [rawLazyFirst, rawMapFirst] = await series(['raw: first byte, lazy', () => measure(raw, 'lazy', 'first', {}, set)], ['raw: first byte, map (checked)', () => measure(raw, 'map', 'first', {}, set)]);
  const [rawLazyAll, rawMapAll] = await series(['raw: touch every page, lazy', () => measure(raw, 'lazy', 'all', {}, set)], ['raw: touch every page, map (checked)', () => measure(raw, 'map', 'all', {}, set)]);
  const floor = uffdFloor(set);
  const floorMs = typeof floor === 'string' ? NaN : median(floor.ms);
  console.log(typeof floor === 'string'
    ? `working set floor (bench/c/uffd_floor.c): not measured, ${floor}`
    : `${'working set floor: C handler, bare UFFDIO_COPY, no decode'.padEnd(52)} ${floorMs.toFixed(2).padStart(10)} ms  (runs ${floor.ms.map((x) => x.toFixed(0)).join(' ')}) faults ${floor.faults}, 4 KiB pages`);
  const probe = await openImage(enc, o);
  const regions = probe.regions.length;
  await probe.close();
  const target = 2 + 0.01 * regions;
  console.log(`first byte, lazy: ${lazyFirst.toFixed(2)} ms (target < ${target.toFixed(2)} ms: 2 ms + 10 us x ${regions} region${regions === 1 ? '' : 's'}: ${lazyFirst < target ? 'met' : 'not met'})`);
  console.log(`working set, lazy: ${lazySet.toFixed(1)} ms (target <= ${(copySet / 5).toFixed(1)} ms, copy's ${copySet.toFixed(1)} ms / 5: ${lazySet <= copySet / 5 ? 'met' : 'not met'})`);
  if (!Number.isNaN(floorMs)) {
    const spans = new Set(set.map((c) => Math.floor((c * CHUNK) / SPAN))).size;
    const all = Math.ceil((MIB << 20) / SPAN);
    console.log(`working set floor: ${floorMs.toFixed(1)} ms with nothing to decode, copy / floor ${(copySet / floorMs).toFixed(2)}x: a lazy restore in 4 KiB pages ${copySet / floorMs >= 5 ? 'can' : 'cannot'} reach 5x copy on this machine (lazy / floor ${(lazySet / floorMs).toFixed(2)}x); in 2 MiB pages it would decode the ${spans} of ${all} spans the set touches (${((100 * spans) / all).toFixed(0)} %), as copy decodes all`);
  }
  console.log(`first byte: copy / lazy ${(copyFirst / lazyFirst).toFixed(1)}x; working set: copy / lazy ${(copySet / lazySet).toFixed(2)}x (target >= 5), lazy / lazy+hot ${(lazySet / hotSet).toFixed(2)}x (target >= 1.5); touch all: lazy / copy ${(lazyAll / copyAll).toFixed(2)}x (target <= 1.3; in 4 KiB pages ${(smallAll / copyAll).toFixed(2)}x); raw: lazy / map first byte ${(rawLazyFirst / rawMapFirst).toFixed(2)}x, touch all ${(rawLazyAll / rawMapAll).toFixed(2)}x (sink ${sink & 1})`);
}

try {
  await main();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
