/**
 * `node build/bench/child-write.js JOB_JSON`: writes one image from the input file and prints
 * `{ seconds, cpuSeconds, threads, summary, peakRss }` as JSON. Its own process, so that
 * peakRss (VmHWM) is the writer's footprint (see bench/write-job.ts).
 */
import { readFile } from 'node:fs/promises';
import { ImageWriter, type RegionData } from '../index.js';
import { regionLayout, regionOptions, streamFromFile } from './layout.js';
import { peakRss, since, threadCpu } from './measure.js';
import { BENCH_KEY, type WriteJob, type WriteResult } from './write-job.js';

const job = JSON.parse(process.argv[2] ?? '') as WriteJob;
const layout = regionLayout(job.totalBytes, job.regions);
const source = job.source ?? 'range';
const inMemory = source === 'memory' ? await readFile(job.input) : null;
const cpu0 = process.cpuUsage();
const faults0 = process.resourceUsage().minorPageFault;
const t0 = process.hrtime.bigint();
const writer = await ImageWriter.create(job.output, {
  fsync: job.fsync,
  validation: { architecture: 'x86_64', producerName: 'crimg-bench' },
  ...(job.chunkSize !== undefined ? { chunkSize: job.chunkSize } : {}),
  ...(job.compress !== undefined ? { compress: job.compress } : {}),
  ...(job.encrypt !== undefined ? { encrypt: job.encrypt, key: BENCH_KEY } : {}),
  ...(job.workers !== undefined ? { workers: job.workers } : {}),
  ...(job.layout !== undefined ? { layout: job.layout } : {}),
});
for (const r of layout) {
  let data: RegionData;
  if (inMemory) data = inMemory.subarray(r.fileOffset, r.fileOffset + r.length);
  else if (source === 'stream') data = streamFromFile(job.input, r);
  else data = { path: job.input, position: r.fileOffset, length: r.length };
  await writer.addRegion(regionOptions(r, data));
}
// Before finish(): it ends the encoder's worker threads, and their /proc entries with them.
const threads = threadCpu();
const t1 = process.hrtime.bigint();
const summary = await writer.finish();
const seconds = since(t0);
const cpu = process.cpuUsage(cpu0);
const result: WriteResult = {
  seconds, finishSeconds: since(t1), cpuSeconds: (cpu.user + cpu.system) / 1e6, threads, summary, peakRss: peakRss(),
  minorFaults: process.resourceUsage().minorPageFault - faults0,
};
process.stdout.write(JSON.stringify(result));
