/**
 * Fuzz target for hostile zstd frames (issue 16, spec/FORMAT.md section 6.2): from a seed, frames
 * made from valid ones by header-aware and blind mutations (window descriptor and
 * single-segment flag, content size larger or smaller than the chunk, dictionary ids, block
 * headers with hostile types and sizes, truncation, trailing bytes, skippable frames, random
 * bytes), each run through every zstd decoder the library has: the C++ chunk decoder (as the
 * native readers call it, into a buffer with guard bytes after it), the node engine and the
 * portable engine (fzstd behind codec/zstd.ts's header checks). Properties, per case:
 *
 * - only `CORRUPT_CHUNK` (or success), never another error or a crash (the native decoder's
 *   `CORRUPT_INDEX` for a frame not smaller than the plain length, its form rule, counts as one);
 * - success means exactly the plain length of bytes, and no decoder writes past it (the guard
 *   bytes after the native output are intact; on failure the output is zeroed);
 * - two decoders that both succeed give the same bytes (a frame has one decoding);
 * - a frame that breaks a rule checked from its headers alone (zstdFrameProblem) fails in all;
 * - time and memory stay bounded (the runner measures them).
 *
 * Deterministic: case `i` of seed `s` is the same frame everywhere. Run by
 * test/codec-zstd-fuzz.test.ts; standalone `node build/spec/fuzz/zstd.js [cases] [seed]`.
 */
import { fileURLToPath } from 'node:url';
import { CrimgError } from '../../format/errors.js';
import { CHUNK_ENCODED } from '../../format/constants.js';
import { nativeAddon } from '../../native-mmap/index.js';
import { loadPortableEngine } from '../../codec/portable.js';
import { zstdDecode, zstdEncode, zstdFrameProblem } from '../../codec/zstd.js';
import { Rng } from './_tables.js';

/** The chunk size the cases are decoded under (the window bound of rule 2). */
export const ZSTD_FUZZ_CHUNK = 16384;
const GUARD = 64;

/** The valid frames mutations start from: several levels, a full and a short chunk, mixed content. */
function seeds(): { frame: Uint8Array; plain: Uint8Array }[] {
  const out: { frame: Uint8Array; plain: Uint8Array }[] = [];
  const r = new Rng(16);
  for (const [length, level] of [[ZSTD_FUZZ_CHUNK, 1], [ZSTD_FUZZ_CHUNK, 19], [5000, 3], [300, 1]] as const) {
    const plain = new Uint8Array(length);
    for (let i = 0; i < length; i++) plain[i] = i % 97 < 10 ? r.int(256) : 0x61 + ((i >> 4) % 13);
    out.push({ frame: zstdEncode(plain, level)!, plain });
  }
  return out;
}

let seedFrames: ReturnType<typeof seeds> | null = null;

/** One fuzz case: a hostile frame and the plain length it is decoded to. */
export interface ZstdCase {
  frame: Uint8Array;
  plainLength: number;
  /** What was done, for a failure report. */
  mutation: string;
}

