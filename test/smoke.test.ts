import { xxh64 } from '../format/checksum.js';
test('smoke', async () => { expect(typeof xxh64(new Uint8Array(1))).toBe('bigint'); });
