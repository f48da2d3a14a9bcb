/**
 * codec/deflate.ts decodes exactly one complete stream per chunk (spec/FORMAT.md section 6 and
 * section 12, issue 15): bytes after the end of the final block are CORRUPT_CHUNK in both
 * engines, on both of the portable engine's paths (one call for streams that cannot expand far,
 * the streaming decoder for the others), whichever engine encoded the stream.
 */
import { deflateRawSync } from 'node:zlib';
import { deflateDecode, deflateEncode, storedBlocks } from '../codec/deflate.js';
import type { Engine } from '../codec/engine.js';
import { isCrimgError } from '../format/errors.js';
import { rng, memoryLike } from './codec-fixture.js';
import { loadPortableEngine } from '../codec/portable.js';

await loadPortableEngine();

const ENGINES: Engine[] = ['node', 'portable'];
const random = (n: number, seed: number): Uint8Array => { const r = rng(seed); return Uint8Array.from({ length: n }, () => r() & 255); };

/** [what, plain]: small streams (the portable one-shot path) and long random ones (its streaming path). */
const INPUTS: Array<[string, Uint8Array]> = [
  ['one byte', Uint8Array.of(7)],
  ['zero page', new Uint8Array(4096)],
  ['text', new TextEncoder().encode('the quick brown fox jumps over the lazy dog\n'.repeat(300))],
  ['memory-like 64 KiB', memoryLike(65536, 21)],
  ['random 16 KiB (stored blocks: the portable streaming path)', random(16384, 5)],
  ['random 1 MiB', random(1 << 20, 6)],
];

/** Streams of `plain` by each encoder, and a stream of stored blocks. */
function streams(plain: Uint8Array): Array<[string, Uint8Array]> {
  return [
    ['node level 1', deflateEncode(plain, 1, 'node')],
    ['node level 9', deflateEncode(plain, 9, 'node')],
    ['portable level 6', deflateEncode(plain, 6, 'portable')],
    ['stored blocks', storedBlocks(plain, true)],
  ];
}

const TRAILING: Array<[string, Uint8Array]> = [
  ['one zero byte', new Uint8Array(1)],
  ['one 0xff byte', Uint8Array.of(0xff)],
  ['eight bytes', Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)],
  ['a second complete stream', deflateRawSync(Uint8Array.of(1))],
];

describe.each(INPUTS)('%s', (_what, plain) => {
  test.each(ENGINES)('engine %s: every stream decodes exactly, and any byte after it is CORRUPT_CHUNK', (engine) => {
    for (const [how, encoded] of streams(plain)) {
      expect({ how, same: Buffer.from(deflateDecode(encoded, plain.length, engine)).equals(Buffer.from(plain)) }).toEqual({ how, same: true });
      for (const [tail, extra] of TRAILING) {
        const damaged = new Uint8Array(encoded.length + extra.length);
        damaged.set(encoded);
        damaged.set(extra, encoded.length);
        let code: string | undefined;
        let message = '';
        try {
          deflateDecode(damaged, plain.length, engine);
        } catch (e) {
          if (!isCrimgError(e)) throw e;
          code = e.code;
          message = e.message;
        }
        expect({ how, tail, code }).toEqual({ how, tail, code: 'CORRUPT_CHUNK' });
        expect(message).toMatch(/followed by/);
      }
    }
  });
});
