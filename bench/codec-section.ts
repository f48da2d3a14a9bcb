/**
 * Codec figures (spec/FORMAT.md sections 6 and 7), every contender in the same run and
 * interleaved run by run, so a slow spell of the shared machine hits them all alike:
 * - ImageWriter `deflate:1` write against `pigz -1` (one thread per core) and `gzip -1`; image
 *   size against pigz -1's output. The command-line tools at level 1 as information.
 * - Full decode of the deflate:1 image (read() of every region; verify()) against `pigz -d`,
 *   `zstd -d` (of a `zstd -1` file of the same input) and `gzip -d`.
 * - Encryption: aes-256-gcm and chacha20-poly1305 on top of deflate:1 and of no codec, against
 *   the same image unencrypted; the node engine's raw AEAD speed against `openssl speed`.
 * pigz is missing on fresh machines: as root the section installs it (tools.ts ensureTool).
 * CRIMG_BENCH_CPU_PROF=DIR also writes `node --cpu-prof` profiles of one deflate:1 write and
 * one full decode (main thread and workers) into DIR.
 */
import { randomFillSync } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chunkNonce } from '../codec/aad.js';
import { seal, type AeadSuite } from '../codec/aead.js';
import { freshOutput, tmp, type BenchContext } from './context.js';
import { runDecodeJob, type DecodeJob, type DecodeResult } from './decode-job.js';
import { MiB, median, since, timeInterleaved, type Runs, type ThreadCpu } from './measure.js';
import { mib, mibps, pct, times, verdict, type Row } from './table.js';
import { COMPRESSION_TOOLS, TOOL_THREADS, ensureTool, timeShell, type CompressionTool } from './tools.js';
import { runWriteJob, type WriteJob, type WriteResult } from './write-job.js';

/** Targets of the codecs issue. */
export const CODEC_TARGETS = {
  /** deflate:1 image write throughput over `pigz -1` on every core. */
  writeVsPigz: 1.5,
  /** deflate:1 image size over pigz -1's output: no larger. */
  sizeVsPigz: 1.0,
  /** Full decode (plain bytes per second) over `pigz -d`. */
  decodeVsPigz: 1.5,
  /** aes-256-gcm + deflate:1 write time over deflate:1 alone: at most 15 % more. */
  aesOverhead: 1.15,
} as const;

/** Bytes per message of the raw AEAD figure: the default chunk size, and openssl's largest block. */
const AEAD_MESSAGE = 16 * 1024;
/** Bytes sealed per timed AEAD run. */
const AEAD_BYTES = 256 * MiB;

type Timed = { seconds: number; cpuSeconds: number; threads?: ThreadCpu[] } & Partial<WriteResult>;

const cpuOf = (runs: { results: { cpuSeconds: number }[] }): number => median(runs.results.map((x) => x.cpuSeconds));
const samples = (runs: Runs<unknown>): string => runs.samples.map((x) => x.toFixed(2)).join(' ');

/** "main 0.9 s, threads 2.3 2.2 0.1 s": per-thread CPU of the median run (threads above 0.05 s). */
function threadText(t: readonly ThreadCpu[] | undefined): string {
  if (!t || t.length === 0) return '';
  const main = t.find((x) => x.main)?.seconds ?? 0;
  const others = t.filter((x) => !x.main && x.seconds >= 0.05).map((x) => x.seconds.toFixed(2));
  return `main ${main.toFixed(2)} s, other threads ${others.join(' ') || '-'} s`;
}

/**
 * `openssl speed -evp SUITE` on {@link AEAD_MESSAGE}-byte blocks: bytes per second of one
 * thread, from the 16384-byte column, or the reason it could not be measured.
 */
