/**
 * The conformance vectors of spec/vectors/: their definitions (deterministic inputs), and the
 * mutations that make the invalid ones. Used by spec/generate-vectors.ts (writes them) and by
 * the tests (regenerate and compare byte for byte, then read and compare with the JSON).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageWriter, type WriterOptions } from '../format/writer.js';
import { xxh64 } from '../format/checksum.js';
import { FOOTER_SIZE, HEADER_SIZE, REGION_RECORD_SIZE, CHUNK_RECORD_SIZE } from '../format/constants.js';

/** One region of a vector's input. */
export interface VectorRegion {
  address: bigint;
  kind?: 'anonymous' | 'heap' | 'stack' | 'code' | 'metadata' | 'file';
  prot?: string;
  name?: string;
  /** Region bytes; undefined for a gap of `gapLength`. */
  data?: Uint8Array;
  gapLength?: bigint;
}

export interface VectorDef {
  name: string;
  description: string;
  options: WriterOptions;
  regions: VectorRegion[];
}

/** A deterministic byte pattern: page `p` of seed `s` (zero, structured or random-looking). */
export function pattern(pages: number, seed: number, pageSize = 4096): Uint8Array {
  const out = new Uint8Array(pages * pageSize);
  const dv = new DataView(out.buffer);
  let x = (seed * 2654435761) >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
  for (let p = 0; p < pages; p++) {
    const kind = next() % 3;
    const base = p * pageSize;
    if (kind === 0) continue; // zero page
    for (let o = 0; o < pageSize; o += 8) {
      if (kind === 1) dv.setBigUint64(base + o, 0x7f12_3400_0000n + BigInt((next() % 4096) * 16), true);
      else { dv.setUint32(base + o, next(), true); dv.setUint32(base + o + 4, next(), true); }
    }
  }
  return out;
}

const FIXED = {
  created: 1_700_000_000_000n,
  validation: { producerName: 'crimg-vectors', producerVersion: '1.0', architecture: 'x86_64' },
};

function id(n: number): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = (n * 16 + i) & 0xff;
  return b;
}

/** The valid vectors of format 1.0. Never change an existing one: add new ones. */
export function validVectors(): VectorDef[] {
  const text = new TextEncoder().encode('crimg conformance vector: the quick brown fox jumps over the lazy dog\n'.repeat(60));
  const codePage = new Uint8Array(4096);
  codePage.set(text.subarray(0, 4096));
  const partial = pattern(3, 9).subarray(0, 3 * 4096 - 1000);
  return [
    {
      name: 'minimal',
      description: 'one read-write region of one page, no codec, no cipher',
      options: { imageId: id(1), created: FIXED.created, pageSize: 4096, chunkSize: 4096, validation: FIXED.validation },
      regions: [{ address: 0x10000n, data: pattern(1, 1).fill(0xab, 0, 16), name: 'one page' }],
    },
    {
      name: 'regions',
      description: 'heap, gap, stack, code and metadata regions; zero chunks; a partial last chunk; labels, bitmaps, metrics',
      options: {
        imageId: id(2), created: FIXED.created, pageSize: 4096, chunkSize: 8192,
        validation: {
          ...FIXED.validation,
          labels: { 'cpu.arch': 'amd64', engine: 'crac' },
          bitmaps: { 'cpu.features': Uint8Array.of(0x01, 0x80, 0x00, 0x04) },
          metrics: { 'score.heap.used': 1234.5, 'score.threads': 7 },
        },
      },
      regions: [
        { address: 0x7f00_0000_0000n, data: pattern(24, 2), kind: 'heap', name: 'java heap' },
        { address: 0x7f00_0001_8000n, gapLength: 0x4000n, name: 'guard' },
        { address: 0x7f00_0001_c000n, data: pattern(6, 3), kind: 'stack', prot: 'rw-', name: 'main thread stack' },
        { address: 0x7f00_1000_0000n, data: codePage, kind: 'code', prot: 'r-x', name: 'code cache' },
        { address: 0x7f00_2000_0000n, data: partial, kind: 'metadata', prot: 'r--', name: 'metaspace' },
        { address: 0x7f00_3000_0000n, data: new Uint8Array(5 * 4096), kind: 'anonymous', name: 'all zero' },
      ],
    },
  ];
}

