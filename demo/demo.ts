/**
 * `npm start`: writes a demo image of memory-like data (a heap, a guard gap, a thread stack,
 * code and metadata; about 40 % zero pages), then runs `crimg inspect` and `crimg verify` on it.
 * The image stays in demo-out/ for you to try the other commands on.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ImageWriter, describeHost } from '../index.js';
import { memoryLikePieces } from '../bench/memory-like.js';
import { main } from '../inspect-cli/main.js';

const MiB = 1024 * 1024;
const outDir = resolve(process.env.CRIMG_DEMO_DIR ?? 'demo-out');
mkdirSync(outDir, { recursive: true });
const path = join(outDir, 'demo.img');
const host = describeHost();

const w = await ImageWriter.create(path, {
  validation: {
    producerName: 'crimg-demo', producerVersion: '0.1.0', architecture: host.architecture,
    labels: { engine: 'demo' }, bitmaps: { 'cpu.features': host.bitmaps['cpu.features']! },
    metrics: { 'demo.seed': 1 },
  },
});
const base = 0x7f3a_1200_0000n;
await w.addRegion({ address: base, data: memoryLikePieces(48 * MiB, { seed: 1 }), kind: 'heap', name: 'java heap' });
await w.addGap({ address: base + 48n * BigInt(MiB), length: 64n * 1024n, name: 'guard' });
await w.addRegion({ address: base + 48n * BigInt(MiB) + 64n * 1024n, data: memoryLikePieces(8 * MiB, { seed: 2 }), kind: 'stack', name: 'main thread stack' });
await w.addRegion({ address: 0x7f3a_4000_0000n, data: memoryLikePieces(4 * MiB, { seed: 3 }), kind: 'code', prot: 'r-x', name: 'code cache' });
await w.addRegion({ address: 0x7f3a_8000_0000n, data: memoryLikePieces(4 * MiB, { seed: 4 }), kind: 'metadata', prot: 'r--', name: 'metaspace' });
const s = await w.finish();
console.log(`wrote ${path}: ${s.regions} regions, ${(s.plainBytes / MiB).toFixed(0)} MiB of memory in ${(s.fileSize / MiB).toFixed(1)} MiB\n`);

console.log(`$ crimg inspect ${path}`);
let code = await main(['inspect', path]);
console.log(`\n$ crimg verify ${path}`);
code ||= await main(['verify', path]);
process.exitCode = code;
