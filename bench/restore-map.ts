/**
 * Map-mode restore (restore/restore.ts) of raw images, against a C program doing the same on
 * the same files in the same run (bench/c/mmap_touch.c):
 *
 * 1. time to restore. SPARSE images (spec section 5.2): one mmap per region whatever its zero
 *    runs. Compact images: one mmap per run of stored chunks and per run of zero chunks (about
 *    7000 runs per GiB of memory-like data). Memory-like images in both layouts and compact
 *    images of random bytes (no zero chunk: one run per region), each at the full size and 1/8.
 * 2. restore + touch every page, against C mapping the image file and touching every page.
 * 3. page-fault costs: first writes to the anonymous zero runs, and to a fresh anonymous region,
 *    with and without MADV_HUGEPAGE.
 * 4. the default, checked map restore (every file-mapped chunk hashed in place before it returns,
 *    issue 14 item 14) against the unchecked mapping (`check: false`) and C mapping the same
 *    file and touching every page.
 *
 * Sections 1-3 measure the mapping itself, so they restore with `check: false`.
 *
 * Standalone: `node build/bench/restore-map.js` (CRIMG_BENCH_RESTORE_MIB sets the size,
 * default 1024). `restoreMapBench(ctx)` gives the rows to `npm run bench`.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage, type Image } from '../index.js';
import { advise, nativeStatus, pageSize, placeRuns, reserve, unmap, view } from '../native-mmap/index.js';
import { RecordScanner, mapPlan, planGeometry, sparsePlan, sparseSpans } from '../restore/_plan.js';
import type { RestoreAdvice, RestoreResult } from '../restore/restore.js';
import { GiB, MiB, median, since, timeInterleaved } from './measure.js';
import { REGIONS, compileC, isMain, runC, runStandalone, writeImage, writeRandomFile, type RestoreBenchContext } from './restore-setup.js';
import { gibps, ms, times, us, verdict, type Row } from './table.js';

/** Targets of issue 4. */
export const RESTORE_MAP_TARGETS = {
  /** Time to restore in map mode: fixed part... */
  fixedSeconds: 1e-3,
  /** ...plus this per region. */
  perRegionSeconds: 5e-6,
  /** restore + touch every page over C's mmap + touch of the image file. */
  touchVsC: 1.15,
} as const;

interface Timed { seconds: number }
interface CResult { mapSeconds: number; touchSeconds: number; pages: number; placements?: number }

const S1 = 'map restore: time to restore';
const S2 = 'map restore: touch every page';
const S3 = 'page faults (first write, anonymous memory)';
const S4 = 'map restore: checked (default) vs unchecked';

/** The runs a map restore of `image` places (one mmap each), per region. */
async function plans(image: Image): Promise<{ plans: Float64Array[]; placements: number }> {
  const table = await image.chunkTable();
  const scan = new RecordScanner(table, planGeometry(image));
  const spans = image.sparse ? sparseSpans(scan, image.regions) : null;
  const list = image.regions.map((r) => (r.isGap ? new Float64Array(0) : spans ? sparsePlan(spans, r) : mapPlan(scan, r)));
  return { plans: list, placements: list.reduce((n, p) => n + p.length / 3, 0) };
}

/** The plan file of bench/c/mmap_touch.c: u64 words, see there. */
async function writePlanFile(path: string, image: Image, list: readonly Float64Array[]): Promise<void> {
  const page = pageSize();
  const words: bigint[] = [BigInt(image.regions.length)];
  image.regions.forEach((r, i) => {
    const p = list[i]!;
    words.push(BigInt(Math.ceil(Number(r.length) / page) * page), BigInt(p.length / 3));
    for (const v of p) words.push(BigInt.asUintN(64, BigInt(v)));
  });
  await writeFile(path, new Uint8Array(BigUint64Array.from(words).buffer));
}

/** Pages of the zero runs of a plan. */
function zeroPagesOf(list: readonly Float64Array[]): number {
  let pages = 0;
  for (const p of list) for (let k = 0; k < p.length; k += 3) if (p[k + 2] === -1) pages += Math.ceil(p[k + 1]! / 4096);
  return pages;
}

