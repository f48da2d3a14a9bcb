/**
 * `node build/bench/child-decode.js JOB_JSON`: decodes a whole image (bench/decode-job.ts)
 * and prints `{ seconds, cpuSeconds, threads, bytes, ok, peakRss }` as JSON.
 */
import { open } from 'node:fs/promises';
import { openImage } from '../index.js';
import { regionLayout } from './layout.js';
import { peakRss, since, threadCpu } from './measure.js';
import { DECODE_READ, type DecodeJob, type DecodeResult } from './decode-job.js';
import { BENCH_KEY } from './write-job.js';

const job = JSON.parse(process.argv[2] ?? '') as DecodeJob;
const check = job.checkAgainst ? await open(job.checkAgainst.input, 'r') : null;
const layout = job.checkAgainst ? regionLayout(job.checkAgainst.totalBytes, job.checkAgainst.regions) : null;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const image = await openImage(job.image, {
  ...(job.encrypted ? { key: BENCH_KEY } : {}),
  ...(job.workers !== undefined ? { workers: job.workers } : {}),
});
let bytes = 0;
let ok = true;
if (job.mode === 'verify') {
  const report = await image.verify();
  bytes = report.bytesChecked;
  ok = report.ok;
  if (!ok) throw new Error(`verify found ${report.errors.length} errors, first: ${report.errors[0]?.message}`);
} else {
  const buf = Buffer.allocUnsafe(DECODE_READ);
  const want = Buffer.allocUnsafe(check ? DECODE_READ : 0);
  const data = image.regions.filter((r) => !r.isGap);
  for (const [i, r] of data.entries()) {
    const length = Number(r.length);
    for (let o = 0; o < length; o += DECODE_READ) {
      const n = Math.min(DECODE_READ, length - o);
      const view = buf.subarray(0, n);
      await image.readInto(r.address + BigInt(o), view);
      bytes += n;
      if (check && layout) {
        await check.read(want, 0, n, layout[i]!.fileOffset + o);
        if (!view.equals(want.subarray(0, n))) throw new Error(`region ${i} differs from the input at region offset ${o}`);
      }
    }
  }
}
const threads = threadCpu();
await image.close();
const seconds = since(t0);
const cpu = process.cpuUsage(cpu0);
await check?.close();
const result: DecodeResult = { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, threads, bytes, ok, peakRss: peakRss() };
process.stdout.write(JSON.stringify(result));
