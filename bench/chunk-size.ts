/**
 * `node build/bench/chunk-size.js`: the measurement behind the default chunk size
 * (spec/FORMAT.md sections 9 and 11). For each candidate chunk size, on a 128 MiB memory-like
 * input in the realistic ~200-region layout:
 *
 * - without codec (ImageWriter): stored bytes / input (zero elision works per chunk), index
 *   size, write throughput and CPU (input already in memory, median of 5 after a warm-up), and
 *   the time of a random 4 KiB read() where every read touches a chunk no earlier read touched;
 * - with deflate, emulated as the codec will do it (section 5.1, 6): per chunk node:zlib
 *   deflateRawSync level 1, stored raw when not smaller, all-zero chunks skipped: stored bytes /
 *   input, compression throughput, and the decode cost of one random read (checksum + inflate
 *   of the chunk it touches).
 *
 * CRIMG_CHUNK_MIB overrides the input size (default 128). Prints a table and a recommendation;
 * writes bench/out/results-chunk-size.json.
 */
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { openImage } from '../index.js';
import { xxh64 } from '../codec/checksum.js';
import { isZero } from '../codec/chunk.js';
import { freshOutput } from './context.js';
import { regionAtOffset, regionLayout, type BenchRegion } from './layout.js';
import { PAGE_SIZE, writeMemoryLikeFile } from './memory-like.js';
import { GiB, MiB, envMiB, median, quantile, since, timeRuns } from './measure.js';
import { runWriteJob } from './write-job.js';

const CHUNK_SIZES = [4096, 16384, 65536, 262144, 1048576];
const REGIONS = 200;
const MAX_READS = 2000;
const WRITE_RUNS = 5;
const SEED = 1;

const inputMiB = envMiB('CRIMG_CHUNK_MIB', 128, 8);
const total = inputMiB * MiB;
const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'out');

interface Result {
  chunkKiB: number;
  chunks: number;
  zeroChunks: number;
  storedOverInput: number;
  indexBytes: number;
  writeBytesPerSecond: number;
  /** Writer CPU seconds (user + system, all threads) per GiB of input. */
  writeCpuPerGiB: number;
  readMeanSeconds: number;
  readP99Seconds: number;
  reads: number;
  deflateStoredOverInput: number;
  deflateBytesPerSecond: number;
  inflateBytesPerSecond: number;
  /** Mean decode cost of a random read (zero chunks cost nothing, raw chunks a checksum). */
  decodeMeanSeconds: number;
  /** Median decode cost of a read that hits an encoded chunk. */
  decodeEncodedP50Seconds: number;
}

/** Random pages, at most one per chunk: [region, offset in region], deterministic. */
function pagesOnDistinctChunks(layout: readonly BenchRegion[], chunkSize: number, wanted: number, seed = 5): [BenchRegion, number][] {
  const pages = Math.floor(total / PAGE_SIZE);
  const chunkCount = layout.reduce((n, r) => n + Math.ceil(r.length / chunkSize), 0);
  const count = Math.min(wanted, Math.floor(chunkCount * 0.8));
  const used = new Set<string>();
  const out: [BenchRegion, number][] = [];
  let x = seed;
  while (out.length < count) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const off = ((x >>> 0) % pages) * PAGE_SIZE;
    const r = regionAtOffset(layout, off);
    const rel = off - r.fileOffset;
    const key = `${r.fileOffset}:${Math.floor(rel / chunkSize)}`;
    if (used.has(key)) continue;
    used.add(key);
    out.push([r, rel]);
  }
  return out;
}

/** The codec's work, emulated: per-chunk raw deflate level 1, raw when not smaller, zero chunks skipped. */
interface DeflateRun {
  /** Stored bytes of all chunks. */
  stored: number;
  seconds: number;
  inflateSeconds: number;
  /** Seconds per random read's decode: checksum, then inflate when encoded (0 for a zero chunk). */
  decode: number[];
  /** The same, for the reads that hit an encoded chunk only. */
  decodeEncoded: number[];
}

