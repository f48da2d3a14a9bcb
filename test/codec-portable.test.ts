/**
 * codec/portable.ts: the portable engine's libraries (fflate, @noble/*) load on first need, not
 * with the codec. This file never loads them itself, so it sees the state every process
 * starts in: nothing loaded, primitives refusing, the library's entry points loading them.
 * Worker threads load them on their first portable job (they run built JavaScript).
 */
import { randomBytes } from 'node:crypto';
import { ImageWriter, openImage } from '../index.js';
import { seal } from '../codec/aead.js';
import { deflateDecode, deflateEncode } from '../codec/deflate.js';
import { hkdfSha256 } from '../codec/keys.js';
import { loadPortableEngine, portableEngineLoaded } from '../codec/portable.js';
import { memoryLike, tempDir } from './helpers.js';
import { ensureBuilt } from './cli-helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());
beforeAll(() => ensureBuilt()); // the chunk pool's workers run build/codec/worker.js

describe('portable engine loading', () => {
  test('nothing loaded after the node engine wrote and read an encrypted, compressed image', async () => {
    const key = randomBytes(32);
    const data = memoryLike(64, 3);
    const out = t.path('node.img');
    const w = await ImageWriter.create(out, { fsync: false, compress: 'deflate:1', encrypt: 'aes-256-gcm', key });
    await w.addRegion({ address: 0x10000n, data });
    await w.finish();
    const img = await openImage(out, { key });
    expect((await img.read(0x10000n, data.length)).equals(data)).toBe(true);
    await img.close();
    expect(portableEngineLoaded()).toBe(false);
    // A primitive asked for the portable engine now says what to do, and does nothing.
    expect(() => seal('aes-256-gcm', key, new Uint8Array(12), new Uint8Array(0), data, 'portable')).toThrow(/the portable engine is not loaded: await loadPortableEngine\(\)/);
    expect(() => deflateEncode(data, 1, 'portable')).toThrow(/not loaded/);
    expect(() => hkdfSha256(key, new Uint8Array(8), new Uint8Array(1), 32, 'portable')).toThrow(/not loaded/);
    // The node engine is unaffected.
    expect(deflateDecode(deflateEncode(data, 1), data.length).length).toBe(data.length);
  });

  test.each([[0], [2]])('the writer and the reader load it when given engine: portable (workers %s)', async (workers) => {
    const key = randomBytes(32);
    const data = memoryLike(300, 4);
    const out = t.path(`portable-${workers}.img`);
    const w = await ImageWriter.create(out, { fsync: false, compress: 'deflate:6', encrypt: 'chacha20-poly1305', key, engine: 'portable', workers });
    await w.addRegion({ address: 0x40000n, data });
    await w.finish();
    expect(portableEngineLoaded()).toBe(true);
    for (const engine of ['portable', 'node'] as const) {
      const img = await openImage(out, { key, engine, workers });
      expect((await img.read(0x40000n, data.length)).equals(data)).toBe(true);
      expect((await img.verify()).ok).toBe(true);
      await img.close();
    }
    // Loading again, and concurrently, is a no-op.
    await Promise.all([loadPortableEngine(), loadPortableEngine()]);
  });
});
