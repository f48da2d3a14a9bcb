/**
 * The image every restore test uses: regions that exercise each placement case (runs of stored
 * and zero chunks, a short last chunk, a gap, code, an unreadable region, an all-zero region),
 * written at a base address that is free in this process when the fixture is made.
 */
import { ImageWriter, type WriterOptions } from '../index.js';
import { prng } from './helpers.js';
import { readMaps } from '../restore/_maps.js';

export const PAGE = 4096;
export const CHUNK = 16384;

/** One region of the fixture: D = a chunk of random bytes, Z = a chunk of zeros. */
export interface FixtureRegion {
  offset: bigint; // from the base address
  prot: string;
  kind: 'heap' | 'code' | 'stack' | 'anonymous' | 'metadata';
  name: string;
  chunks: string; // e.g. 'DDZDZ'
  /** Bytes of the last chunk, when it is short. */
  tail?: number;
  gap?: number; // a gap of this many bytes instead of data
}

export const LAYOUT: readonly FixtureRegion[] = [
  { offset: 0x0n, prot: 'rw-', kind: 'heap', name: 'heap', chunks: 'DDZDZZDDDZDD', tail: 5000 },
  { offset: 0x40000n, prot: '---', kind: 'anonymous', name: 'guard', chunks: '', gap: 2 * PAGE },
  { offset: 0x50000n, prot: 'r-x', kind: 'code', name: 'code', chunks: 'DDD' },
  { offset: 0x70000n, prot: '---', kind: 'anonymous', name: 'no access', chunks: 'DZ' },
  { offset: 0x80000n, prot: 'rw-', kind: 'anonymous', name: 'zeros', chunks: 'ZZZ' },
  { offset: 0x90000n, prot: 'r--', kind: 'metadata', name: 'tiny', chunks: 'D', tail: PAGE + 100 },
];

/** Address-space span the fixture needs from its base. */
export const FIXTURE_SPAN = 0xa0000;

/** The bytes of a data region of the layout (deterministic by its index). */
export function regionBytes(r: FixtureRegion, index: number): Buffer {
  const rnd = prng(1000 + index);
  const parts = [...r.chunks].map((c, j) => {
    const n = j === r.chunks.length - 1 && r.tail !== undefined ? r.tail : CHUNK;
    const b = Buffer.alloc(n);
    if (c === 'D') for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  });
  return Buffer.concat(parts);
}

/** Writes the fixture at `base` to `path`. */
export async function writeFixture(path: string, base: bigint, options: WriterOptions = {}): Promise<void> {
  const w = await ImageWriter.create(path, { chunkSize: CHUNK, fsync: false, ...options });
  for (const [i, r] of LAYOUT.entries()) {
    if (r.gap !== undefined) {
      await w.addGap({ address: base + r.offset, length: BigInt(r.gap), name: r.name });
    } else {
      await w.addRegion({ address: base + r.offset, data: regionBytes(r, i), prot: r.prot, kind: r.kind, name: r.name });
    }
  }
  await w.finish();
}

/**
 * An address in the middle of the largest hole of this process's address space, 1 GiB-aligned:
 * far from where the kernel places new mappings (just below the lowest existing one), so the
 * fixture's recorded addresses stay free for the tests that place regions there.
 */
export function freeBase(): bigint {
  const userTop = 0x7fff00000000n; // 47-bit user address space; [vsyscall] lies far above
  const entries = readMaps().filter((e) => e.start < userTop).sort((a, b) => (a.start < b.start ? -1 : 1));
  entries.unshift({ start: 0n, end: 1n << 32n, perms: '', offset: 0n, path: '' });
  entries.push({ start: userTop, end: userTop, perms: '', offset: 0n, path: '' });
  let best = { start: 0n, length: 0n };
  for (let i = 1; i < entries.length; i++) {
    const start = entries[i - 1]!.end;
    const length = entries[i]!.start - start;
    if (length > best.length) best = { start, length };
  }
  const GiB = 1n << 30n;
  return ((best.start + best.length / 2n) / GiB) * GiB;
}
