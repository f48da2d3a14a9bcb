/**
 * `npm run bench:deflate-size`: the size of crimg's deflate:1 images against zlib's own deflate
 * of each chunk and against `pigz -1` of the whole input (issue 16: 13.9 MB against 12.4 MB and
 * 12.3 MB on memory whose pages mix random and structured runs). Per input (32 MiB each,
 * CRIMG_DEFLATE_MIB to change): the image's stored chunk bytes (ImageWriter, node engine,
 * 16 KiB chunks), zlib.deflateRawSync level 1 per chunk (the chunk's plain length when not
 * smaller: stored raw), `pigz -1` of the file (skipped when pigz is missing), and the writer's
 * wall time. Target: crimg's chunk bytes <= zlib's. Writes bench/out/results-deflate-size.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { ImageWriter, openImage } from '../index.js';
import { memoryLikePieces } from './memory-like.js';
import { MiB, envMiB } from './measure.js';
import { formatTable, mib, times, verdict, type Row } from './table.js';

const CHUNK = 16384;
const total = envMiB('CRIMG_DEFLATE_MIB', 32, 1) * MiB;
const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'out');

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
}

/** Pages whose bytes mix random and structured runs: runs of 16-2064 bytes, half random, half memory-like bytes. */
function mixedRuns(n: number): Uint8Array {
  const structured = Buffer.concat([...memoryLikePieces(8 * MiB, { seed: 3 })]);
  const b = new Uint8Array(n);
  const r = rng(7);
  for (let o = 0; o < n;) {
    const len = Math.min(n - o, 16 + (r() % 2048));
    if (r() & 1) for (let i = 0; i < len; i++) b[o + i] = r() & 0xff;
    else { const s = (r() % (structured.length - len)) & ~7; b.set(structured.subarray(s, s + len), o); }
    o += len;
  }
  return b;
}

const INPUTS: Record<string, () => Uint8Array> = {
  'memory-like (whole pages)': () => Buffer.concat([...memoryLikePieces(total, { seed: 1 })]),
  'mixed runs within pages': () => mixedRuns(total),
};

const dir = mkdtempSync(join(tmpdir(), 'crimg-bench-deflate-'));
const rows: Row[] = [];
try {
  for (const [name, make] of Object.entries(INPUTS)) {
    const data = make();
    const img = join(dir, 'x.img');
    const t0 = performance.now();
    const w = await ImageWriter.create(img, { compress: 'deflate:1', chunkSize: CHUNK, fsync: false });
    await w.addRegion({ address: 0x7f00_0000_0000n, data, kind: 'heap', name: 'bench' });
    await w.finish();
    const writeMs = performance.now() - t0;
    let crimg = 0;
    const image = await openImage(img, { workers: 0 });
    try {
      const table = await image.chunkTable();
      const r = image.region(0);
      for (let j = 0; j < r.chunkCount; j++) crimg += table.get(r.firstChunk + j, image.plainLength(r, j)).storedLength;
    } finally {
      await image.close();
    }
    let zlib = 0;
    for (let o = 0; o < data.length; o += CHUNK) {
      const c = data.subarray(o, o + CHUNK);
      if (!c.some((x) => x !== 0)) continue; // a zero chunk: no bytes in either
      zlib += Math.min(c.length, deflateRawSync(c, { level: 1 }).length);
    }
    const raw = join(dir, 'x.bin');
    writeFileSync(raw, data);
    let pigz: number | null = null;
    try {
      pigz = execFileSync('pigz', ['-1', '-c', raw], { maxBuffer: 2 * total }).length;
    } catch {
      pigz = null;
    }
    rows.push({
      section: 'deflate size', measure: `${name}: crimg deflate:1 chunk bytes`, figure: mib(crimg), baseline: `zlib level 1 per chunk ${mib(zlib)}`,
      ratio: times(crimg / zlib), target: '<= 1.00x', result: verdict(crimg <= zlib), value: crimg, unit: 'B', baselineValue: zlib, ratioValue: crimg / zlib,
      note: `writer ${writeMs.toFixed(0)} ms for ${mib(data.length)}`,
    });
    rows.push({
      section: 'deflate size', measure: `${name}: against pigz -1 (whole file)`, figure: mib(crimg), baseline: pigz === null ? 'pigz missing' : mib(pigz),
      ratio: pigz === null ? '-' : times(crimg / pigz), target: 'info', result: pigz === null ? 'skipped' : 'info', value: crimg, unit: 'B',
      ...(pigz === null ? {} : { baselineValue: pigz, ratioValue: crimg / pigz }),
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(formatTable(rows));
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'results-deflate-size.json'), JSON.stringify({ inputBytes: total, chunkSize: CHUNK, rows }, null, 2));
