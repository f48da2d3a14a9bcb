/**
 * Crash safety of the writer (image/writer.ts: bytes go to a temporary file beside NAME, then
 * fsync and rename): a child process writing an image over an existing one is killed with
 * SIGKILL at seeded random moments, many times. After each kill the destination is the previous
 * image byte for byte, or a complete image that verifies and reads back exactly (or absent); a
 * temporary file may be left (nothing runs on SIGKILL), and the next writer reports it.
 * The child runs the built library (build/index.js; `npm test` builds first).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openImage } from '../index.js';
import { prng, tempDir } from './helpers.js';
import { ensureBuilt } from './cli-helpers.js';
import { budget } from './machine.js';

beforeAll(() => ensureBuilt()); // the writer runs as built JavaScript in a child process

const BUILT = join(process.cwd(), 'build', 'index.js');
const KILLS = 30;
const KEY = Buffer.alloc(32, 7).toString('hex');

/** The writer: five regions, about 4 MiB, written in 64 KiB pieces with a pause between them. */
const CHILD = `
import { ImageWriter } from ${JSON.stringify(pathToFileURL(BUILT).href)};
const [out, seedText, variant] = process.argv.slice(2);
let x = Number(seedText) >>> 0 || 1;
const next = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
function data(pages) {
  const b = new Uint8Array(pages * 4096);
  const dv = new DataView(b.buffer);
  for (let p = 0; p < pages; p++) {
    if (next() % 3 === 0) continue; // zero page
    for (let o = 0; o < 4096; o += 4) dv.setUint32(p * 4096 + o, next() % 5 === 0 ? next() : p, true);
  }
  return b;
}
async function* slowly(bytes) {
  for (let at = 0; at < bytes.length; at += 65536) {
    await new Promise((r) => setTimeout(r, 1));
    yield bytes.subarray(at, at + 65536);
  }
}
const opts = variant === 'sealed'
  ? { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: Buffer.from(${JSON.stringify(KEY)}, 'hex'), workers: 0 }
  : { workers: 0 };
const w = await ImageWriter.create(out, { chunkSize: 65536, validation: { producerName: 'crash-test', architecture: 'x86_64' }, ...opts });
process.stdout.write('start\\n');
const sizes = [64, 256, 16, 512, 128];
let address = 0x7f0000000000n;
for (const [i, pages] of sizes.entries()) {
  await w.addRegion({ address, data: slowly(data(pages)), name: 'region ' + i, kind: i === 1 ? 'heap' : 'anonymous' });
  address += BigInt(pages * 4096) + 0x100000n;
}
process.stdout.write('finish\\n');
await w.finish();
process.stdout.write('done\\n');
`;

interface Written { regions: { address: bigint; length: bigint; name: string; sha256: string }[] }

const t = tempDir();
const childPath = t.path('writer.mjs');
afterAll(() => t.cleanup());

/** Runs the writer; `kill(child, lines)` may SIGKILL it. Resolves when it exits. */
function runChild(out: string, seed: number, variant: string, killAt?: { ms?: number; afterLine?: string; delayMs?: number }): Promise<{ code: number | null; signal: string | null; ms: number; finishMs: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [childPath, out, String(seed), variant], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    let finishAt = 0;
    const kill = (): void => { child.kill('SIGKILL'); };
    if (killAt?.ms !== undefined) setTimeout(kill, killAt.ms);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!finishAt && stdout.includes('finish\n')) finishAt = performance.now();
      if (killAt?.afterLine && stdout.includes(`${killAt.afterLine}\n`)) {
        killAt.afterLine = undefined;
        if (killAt.delayMs) setTimeout(kill, killAt.delayMs); else kill();
      }
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`writer failed (${code}): ${stderr}`));
      else resolve({ code, signal, ms: performance.now() - t0, finishMs: finishAt ? performance.now() - finishAt : 0, stdout, stderr });
    });
  });
}

async function describeImage(path: string, variant: string): Promise<Written> {
  const img = await openImage(path, { key: variant === 'sealed' ? Buffer.from(KEY, 'hex') : undefined, workers: 0 });
  try {
    const report = await img.verify();
    if (!report.ok) throw new Error(`${path} does not verify: ${report.errors[0]!.message}`);
    const regions = [];
    for (const r of img.regions) {
      const bytes = await img.read(r.address, Number(r.length));
      regions.push({ address: r.address, length: r.length, name: r.name, sha256: createHash('sha256').update(bytes).digest('hex') });
    }
    return { regions };
  } finally {
    await img.close();
  }
}

test(`SIGKILL at ${KILLS} seeded moments: the destination is the old image or a complete new one`, async () => {
  writeFileSync(childPath, CHILD);
  const variants = ['plain', 'sealed'];
  const previous = t.path('previous.img');
  const expected = new Map<string, Written>();
  const duration = new Map<string, number>();
  const finishing = new Map<string, number>();
  // The previous image (another seed), and a complete run of each variant as the reference.
  await runChild(previous, 99, 'plain');
  const previousBytes = readFileSync(previous);
  for (const v of variants) {
    const ref = t.path(`reference-${v}.img`);
    const r = await runChild(ref, 1, v);
    expect(r.stdout).toBe('start\nfinish\ndone\n');
    expected.set(v, await describeImage(ref, v));
    duration.set(v, r.ms);
    finishing.set(v, r.finishMs);
  }

  const rnd = prng(0xc0ffee);
  const dest = t.path('app.img');
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < KILLS; i++) {
    const v = variants[i % 2]!;
    copyFileSync(previous, dest);
    // Half the kills land anywhere in the run (start-up, header, data); half just around the
    // index, fsync and rename.
    const killAt = i % 4 < 2
      ? { ms: Math.floor(rnd() * duration.get(v)! * 1.1) }
      : { afterLine: 'finish', delayMs: Math.floor(rnd() * finishing.get(v)! * 1.5) };
    const run = await runChild(dest, 1, v, killAt);
    let state: string;
    if (!existsSync(dest)) {
      state = 'absent';
    } else {
      const bytes = readFileSync(dest);
      if (bytes.equals(previousBytes)) {
        state = 'previous';
      } else {
        expect({ i, v, kill: killAt, image: await describeImage(dest, v) }).toEqual({ i, v, kill: killAt, image: expected.get(v) });
        state = 'complete';
      }
    }
    const key = `${state}${run.signal ? '' : ' (finished before the kill)'}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
  }
  // Both sides of the rename were hit: kills before it and complete images after it.
  expect(outcomes.previous ?? 0).toBeGreaterThan(0);
  expect((outcomes.complete ?? 0) + (outcomes['complete (finished before the kill)'] ?? 0)).toBeGreaterThan(0);
  expect(outcomes.absent ?? 0).toBe(0); // the writer never removes NAME before the rename
  // Kills before the rename left temporary files: never reused, and the next writer names them.
  const stale = readdirSync(t.dir).filter((n) => /^\.app\.img\.[0-9a-f]{16}\.crimg-tmp$/.test(n));
  expect(stale.length).toBeGreaterThan(0);
  const next = await runChild(dest, 1, 'plain');
  expect(next.stdout).toBe('start\nfinish\ndone\n');
  expect(next.stderr).toContain(`[CRIMG_STALE_TEMP] Warning: ${stale.length} temporary file(s) of ${dest} found`);
  expect(readdirSync(t.dir).filter((n) => stale.includes(n))).toEqual(stale);
}, budget(60_000));
