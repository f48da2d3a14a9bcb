/** Test data shared by the codec suites: a seeded xorshift and memory-like bytes. */

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** Memory-like bytes: runs of 1-32 4 KiB pages, 40 % zero, 30 % structured, 30 % random. */
export function memoryLike(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  const r = rng(seed);
  for (let off = 0; off < size;) {
    const len = Math.min(size - off, (1 + (r() % 32)) * 4096);
    const kind = r() % 10;
    if (kind >= 7) {
      for (let i = off; i + 4 <= off + len; i += 4) dv.setUint32(i, r());
    } else if (kind >= 4) {
      for (let i = off; i + 8 <= off + len; i += 8) {
        const k = r() % 4;
        if (k === 0) dv.setBigUint64(i, 0x7f0000000000n + BigInt((r() % 0x100000) * 16), true);
        else if (k === 1) dv.setUint32(i, r() % 256, true);
        else if (k === 2) for (let j = 0; j < 8; j++) out[i + j] = 0x61 + (r() % 26);
      }
    }
    off += len;
  }
  return out;
}