/** Writes a vector's image to `path`; returns what the writer recorded per region. */
export async function writeVector(def: VectorDef, path: string): Promise<void> {
  const w = await ImageWriter.create(path, { ...def.options, fsync: false, workers: 0 });
  for (const r of def.regions) {
    if (r.data) await w.addRegion({ address: r.address, data: r.data, prot: r.prot ?? 'rw-', kind: r.kind ?? 'anonymous', name: r.name ?? '' });
    else await w.addGap({ address: r.address, length: r.gapLength!, name: r.name ?? '' });
  }
  await w.finish();
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The expected reader view of a valid vector, computed from its inputs (not by reading it). */
export function expectedJson(def: VectorDef): unknown {
  const o = def.options;
  const chunkSize = o.chunkSize ?? 65536;
  const v = o.validation ?? {};
  return {
    description: def.description,
    version: '1.0',
    imageId: Buffer.from(o.imageId!).toString('hex'),
    created: Number(o.created),
    pageSize: o.pageSize ?? 4096,
    chunkSize,
    compression: o.compress ?? 'none',
    encryption: o.encrypt ?? 'none',
    validation: {
      producerName: v.producerName, producerVersion: v.producerVersion, architecture: v.architecture,
      pageSize: o.pageSize ?? 4096,
      labels: v.labels ?? {},
      bitmaps: Object.fromEntries(Object.entries(v.bitmaps ?? {}).map(([k, b]) => [k, Buffer.from(b).toString('hex')])),
      metrics: v.metrics ?? {},
    },
    regions: def.regions.map((r) => {
      const data = r.data;
      let zeroChunks = 0;
      if (data) for (let off = 0; off < data.length; off += chunkSize) if (data.subarray(off, off + chunkSize).every((x) => x === 0)) zeroChunks++;
      return {
        address: '0x' + r.address.toString(16),
        length: data ? data.length : Number(r.gapLength),
        prot: data ? (r.prot ?? 'rw-') : '---',
        kind: data ? (r.kind ?? 'anonymous') : 'gap',
        name: r.name ?? '',
        chunkCount: data ? Math.ceil(data.length / chunkSize) : 0,
        zeroChunks,
        sha256: data ? sha256(data) : null,
      };
    }),
  };
}

/** An invalid vector: made from a valid one by a mutation; fails with `code` at `stage`. */
export interface InvalidDef {
  /** File name stem: `CODE--what`. */
  name: string;
  code: string;
  /** Where a reader must fail: opening, or reading data / verifying. */
  stage: 'open' | 'read';
  from: string;
  description: string;
  mutate: (b: Buffer) => Buffer;
}

/** Re-seals the header checksum after a mutation (so the intended check is the one that fails). */
function fixHeader(b: Buffer): Buffer {
  const size = b.readUInt32LE(12);
  b.writeBigUInt64LE(xxh64(b.subarray(0, size - 8)), size - 8);
  return b;
}
function footerAt(b: Buffer): number { return b.length - FOOTER_SIZE; }
function fixFooter(b: Buffer): Buffer {
  const f = footerAt(b);
  b.writeBigUInt64LE(xxh64(b.subarray(f, f + 80)), f + 80);
  return b;
}
function regionSection(b: Buffer): number { return Number(b.readBigUInt64LE(footerAt(b) + 40)); }
function chunkTable(b: Buffer): number { return Number(b.readBigUInt64LE(footerAt(b) + 16)); }
function fixRegions(b: Buffer): Buffer {
  const f = footerAt(b);
  const off = regionSection(b);
  b.writeBigUInt64LE(xxh64(b.subarray(off, f)), f + 72);
  return fixFooter(b);
}
function fixValidation(b: Buffer): Buffer {
  const size = b.readUInt32LE(64);
  b.writeBigUInt64LE(xxh64(b.subarray(HEADER_SIZE, HEADER_SIZE + size - 8)), HEADER_SIZE + size - 8);
  return b;
}
/** File offset of the first stored (non-zero) chunk. */
function firstStoredChunk(b: Buffer): number {
  const t = chunkTable(b);
  const n = Number(b.readBigUInt64LE(footerAt(b) + 24));
  for (let i = 0; i < n; i++) {
    const off = Number(b.readBigUInt64LE(t + i * CHUNK_RECORD_SIZE));
    if (off !== 0) return off;
  }
  throw new Error('no stored chunk');
}

/** The invalid vectors of format 1.0. */
export function invalidVectors(): InvalidDef[] {
  const copy = (b: Buffer): Buffer => Buffer.from(b);
  return [
    { name: 'BAD_MAGIC--first-byte', code: 'BAD_MAGIC', stage: 'open', from: 'minimal', description: 'first magic byte changed',
      mutate: (b) => { const c = copy(b); c[0] = 0x50; return c; } },
    { name: 'BAD_MAGIC--text-mode-crlf', code: 'BAD_MAGIC', stage: 'open', from: 'minimal', description: 'every CR LF turned into LF, as a text-mode transfer does',
      mutate: (b) => { const out: number[] = []; for (let i = 0; i < b.length; i++) { if (b[i] === 0x0d && b[i + 1] === 0x0a) continue; out.push(b[i]!); } return Buffer.from(out); } },
    { name: 'BAD_MAGIC--not-an-image', code: 'BAD_MAGIC', stage: 'open', from: 'minimal', description: 'a text file',
      mutate: () => Buffer.from('this is not a crimg image\n'.repeat(20)) },
    { name: 'UNSUPPORTED_VERSION--major-2', code: 'UNSUPPORTED_VERSION', stage: 'open', from: 'minimal', description: 'major version 2 (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt16LE(2, 8); return fixHeader(c); } },
    { name: 'UNSUPPORTED_FEATURE--required-bit-9', code: 'UNSUPPORTED_FEATURE', stage: 'open', from: 'minimal', description: 'unknown required feature bit 9 (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(1n << 9n, 16); return fixHeader(c); } },
    { name: 'UNSUPPORTED_FEATURE--codec-zstd', code: 'UNSUPPORTED_FEATURE', stage: 'open', from: 'minimal', description: 'codec id 2 (zstd, reserved) with the CODEC bit',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(1n, 16); c[68] = 2; c[69] = 1; c.writeBigUInt64LE(0n, 24); return fixHeader(c); } },
    { name: 'UNSUPPORTED_FEATURE--critical-record', code: 'UNSUPPORTED_FEATURE', stage: 'open', from: 'minimal', description: 'first validation record turned into an unknown type 999 with the CRITICAL flag',
      mutate: (b) => { const c = copy(b); c.writeUInt16LE(999, HEADER_SIZE + 8); c.writeUInt16LE(1, HEADER_SIZE + 10); return fixValidation(c); } },
    { name: 'CORRUPT_HEADER--checksum', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'one bit of the image id flipped',
      mutate: (b) => { const c = copy(b); c[45]! ^= 0x10; return c; } },
    { name: 'CORRUPT_HEADER--chunk-size', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'chunk size 3000 (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(3000, 36); return fixHeader(c); } },
    { name: 'CORRUPT_VALIDATION--checksum', code: 'CORRUPT_VALIDATION', stage: 'open', from: 'regions', description: 'a label value byte changed',
      mutate: (b) => { const c = copy(b); const i = c.indexOf('amd64', HEADER_SIZE); c[i] = 0x41; return c; } },
    { name: 'CORRUPT_INDEX--footer-checksum', code: 'CORRUPT_INDEX', stage: 'open', from: 'minimal', description: 'a footer byte changed',
      mutate: (b) => { const c = copy(b); c[footerAt(c) + 50]! ^= 1; return c; } },
    { name: 'CORRUPT_INDEX--region-checksum', code: 'CORRUPT_INDEX', stage: 'open', from: 'regions', description: 'a region record byte changed',
      mutate: (b) => { const c = copy(b); c[regionSection(c) + 9]! ^= 1; return c; } },
    { name: 'CORRUPT_INDEX--chunk-table-checksum', code: 'CORRUPT_INDEX', stage: 'read', from: 'regions', description: 'a chunk record byte changed',
      mutate: (b) => { const c = copy(b); c[chunkTable(c) + 9]! ^= 1; return c; } },
    { name: 'CORRUPT_INDEX--overlapping-regions', code: 'CORRUPT_INDEX', stage: 'open', from: 'regions', description: 'region 2 moved down to overlap region 0 (checksums valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(0x7f00_0000_1000n, regionSection(c) + 2 * REGION_RECORD_SIZE); return fixRegions(c); } },
    { name: 'CORRUPT_INDEX--image-id-mismatch', code: 'CORRUPT_INDEX', stage: 'open', from: 'minimal', description: 'footer image id differs from the header (checksum valid): two images spliced',
      mutate: (b) => { const c = copy(b); c[footerAt(c)]! ^= 0xff; return fixFooter(c); } },
    { name: 'CORRUPT_CHUNK--checksum', code: 'CORRUPT_CHUNK', stage: 'read', from: 'regions', description: 'one byte of the first stored chunk changed',
      mutate: (b) => { const c = copy(b); c[firstStoredChunk(c) + 100]! ^= 0x01; return c; } },
    { name: 'TRUNCATED--in-header', code: 'TRUNCATED', stage: 'open', from: 'minimal', description: 'cut after 64 bytes',
      mutate: (b) => copy(b.subarray(0, 64)) },
    { name: 'TRUNCATED--in-validation', code: 'TRUNCATED', stage: 'open', from: 'regions', description: 'cut inside the validation block',
      mutate: (b) => copy(b.subarray(0, HEADER_SIZE + 40)) },
    { name: 'TRUNCATED--in-data', code: 'TRUNCATED', stage: 'open', from: 'regions', description: 'cut in the middle of the data area',
      mutate: (b) => copy(b.subarray(0, 4096 * 5 + 123)) },
    { name: 'TRUNCATED--in-index', code: 'TRUNCATED', stage: 'open', from: 'regions', description: 'cut inside the chunk table',
      mutate: (b) => copy(b.subarray(0, chunkTable(b) + 30)) },
    { name: 'TRUNCATED--in-footer', code: 'TRUNCATED', stage: 'open', from: 'minimal', description: 'last 10 bytes missing',
      mutate: (b) => copy(b.subarray(0, b.length - 10)) },
    { name: 'TRUNCATED--index-past-end', code: 'TRUNCATED', stage: 'open', from: 'minimal', description: 'footer points the chunk table past the end of the file (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(BigInt(c.length * 4), footerAt(c) + 16); return fixFooter(c); } },
    { name: 'LIMIT_EXCEEDED--huge-chunk-count', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'minimal', description: 'footer claims 2^60 chunks (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(1n << 60n, footerAt(c) + 24); return fixFooter(c); } },
    { name: 'LIMIT_EXCEEDED--huge-region-count', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'minimal', description: 'footer claims 2^32-1 regions (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(0xffffffff, footerAt(c) + 48); return fixFooter(c); } },
    { name: 'LIMIT_EXCEEDED--validation-record-count', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'minimal', description: 'validation block claims 2^31 records (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(0x80000000, HEADER_SIZE + 4); return fixValidation(c); } },
  ];
}

/** Writes every vector into `dir` (v1 layout): NAME.img + NAME.json, invalid/CODE--what.img + .json. */
export async function generateAll(dir: string): Promise<string[]> {
  const written: string[] = [];
  const bytes = new Map<string, Buffer>();
  for (const def of validVectors()) {
    const p = join(dir, `${def.name}.img`);
    await writeVector(def, p);
    writeFileSync(join(dir, `${def.name}.json`), JSON.stringify(expectedJson(def), null, 2) + '\n');
    bytes.set(def.name, readFileSync(p));
    written.push(`${def.name}.img`);
  }
  for (const inv of invalidVectors()) {
    const src = bytes.get(inv.from)!;
    writeFileSync(join(dir, 'invalid', `${inv.name}.img`), inv.mutate(src));
    writeFileSync(join(dir, 'invalid', `${inv.name}.json`), JSON.stringify({ code: inv.code, stage: inv.stage, from: inv.from, description: inv.description }, null, 2) + '\n');
    written.push(`invalid/${inv.name}.img`);
  }
  return written;
}
