/**
 * A capture without a usable page map (/proc/PID/pagemap fails to read: some kernels and
 * sandboxes refuse it): mappings without read permission are read whole through /proc/PID/mem,
 * with a note, instead of becoming gaps that lose the memory written there (issue 13 review).
 * The page map's failure is simulated (jest.unstable_mockModule: runsToRead says "unknown", as
 * it does when the read fails); the process and its memory are real (bench/c/capture_target.c).
 */
import { jest } from '@jest/globals';

jest.setTimeout(120000);

const real = await import('../capture/pagemap.js');
jest.unstable_mockModule('../capture/pagemap.js', () => ({
  ...real,
  runsToRead: async (_pagemap: unknown, _plan: unknown, _pageSize: number, notes: string[]) => {
    const note = '/proc/PID/pagemap could not be read (EIO): simulated';
    if (!notes.includes(note)) notes.push(note);
    return null;
  },
}));
const { captureProcess } = await import('../capture/process.js');
const { openImage } = await import('../index.js');
// Imported after the mock: the fixture's imports load the capture modules too.
const { tempDir } = await import('./helpers.js');
const { compileTarget, startTarget } = await import('./capture-fixture.js');

const PAGE = 4096;
const tmp = tempDir();
afterAll(() => tmp.cleanup());

test('written memory without read permission is read whole, not lost as a gap, and the note says so', async () => {
  const child = await startTarget(compileTarget(tmp.dir), 1, 16);
  try {
    const i = child.info;
    const out = tmp.path('no-pagemap.img');
    const r = await captureProcess(i.pid, out, { fsync: false });
    expect(r.notes).toContain('/proc/PID/pagemap could not be read (EIO): simulated');
    expect(r.notes.some((n) => /\(---\) has no read permission and the page map could not be read: it was read whole through \/proc\/PID\/mem/.test(n))).toBe(true);
    expect(r.notes.some((n) => /\(-w-\) has no read permission and the page map could not be read/.test(n))).toBe(true);
    const image = await openImage(out);
    try {
      expect(image.regionAt(i.hidden)).toMatchObject({ isGap: false, prot: '---', kind: 'anonymous' });
      expect((await image.read(i.hidden, 4)).toString()).toBe('DATA');
      expect((await image.read(i.hidden + 5n * BigInt(PAGE), 5)).toString()).toBe('DATA5');
      expect(image.regionAt(i.wonly)).toMatchObject({ isGap: false, prot: '-w-' });
      expect((await image.read(i.wonly, 5)).toString()).toBe('WONLY');
    } finally {
      await image.close();
    }
  } finally {
    child.kill();
  }
});
