/**
 * Write figures: ImageWriter without codec against `cat INPUT > OUT`, image size against the
 * input, and the writer's peak RSS. The targets compare the same durability on both sides:
 * the writer fsyncs (the default), so its baseline is `cat INPUT > OUT && sync OUT`; the rows
 * without fsync on either side are for information. Every write runs in its own process (bench/write-job.ts).
 * Regions are file ranges `{ path, position, length }` that the writer reads itself; one row
 * streams the same regions through fs.createReadStream, for comparison.
 */
import { TARGETS, freshOutput, tmp, type BenchContext } from './context.js';
import { median, timeInterleaved, type Runs } from './measure.js';
import { gibps, mib, pct, times, verdict, type Row } from './table.js';
import { timeShell } from './tools.js';
import { runWriteJob, type WriteResult } from './write-job.js';

export interface WriteSection {
  rows: Row[];
  /** The ~200-region image written without fsync: the reader sections use it. */
  image: string;
  /** The same layout over the first `ctx.small` bytes: the open+inspect comparison uses it. */
  smallImage: string;
  raw: Record<string, unknown>;
}

type Timed = { seconds: number; cpuSeconds: number } & Partial<WriteResult>;

/**
 * Runs of each no-fsync write. A write of 512 MiB takes ~0.15 s here, and about one in four
 * (cat's or ours) takes twice as long for reasons outside the process (page-cache writeback
 * on a shared VM): a median of 3 is wrong when two of three runs stall (~16 % of the time at
 * one in four), a median of 7 when four of seven do (~7 %).
 */
const WRITE_RUNS = 7;

const secondsList = (xs: readonly number[]): string => `${xs.map((x) => x.toFixed(3)).join(' ')} s`;

/** The samples of every contender, for the JSON results. */
const rawRuns = (runs: Record<string, Runs<Timed>>): Record<string, unknown> => Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, {
  seconds: v.seconds, samples: v.samples, cpuSeconds: v.results.map((x) => x.cpuSeconds),
  peakRss: v.results.map((x) => x.peakRss ?? null), summary: v.result.summary ?? null,
}]));

/** Median CPU seconds of the timed runs. */
const cpuOf = (runs: { results: Timed[] }): number => median(runs.results.map((x) => x.cpuSeconds));

