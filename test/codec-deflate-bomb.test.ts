/**
 * Issue 14 item 13: decoding a deflate chunk never goes far beyond its plain length, with either
 * engine. Decompression bombs (64 MiB of zeros deflated, whole or cut to fit a 4 KiB chunk's
 * stored bytes) are decoded in a child node, one per child after a good chunk of the same plain
 * length, which reports the time and the bytes the decode allocated: each must fail with
 * CORRUPT_CHUNK, fast, in little memory. Measured before the fix (portable, 4 KiB slices):
 * 4 KiB chunk 140-285 ms and ~15 MiB allocated, 16 KiB chunk ~250 ms and ~20 MiB; after: 4 KiB
 * chunk 10-50 ms and 0.1 MiB (decoded in one call), 16 KiB 40-120 ms and ~5 MiB (this machine,
 * under load).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { deflateDecode, portableSlice } from '../codec/deflate.js';
import { loadPortableEngine } from '../codec/portable.js';
import { isCrimgError } from '../format/errors.js';
import { rng } from './codec-fixture.js';
import { budget } from './machine.js';
import { tempDir } from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const deflateJs = path.join(root, 'build', 'codec', 'deflate.js');
const portableJs = path.join(root, 'build', 'codec', 'portable.js');

const t = tempDir();
afterAll(() => t.cleanup());

/** 64 MiB of zeros deflated: about 64 KiB that inflates 1029 x. */
const BOMB = deflateRawSync(new Uint8Array(64 << 20), { level: 9 });

const CHILD = `
const [deflateJs, portableJs, file, plain, engine] = process.argv.slice(1);
const { readFileSync } = require('node:fs');
(async () => {
  const { deflateDecode } = await import(deflateJs);
  await (await import(portableJs)).loadPortableEngine();
  const bomb = readFileSync(file);
  // Warm up on a good chunk of the same plain length: a long read decodes many chunks.
  const good = new Uint8Array(Number(plain)).map((_, i) => (i * 7 + (i >> 9)) & 255);
  const goodStream = require('node:zlib').deflateRawSync(good);
  for (let i = 0; i < 3; i++) deflateDecode(goodStream, good.length, engine);
  globalThis.gc();
  // No collection runs in between (the decode is short), so what it allocated is still counted.
  const m0 = process.memoryUsage();
  const t0 = performance.now();
  let code = 'decoded';
  let message = '';
  try { deflateDecode(bomb, Number(plain), engine); } catch (e) { code = e.code; message = e.message; }
  const ms = performance.now() - t0;
  const m1 = process.memoryUsage();
  const allocatedKiB = (m1.arrayBuffers + m1.heapUsed - m0.arrayBuffers - m0.heapUsed) / 1024;
  console.log(JSON.stringify({ code, message, ms, allocatedKiB }));
})();
`;

function decodeInChild(bomb: Uint8Array, plain: number, engine: string): { code: string; message: string; ms: number; allocatedKiB: number } {
  const file = t.path(`bomb-${plain}-${bomb.length}.bin`);
  writeFileSync(file, bomb);
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', CHILD, deflateJs, portableJs, file, String(plain), engine], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
  return JSON.parse(r.stdout) as { code: string; message: string; ms: number; allocatedKiB: number };
}

describe('deflate bombs are bounded by the plain length (issue 14 item 13)', () => {
  // [name, stream, plain length, quiet-machine ms, MiB allocated at most]. The memory bound is
  // the sharp one (an unbounded decoder allocates the whole 64 MiB); the time bound only says
  // "fails fast": a fresh child's first portable decode measured 8-50 ms quiet, and 106 ms once
  // with jest's workers beside it, so it has room for a loaded machine beyond budget()'s scale.
  const cases: Array<[string, Uint8Array, number, number, number]> = [
    ['a 4 KiB chunk whose 4095 stored bytes claim ~4 MiB', BOMB.subarray(0, 4095), 4096, 200, 8],
    ['a 16 KiB chunk whose stream inflates to 64 MiB', BOMB, 16384, 200, 8],
    ['a 1 MiB chunk whose stream inflates to 64 MiB', BOMB, 1 << 20, 300, 24],
  ];
  for (const engine of ['portable', 'node']) {
    test.each(cases)(`${engine}: %s fails fast with CORRUPT_CHUNK and small memory`, (_name, bomb, plain, ms, mib) => {
      const r = decodeInChild(bomb, plain, engine);
      expect(r.code).toBe('CORRUPT_CHUNK');
      expect(r.message).toMatch(new RegExp(`more than the plain length of ${plain} bytes|does not decode`));
      expect(r.ms).toBeLessThan(budget(ms));
      expect(r.allocatedKiB).toBeLessThan(mib * 1024);
    });
  }

  test('portable: streams decoded in one call and streamed in slices give the same bytes, and one byte too many is refused either way', async () => {
    await loadPortableEngine();
    const r = rng(7);
    // Random bytes do not compress: stored ~= plain, past the one-call bound (plain + 8 MiB)/1032.
    const random = Uint8Array.from({ length: 65536 }, () => r() & 255);
    const zeros = new Uint8Array(65536);
    for (const plain of [random, zeros]) {
      const stream = deflateRawSync(plain);
      expect(Buffer.from(deflateDecode(stream, plain.length, 'portable')).equals(Buffer.from(plain))).toBe(true);
      for (const wrong of [plain.length - 1, plain.length + 1]) {
        let code = 'decoded';
        try {
          deflateDecode(stream, wrong, 'portable');
        } catch (e) {
          code = isCrimgError(e, 'CORRUPT_CHUNK') ? 'CORRUPT_CHUNK' : String(e);
        }
        expect(code).toBe('CORRUPT_CHUNK');
      }
    }
    expect(deflateRawSync(random).length * 1032).toBeGreaterThan(65536 + (8 << 20));
    expect(deflateRawSync(zeros).length * 1032).toBeLessThan(65536 + (8 << 20));
  });

  test('the portable slice lets one push expand at most ~1 MiB past the plain length', () => {
    for (const plain of [1, 4096, 16384, 65536, 1 << 20, 16 << 20]) {
      for (const got of [0, plain >> 1, plain, plain + 1]) {
        const overshoot = got + portableSlice(plain, got) * 1032 - plain;
        expect(overshoot).toBeLessThanOrEqual(1032 * 1024 + Math.min(plain, 1 << 20));
        expect(portableSlice(plain, got)).toBeGreaterThanOrEqual(1024);
      }
    }
    expect(portableSlice(16 << 20, 0)).toBe(Math.floor((17 << 20) / 1032));
  });
});
