/**
 * Issue 14 item 13: the hint of a failed placement syscall suits the restore's mode: "try mode
 * copy" only for a map-mode restore. The builder per errno and mode, and a real ENOMEM (a gap of
 * 100 TiB cannot be reserved in a 128 TiB address space) restored in both modes.
 */
import { ImageWriter, openImage } from '../index.js';
import { syscallHint } from '../restore/_place.js';
import { tempDir } from './helpers.js';
import { requireNative } from './native-fixture.js';

requireNative();

const t = tempDir();
afterAll(() => t.cleanup());

describe('restore syscall hints per mode (issue 14 item 13)', () => {
  test('the hint builder offers mode copy only in map mode', () => {
    for (const code of ['ENOMEM', 'EPERM', 'EACCES']) {
      expect(syscallHint(code, 'map')).toMatch(/try mode copy/);
      expect(syscallHint(code, 'copy')).toBeDefined();
      expect(syscallHint(code, 'copy')).not.toMatch(/mode copy/);
    }
    expect(syscallHint('ENOMEM', 'copy')).toMatch(/fewer regions/);
    expect(syscallHint('EEXIST', 'map')).toBeUndefined();
    expect(syscallHint('EEXIST', 'copy')).toBeUndefined();
  });

  test('a real ENOMEM: map mode suggests mode copy, copy mode does not', async () => {
    const path = t.path('huge-gap.img');
    const w = await ImageWriter.create(path, { fsync: false });
    await w.addRegion({ address: 0x10000n, data: new Uint8Array(4096).fill(7), prot: 'rw-', kind: 'heap', name: 'h' });
    await w.addGap({ address: 0x100000000n, length: 100n << 40n, name: 'huge' });
    await w.finish();
    const image = await openImage(path);
    try {
      const outcome = async (mode: 'map' | 'copy'): Promise<{ code?: string; hint?: string; message: string }> => {
        try {
          (await image.restore({ mode })).release();
          return { message: 'restored' };
        } catch (e) {
          const err = e as { code?: string; hint?: string; message: string };
          return { code: err.code, hint: err.hint, message: err.message };
        }
      };
      const map = await outcome('map');
      expect(map.code).toBe('IO_ERROR');
      expect(map.message).toMatch(/ENOMEM/);
      expect(map.hint).toMatch(/try mode copy/);
      const copy = await outcome('copy');
      expect(copy.code).toBe('IO_ERROR');
      expect(copy.message).toMatch(/ENOMEM/);
      expect(copy.hint).toMatch(/restore fewer regions at a time \(option regions\)/);
      expect(copy.hint).not.toMatch(/mode copy/);
      expect(copy.message).not.toMatch(/mode copy/);
    } finally {
      await image.close();
    }
  });
});
