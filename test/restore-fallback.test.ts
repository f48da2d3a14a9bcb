/**
 * Restore without the native addon (CRIMG_NO_NATIVE=1): map mode degrades to copies into plain
 * ArrayBuffers, says why, and prints nothing; recorded addresses are refused cleanly.
 *
 * The addon's loader reads CRIMG_NO_NATIVE once, when native-mmap/index.ts is evaluated. jest
 * gives every test file its own module registry, so setting the variable before this file's
 * first (dynamic) import disables the addon here and nowhere else; it is restored at once,
 * because the worker process runs other test files after this one.
 */
import { jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { tempDir } from './helpers.js';

// Nothing that reaches the library is imported statically: native-mmap/index.ts reads
// CRIMG_NO_NATIVE when it is evaluated, and static imports are evaluated before this file's
// first line.
const saved = process.env.CRIMG_NO_NATIVE;
process.env.CRIMG_NO_NATIVE = '1';
const { nativeStatus } = await import('../native-mmap/index.js');
const { openImage } = await import('../index.js');
const { checksumEngine } = await import('../codec/checksum.js');
const { LAYOUT, regionBytes, writeFixture } = await import('./restore-fixture.js');
if (saved === undefined) delete process.env.CRIMG_NO_NATIVE;
else process.env.CRIMG_NO_NATIVE = saved;

const t = tempDir();
const base = 0x3a0000000000n;
let imagePath: string;

beforeAll(async () => {
  imagePath = t.path('fixture.img');
  await writeFixture(imagePath, base);
});
afterAll(() => t.cleanup());

test('the addon is disabled in this file', () => {
  expect(nativeStatus()).toEqual({ available: false, reason: 'disabled by CRIMG_NO_NATIVE=1' });
  expect(checksumEngine()).toBe('wasm'); // and checksums still work (every test below reads)
});

describe.each([
  ['default mode', {}, /^the native addon is unavailable \(disabled by CRIMG_NO_NATIVE=1\): copied into ArrayBuffers/],
  ['mode map', { mode: 'map' as const }, /^map mode needs the native addon, which is unavailable \(disabled by CRIMG_NO_NATIVE=1\)/],
  ['mode copy', { mode: 'copy' as const }, /^the native addon is unavailable/],
])('%s without the addon', (_label, options, reason) => {
  test('degrades to copies into ArrayBuffers equal to image.read, printing nothing', async () => {
    const image = await openImage(imagePath);
    const spies = (['log', 'warn', 'error', 'info'] as const).map((m) => jest.spyOn(console, m).mockImplementation(() => {}));
    const stderr = jest.spyOn(process.stderr, 'write');
    try {
      const progress: number[] = [];
      const result = await image.restore({ ...options, onProgress: (d) => progress.push(d) });
      expect(result).toMatchObject({ mode: 'copy', degraded: true, warnings: [] });
      expect(result.reason).toMatch(reason);
      for (const got of result.regions) {
        const r = image.regions[got.index]!;
        expect(got).toMatchObject({ index: r.index, address: 0n, recordedAddress: r.address, length: r.length, prot: r.prot });
        if (r.isGap || (r.protBits & 1) === 0) {
          expect(got.memory).toBeUndefined();
          continue;
        }
        expect(got.memory).toBeInstanceOf(ArrayBuffer);
        const want = await image.read(r.address, Number(r.length));
        expect(Buffer.from(got.memory!).equals(want)).toBe(true);
        expect(want.equals(regionBytes(LAYOUT[got.index]!, got.index))).toBe(true);
      }
      const total = image.regions.filter((r) => !r.isGap).reduce((n, r) => n + Number(r.length), 0);
      expect(progress.at(-1)).toBe(total);
      const memory = result.regions[0]!.memory!;
      result.release();
      expect(memory.byteLength).toBe(0);
      result.release();
      for (const s of [...spies, stderr]) expect(s).not.toHaveBeenCalled();
    } finally {
      for (const s of [...spies, stderr]) s.mockRestore();
      await image.close();
    }
  });
});

test('restore at recorded addresses needs the addon: a clean CrimgError', async () => {
  const image = await openImage(imagePath);
  try {
    for (const mode of [undefined, 'map', 'copy'] as const) {
      const err = await image.restore({ mode, atRecordedAddress: true }).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ name: 'CrimgError', code: 'UNSUPPORTED_FEATURE' });
      expect((err as Error).message).toMatch(/^restore at recorded addresses needs the native addon, which is unavailable: disabled by CRIMG_NO_NATIVE=1/);
    }
  } finally {
    await image.close();
  }
});

test('map mode of an image that cannot be mapped is refused before any fallback', async () => {
  const image = await openImage(readFileSync(imagePath));
  try {
    await expect(image.restore({ mode: 'map' })).rejects.toMatchObject({ code: 'UNSUPPORTED_FEATURE' });
    const result = await image.restore();
    expect(result).toMatchObject({ mode: 'copy', degraded: true });
    result.release();
  } finally {
    await image.close();
  }
});
