/**
 * Reader figures: Image.read in 8 MiB and in random 4 KiB reads, Image.verify, and
 * openImage + regions, each against plain fs reads of the same sizes. Everything is in the page
 * cache (the files were just written): these are CPU costs, not disk speed.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { openImage, type Image } from '../index.js';
import { TARGETS, type BenchContext } from './context.js';
import { regionAtOffset, regionLayout, type BenchRegion } from './layout.js';
import { PAGE_SIZE } from './memory-like.js';
import { MiB, quantile, since, timeInterleaved } from './measure.js';
import { gibps, ms, times, us, verdict, type Row } from './table.js';

const SEQ_READ = 8 * MiB;
const RANDOM_READS = 20000;
/** open+regions repetitions per timed run (one open takes well under a millisecond). */
const OPENS_PER_RUN = 50;

interface Timed { seconds: number; latencies?: number[] }

/** `count` random pages of the input: [file offset, address], deterministic. */
function randomPages(layout: readonly BenchRegion[], total: number, count: number, seed = 11): [number, bigint][] {
  let x = seed;
  const pages = Math.floor(total / PAGE_SIZE);
  const out: [number, bigint][] = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const off = ((x >>> 0) % pages) * PAGE_SIZE;
    const r = regionAtOffset(layout, off);
    out.push([off, r.address + BigInt(off - r.fileOffset)]);
  }
  return out;
}

async function preadFresh(fh: FileHandle, length: number, offset: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) done += (await fh.read(buf, done, length - done, offset + done)).bytesRead;
  return buf;
}

/** Compares the image with the input at a few places: a wrong fast reader is worth nothing. */
async function checkSame(image: Image, input: FileHandle, layout: readonly BenchRegion[], total: number): Promise<void> {
  const places: [number, bigint, number][] = randomPages(layout, total, 200, 99).map(([off, addr]) => [off, addr, PAGE_SIZE]);
  for (const r of [layout[0]!, layout[layout.length - 1]!]) places.push([r.fileOffset, r.address, Math.min(r.length, SEQ_READ)]);
  for (const [off, addr, len] of places) {
    const a = await image.read(addr, len);
    const b = await preadFresh(input, len, off);
    if (!a.equals(b)) throw new Error(`image and input differ at address 0x${addr.toString(16)} (input offset ${off})`);
  }
}

