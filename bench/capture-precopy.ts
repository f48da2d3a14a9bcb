/**
 * bench/capture.ts's issue 19 section (CRIMG_BENCH_CAPTURE_SECTION=issue19 runs it alone):
 * bench/c/rewriter.c holding 1 GiB (CRIMG_BENCH_PRECOPY_MIB) of memory-like bytes (the bench's
 * data file, repeated) and rewriting 2 % of its pages per second.
 *
 * - Stop time of a pre-copy capture against a full capture's, both deflate:1 + aes-256-gcm
 *   (medians of 3 after 1 warm-up, interleaved). Target <= 10 %.
 * - A child image (pre-copy, `parent`: a full image taken with the writer paused, then 1 s of
 *   rewriting = 2 % of the pages, paused again): its stored bytes against the parent's (target
 *   <= 4 % of the parent plus the child's index), and its whole capture time against the
 *   parent's (target >= 5x faster). Medians of 3. Both at the default chunk size (16 KiB with
 *   deflate) and at 4 KiB (a page per chunk: a rewritten page then changes one chunk, not four).
 * - A child whose capture tracked the writes since its parent's (the parent captured with
 *   keepTracking, the child with since and keepTracking: the steady state of periodic
 *   checkpoints), at 16 KiB and 4 KiB chunks: stored bytes and whole capture time against a
 *   full capture; ending the tracking (once per chain) timed apart. Medians of 3.
 * - The library writer alone (ImageWriter from memory, no process): a full image and a child of it
 *   after 2 % of the pages changed, both chunk sizes, the child's parent compared on native
 *   threads (decodeBatch) and, for comparison, on the JavaScript thread (CRIMG_NATIVE_DECODE=0).
 *   CRIMG_BENCH_CHILD_WRITE_MIB (default 256) MiB. Medians of 3, interleaved.
 * - With the writer paused, a child image restored in copy mode (and lazily where the restore
 *   offers it) against the process's memory read through /proc/PID/mem: exact.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { open as openFile, readFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { captureProcess, type CaptureOptions, type CaptureResult } from '../capture/process.js';
import type { WriteTracking } from '../capture/_since.js';
import { ImageWriter, openImage, type WriterOptions } from '../index.js';
import { nativeAddon } from '../native-mmap/index.js';
import { MiB, envMiB, since, syncAll, timeInterleaved } from './measure.js';
import { mib, ms, pct, times, verdict, type Row } from './table.js';

interface Sample { seconds: number; size: number; stoppedMs: number; stoppedBytes: number; totalMs: number; stored: number; bytesRead: number }

interface Rewriter { pid: number; gen: bigint; pages: number; proc: ChildProcess; command(c: string): Promise<Record<string, unknown>> }

function startRewriter(binary: string, args: string[], kids: ChildProcess[]): Promise<Rewriter> {
  return new Promise((resolve, reject) => {
    const p = spawn(binary, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    kids.push(p);
    let buf = '';
    let first = true;
    const waiting: ((v: Record<string, unknown>) => void)[] = [];
    p.on('error', reject);
    p.on('exit', (code) => { if (first) reject(new Error(`rewriter exited with ${code}`)); });
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const v = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if (!first) { waiting.shift()?.(v); continue; }
        first = false;
        resolve({
          pid: v['pid'] as number, gen: BigInt(v['gen'] as string), pages: v['pages'] as number, proc: p,
          command: (c) => new Promise((r) => { waiting.push(r); p.stdin!.write(c); }),
        });
      }
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** The issue 19 rows. `dir` holds the images; `data` is the memory-like data file. */
export async function issue19Rows(root: string, dir: string, data: string, log: (t: string) => void, kids: ChildProcess[]): Promise<Row[]> {
  const rows: Row[] = [];
  const sizeMiB = envMiB('CRIMG_BENCH_PRECOPY_MIB', 1024, 16);
  const binary = join(dir, 'rewriter');
  const cc = spawnSync('gcc', ['-O2', '-pthread', '-o', binary, join(root, 'bench', 'c', 'rewriter.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`);
  const pages = sizeMiB * 256;
  const rate = Math.round(pages * 0.02);
  const w = await startRewriter(binary, [String(sizeMiB), String(rate), data], kids);
  log(`issue 19: rewriter pid ${w.pid} holds ${sizeMiB} MiB of memory-like bytes, rewriting ${rate} pages (2 %) per second`);
  const key = randomBytes(32);
  const enc: CaptureOptions = { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key };
  const out = (n: string): string => join(dir, n);
  const lib = (name: string, o: CaptureOptions, seen?: (r: CaptureResult) => void) => async (): Promise<Sample> => {
    const t0 = process.hrtime.bigint();
    const r = await captureProcess(w.pid, out(name), { ...enc, ...o });
    seen?.(r);
    if (o.preCopy && !r.preCopy?.used) throw new Error(`pre-copy fell back: ${r.preCopy && !r.preCopy.used ? r.preCopy.fallback : '?'}`);
    return { seconds: since(t0), size: r.summary.fileSize, stoppedMs: r.stoppedMs, stoppedBytes: r.stoppedBytesRead, totalMs: r.totalMs, stored: r.summary.storedBytes, bytesRead: r.bytesRead };
  };
  const runs = await timeInterleaved<Sample>({
    full: lib('i19-full.img', {}),
    'pre-copy': lib('i19-pre.img', { preCopy: true }),
  }, { prepare: async () => { syncAll(); } });
  const stop = (n: string): number => median(runs[n]!.results.map((x) => x.stoppedMs));
  const fullStop = stop('full');
  const preStop = stop('pre-copy');
  rows.push({
    section: 'issue 19', measure: `stop time, pre-copy (${sizeMiB} MiB, 2 %/s rewritten, deflate:1 + aes-256-gcm)`, figure: `${preStop} ms`,
    baseline: `full stop ${fullStop} ms`, ratio: pct(preStop / fullStop), target: '<= 10.0 %', result: verdict(preStop <= 0.1 * fullStop),
    value: preStop / 1000, unit: 's', baselineValue: fullStop / 1000, ratioValue: preStop / fullStop,
    note: `read while stopped: ${mib(median(runs['pre-copy']!.results.map((x) => x.stoppedBytes)))} (full: ${mib(median(runs['full']!.results.map((x) => x.stoppedBytes)))}); whole capture ${ms(runs['pre-copy']!.seconds)} (full ${ms(runs['full']!.seconds)})`,
  });

  // A child image after 2 % of the pages changed: the writer paused for each capture, run 1 s
  // (2 %) between them, so the change is that whatever the captures' own durations. Each round
  // takes a parent at the default chunk size and one at 4 KiB, then a child of each after the
  // same change.
  const sizes = [{ tag: 'd', label: 'default chunks (16 KiB)', o: {} }, { tag: '4k', label: '4 KiB chunks', o: { chunkSize: 4096 } }];
  const childRuns: Record<string, Sample[]> = { d: [], '4k': [] };
  const parents: Record<string, Sample[]> = { d: [], '4k': [] };
  // Children whose capture tracked the writes since its parent's (keepTracking, then since):
  // a process has one tracking at a time, so each is its own parent-child pair.
  const sinceRuns: Record<string, Sample[]> = { d: [], '4k': [] };
  const sinceParents: Record<string, Sample[]> = { d: [], '4k': [] };
  const closeTimes: number[] = [];
  const change = async (): Promise<void> => {
    await w.command('r');
    await new Promise((r) => setTimeout(r, 1000));
    await w.command('p');
    syncAll();
  };
  for (let i = 0; i < 3; i++) {
    await w.command('p');
    syncAll();
    for (const z of sizes) parents[z.tag]!.push(await lib(`i19-parent-${z.tag}${i}.img`, z.o)());
    await change();
    for (const z of sizes) childRuns[z.tag]!.push(await lib(`i19-child-${z.tag}${i}.img`, { preCopy: true, parent: out(`i19-parent-${z.tag}${i}.img`) })());
    for (const z of sizes) {
      const parent = out(`i19-kept-${z.tag}${i}.img`);
      let tracking: WriteTracking | undefined;
      sinceParents[z.tag]!.push(await lib(`i19-kept-${z.tag}${i}.img`, { ...z.o, ...(z.tag === 'd' && { chunkSize: 16 * 1024 }), preCopy: true, keepTracking: true }, (r) => { tracking = r.tracking; })());
      if (!tracking) throw new Error('the parent capture kept no tracking');
      await change();
      // The steady state of periodic checkpoints: the child keeps the tracking for the next one.
      // Ending a tracking (once per chain) is timed apart.
      let next: WriteTracking | undefined;
      try {
        sinceRuns[z.tag]!.push(await lib(`i19-since-${z.tag}${i}.img`, { preCopy: true, parent, since: tracking, keepTracking: true }, (r) => { next = r.tracking; })());
      } finally {
        tracking.close();
        const t0 = process.hrtime.bigint();
        (next as WriteTracking | undefined)?.close();
        closeTimes.push(since(t0));
      }
    }
    await w.command('r');
    for (const z of sizes) for (const f of [`i19-parent-${z.tag}${i}.img`, `i19-child-${z.tag}${i}.img`, `i19-kept-${z.tag}${i}.img`, `i19-since-${z.tag}${i}.img`]) await rm(out(f), { force: true });
  }
  for (const z of sizes) {
    const kids = childRuns[z.tag]!;
    const ps = parents[z.tag]!;
    const mid = [...kids.keys()].sort((a, b) => kids[a]!.stored - kids[b]!.stored)[1]!;
    const child = kids[mid]!;
    const parent = ps[mid]!;
    const index = child.size - child.stored;
    rows.push({
      section: 'issue 19', measure: `child image after 2 % of the pages changed, ${z.label}: stored chunk bytes`, figure: mib(child.stored),
      baseline: `parent ${mib(parent.stored)}`, ratio: pct(child.stored / parent.stored), target: '<= 4.0 % (+ index)',
      result: verdict(child.stored <= 0.04 * parent.stored), value: child.size, unit: 'B', baselineValue: parent.size, ratioValue: child.size / parent.size,
      note: `file ${mib(child.size)}, of it index and headers ${mib(index)} (parent file ${mib(parent.size)}); ${z.tag === 'd' ? 'a rewritten 4 KiB page makes its whole 16 KiB chunk differ' : 'a page per chunk'}; median of 3`,
    });
    const fullTime = median(ps.map((x) => x.seconds));
    const childTime = median(kids.map((x) => x.seconds));
    rows.push({
      section: 'issue 19', measure: `child image (pre-copy, parent given), ${z.label}: whole capture time`, figure: ms(childTime), baseline: `full ${ms(fullTime)}`,
      ratio: times(fullTime / childTime), target: '>= 5x faster', result: verdict(fullTime >= 5 * childTime),
      value: childTime, unit: 's', baselineValue: fullTime, ratioValue: fullTime / childTime,
      note: `stopped ${child.stoppedMs} ms; the parent's chunks decoded on native threads (image/_parent-writer.ts), compared, only those that differ stored; median of 3`,
    });
  }
  for (const z of sizes) {
    const kids = sinceRuns[z.tag]!;
    const ps = sinceParents[z.tag]!;
    const mid = [...kids.keys()].sort((a, b) => kids[a]!.stored - kids[b]!.stored)[1]!;
    const fullTime = median(parents[z.tag]!.map((x) => x.seconds));
    const childTime = median(kids.map((x) => x.seconds));
    rows.push({
      section: 'issue 19', measure: `child image, writes tracked since the parent's capture (keepTracking, since), ${z.label}: stored chunk bytes`, figure: mib(kids[mid]!.stored),
      baseline: `parent ${mib(ps[mid]!.stored)}`, ratio: pct(kids[mid]!.stored / ps[mid]!.stored), target: '<= 4.0 % (+ index)',
      result: verdict(kids[mid]!.stored <= 0.04 * ps[mid]!.stored), value: kids[mid]!.size, unit: 'B', baselineValue: ps[mid]!.size, ratioValue: kids[mid]!.size / ps[mid]!.size,
      note: `file ${mib(kids[mid]!.size)}, of it index and headers ${mib(kids[mid]!.size - kids[mid]!.stored)}; median of 3`,
    });
    rows.push({
      section: 'issue 19', measure: `child image, writes tracked since the parent's capture, ${z.label}: whole capture time`, figure: ms(childTime), baseline: `full ${ms(fullTime)}`,
      ratio: times(fullTime / childTime), target: '>= 5x faster', result: verdict(fullTime >= 5 * childTime),
      value: childTime, unit: 's', baselineValue: fullTime, ratioValue: fullTime / childTime,
      note: `stopped ${median(kids.map((x) => x.stoppedMs))} ms; read ${mib(median(kids.map((x) => x.bytesRead)))} of the process; unchanged chunks IN_PARENT from the parent's index (no parent byte read); the child keeps the tracking (ending it, once per chain: ${ms(median(closeTimes))}); median of 3`,
    });
  }
  rows.push(...await writerRows(dir, data, log));

  // Exactness: the writer paused, a child restored against the memory itself: one written
  // against a full image (compared), one whose capture tracked the writes since its parent's.
  const exactness = async (name: string, label: string): Promise<void> => {
    const mem = await openFile(`/proc/${w.pid}/mem`, 'r');
    const truth = Buffer.alloc(sizeMiB * MiB);
    for (let done = 0; done < truth.length;) done += (await mem.read(truth, done, truth.length - done, Number(w.gen) + done)).bytesRead;
    await mem.close();
    const image = await openImage(out(name), { key });
    const verdicts: string[] = [];
    try {
      for (const mode of ['copy', 'lazy'] as const) {
        let restored;
        try {
          restored = await image.restore({ mode } as Parameters<typeof image.restore>[0]);
        } catch (e) {
          if (mode === 'lazy') { verdicts.push(`lazy: not offered (${e instanceof Error ? e.message.slice(0, 80) : String(e)})`); continue; }
          throw e;
        }
        try {
          const r = restored.regions.find((g) => g.memory && g.recordedAddress <= w.gen && w.gen < g.recordedAddress + g.length);
          if (!r) throw new Error('no restored region holds the rewriter\'s pages');
          const at = Number(w.gen - r.recordedAddress);
          const same = Buffer.from(new Uint8Array(r.memory!, at, truth.length)).equals(truth);
          verdicts.push(`${mode}: ${same ? 'exact' : 'DIFFERS'}`);
        } finally {
          restored.release();
        }
      }
    } finally {
      await image.close();
    }
    const exact = verdicts.filter((v) => v.endsWith('exact')).length;
    rows.push({
      section: 'issue 19', measure: `restore of a child image ${label} against /proc/PID/mem (${sizeMiB} MiB, writer paused)`, figure: verdicts.join(', '),
      baseline: 'the process', ratio: '-', target: 'exact', result: verdict(exact >= 1 && !verdicts.some((v) => v.endsWith('DIFFERS'))),
    });
  };
  await w.command('p');
  try {
    await lib('i19-exact.img', { preCopy: true, parent: out('i19-full.img') })();
    await exactness('i19-exact.img', '(--parent, compared)');
  } finally {
    await w.command('r');
  }
  let tracking: WriteTracking | undefined;
  await lib('i19-exact-kept.img', { preCopy: true, keepTracking: true }, (r) => { tracking = r.tracking; })();
  if (!tracking) throw new Error('the parent capture kept no tracking');
  await new Promise((r) => setTimeout(r, 1000));
  await w.command('p');
  try {
    await lib('i19-exact-since.img', { preCopy: true, parent: out('i19-exact-kept.img'), since: tracking })();
    await exactness('i19-exact-since.img', '(tracked since its parent: keepTracking, since)');
  } finally {
    tracking.close();
    await w.command('r');
  }
  return rows;
}

/**
 * The library writer alone: a full image of `CRIMG_BENCH_CHILD_WRITE_MIB` MiB of memory-like
 * bytes (the data file, repeated) and a child of it after 2 % of its pages were rewritten
 * (spread at random), deflate:1 + aes-256-gcm, at the default chunk size and at 4 KiB. The
 * child is written with its parent decoded on native threads, and on the JavaScript thread
 * (CRIMG_NATIVE_DECODE=0) for comparison. Medians of 3, interleaved.
 */
async function writerRows(dir: string, data: string, log: (t: string) => void): Promise<Row[]> {
  const sizeMiB = envMiB('CRIMG_BENCH_CHILD_WRITE_MIB', 256, 16);
  const src = await readFile(data);
  const before = Buffer.alloc(sizeMiB * MiB);
  for (let at = 0; at < before.length; at += src.length) src.copy(before, at, 0, Math.min(src.length, before.length - at));
  const after = Buffer.from(before);
  const pages = before.length / 4096;
  const changed = Math.round(pages * 0.02);
  let seed = 19;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let k = 0; k < changed; k++) {
    const page = Math.floor(rnd() * pages);
    // Another page's bytes with a generation stamp: still memory-like, certainly different.
    const from = Math.floor(rnd() * pages) * 4096;
    before.copy(after, page * 4096, from, from + 4096);
    after.writeUInt32LE(0x19000000 + k, page * 4096);
  }
  const key = randomBytes(32);
  const base: WriterOptions = { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key };
  const ADDRESS = 0x7f0000000000n;
  const write = async (name: string, bytes: Buffer, o: WriterOptions): Promise<{ seconds: number; stored: number; size: number; inParent: number }> => {
    const t0 = process.hrtime.bigint();
    const wr = await ImageWriter.create(join(dir, name), { ...base, ...o });
    await wr.addRegion({ address: ADDRESS, data: bytes, kind: 'heap' });
    const r = await wr.finish();
    return { seconds: since(t0), stored: r.storedBytes, size: r.fileSize, inParent: r.inParentChunks };
  };
  const jsOnly = <T>(fn: () => Promise<T>) => async (): Promise<T> => {
    process.env.CRIMG_NATIVE_DECODE = '0';
    try { return await fn(); } finally { delete process.env.CRIMG_NATIVE_DECODE; }
  };
  log(`issue 19 writer: ${sizeMiB} MiB, ${changed} pages (2 %) rewritten; native addon ${nativeAddon() !== null ? 'loaded' : 'MISSING (the child compares on the JavaScript thread)'}`);
  const rows: Row[] = [];
  for (const [tag, label, o] of [['d', 'default chunks (16 KiB)', {}], ['4k', '4 KiB chunks', { chunkSize: 4096 }]] as const) {
    const parent = `i19-w-parent-${tag}.img`;
    await write(parent, before, o);
    const runs = await timeInterleaved({
      full: () => write(`i19-w-full-${tag}.img`, after, o),
      native: () => write(`i19-w-child-${tag}.img`, after, { parent: join(dir, parent) }),
      js: jsOnly(() => write(`i19-w-childjs-${tag}.img`, after, { parent: join(dir, parent) })),
    }, { prepare: () => { syncAll(); } });
    const full = runs['full']!.seconds;
    const nat = runs['native']!.seconds;
    const js = runs['js']!.seconds;
    const c = runs['native']!.result;
    rows.push({
      section: 'issue 19', measure: `library writer, child after 2 % of ${sizeMiB} MiB changed, ${label}: write time`, figure: ms(nat), baseline: `full ${ms(full)}`,
      ratio: times(full / nat), target: '>= 5x faster', result: verdict(full >= 5 * nat),
      value: nat, unit: 's', baselineValue: full, ratioValue: full / nat,
      note: `parent compared on the JavaScript thread: ${ms(js)} (${times(full / js)}); child ${mib(c.stored)} stored of ${mib(runs['full']!.result.stored)} (${pct(c.stored / runs['full']!.result.stored)}), ${c.inParent} chunks IN_PARENT; deflate:1 + aes-256-gcm; median of 3`,
    });
    for (const f of [parent, `i19-w-full-${tag}.img`, `i19-w-child-${tag}.img`, `i19-w-childjs-${tag}.img`]) await rm(join(dir, f), { force: true });
  }
  return rows;
}