export async function writeSection(ctx: BenchContext): Promise<WriteSection> {
  const S = 'write (no codec)';
  const out = {
    cat: tmp(ctx, 'cat.out'), one: tmp(ctx, 'one.img'), many: tmp(ctx, 'many.img'), stream: tmp(ctx, 'stream.img'),
    memory: tmp(ctx, 'memory.img'), catSync: tmp(ctx, 'cat-sync.out'), fsync: tmp(ctx, 'fsync.img'),
    fsyncOne: tmp(ctx, 'fsync-one.img'),
  };
  const job = { input: ctx.input, totalBytes: ctx.total, fsync: false };

  ctx.log(`write: cat vs ImageWriter (1 region, 200 regions as file ranges and as streams, in-memory input), no fsync, ${WRITE_RUNS} runs each`);
  const plain = await timeInterleaved<Timed>({
    cat: () => timeShell('cat "$1" > "$2"', [ctx.input, out.cat]),
    one: () => runWriteJob({ ...job, output: out.one, regions: 1 }),
    many: () => runWriteJob({ ...job, output: out.many, regions: ctx.regions }),
    stream: () => runWriteJob({ ...job, output: out.stream, regions: ctx.regions, source: 'stream' }),
    memory: () => runWriteJob({ ...job, output: out.memory, regions: ctx.regions, source: 'memory' }),
  }, { runs: WRITE_RUNS, prepare: (name) => freshOutput(out[name as keyof typeof out]) });

  ctx.log(`write: cat + sync FILE vs ImageWriter with fsync (1 region, 200 regions), ${WRITE_RUNS} runs each`);
  const synced = await timeInterleaved<Timed>({
    catSync: () => timeShell('cat "$1" > "$2" && sync "$2"', [ctx.input, out.catSync]),
    fsyncOne: () => runWriteJob({ ...job, fsync: true, output: out.fsyncOne, regions: 1 }),
    fsync: () => runWriteJob({ ...job, fsync: true, output: out.fsync, regions: ctx.regions }),
  }, { runs: WRITE_RUNS, prepare: (name) => freshOutput(out[name as keyof typeof out]) });
  await freshOutput(out.cat, out.catSync, out.fsync, out.fsyncOne, out.memory, out.stream);

  ctx.log('write: the small image for open+inspect');
  const smallImage = tmp(ctx, 'small.img');
  await runWriteJob({ ...job, totalBytes: ctx.small, output: smallImage, regions: ctx.regions });

  const cat = plain.cat!.seconds;
  const catSync = synced.catSync!.seconds;
  const rows: Row[] = [];
  const catCpu = cpuOf(plain.cat!);
  const syncCpu = cpuOf(synced.catSync!);
  const vsSync = (measure: string, runs: Runs<Timed>): Row => {
    const s = runs.seconds;
    const r = catSync / s;
    return {
      section: S, measure, figure: gibps(ctx.total, s), baseline: `cat + sync FILE ${gibps(ctx.total, catSync)}`, ratio: times(r),
      target: `>= ${TARGETS.writeVsCat.toFixed(2)}x cat + sync`, result: verdict(r >= TARGETS.writeVsCat),
      value: ctx.total / s, unit: 'B/s', baselineValue: ctx.total / catSync, ratioValue: r,
      note: `CPU (user + system, median): ${cpuOf(runs).toFixed(3)} s, cat + sync ${syncCpu.toFixed(3)} s;`
        + ` wall samples ${secondsList(runs.samples)}, cat + sync ${secondsList(synced.catSync!.samples)}`,
    };
  };
  rows.push(vsSync('ImageWriter, 1 region, file range, fsync (default)', synced.fsyncOne!));
  rows.push(vsSync(`ImageWriter, ${ctx.regions} regions, file ranges, fsync (default)`, synced.fsync!));
  const vsCat = (measure: string, runs: Runs<Timed>): Row => {
    const s = runs.seconds;
    const r = cat / s;
    return {
      section: S, measure, figure: gibps(ctx.total, s), baseline: `cat ${gibps(ctx.total, cat)}`, ratio: times(r),
      target: 'info', result: 'info',
      value: ctx.total / s, unit: 'B/s', baselineValue: ctx.total / cat, ratioValue: r,
      note: `CPU (user + system, median): ${cpuOf(runs).toFixed(3)} s, cat ${catCpu.toFixed(3)} s;`
        + ` wall samples ${secondsList(runs.samples)}, cat ${secondsList(plain.cat!.samples)}`,
    };
  };
  rows.push(vsCat('ImageWriter, 1 region, file range, no fsync (nor cat)', plain.one!));
  rows.push(vsCat(`ImageWriter, ${ctx.regions} regions, file ranges, no fsync (nor cat)`, plain.many!));
  rows.push(vsCat(`ImageWriter, ${ctx.regions} regions, fs.createReadStream, no fsync`, plain.stream!));
  rows.push(vsCat(`ImageWriter, ${ctx.regions} regions, input already in memory, no fsync`, plain.memory!));

  // Size: zero elision against the ideal, the input without its zero pages.
  const zeroFraction = ctx.stats.zeroPages / ctx.stats.pages;
  const ideal = ctx.total * (1 - zeroFraction);
  for (const [name, res] of [['1 region', plain.one!], [`${ctx.regions} regions`, plain.many!]] as const) {
    const size = res.result.summary!.fileSize;
    const r = size / ideal;
    rows.push({
      section: 'image size', measure: `image / input, ${name}`, figure: `${mib(size)} = ${pct(size / ctx.total)}`,
      baseline: `input minus zero pages (${pct(zeroFraction)}): ${pct(1 - zeroFraction)}`, ratio: times(r),
      target: `<= ${TARGETS.sizeOverIdeal.toFixed(2)}x ideal`, result: verdict(r <= TARGETS.sizeOverIdeal),
      value: size, unit: 'B', baselineValue: ideal, ratioValue: r,
      note: `zero chunks ${res.result.summary!.zeroChunks} of ${res.result.summary!.chunks}: elision saved ${pct(1 - size / ctx.total)} of the input`,
    });
  }

  // Peak RSS: the largest of every timed run that streams its input.
  const rss = (runs: { results: Timed[] }): number => Math.max(...runs.results.map((x) => x.peakRss ?? 0));
  const peaks = [
    ['writer peak RSS, 1 region', rss(plain.one!)],
    [`writer peak RSS, ${ctx.regions} regions`, rss(plain.many!)],
    [`writer peak RSS, ${ctx.regions} regions, createReadStream`, rss(plain.stream!)],
    ['writer peak RSS, fsync: true', Math.max(rss(synced.fsync!), rss(synced.fsyncOne!))],
  ] as const;
  for (const [measure, v] of peaks) {
    rows.push({
      section: 'memory', measure, figure: mib(v), baseline: '-', ratio: '-', target: `< ${mib(TARGETS.peakRss)}`,
      result: verdict(v < TARGETS.peakRss), value: v, unit: 'B',
    });
  }
  return {
    rows, image: out.many, smallImage,
    raw: {
      plain: rawRuns(plain),
      synced: rawRuns(synced),
    },
  };
}