function u32le(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** Case `i` of seed `seed` (the addon must be available: seeds are encoded natively). */
export function zstdCase(seed: number, i: number): ZstdCase {
  seedFrames ??= seeds();
  const r = new Rng((seed * 1_000_003 + i) >>> 0);
  const base = r.pick(seedFrames);
  const f = Array.from(base.frame);
  const plain = base.plain.length;
  const body = (): number[] => f.slice(5 + 2 /* FHD + 2-byte FCS of a single-segment frame <= 65791 */);
  const kind = r.int(11);
  switch (kind) {
    case 0: { // multi-segment with a window from 1 KiB to 2 GiB, content size kept, absent or hostile
      const log = 10 + r.int(22);
      const withSize = r.chance(0.5);
      const size = r.pick([plain, plain + 1, 0xffffffff, ZSTD_FUZZ_CHUNK * 2]);
      return { frame: Uint8Array.from([...f.slice(0, 4), (withSize ? 2 << 6 : 0) | (f[4]! & 4), (log - 10) << 3, ...(withSize ? u32le(size) : []), ...body()]), plainLength: plain, mutation: `window 2^${log}${withSize ? `, size ${size}` : ''}` };
    }
    case 1: { // content size (4 bytes) larger or smaller than the plain length
      const size = r.pick([plain + 1, plain - 1, 0, ZSTD_FUZZ_CHUNK + 1, 1 << 24, 0xffffffff]);
      return { frame: Uint8Array.from([...f.slice(0, 4), (2 << 6) | 0x20 | (f[4]! & 4), ...u32le(size), ...body()]), plainLength: plain, mutation: `content size ${size}` };
    }
    case 2: { // a dictionary id of 1, 2 or 4 bytes
      const flag = 1 + r.int(3);
      const id = r.u32() || 1;
      const idBytes = u32le(id).slice(0, [0, 1, 2, 4][flag]);
      return { frame: Uint8Array.from([...f.slice(0, 4), f[4]! | flag, ...idBytes, ...f.slice(5)]), plainLength: plain, mutation: `dictionary id flag ${flag}` };
    }
    case 3: { // truncated anywhere
      const n = r.int(f.length);
      return { frame: Uint8Array.from(f.slice(0, n)), plainLength: plain, mutation: `truncated to ${n}` };
    }
    case 4: { // trailing bytes, or a second frame
      const extra = r.chance(0.5) ? Array.from({ length: 1 + r.int(8) }, () => r.int(256)) : f;
      return { frame: Uint8Array.from([...f, ...extra]), plainLength: plain, mutation: `${extra.length} trailing bytes` };
    }
    case 5: // a skippable frame before it, or instead of it
      return { frame: Uint8Array.from([0x50 + r.int(16), 0x2a, 0x4d, 0x18, ...u32le(4), 1, 2, 3, 4, ...(r.chance(0.5) ? f : [])]), plainLength: plain, mutation: 'skippable frame' };
    case 6: { // the first block header: hostile type and size (RLE blocks of 128 KiB, reserved type)
      const at = 7;
      const type = r.int(4);
      const size = r.pick([0, 1, plain, plain + 1, 131071, 131072, (1 << 21) - 1]);
      const h = (size << 3) | (type << 1) | (r.chance(0.5) ? 1 : 0);
      const g = f.slice();
      g[at] = h & 0xff; g[at + 1] = (h >> 8) & 0xff; g[at + 2] = (h >> 16) & 0xff;
      return { frame: Uint8Array.from(g), plainLength: plain, mutation: `block type ${type} size ${size}` };
    }
    case 7: { // many RLE blocks: an expansion bomb bounded by the plain length
      const blocks: number[] = [];
      const n = 1 + r.int(200);
      for (let b = 0; b < n; b++) { const h = (131072 << 3) | (1 << 1) | (b === n - 1 ? 1 : 0); blocks.push(h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, r.int(256)); }
      return { frame: Uint8Array.from([...f.slice(0, 7), ...blocks]), plainLength: plain, mutation: `${n} RLE blocks of 128 KiB` };
    }
    case 8: { // a decoded length other than the chunk's: decode to a plain length that differs
      const other = r.pick([plain - 1, plain + 1, 1, ZSTD_FUZZ_CHUNK]);
      return { frame: Uint8Array.from(f), plainLength: Math.max(1, Math.min(ZSTD_FUZZ_CHUNK, other)), mutation: `decoded as plain length ${other}` };
    }
    case 9: { // blind: flip a few bytes anywhere (entropy tables, sequences)
      const g = f.slice();
      const n = 1 + r.int(4);
      for (let k = 0; k < n; k++) g[r.int(g.length)] ^= 1 << r.int(8);
      return { frame: Uint8Array.from(g), plainLength: plain, mutation: `${n} bit flips` };
    }
    default: { // random bytes behind a valid header
      const n = r.int(64);
      return { frame: Uint8Array.from([...f.slice(0, 7), ...Array.from({ length: n }, () => r.int(256))]), plainLength: plain, mutation: `${n} random bytes after the header` };
    }
  }
}

/** What the decoders made of a case. */
export interface ZstdCaseResult {
  /** Per decoder: 'ok' or the error code (or 'THROW <name>' for anything else). */
  native: string;
  node: string;
  portable: string;
  /** Violated properties; empty when the case passes. */
  failures: string[];
}

function outcome(f: () => Uint8Array, plainLength: number, failures: string[], who: string): { code: string; bytes?: Uint8Array } {
  try {
    const bytes = f();
    if (bytes.byteLength !== plainLength) failures.push(`${who}: ${bytes.byteLength} bytes, not ${plainLength}`);
    return { code: 'ok', bytes };
  } catch (e) {
    if (e instanceof CrimgError) {
      if (e.code !== 'CORRUPT_CHUNK') failures.push(`${who}: ${e.code}`);
      return { code: e.code };
    }
    failures.push(`${who}: threw ${(e as Error)?.name ?? typeof e}: ${(e as Error)?.message ?? ''}`);
    return { code: `THROW ${(e as Error)?.name}` };
  }
}

/** Runs one case through the three decoders and checks the properties. */
export function runZstdCase(c: ZstdCase): ZstdCaseResult {
  const addon = nativeAddon();
  if (addon === null) throw new Error('the zstd fuzz target needs the native addon');
  const failures: string[] = [];
  // The native decoder, into a buffer with guard bytes after the plain length.
  const big = new Uint8Array(c.plainLength + GUARD).fill(0xa5);
  const out = big.subarray(0, c.plainLength);
  const native = outcome(() => {
    const r = addon.decodeChunk({
      codec: 2, cipher: 0, chunkSize: ZSTD_FUZZ_CHUNK, number: 1n, region: 0, address: 0n, last: false,
      plainLength: c.plainLength, flags: CHUNK_ENCODED, checksum: 0n, verifyChecksum: false,
    }, c.frame, out);
    if (r === null) return out;
    if (!out.every((b) => b === 0)) failures.push('native: output not zeroed after a failure');
    // An empty frame, or one not smaller than the plain length, breaks the chunk table's form rule (spec 5.3)
    // before it is a frame at all: CORRUPT_INDEX, checked first.
    const code = r.code === 'CORRUPT_INDEX' && (c.frame.byteLength >= c.plainLength || c.frame.byteLength === 0) ? 'CORRUPT_CHUNK' : r.code;
    throw new CrimgError(code as 'CORRUPT_CHUNK', r.message);
  }, c.plainLength, failures, 'native');
  if (!big.subarray(c.plainLength).every((b) => b === 0xa5)) failures.push('native: wrote past the plain length');
  const node = outcome(() => zstdDecode(c.frame, c.plainLength, 'node'), c.plainLength, failures, 'node');
  const portable = outcome(() => zstdDecode(c.frame, c.plainLength, 'portable'), c.plainLength, failures, 'portable');
  const ok = [native, node, portable].filter((o) => o.code === 'ok');
  for (const o of ok.slice(1)) if (!Buffer.from(o.bytes!).equals(Buffer.from(ok[0]!.bytes!))) failures.push('two decoders gave different bytes');
  if (zstdFrameProblem(c.frame, c.plainLength) !== undefined && ok.length > 0) failures.push('a frame breaking a header rule decoded');
  return { native: native.code, node: node.code, portable: portable.code, failures };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await loadPortableEngine();
  const cases = Number(process.argv[2] ?? 2000);
  const seed = Number(process.argv[3] ?? 1);
  let bad = 0;
  const t0 = performance.now();
  for (let i = 0; i < cases; i++) {
    const c = zstdCase(seed, i);
    const r = runZstdCase(c);
    if (r.failures.length > 0) {
      bad++;
      console.log(`case ${i} (${c.mutation}): ${r.failures.join('; ')}`);
    }
  }
  console.log(`${cases} cases, seed ${seed}: ${bad} failing, ${(performance.now() - t0).toFixed(0)} ms`);
  process.exitCode = bad > 0 ? 1 : 0;
}
