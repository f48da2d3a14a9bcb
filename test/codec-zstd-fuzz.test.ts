/**
 * spec/fuzz/zstd.ts, the fuzz target for hostile zstd frames (issue 16): a fixed seed's cases
 * through the native chunk decoder, the node engine and the portable engine. Every case fails
 * with CORRUPT_CHUNK or decodes to exactly the plain length, no decoder writes past it, decoders
 * that succeed agree, and the whole run stays within a time and a memory bound.
 */
import { loadPortableEngine } from '../codec/portable.js';
import { runZstdCase, zstdCase } from '../spec/fuzz/zstd.js';
import { budget } from './machine.js';
import { requireNative } from './native-fixture.js';

await loadPortableEngine();
requireNative();

test('2000 hostile frames (seed 16): coded errors, bounded output, decoders agree', () => {
  const t0 = performance.now();
  const rss0 = process.memoryUsage().rss;
  const failures: string[] = [];
  const outcomes = new Map<string, number>();
  let slowest = 0;
  for (let i = 0; i < 2000; i++) {
    const c = zstdCase(16, i);
    const s = performance.now();
    const r = runZstdCase(c);
    slowest = Math.max(slowest, performance.now() - s);
    for (const f of r.failures) failures.push(`case ${i} (${c.mutation}): ${f}`);
    const key = `${r.native}/${r.node}/${r.portable}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  expect(failures).toEqual([]);
  // Both outcomes occur: the mutations reach the decoders, and some frames still decode.
  expect(outcomes.get('CORRUPT_CHUNK/CORRUPT_CHUNK/CORRUPT_CHUNK')).toBeGreaterThan(1000);
  expect(outcomes.get('ok/ok/ok')).toBeGreaterThan(10);
  // No case is a bomb: the slowest single case (three decodes of at most 16 KiB) and the run.
  expect(slowest).toBeLessThan(budget(50));
  expect(performance.now() - t0).toBeLessThan(budget(4000));
  expect(process.memoryUsage().rss - rss0).toBeLessThan(64 * 1024 * 1024);
});