function emulateDeflate(input: Buffer, layout: readonly BenchRegion[], chunkSize: number): DeflateRun {
  const encoded: { plain: Buffer; stored: Buffer; raw: boolean }[] = [];
  let stored = 0;
  const t0 = process.hrtime.bigint();
  for (const r of layout) {
    for (let o = 0; o < r.length; o += chunkSize) {
      const plain = input.subarray(r.fileOffset + o, r.fileOffset + Math.min(r.length, o + chunkSize));
      if (isZero(plain)) continue;
      const d = deflateRawSync(plain, { level: 1 });
      const raw = d.length >= plain.length;
      const s = raw ? plain : d;
      xxh64(s); // the writer checksums the stored bytes
      stored += s.length;
      encoded.push({ plain, stored: s, raw });
    }
  }
  const seconds = since(t0);
  // Decode everything once (throughput), then the per-read cost on chunks of random reads.
  const t1 = process.hrtime.bigint();
  for (const e of encoded) {
    xxh64(e.stored);
    if (!e.raw) inflateRawSync(e.stored);
  }
  const inflateSeconds = since(t1);
  const byStart = new Map<number, { stored: Buffer; raw: boolean }>();
  for (const e of encoded) byStart.set(e.plain.byteOffset - input.byteOffset, e);
  const decode: number[] = [];
  const decodeEncoded: number[] = [];
  for (const [r, rel] of pagesOnDistinctChunks(layout, chunkSize, MAX_READS, 6)) {
    const e = byStart.get(r.fileOffset + Math.floor(rel / chunkSize) * chunkSize);
    const t = process.hrtime.bigint();
    if (e) {
      xxh64(e.stored);
      if (!e.raw) inflateRawSync(e.stored);
    }
    const s = since(t);
    decode.push(s);
    if (e && !e.raw) decodeEncoded.push(s);
  }
  return { stored, seconds, inflateSeconds, decode, decodeEncoded };
}

