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
 *   parent's (target >= 5x faster). Medians of 3.
 * - With the writer paused, a child image restored in copy mode (and lazily where the restore
 *   offers it) against the process's memory read through /proc/PID/mem: exact.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { open as openFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { captureProcess, type CaptureOptions } from '../capture/process.js';
import { openImage } from '../index.js';
import { MiB, envMiB, since, syncAll, timeInterleaved } from './measure.js';
import { mib, ms, pct, times, verdict, type Row } from './table.js';

interface Sample { seconds: number; size: number; stoppedMs: number; stoppedBytes: number; totalMs: number; stored: number }

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
  const lib = (name: string, o: CaptureOptions) => async (): Promise<Sample> => {
    const t0 = process.hrtime.bigint();
    const r = await captureProcess(w.pid, out(name), { ...enc, ...o });
    if (o.preCopy && !r.preCopy?.used) throw new Error(`pre-copy fell back: ${r.preCopy && !r.preCopy.used ? r.preCopy.fallback : '?'}`);
    return { seconds: since(t0), size: r.summary.fileSize, stoppedMs: r.stoppedMs, stoppedBytes: r.stoppedBytesRead, totalMs: r.totalMs, stored: r.summary.storedBytes };
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
  // (2 %) between them, so the change is that whatever the captures' own durations.
  const childRuns: Sample[] = [];
  const parents: Sample[] = [];
  for (let i = 0; i < 3; i++) {
    await w.command('p');
    syncAll();
    parents.push(await lib(`i19-parent${i}.img`, {})());
    await w.command('r');
    await new Promise((r) => setTimeout(r, 1000));
    await w.command('p');
    syncAll();
    childRuns.push(await lib(`i19-child${i}.img`, { preCopy: true, parent: out(`i19-parent${i}.img`) })());
    await w.command('r');
  }
  const mid = [...childRuns.keys()].sort((a, b) => childRuns[a]!.stored - childRuns[b]!.stored)[1]!;
  const child = childRuns[mid]!;
  const parent = parents[mid]!;
  const index = child.size - child.stored;
  rows.push({
    section: 'issue 19', measure: 'child image after 2 % of the pages changed: stored chunk bytes', figure: mib(child.stored),
    baseline: `parent ${mib(parent.stored)}`, ratio: pct(child.stored / parent.stored), target: '<= 4.0 % (+ index)',
    result: verdict(child.stored <= 0.04 * parent.stored), value: child.size, unit: 'B', baselineValue: parent.size, ratioValue: child.size / parent.size,
    note: `file ${mib(child.size)}, of it index and headers ${mib(index)} (parent file ${mib(parent.size)}); 16 KiB chunks (deflate's default): a rewritten 4 KiB page makes its whole chunk differ; median of 3`,
  });
  const fullTime = median(parents.map((x) => x.seconds));
  const childTime = median(childRuns.map((x) => x.seconds));
  rows.push({
    section: 'issue 19', measure: 'child image (pre-copy, parent given): whole capture time', figure: ms(childTime), baseline: `full ${ms(fullTime)}`,
    ratio: times(fullTime / childTime), target: '>= 5x faster', result: verdict(fullTime >= 5 * childTime),
    value: childTime, unit: 's', baselineValue: fullTime, ratioValue: fullTime / childTime,
    note: `stopped ${child.stoppedMs} ms; the writer compares every chunk with the parent's decoded chunk (image/_parent-writer.ts) and stores only those that differ`,
  });

  // Exactness: the writer paused, a child restored against the memory itself.
  await w.command('p');
  try {
    await lib('i19-exact.img', { preCopy: true, parent: out('i19-full.img') })();
    const mem = await openFile(`/proc/${w.pid}/mem`, 'r');
    const truth = Buffer.alloc(sizeMiB * MiB);
    for (let done = 0; done < truth.length;) done += (await mem.read(truth, done, truth.length - done, Number(w.gen) + done)).bytesRead;
    await mem.close();
    const image = await openImage(out('i19-exact.img'), { key });
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
      section: 'issue 19', measure: `restore of a child image against /proc/PID/mem (${sizeMiB} MiB, writer paused)`, figure: verdicts.join(', '),
      baseline: 'the process', ratio: '-', target: 'exact', result: verdict(exact >= 1 && !verdicts.some((v) => v.endsWith('DIFFERS'))),
    });
  } finally {
    await w.command('r');
  }
  return rows;
}