export function opensslSpeed(suite: AeadSuite, seconds = 1): number | string {
  const r = spawnSync('openssl', ['speed', '-seconds', String(seconds), '-bytes', String(AEAD_MESSAGE), '-evp', suite], { encoding: 'utf8' });
  if (r.status !== 0) return `openssl speed failed: ${(r.stderr || String(r.error ?? '')).trim().split('\n').pop() ?? ''}`;
  const lines = r.stdout.trim().split('\n');
  const head = lines.findIndex((l) => /^type\s/.test(l));
  if (head < 0 || head + 1 >= lines.length) return 'openssl speed: no result table';
  // "type  16 bytes  64 bytes ... 16384 bytes" then "AES-256-GCM  1234.56k ...", in 1000s of bytes per second.
  const sizes = [...lines[head]!.matchAll(/(\d+) bytes/g)].map((m) => Number(m[1]));
  const values = (lines[head + 1]!.match(/[\d.]+k/g) ?? []).map((v) => Number(v.slice(0, -1)) * 1000);
  const i = sizes.indexOf(AEAD_MESSAGE);
  if (i < 0 || values.length !== sizes.length) return `openssl speed: no ${AEAD_MESSAGE}-byte column`;
  return values[i]!;
}

/** The node engine sealing {@link AEAD_BYTES} in {@link AEAD_MESSAGE}-byte messages on this thread. */
function nodeSeal(suite: AeadSuite, src: Uint8Array): { seconds: number; cpuSeconds: number } {
  const key = new Uint8Array(32).fill(7);
  const aad = new Uint8Array(76);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < AEAD_BYTES / AEAD_MESSAGE; i++) {
    const off = (i * AEAD_MESSAGE) % src.length;
    sink ^= seal(suite, key, chunkNonce(i), aad, src.subarray(off, off + AEAD_MESSAGE), 'node')[0]!;
  }
  const seconds = since(t0);
  const cpu = process.cpuUsage(cpu0);
  if (sink === 256) throw new Error('unreachable'); // keeps the results alive
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

