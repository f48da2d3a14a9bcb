/**
 * Anonymous memory the addon hands out (mapAnonymous: the huge-page tables of image/_huge.ts,
 * which chunk tables leave to the collector) counts as V8's external memory, as a Buffer's does
 * (V8 counts an external ArrayBuffer's byte length), and is given back when it is unmapped or
 * collected: dropped tables are collected under memory pressure. (Reported again by the addon
 * it was counted twice: 60 dropped 64 MiB mappings peaked at 325 MiB against 261.) A loop that
 * never lets the event loop turn keeps its garbage, Buffers or mappings alike.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { nativeAddon } from '../native-mmap/index.js';
import { ensureBuilt } from './cli-helpers.js';
import { budget } from './machine.js';
import { tempDir } from './helpers.js';

const native = nativeAddon()!;
const MiB = 1 << 20;
const t = tempDir();
afterAll(() => t.cleanup());

test('mapAnonymous adds its byte length to external memory; unmap gives it back', () => {
  const e0 = process.memoryUsage().external;
  const ab = native.mapAnonymous(16 * MiB, 'rw-');
  // (V8 adds a few bytes of its own per ArrayBuffer.)
  expect(process.memoryUsage().external - e0 - 16 * MiB).toBeGreaterThanOrEqual(0);
  expect(process.memoryUsage().external - e0 - 16 * MiB).toBeLessThan(1024);
  native.unmap(ab);
  expect(Math.abs(process.memoryUsage().external - e0)).toBeLessThan(1024);
});

test('60 dropped 64 MiB mappings, touched, with the event loop turning: collected, peak RSS < 1 GiB (3.75 GiB unreported), external back to where it was', () => {
  ensureBuilt();
  const script = t.path('child.mjs');
  writeFileSync(script, `
const { nativeAddon } = await import(process.argv[2]);
const A = nativeAddon();
const rss0 = process.memoryUsage().rss;
const e0 = process.memoryUsage().external;
let peak = 0;
for (let i = 0; i < 60; i++) {
  await new Promise((r) => setImmediate(r));
  const b = A.mapAnonymous(64 << 20, 'rw-');
  A.advise(b, b.byteLength, 'hugepage');
  const u = new Uint8Array(b);
  for (let k = 0; k < u.length; k += 4096) u[k] = 1;
  peak = Math.max(peak, process.memoryUsage().rss - rss0);
}
// Finalizers run after the collection, on a later turn: a few rounds.
for (let k = 0; k < 5 && process.memoryUsage().external - e0 > (1 << 20); k++) {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 10));
}
console.log(JSON.stringify({ peak, external: process.memoryUsage().external - e0 }));
`);
  const lib = pathToFileURL(join(process.cwd(), 'build', 'native-mmap', 'index.js')).href;
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const r = spawnSync(process.execPath, ['--expose-gc', script, lib], { encoding: 'utf8', env, timeout: budget(60_000) });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  const got = JSON.parse(r.stdout) as { peak: number; external: number };
  expect({ peakMiB: Math.round(got.peak / MiB), bounded: got.peak < 1024 * MiB }).toEqual({ peakMiB: Math.round(got.peak / MiB), bounded: true });
  // Every mapping collected and given back (the finalizer's share), none twice.
  expect(got.external).toBeLessThan(MiB);
  expect(got.external).toBeGreaterThan(-MiB);
}, budget(60_000));
