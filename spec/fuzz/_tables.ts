/**
 * The mutation fuzzer's seeded PRNG and the field tables it mutates (offsets of spec/FORMAT.md
 * sections 3, 4, 5.3, 8.1, 8.2): split from mutator.ts, which re-exports them.
 */
/** A seeded PRNG (xorshift128+ folded to 32 bits): fast, deterministic, good enough to fuzz. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // splitmix32 to spread a small seed over the state.
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next() | 1;
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** A uniform u32 (xoshiro128**). */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 4294967296) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The seed of case `index` of a run with `seed`: independent streams per case. */
export function caseSeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0;
}

/** A field: offset inside its structure, size in bytes. */
export interface Field { name: string; at: number; size: number }

/** Section 3. */
export const HEADER_FIELDS: readonly Field[] = [
  { name: 'magic', at: 0, size: 8 }, { name: 'major', at: 8, size: 2 }, { name: 'minor', at: 10, size: 2 },
  { name: 'header size', at: 12, size: 4 }, { name: 'required features', at: 16, size: 8 },
  { name: 'optional features', at: 24, size: 8 }, { name: 'page size', at: 32, size: 4 },
  { name: 'chunk size', at: 36, size: 4 }, { name: 'image id', at: 40, size: 16 }, { name: 'created', at: 56, size: 8 },
  { name: 'validation size', at: 64, size: 4 }, { name: 'codec id', at: 68, size: 1 }, { name: 'codec level', at: 69, size: 1 },
  { name: 'cipher id', at: 70, size: 1 }, { name: 'kdf id', at: 71, size: 1 }, { name: 'scrypt log2N', at: 72, size: 1 },
  { name: 'scrypt r', at: 73, size: 1 }, { name: 'scrypt p', at: 74, size: 1 }, { name: 'reserved 75', at: 75, size: 5 },
  { name: 'salt', at: 80, size: 16 }, { name: 'key check', at: 96, size: 16 }, { name: 'reserved 112', at: 112, size: 8 },
  { name: 'header checksum', at: 120, size: 8 },
];
/** Section 8.2, relative to the footer (file length - 96). */
export const FOOTER_FIELDS: readonly Field[] = [
  { name: 'image id', at: 0, size: 16 }, { name: 'chunk table offset', at: 16, size: 8 }, { name: 'chunk count', at: 24, size: 8 },
  { name: 'chunk table length', at: 32, size: 8 }, { name: 'region section offset', at: 40, size: 8 },
  { name: 'region count', at: 48, size: 4 }, { name: 'string table length', at: 52, size: 4 },
  { name: 'region section length', at: 56, size: 8 }, { name: 'chunk table checksum', at: 64, size: 8 },
  { name: 'region section checksum', at: 72, size: 8 }, { name: 'footer checksum', at: 80, size: 8 }, { name: 'end magic', at: 88, size: 8 },
];
/** Section 8.1, relative to a 64-byte region record. */
export const REGION_FIELDS: readonly Field[] = [
  { name: 'address', at: 0, size: 8 }, { name: 'length', at: 8, size: 8 }, { name: 'first chunk', at: 16, size: 8 },
  { name: 'chunk count', at: 24, size: 8 }, { name: 'stored bytes', at: 32, size: 8 }, { name: 'zero chunks', at: 40, size: 8 },
  { name: 'name offset', at: 48, size: 4 }, { name: 'name length', at: 52, size: 4 }, { name: 'prot', at: 56, size: 1 },
  { name: 'kind', at: 57, size: 1 }, { name: 'flags', at: 58, size: 2 }, { name: 'file page', at: 60, size: 4 },
];
/** Section 5.3, relative to a 24-byte chunk record. */
export const CHUNK_FIELDS: readonly Field[] = [
  { name: 'offset', at: 0, size: 8 }, { name: 'stored length', at: 8, size: 4 }, { name: 'flags', at: 12, size: 2 },
  { name: 'reserved', at: 14, size: 2 }, { name: 'checksum', at: 16, size: 8 },
];
/** Section 4, relative to a validation record. */
export const VALIDATION_RECORD_FIELDS: readonly Field[] = [
  { name: 'type', at: 0, size: 2 }, { name: 'flags', at: 2, size: 2 }, { name: 'payload length', at: 4, size: 4 },
];