export async function readSection(ctx: BenchContext, imagePath: string, smallImagePath: string): Promise<{ rows: Row[]; raw: Record<string, unknown> }> {
  const layout = regionLayout(ctx.total, ctx.regions);
  const input = await open(ctx.input, 'r');
  const imageFile = await open(imagePath, 'r');
  const image = await openImage(imagePath);
  const rows: Row[] = [];
  try {
    await checkSame(image, input, layout, ctx.total);

    ctx.log('read: 8 MiB sequential reads');
    const seq = await timeInterleaved<Timed>({
      crimg: async () => {
        const t0 = process.hrtime.bigint();
        for (const r of layout) for (let o = 0; o < r.length; o += SEQ_READ) await image.read(r.address + BigInt(o), Math.min(SEQ_READ, r.length - o));
        return { seconds: since(t0) };
      },
      fs: async () => {
        const t0 = process.hrtime.bigint();
        for (const r of layout) for (let o = 0; o < r.length; o += SEQ_READ) await preadFresh(input, Math.min(SEQ_READ, r.length - o), r.fileOffset + o);
        return { seconds: since(t0) };
      },
    });
    const sr = seq.fs!.seconds / seq.crimg!.seconds;
    rows.push({
      section: 'read', measure: 'read(), every region in 8 MiB reads', figure: gibps(ctx.total, seq.crimg!.seconds),
      baseline: `fs read ${gibps(ctx.total, seq.fs!.seconds)}`, ratio: times(sr), target: `>= ${TARGETS.seqReadVsFs.toFixed(2)}x fs`,
      result: verdict(sr >= TARGETS.seqReadVsFs), value: ctx.total / seq.crimg!.seconds, unit: 'B/s', baselineValue: ctx.total / seq.fs!.seconds, ratioValue: sr,
    });

    ctx.log(`read: ${RANDOM_READS} random 4 KiB reads`);
    const pages = randomPages(layout, ctx.total, RANDOM_READS);
    const timedLoop = async (one: (off: number, addr: bigint) => Promise<unknown>): Promise<Timed> => {
      const latencies: number[] = new Array(pages.length);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < pages.length; i++) {
        const t = process.hrtime.bigint();
        await one(pages[i]![0], pages[i]![1]);
        latencies[i] = since(t);
      }
      return { seconds: since(t0), latencies };
    };
    const rnd = await timeInterleaved<Timed>({
      crimg: () => timedLoop((_off, addr) => image.read(addr, PAGE_SIZE)),
      fs: () => timedLoop((off) => preadFresh(input, PAGE_SIZE, off)),
    });
    const ops = (s: number): number => RANDOM_READS / s;
    const rr = rnd.fs!.seconds / rnd.crimg!.seconds;
    const lat = (t: Timed, q: number): number => quantile(t.latencies!, q);
    const c = rnd.crimg!.result;
    const f = rnd.fs!.result;
    rows.push({
      section: 'read', measure: 'read(), random 4 KiB (ops/s)', figure: `${ops(rnd.crimg!.seconds).toFixed(0)} ops/s`,
      baseline: `fs pread ${ops(rnd.fs!.seconds).toFixed(0)} ops/s`, ratio: times(rr), target: `>= ${TARGETS.randomReadVsFs.toFixed(2)}x fs`,
      result: verdict(rr >= TARGETS.randomReadVsFs), value: ops(rnd.crimg!.seconds), unit: 'ops/s', baselineValue: ops(rnd.fs!.seconds), ratioValue: rr,
    });
    rows.push({
      section: 'read', measure: 'read(), random 4 KiB latency p50 / p99', figure: `${us(lat(c, 0.5))} / ${us(lat(c, 0.99))}`,
      baseline: `fs ${us(lat(f, 0.5))} / ${us(lat(f, 0.99))}`, ratio: times(lat(f, 0.5) / lat(c, 0.5)), target: 'info', result: 'info',
      value: lat(c, 0.5), unit: 's', baselineValue: lat(f, 0.5), ratioValue: lat(f, 0.5) / lat(c, 0.5),
    });

    ctx.log('read: verify()');
    const imageSize = image.fileSize;
    const ver = await timeInterleaved<Timed>({
      crimg: async () => {
        const t0 = process.hrtime.bigint();
        const report = await image.verify();
        const seconds = since(t0);
        if (!report.ok) throw new Error(`verify() found errors in a fresh image: ${report.errors[0]?.message}`);
        return { seconds };
      },
      fs: async () => {
        const t0 = process.hrtime.bigint();
        for (let o = 0; o < imageSize; o += SEQ_READ) await preadFresh(imageFile, Math.min(SEQ_READ, imageSize - o), o);
        return { seconds: since(t0) };
      },
    });
    const vr = ver.fs!.seconds / ver.crimg!.seconds;
    rows.push({
      section: 'read', measure: 'verify(), image bytes per second', figure: `${gibps(imageSize, ver.crimg!.seconds)} (${ms(ver.crimg!.seconds)})`,
      baseline: `fs read of the image ${gibps(imageSize, ver.fs!.seconds)}`, ratio: times(vr), target: `>= ${TARGETS.verifyVsFs.toFixed(2)}x fs`,
      result: verdict(vr >= TARGETS.verifyVsFs), value: imageSize / ver.crimg!.seconds, unit: 'B/s', baselineValue: imageSize / ver.fs!.seconds, ratioValue: vr,
    });

    ctx.log('read: openImage + regions, large vs small image');
    const openLoop = (path: string) => async (): Promise<Timed> => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < OPENS_PER_RUN; i++) {
        const img = await openImage(path);
        if (img.regions.length !== ctx.regions) throw new Error(`expected ${ctx.regions} regions in ${path}, got ${img.regions.length}`);
        await img.close();
      }
      return { seconds: since(t0) / OPENS_PER_RUN };
    };
    const ins = await timeInterleaved<Timed>({ large: openLoop(imagePath), small: openLoop(smallImagePath) });
    const g = ins.large!.seconds / ins.small!.seconds;
    rows.push({
      section: 'inspect', measure: `openImage + regions, ${(ctx.total / MiB).toFixed(0)} MiB image`, figure: ms(ins.large!.seconds),
      baseline: `${(ctx.small / MiB).toFixed(0)} MiB image ${ms(ins.small!.seconds)}`, ratio: times(g), target: `<= ${TARGETS.inspectGrowth.toFixed(2)}x`,
      result: verdict(g <= TARGETS.inspectGrowth), value: ins.large!.seconds, unit: 's', baselineValue: ins.small!.seconds, ratioValue: g,
    });
    const f0 = image.footer;
    const indexBytes = Number(f0.chunkTableLength + f0.regionSectionLength) + 96;
    rows.push({
      section: 'inspect', measure: 'index size (chunk table + regions + footer)', figure: `${(indexBytes / 1024).toFixed(1)} KiB`,
      baseline: `${image.chunkCount} chunks of ${image.chunkSize / 1024} KiB`, ratio: `${((indexBytes / ctx.total) * 100).toFixed(3)} %`, target: 'info', result: 'info',
      value: indexBytes, unit: 'B',
    });
    return {
      rows,
      raw: {
        seq: { crimg: seq.crimg!.samples, fs: seq.fs!.samples },
        random: { crimg: rnd.crimg!.samples, fs: rnd.fs!.samples, crimgP50: lat(c, 0.5), crimgP99: lat(c, 0.99), fsP50: lat(f, 0.5), fsP99: lat(f, 0.99) },
        verify: { crimg: ver.crimg!.samples, fs: ver.fs!.samples },
        inspect: { large: ins.large!.samples, small: ins.small!.samples },
      },
    };
  } finally {
    await image.close();
    await imageFile.close();
    await input.close();
  }
}