const dir = await mkdtemp(join(tmpdir(), 'crimg-chunk-size-'));
process.once('SIGINT', () => { rmSync(dir, { recursive: true, force: true }); process.exit(130); });
try {
  const inputPath = join(dir, 'input.bin');
  process.stderr.write(`  ... generating ${inputMiB} MiB of memory-like input\n`);
  const stats = await writeMemoryLikeFile(inputPath, total, SEED);
  const input = await readFile(inputPath);
  const layout = regionLayout(total, REGIONS);
  const results: Result[] = [];
  for (const cs of CHUNK_SIZES) {
    process.stderr.write(`  ... chunk size ${cs / 1024} KiB\n`);
    const image = join(dir, `c${cs}.img`);
    // Input in memory: the chunk sizes differ in the writer's per-chunk work, not in reading
    // the input. Five runs: the differences are small next to this machine's noise.
    const w = await timeRuns(
      () => runWriteJob({ input: inputPath, output: image, totalBytes: total, regions: REGIONS, fsync: false, chunkSize: cs, source: 'memory' }),
      { prepare: () => freshOutput(image), runs: WRITE_RUNS },
    );
    const summary = w.result.summary;
    const img = await openImage(image);
    const reads = pagesOnDistinctChunks(layout, cs, MAX_READS);
    await img.read(layout[0]!.address, PAGE_SIZE); // loads the chunk table, untimed
    const lat: number[] = [];
    for (const [r, rel] of reads) {
      const t = process.hrtime.bigint();
      await img.read(r.address + BigInt(rel), PAGE_SIZE);
      lat.push(since(t));
    }
    const indexBytes = Number(img.footer.chunkTableLength + img.footer.regionSectionLength) + 96;
    await img.close();
    await freshOutput(image);
    const d = await timeRuns(() => emulateDeflate(input, layout, cs));
    results.push({
      chunkKiB: cs / 1024, chunks: summary.chunks, zeroChunks: summary.zeroChunks,
      storedOverInput: summary.fileSize / total, indexBytes,
      writeBytesPerSecond: total / w.seconds, writeCpuPerGiB: median(w.results.map((x) => x.cpuSeconds)) / (total / GiB),
      readMeanSeconds: lat.reduce((a, b) => a + b, 0) / lat.length, readP99Seconds: quantile(lat, 0.99), reads: lat.length,
      deflateStoredOverInput: d.result.stored / total, deflateBytesPerSecond: total / d.seconds,
      inflateBytesPerSecond: total / median(d.results.map((x) => x.inflateSeconds)),
      decodeMeanSeconds: d.result.decode.reduce((a, b) => a + b, 0) / d.result.decode.length,
      decodeEncodedP50Seconds: d.result.decodeEncoded.length ? quantile(d.result.decodeEncoded, 0.5) : 0,
    });
  }

  const zeroFraction = stats.zeroPages / stats.pages;
  console.log(`chunk size: ${inputMiB} MiB memory-like input (seed ${SEED}), ${REGIONS} regions;`
    + ` zero pages ${(zeroFraction * 100).toFixed(1)} % (ideal no-codec size ${((1 - zeroFraction) * 100).toFixed(1)} %)`);
  console.log(`no codec: ImageWriter, input in memory, median of ${WRITE_RUNS} after a warm-up; read = random 4 KiB read(), each on a chunk not read before`);
  console.log('deflate: emulated per chunk (node:zlib deflateRawSync level 1, raw when not smaller, zero chunks skipped);'
    + ' decode mean = xxh64 + inflate of the chunk a random 4 KiB read touches (0 for zero chunks); inflate 1 chunk = p50 over encoded chunks\n');
  const head = ['chunk', 'size/input', 'zero chunks', 'index', 'write', 'write CPU', 'read mean/p99', 'deflate size', 'deflate', 'inflate', 'decode mean', 'inflate 1 chunk'];
  const cells = results.map((r) => [
    `${r.chunkKiB} KiB`, `${(r.storedOverInput * 100).toFixed(1)} %`, `${r.zeroChunks}/${r.chunks}`, `${(r.indexBytes / 1024).toFixed(0)} KiB`,
    `${(r.writeBytesPerSecond / MiB).toFixed(0)} MiB/s`, `${r.writeCpuPerGiB.toFixed(2)} s/GiB`, `${(r.readMeanSeconds * 1e6).toFixed(0)}/${(r.readP99Seconds * 1e6).toFixed(0)} us`,
    `${(r.deflateStoredOverInput * 100).toFixed(1)} %`, `${(r.deflateBytesPerSecond / MiB).toFixed(0)} MiB/s`,
    `${(r.inflateBytesPerSecond / MiB).toFixed(0)} MiB/s`, `${(r.decodeMeanSeconds * 1e6).toFixed(1)} us`, `${(r.decodeEncodedP50Seconds * 1e6).toFixed(1)} us`,
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((x, i) => x.padStart(width[i]!)).join('  ');
  console.log(line(head));
  for (const c of cells) console.log(line(c));

  // The rules, one per kind of image (spec section 11). Per-chunk costs of the writer (a
  // promise, a hash call, an iovec per chunk) are the implementation's to batch away, so they
  // inform but do not decide.
  // - Encoded or encrypted images: among the sizes whose deflate size is within 1 point of the
  //   best and whose index is at most 0.25 % of the input (it is read whole on the first data
  //   access), the smallest no-codec image; on a tie within 1 point, the larger chunk.
  // - Raw images: the smallest image, which is the smallest chunk (the page): zero elision is a
  //   property of the format, a MAPPABLE image keeps every chunk that is not entirely zero, and
  //   there is no compression to lose. Its larger index is accepted.
  const bestDeflate = Math.min(...results.map((r) => r.deflateStoredOverInput));
  const why = (r: Result): string[] => [
    ...(r.deflateStoredOverInput > bestDeflate + 0.01 ? [`deflate size ${(r.deflateStoredOverInput * 100).toFixed(1)} % > best + 1 point`] : []),
    ...(r.indexBytes > 0.0025 * total ? [`index ${((r.indexBytes / total) * 100).toFixed(2)} % of the input > 0.25 %`] : []),
  ];
  const eligible = results.filter((r) => why(r).length === 0);
  const pool = eligible.length ? eligible : results;
  const smallest = Math.min(...pool.map((r) => r.storedOverInput));
  const pick = pool.filter((r) => r.storedOverInput <= smallest + 0.01).at(-1)!;
  console.log('');
  for (const r of results) if (why(r).length) console.log(`not ${r.chunkKiB} KiB: ${why(r).join('; ')}`);
  const cheapest = results.reduce((a, b) => (b.writeCpuPerGiB < a.writeCpuPerGiB ? b : a));
  console.log(`recommendation for encoded or encrypted images: ${pick.chunkKiB} KiB: the smallest no-codec image (${(pick.storedOverInput * 100).toFixed(1)} % of the input) of the sizes that pass;`
    + ` its writer CPU is ${(pick.writeCpuPerGiB / cheapest.writeCpuPerGiB).toFixed(2)}x that of ${cheapest.chunkKiB} KiB chunks`);
  const rawPick = results.reduce((a, b) => (b.storedOverInput < a.storedOverInput ? b : a));
  console.log(`recommendation for raw images: ${rawPick.chunkKiB} KiB: the smallest image (${(rawPick.storedOverInput * 100).toFixed(1)} % of the input, ideal ${((1 - stats.zeroPages / stats.pages) * 100).toFixed(1)} %), index ${((rawPick.indexBytes / total) * 100).toFixed(2)} % of the input`);

  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'results-chunk-size.json'), JSON.stringify({
    date: new Date().toISOString(), node: process.version, inputMiB, seed: SEED, regions: REGIONS, input: stats, results, recommendation: pick.chunkKiB, rawRecommendation: results.reduce((a, b) => (b.storedOverInput < a.storedOverInput ? b : a)).chunkKiB,
  }, null, 2) + '\n');
  console.log(`results: ${join(outDir, 'results-chunk-size.json')}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