/** The kernel's transparent huge page defrag policy, e.g. "madvise", for the notes. */
function thpDefrag(): string {
  try {
    return /\[(\w[\w+]*)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/defrag', 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Reads one byte of every page of every region; returns the sum (so the loads stay). */
function touchAll(result: RestoreResult): number {
  const page = pageSize();
  let sum = 0;
  for (const r of result.regions) {
    if (!r.memory) continue;
    const b = new Uint8Array(r.memory);
    for (let o = 0; o < b.length; o += page) sum += b[o]!;
  }
  return sum;
}

async function timedRestore(image: Image, options: Parameters<Image['restore']>[0] = {}): Promise<Timed> {
  const t0 = process.hrtime.bigint();
  const result = await image.restore({ mode: 'map', check: false, ...options });
  const seconds = since(t0);
  result.release();
  return { seconds };
}

/** First writes to the zero runs of a map restore: seconds and pages. */
async function zeroRunWrites(image: Image, list: readonly Float64Array[], advice?: RestoreAdvice): Promise<{ seconds: number; pages: number }> {
  const page = pageSize();
  const result = await image.restore({ mode: 'map', check: false, ...(advice && { advise: advice }) });
  try {
    let pages = 0;
    const t0 = process.hrtime.bigint();
    result.regions.forEach((r, i) => {
      if (!r.prot.startsWith('rw')) return; // a write to read-only memory is a SIGSEGV
      const p = list[i]!;
      const b = new Uint8Array(r.memory!);
      for (let k = 0; k < p.length; k += 3) {
        if (p[k + 2] !== -1) continue;
        const end = p[k]! + p[k + 1]!;
        for (let o = p[k]!; o < end; o += page) { b[o] = 1; pages++; }
      }
    });
    return { seconds: since(t0), pages };
  } finally {
    result.release();
  }
}

/** First writes to every page of a fresh anonymous region of `bytes`: seconds. */
function freshAnonymousWrites(bytes: number, advice?: RestoreAdvice): Timed {
  const page = pageSize();
  const r = reserve(bytes);
  try {
    placeRuns(r, -1, Float64Array.of(0, bytes, -1), 'rw-');
    if (advice) advise(r.address, bytes, advice);
    const v = view(r, 0, bytes, 'rw-');
    const b = new Uint8Array(v);
    const t0 = process.hrtime.bigint();
    for (let o = 0; o < bytes; o += page) b[o] = 1;
    const seconds = since(t0);
    unmap(v);
    return { seconds };
  } finally {
    unmap(r);
  }
}

export async function restoreMapBench(ctx: RestoreBenchContext): Promise<{ rows: Row[]; raw: Record<string, unknown> }> {
  const status = nativeStatus();
  if (!status.available) {
    const row: Row = { section: S1, measure: 'map restore', figure: `skipped (${status.reason})`, baseline: '-', ratio: '-', target: '-', result: 'skipped' };
    return { rows: [row], raw: { skipped: status.reason } };
  }
  const small = Math.max(64 * MiB, Math.floor(ctx.total / 8 / 4096) * 4096);
  const sizeName = (n: number): string => (n >= GiB ? `${n / GiB} GiB` : `${n / MiB} MiB`);
  const files = {
    big: join(ctx.dir, 'big.img'), small: join(ctx.dir, 'small.img'),
    sparseBig: join(ctx.dir, 'sparse-big.img'), sparseSmall: join(ctx.dir, 'sparse-small.img'),
    randomInput: join(ctx.dir, 'random.bin'), randomBig: join(ctx.dir, 'random-big.img'), randomSmall: join(ctx.dir, 'random-small.img'),
  };
  ctx.log(`map: writing the ${sizeName(ctx.total)} and ${sizeName(small)} images (${REGIONS} regions, no codec)`);
  await writeImage(ctx.input, files.big, ctx.total);
  await writeImage(ctx.input, files.small, small);
  await writeImage(ctx.input, files.sparseBig, ctx.total, undefined, 'sparse');
  await writeImage(ctx.input, files.sparseSmall, small, undefined, 'sparse');
  ctx.log('map: writing images of random bytes (no zero chunk)');
  await writeRandomFile(files.randomInput, ctx.total);
  await writeImage(files.randomInput, files.randomBig, ctx.total);
  await writeImage(files.randomInput, files.randomSmall, small);

  const c = compileC('mmap_touch', ctx.dir);
  const images = {
    big: await openImage(files.big), small: await openImage(files.small),
    sparseBig: await openImage(files.sparseBig), sparseSmall: await openImage(files.sparseSmall),
    randomBig: await openImage(files.randomBig), randomSmall: await openImage(files.randomSmall),
  };
  const rows: Row[] = [];
  const raw: Record<string, unknown> = {};
  try {
    const plan = {
      big: await plans(images.big), small: await plans(images.small),
      sparseBig: await plans(images.sparseBig), sparseSmall: await plans(images.sparseSmall),
      randomBig: await plans(images.randomBig), randomSmall: await plans(images.randomSmall),
    };
    const planFiles = {
      big: join(ctx.dir, 'big.plan'), small: join(ctx.dir, 'small.plan'),
      sparseBig: join(ctx.dir, 'sparse-big.plan'), sparseSmall: join(ctx.dir, 'sparse-small.plan'),
    };
    await writePlanFile(planFiles.big, images.big, plan.big.plans);
    await writePlanFile(planFiles.small, images.small, plan.small.plans);
    await writePlanFile(planFiles.sparseBig, images.sparseBig, plan.sparseBig.plans);
    await writePlanFile(planFiles.sparseSmall, images.sparseSmall, plan.sparseSmall.plans);

    // 1. Time to restore.
    // crimg's contenders interleaved with each other, C's apart: starting a process between two
    // restores disturbs the next one more than the restores disturb each other.
    ctx.log('map: time to restore (15 runs each, interleaved; then C)');
    const t = await timeInterleaved<Timed>({
      sparseBig: () => timedRestore(images.sparseBig),
      sparseSmall: () => timedRestore(images.sparseSmall),
      big: () => timedRestore(images.big),
      small: () => timedRestore(images.small),
      randomBig: () => timedRestore(images.randomBig),
      randomSmall: () => timedRestore(images.randomSmall),
    }, { runs: 15, warmup: 2 });
    if ('binary' in c) {
      Object.assign(t, await timeInterleaved<Timed>({
        cSparseBig: async () => ({ seconds: (await runC<CResult>(c.binary, ['runs', files.sparseBig, planFiles.sparseBig])).mapSeconds }),
        cSparseSmall: async () => ({ seconds: (await runC<CResult>(c.binary, ['runs', files.sparseSmall, planFiles.sparseSmall])).mapSeconds }),
        cBig: async () => ({ seconds: (await runC<CResult>(c.binary, ['runs', files.big, planFiles.big])).mapSeconds }),
        cSmall: async () => ({ seconds: (await runC<CResult>(c.binary, ['runs', files.small, planFiles.small])).mapSeconds }),
      }, { runs: 15, warmup: 2 }));
    }
    const target = RESTORE_MAP_TARGETS.fixedSeconds + REGIONS * RESTORE_MAP_TARGETS.perRegionSeconds;
    const targetText = `< ${ms(target)} (1 ms + ${us(RESTORE_MAP_TARGETS.perRegionSeconds)}/region)`;
    // The target is judged on the layout made for it, SPARSE; compact images (which keep no
    // holes, so their apparent size is 65 % of a sparse one's) are shown beside it as info.
    const restoreRow = (measure: string, key: string, placements: number, cKey: string | undefined, judged: boolean): Row => {
      const s = t[key]!.seconds;
      const base = cKey && t[cKey] ? t[cKey]!.seconds : undefined;
      return {
        section: S1, measure: `${measure}, ${REGIONS} regions, ${placements} mmaps`, figure: ms(s),
        baseline: base === undefined ? '-' : `C same mmaps ${ms(base)}`, ratio: base === undefined ? '-' : times(s / base),
        target: judged ? targetText : 'info', result: judged ? verdict(s < target) : 'info', value: s, unit: 's', ...(base !== undefined && { baselineValue: base, ratioValue: s / base }),
      };
    };
    rows.push(restoreRow(`sparse memory-like ${sizeName(ctx.total)}`, 'sparseBig', plan.sparseBig.placements, 'cSparseBig', true));
    rows.push(restoreRow(`sparse memory-like ${sizeName(small)}`, 'sparseSmall', plan.sparseSmall.placements, 'cSparseSmall', true));
    rows.push(restoreRow(`compact memory-like ${sizeName(ctx.total)}`, 'big', plan.big.placements, 'cBig', false));
    rows.push(restoreRow(`compact memory-like ${sizeName(small)}`, 'small', plan.small.placements, 'cSmall', false));
    rows.push(restoreRow(`compact random ${sizeName(ctx.total)}`, 'randomBig', plan.randomBig.placements, undefined, false));
    rows.push(restoreRow(`compact random ${sizeName(small)}`, 'randomSmall', plan.randomSmall.placements, undefined, false));
    const perPlacement = (t.big!.seconds - t.small!.seconds) / (plan.big.placements - plan.small.placements);
    const cPerPlacement = t.cBig && t.cSmall ? (t.cBig.seconds - t.cSmall.seconds) / (plan.big.placements - plan.small.placements) : undefined;
    rows.push({
      section: S1, measure: 'cost per run (compact memory-like, big - small)', figure: us(perPlacement),
      baseline: cPerPlacement === undefined ? '-' : `C ${us(cPerPlacement)}`, ratio: cPerPlacement === undefined ? '-' : times(perPlacement / cPerPlacement),
      target: 'info', result: 'info', value: perPlacement, unit: 's',
      note: 'a compact image costs one mmap per run of stored or zero chunks: its time grows with runs, not bytes (see the random images, one run per region); a sparse image costs one per region',
    });
    rows.push({
      section: S1, measure: `growth ${sizeName(ctx.total)} / ${sizeName(small)}: sparse, compact memory-like, compact random`,
      figure: `${times(t.sparseBig!.seconds / t.sparseSmall!.seconds)}, ${times(t.big!.seconds / t.small!.seconds)}, ${times(t.randomBig!.seconds / t.randomSmall!.seconds)}`,
      baseline: '-', ratio: '-', target: 'info', result: 'info',
    });
    // What a restoring process pays once: open (footer, header, validation, index) and the
    // first restore, which loads the chunk table (checksum) and checks the sparse geometry.
    ctx.log('map: open + first restore of the sparse images (9 runs each, interleaved)');
    const openRestore = (path: string) => async (): Promise<Timed> => {
      const t0 = process.hrtime.bigint();
      const image = await openImage(path);
      const result = await image.restore({ mode: 'map', check: false });
      const seconds = since(t0);
      result.release();
      await image.close();
      return { seconds };
    };
    const first = await timeInterleaved<Timed>({ big: openRestore(files.sparseBig), small: openRestore(files.sparseSmall) }, { runs: 9, warmup: 2 });
    rows.push({
      section: S1, measure: `open + first restore, sparse ${sizeName(ctx.total)} and ${sizeName(small)}`, figure: `${ms(first.big!.seconds)}, ${ms(first.small!.seconds)}`,
      baseline: '-', ratio: '-', target: 'info', result: 'info',
      note: 'once per opened image: reading and hashing the chunk table and checking the span of every region from it (both grow with the chunk count); later restores reuse them',
    });
    raw.firstRestore = { big: first.big!.samples, small: first.small!.samples };
    raw.restore = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.samples]));
    raw.placements = Object.fromEntries(Object.entries(plan).map(([k, v]) => [k, v.placements]));

    // 2. Restore + touch every page: the sparse image against C mapping that file whole (the
    // target), the compact one against C making the same mmaps (info).
    ctx.log('map: restore + touch every page vs C (7 runs each, interleaved)');
    const restoreTouch = (image: Image) => async (): Promise<Timed> => {
      const t0 = process.hrtime.bigint();
      const result = await image.restore({ mode: 'map', check: false });
      touchAll(result);
      const seconds = since(t0);
      result.release();
      return { seconds };
    };
    const touch: Record<string, () => Promise<Timed & { pages?: number }>> = {
      crimgSparse: restoreTouch(images.sparseBig),
      crimg: restoreTouch(images.big),
    };
    if ('binary' in c) {
      touch.cWhole = async () => {
        const r = await runC<CResult>(c.binary, ['whole', files.sparseBig]);
        return { seconds: r.mapSeconds + r.touchSeconds, pages: r.pages };
      };
      touch.cRuns = async () => {
        const r = await runC<CResult>(c.binary, ['runs', files.big, planFiles.big, 'touch']);
        return { seconds: r.mapSeconds + r.touchSeconds, pages: r.pages };
      };
    }
    const tt = await timeInterleaved(touch, { runs: 7, warmup: 1 });
    const pages = images.big.regions.reduce((n, r) => n + Math.ceil(Number(r.length) / pageSize()), 0);
    const crimg = tt.crimg!.seconds;
    const crimgSparse = tt.crimgSparse!.seconds;
    if ('binary' in c) {
      const whole = tt.cWhole!.seconds;
      const runs = tt.cRuns!.seconds;
      rows.push({
        section: S2, measure: `crimg map + touch ${pages} pages, sparse (${sizeName(ctx.total)})`, figure: `${ms(crimgSparse)}, ${gibps(ctx.total, crimgSparse)}`,
        baseline: `C mmap+touch the image file (${tt.cWhole!.result.pages} pages) ${ms(whole)}`, ratio: times(crimgSparse / whole),
        target: `<= ${times(RESTORE_MAP_TARGETS.touchVsC)}`, result: verdict(crimgSparse / whole <= RESTORE_MAP_TARGETS.touchVsC),
        value: crimgSparse, unit: 's', baselineValue: whole, ratioValue: crimgSparse / whole,
        note: 'one file mapping per region: every page, data or hole, faults from the page cache with fault-around (16 pages at a time)',
      });
      rows.push({
        section: S2, measure: 'crimg map + touch, compact, vs C making the same mmaps', figure: ms(crimg),
        baseline: `C same mmaps + touch ${ms(runs)}`, ratio: times(crimg / runs),
        target: 'info', result: 'info', value: crimg, unit: 's', baselineValue: runs, ratioValue: crimg / runs,
        note: `compact vs the sparse C baseline: ${times(crimg / whole)}; its ${zeroPagesOf(plan.big.plans)} zero-run pages are anonymous and fault one by one`,
      });
    } else {
      rows.push({ section: S2, measure: `crimg map + touch ${pages} pages`, figure: ms(crimgSparse), baseline: `C skipped (${c.skipped})`, ratio: '-', target: 'info', result: 'skipped' });
    }
    rows.push({
      section: S2, measure: 'touch cost per page (crimg, after restore): sparse, compact', figure: `${us((crimgSparse - t.sparseBig!.seconds) / pages)}, ${us((crimg - t.big!.seconds) / pages)}`,
      baseline: '-', ratio: '-', target: 'info', result: 'info', note: 'read faults: file pages of the page cache (with fault-around) and the zero page for zero runs',
    });
    raw.touch = Object.fromEntries(Object.entries(tt).map(([k, v]) => [k, v.samples]));

    // 3. Page faults.
    ctx.log('map: first writes to anonymous memory, with and without hugepage advice');
    const zero = await timeInterleaved({
      plain: () => zeroRunWrites(images.big, plan.big.plans),
      hugepage: () => zeroRunWrites(images.big, plan.big.plans, 'hugepage'),
    }, { runs: 5, warmup: 1 });
    const zeroPages = zero.plain!.result.pages;
    const zp = zero.plain!.seconds / zeroPages;
    const zh = zero.hugepage!.seconds / zeroPages;
    rows.push({
      section: S3, measure: `zero runs of a map restore (${zeroPages} pages), per 4 KiB page`, figure: `hugepage ${us(zh)}`,
      baseline: `no advice ${us(zp)}`, ratio: times(zp / zh), target: 'info', result: 'info',
      note: 'zero runs of memory-like data are mostly shorter than a 2 MiB huge page, so the advice rarely applies',
    });
    const anon = Math.min(ctx.total, GiB);
    const fresh = await timeInterleaved({
      plain: async () => freshAnonymousWrites(anon),
      hugepage: async () => freshAnonymousWrites(anon, 'hugepage'),
    }, { runs: 5, warmup: 1 });
    rows.push({
      section: S3, measure: `fresh anonymous ${sizeName(anon)} (copy mode's memory)`, figure: `hugepage ${gibps(anon, fresh.hugepage!.seconds)}`,
      baseline: `no advice ${gibps(anon, fresh.plain!.seconds)}`, ratio: times(fresh.plain!.seconds / fresh.hugepage!.seconds), target: 'info', result: 'info',
      note: `per 4 KiB page: ${us(fresh.plain!.seconds / (anon / 4096))} without advice, ${us(fresh.hugepage!.seconds / (anon / 4096))} with hugepage; THP defrag policy "${thpDefrag()}" (madvise: huge page faults of advised memory compact synchronously)`,
    });
    raw.medianRestoreSeconds = median(t.big!.samples);

    // 4. The default, checked map restore.
    ctx.log('map: checked (default) vs unchecked restore (9 runs each, interleaved)');
    const ck = await timeInterleaved<Timed>({
      checkedSparse: () => timedRestore(images.sparseBig, { check: true }),
      uncheckedSparse: () => timedRestore(images.sparseBig),
      checkedCompact: () => timedRestore(images.big, { check: true }),
      uncheckedCompact: () => timedRestore(images.big),
      checkedRandom: () => timedRestore(images.randomBig, { check: true }),
      uncheckedRandom: () => timedRestore(images.randomBig),
    }, { runs: 9, warmup: 1 });
    const storedBytes = async (image: Image): Promise<number> => {
      const table = await image.chunkTable();
      let n = 0;
      for (const r of image.regions) for (let j = 0; j < r.chunkCount; j++) n += table.get(r.firstChunk + j, image.plainLength(r, j)).storedLength;
      return n;
    };
    const checkedRow = (name: string, checked: string, unchecked: string, bytes: number, note: string): Row => {
      const c4 = ck[checked]!.seconds;
      const u4 = ck[unchecked]!.seconds;
      return {
        section: S4, measure: `checked map (default), ${name}`, figure: `${ms(c4)}, ${gibps(bytes, c4)} of stored chunks`,
        baseline: `unchecked map (check: false) ${ms(u4)}`, ratio: times(c4 / u4), target: 'info', result: 'info',
        value: c4, unit: 's', baselineValue: u4, ratioValue: c4 / u4, note,
      };
    };
    rows.push(checkedRow(`sparse memory-like ${sizeName(ctx.total)}`, 'checkedSparse', 'uncheckedSparse', await storedBytes(images.sparseBig),
      'reads every page of each span (zero chunks included) through the mapping and hashes it (XXH64, native); the unchecked mapping reads nothing'));
    rows.push(checkedRow(`compact memory-like ${sizeName(ctx.total)}`, 'checkedCompact', 'uncheckedCompact', await storedBytes(images.big),
      'reads and hashes every stored chunk; zero runs are anonymous memory and are not read'));
    rows.push(checkedRow(`compact random ${sizeName(ctx.total)}`, 'checkedRandom', 'uncheckedRandom', await storedBytes(images.randomBig), 'no zero chunk: every page is read and hashed'));
    if ('binary' in c) {
      const whole = tt.cWhole!.seconds;
      const runs = tt.cRuns!.seconds;
      rows.push({
        section: S4, measure: `checked map (default), sparse ${sizeName(ctx.total)}, vs C mmap + touch every page`, figure: ms(ck.checkedSparse!.seconds),
        baseline: `C mmap+touch the image file ${ms(whole)}`, ratio: times(ck.checkedSparse!.seconds / whole), target: 'info', result: 'info',
        value: ck.checkedSparse!.seconds, unit: 's', baselineValue: whole, ratioValue: ck.checkedSparse!.seconds / whole,
        note: `unchecked map + touch every page: ${ms(crimgSparse)} (${times(crimgSparse / whole)})`,
      });
      rows.push({
        section: S4, measure: `checked map (default), compact ${sizeName(ctx.total)}, vs C same mmaps + touch`, figure: ms(ck.checkedCompact!.seconds),
        baseline: `C same mmaps + touch ${ms(runs)}`, ratio: times(ck.checkedCompact!.seconds / runs), target: 'info', result: 'info',
        value: ck.checkedCompact!.seconds, unit: 's', baselineValue: runs, ratioValue: ck.checkedCompact!.seconds / runs,
        note: `unchecked map + touch every page: ${ms(crimg)} (${times(crimg / runs)})`,
      });
    }
    raw.checked = Object.fromEntries(Object.entries(ck).map(([k, v]) => [k, v.samples]));
    raw.pageFaults = { zeroRuns: { pages: zeroPages, plain: zero.plain!.samples, hugepage: zero.hugepage!.samples }, fresh: { bytes: anon, plain: fresh.plain!.samples, hugepage: fresh.hugepage!.samples } };
  } finally {
    for (const image of Object.values(images)) await image.close();
  }
  return { rows, raw };
}

if (isMain(import.meta.url)) {
  await runStandalone('restore-map', (ctx) => [
    `crimg restore, map mode: ${ctx.total / MiB} MiB memory-like input (seed 1), ${REGIONS} regions; node ${process.version}`,
    'medians after warm-up; ratio = crimg time / baseline time (lower is better); C timed inside the process (no exec)\n',
  ].join('\n'), restoreMapBench);
}