export async function codecSection(ctx: BenchContext): Promise<{ rows: Row[]; raw: Record<string, unknown> }> {
  const S = 'codecs: deflate:1 and AEAD';
  const rows: Row[] = [];
  const raw: Record<string, unknown> = {};
  const total = ctx.total;

  // Baseline tools: install the missing ones when we may (pigz is absent on fresh machines).
  const tools: CompressionTool[] = [];
  const missing = new Map<string, string>();
  for (const t of COMPRESSION_TOOLS) {
    const why = ensureTool(t.binary, t.pkg, ctx.log);
    if (why === null) tools.push(t); else missing.set(t.binary, why);
  }
  const opensslWhy = ensureTool('openssl', 'openssl', ctx.log);
  const toolOut = (t: CompressionTool): string => tmp(ctx, `${t.binary}.out`);
  const tool = (binary: string): CompressionTool | undefined => tools.find((t) => t.binary === binary);
  const skipped = (measure: string, why: string): Row => ({ section: S, measure, figure: `skipped (${why})`, baseline: '-', ratio: '-', target: 'info', result: 'skipped' });

  // 1. Writes, all interleaved: images of every codec/cipher pair, and the tools.
  const img = {
    deflate: tmp(ctx, 'deflate.img'), deflateAes: tmp(ctx, 'deflate-aes.img'), deflateChacha: tmp(ctx, 'deflate-chacha.img'),
    none: tmp(ctx, 'none.img'), noneAes: tmp(ctx, 'none-aes.img'), noneChacha: tmp(ctx, 'none-chacha.img'),
  };
  const base: WriteJob = { input: ctx.input, output: '', totalBytes: total, regions: ctx.regions, fsync: false };
  const jobs: Record<keyof typeof img, WriteJob> = {
    deflate: { ...base, output: img.deflate, compress: 'deflate:1' },
    deflateAes: { ...base, output: img.deflateAes, compress: 'deflate:1', encrypt: 'aes-256-gcm' },
    deflateChacha: { ...base, output: img.deflateChacha, compress: 'deflate:1', encrypt: 'chacha20-poly1305' },
    none: { ...base, output: img.none },
    noneAes: { ...base, output: img.noneAes, encrypt: 'aes-256-gcm' },
    noneChacha: { ...base, output: img.noneChacha, encrypt: 'chacha20-poly1305' },
  };
  const outputs: Record<string, string> = { ...img };
  const contenders: Record<string, () => Promise<Timed>> = {};
  for (const [name, job] of Object.entries(jobs)) contenders[name] = () => runWriteJob(job);
  for (const t of tools) {
    outputs[t.binary] = toolOut(t);
    contenders[t.binary] = () => timeShell(t.compress, [ctx.input, toolOut(t)]);
  }
  ctx.log(`codecs: writes (${Object.keys(contenders).join(', ')}), interleaved`);
  const w = await timeInterleaved<Timed>(contenders, { prepare: (name) => freshOutput(outputs[name]!) });
  raw.write = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, {
    seconds: v.samples, cpuSeconds: v.results.map((x) => x.cpuSeconds), threads: v.result.threads ?? null,
    fileSize: v.result.summary?.fileSize ?? null, peakRss: v.results.map((x) => x.peakRss ?? null),
  }]));
  const sizes: Record<string, number> = {};
  for (const name of Object.keys(w)) sizes[name] = (await stat(outputs[name]!)).size;

  const d = w.deflate!;
  const dNote = (extra = ''): string => `CPU ${cpuOf(d).toFixed(2)} s (${threadText(d.result.threads)}); wall samples ${samples(d)} s${extra}`;
  const pigz = w.pigz;
  if (pigz) {
    const r = pigz.seconds / d.seconds;
    rows.push({
      section: S, measure: `deflate:1 write, ${ctx.regions} regions (file ranges)`, figure: mibps(total, d.seconds),
      baseline: `${tool('pigz')!.name} ${mibps(total, pigz.seconds)}`, ratio: times(r),
      target: `>= ${CODEC_TARGETS.writeVsPigz.toFixed(2)}x pigz`, result: verdict(r >= CODEC_TARGETS.writeVsPigz),
      value: total / d.seconds, unit: 'B/s', baselineValue: total / pigz.seconds, ratioValue: r,
      note: dNote(`; pigz CPU ${cpuOf(pigz).toFixed(2)} s, wall ${samples(pigz)} s; CPU ratio ${times(cpuOf(pigz) / cpuOf(d))}`),
    });
    const s = sizes.deflate! / sizes.pigz!;
    rows.push({
      section: S, measure: 'deflate:1 image size', figure: `${mib(sizes.deflate!)} = ${pct(sizes.deflate! / total)}`,
      baseline: `pigz -1 ${mib(sizes.pigz!)} = ${pct(sizes.pigz! / total)}`, ratio: times(s),
      target: `<= ${CODEC_TARGETS.sizeVsPigz.toFixed(2)}x pigz`, result: verdict(s <= CODEC_TARGETS.sizeVsPigz),
      value: sizes.deflate!, unit: 'B', baselineValue: sizes.pigz!, ratioValue: s,
      note: `${sizes.deflate! - sizes.pigz!} bytes more than pigz; stored chunk bytes ${d.result.summary!.storedBytes}, index and header ${sizes.deflate! - d.result.summary!.storedBytes}`,
    });
  } else {
    rows.push(skipped('deflate:1 write vs pigz -1', `pigz ${missing.get('pigz') ?? 'missing'}`));
  }
  const gzip = w.gzip;
  if (gzip) {
    const r = gzip.seconds / d.seconds;
    rows.push({
      section: S, measure: 'deflate:1 write vs gzip -1', figure: mibps(total, d.seconds), baseline: `gzip -1 ${mibps(total, gzip.seconds)}`,
      ratio: times(r), target: 'info', result: 'info', value: total / d.seconds, unit: 'B/s', baselineValue: total / gzip.seconds, ratioValue: r,
      note: `gzip CPU ${cpuOf(gzip).toFixed(2)} s, size ${pct(sizes.gzip! / total)}`,
    });
  }

  // 2. Decodes: an untimed correctness pass first (every byte against the input), then timed.
  const check = { input: ctx.input, totalBytes: total, regions: ctx.regions };
  ctx.log('codecs: checking the deflate:1 and aes-256-gcm images against the input');
  await runDecodeJob({ image: img.deflate, mode: 'read', checkAgainst: check });
  await runDecodeJob({ image: img.deflateAes, mode: 'read', encrypted: true, checkAgainst: check });
  const decoders: Record<string, () => Promise<Timed>> = {
    read: () => runDecodeJob({ image: img.deflate, mode: 'read' }),
    verify: () => runDecodeJob({ image: img.deflate, mode: 'verify' }),
    readAes: () => runDecodeJob({ image: img.deflateAes, mode: 'read', encrypted: true }),
  };
  for (const t of tools) decoders[t.binary] = () => timeShell(t.decompress, [ctx.input, toolOut(t)]);
  ctx.log(`codecs: decodes (${Object.keys(decoders).join(', ')}), interleaved`);
  const r = await timeInterleaved<Timed>(decoders);
  raw.decode = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { seconds: v.samples, cpuSeconds: v.results.map((x) => x.cpuSeconds), threads: v.result.threads ?? null }]));
  const decodeRow = (name: 'read' | 'verify', measure: string, baseline: string, targeted: boolean): void => {
    const ours = r[name]!;
    const b = r[baseline];
    if (!b) { rows.push(skipped(`${measure} vs ${baseline} -d`, `${baseline} ${missing.get(baseline) ?? 'missing'}`)); return; }
    const ratio = b.seconds / ours.seconds;
    rows.push({
      section: S, measure: `${measure} vs ${baseline} -d`, figure: mibps(total, ours.seconds), baseline: `${baseline} -d ${mibps(total, b.seconds)}`,
      ratio: times(ratio), target: targeted ? `>= ${CODEC_TARGETS.decodeVsPigz.toFixed(2)}x pigz -d` : 'info',
      result: targeted ? verdict(ratio >= CODEC_TARGETS.decodeVsPigz) : 'info',
      value: total / ours.seconds, unit: 'B/s', baselineValue: total / b.seconds, ratioValue: ratio,
      note: `CPU ${cpuOf(ours).toFixed(2)} s (${threadText(ours.result.threads)}), ${baseline} -d CPU ${cpuOf(b).toFixed(2)} s; wall ${samples(ours)} s vs ${samples(b)} s`,
    });
  };
  decodeRow('read', 'full decode: read() every region', 'pigz', true);
  decodeRow('verify', 'full decode: verify()', 'pigz', true);
  decodeRow('read', 'full decode: read() every region', 'zstd', false);
  decodeRow('read', 'full decode: read() every region', 'gzip', false);
  {
    const a = r.readAes!;
    const ratio = r.read!.seconds / a.seconds;
    rows.push({
      section: S, measure: 'full decode, deflate:1 + aes-256-gcm', figure: mibps(total, a.seconds), baseline: `deflate:1 ${mibps(total, r.read!.seconds)}`,
      ratio: times(ratio), target: 'info', result: 'info', ratioValue: ratio,
      note: `CPU ${cpuOf(a).toFixed(2)} s vs ${cpuOf(r.read!).toFixed(2)} s`,
    });
  }

  // 3. Encryption overhead on writes (same interleaved runs as above).
  const overhead = (enc: keyof typeof img, plain: keyof typeof img, measure: string, targeted: boolean): void => {
    const e = w[enc]!;
    const p = w[plain]!;
    const ratio = p.seconds / e.seconds;
    const added = e.seconds / p.seconds - 1;
    const addedCpu = cpuOf(e) / cpuOf(p) - 1;
    const limit = 1 / CODEC_TARGETS.aesOverhead;
    rows.push({
      section: S, measure, figure: `${mibps(total, e.seconds)} (${added >= 0 ? '+' : ''}${pct(added)} time)`,
      baseline: `unencrypted ${mibps(total, p.seconds)}`, ratio: times(ratio),
      target: targeted ? `>= ${limit.toFixed(2)}x (adds <= ${pct(CODEC_TARGETS.aesOverhead - 1)})` : 'info',
      result: targeted ? verdict(ratio >= limit) : 'info', value: total / e.seconds, unit: 'B/s', baselineValue: total / p.seconds, ratioValue: ratio,
      note: `CPU ${cpuOf(e).toFixed(2)} s vs ${cpuOf(p).toFixed(2)} s (${addedCpu >= 0 ? '+' : ''}${pct(addedCpu)}); wall ${samples(e)} s vs ${samples(p)} s`,
    });
  };
  overhead('deflateAes', 'deflate', 'deflate:1 + aes-256-gcm write', true);
  overhead('deflateChacha', 'deflate', 'deflate:1 + chacha20-poly1305 write', false);
  overhead('noneAes', 'none', 'no codec + aes-256-gcm write', false);
  overhead('noneChacha', 'none', 'no codec + chacha20-poly1305 write', false);

  // 4. Raw AEAD speed, one thread: node:crypto through codec/aead.ts against openssl speed.
  const src = randomFillSync(new Uint8Array(4 * MiB));
  for (const suite of ['aes-256-gcm', 'chacha20-poly1305'] as const) {
    ctx.log(`codecs: raw ${suite}, node engine vs openssl speed`);
    if (opensslWhy !== null) { rows.push(skipped(`node:crypto ${suite} seal, 16 KiB messages`, `openssl ${opensslWhy}`)); continue; }
    const got = await timeInterleaved<{ seconds: number; cpuSeconds: number; openssl?: number | string }>({
      node: async () => nodeSeal(suite, src),
      openssl: async () => {
        const t0 = process.hrtime.bigint();
        const bps = opensslSpeed(suite);
        return { seconds: since(t0), cpuSeconds: NaN, openssl: bps };
      },
    });
    const bpsList = got.openssl!.results.map((x) => x.openssl!);
    const bad = bpsList.find((x) => typeof x === 'string');
    const n = got.node!;
    const nodeBps = AEAD_BYTES / n.seconds;
    if (bad !== undefined) { rows.push(skipped(`node:crypto ${suite} seal, 16 KiB messages`, String(bad))); continue; }
    const ob = median(bpsList as number[]);
    rows.push({
      section: S, measure: `node:crypto ${suite} seal, 16 KiB messages, 1 thread`, figure: mibps(AEAD_BYTES, n.seconds),
      baseline: `openssl speed ${mibps(ob, 1)}`, ratio: times(nodeBps / ob), target: 'info', result: 'info',
      value: nodeBps, unit: 'B/s', baselineValue: ob, ratioValue: nodeBps / ob,
      note: `CPU ${cpuOf(n).toFixed(2)} s for ${mib(AEAD_BYTES)} (${mibps(AEAD_BYTES, cpuOf(n))} per CPU second); openssl samples ${(bpsList as number[]).map((x) => (x / MiB).toFixed(0)).join(' ')} MiB/s`,
    });
    raw[`aead ${suite}`] = { node: n.samples, nodeCpu: n.results.map((x) => x.cpuSeconds), openssl: bpsList };
  }

  // 5. The tools at level 1, for reference.
  for (const t of COMPRESSION_TOOLS) {
    const c = w[t.binary];
    const x = r[t.binary];
    if (!c || !x) { rows.push(skipped(t.name, missing.get(t.binary) ?? 'missing')); continue; }
    rows.push({
      section: S, measure: `${t.name}: size, compress, decompress`,
      figure: `${pct(sizes[t.binary]! / total)}, ${mibps(total, c.seconds)}, ${mibps(total, x.seconds)}`,
      baseline: '-', ratio: '-', target: 'info', result: 'info', value: sizes[t.binary]! / total, unit: 'size/input',
      note: `CPU compress ${cpuOf(c).toFixed(2)} s, decompress ${cpuOf(x).toFixed(2)} s`,
    });
  }

  // 6. Optional profiles: one deflate:1 write and one full decode under node --cpu-prof.
  const profDir = process.env.CRIMG_BENCH_CPU_PROF;
  if (profDir) {
    const dir = resolve(profDir);
    await mkdir(join(dir, 'write'), { recursive: true });
    await mkdir(join(dir, 'decode'), { recursive: true });
    ctx.log(`codecs: cpu profiles into ${dir}/write and ${dir}/decode (one file per thread)`);
    await freshOutput(img.deflate);
    const wres = await runWriteJob(jobs.deflate, ['--cpu-prof', '--cpu-prof-dir', join(dir, 'write')]);
    const job: DecodeJob = { image: img.deflate, mode: 'read' };
    const res: DecodeResult = await runDecodeJob(job, ['--cpu-prof', '--cpu-prof-dir', join(dir, 'decode')]);
    raw.profiles = { dir, writeThreads: wres.threads, decodeThreads: res.threads };
  }
  await freshOutput(...Object.values(outputs));
  raw.sizes = sizes;
  raw.toolThreads = TOOL_THREADS;
  return { rows, raw };
}
