/**
 * The conformance vectors of spec/vectors/: their definitions (deterministic inputs), and the
 * mutations that make the invalid ones. Used by spec/generate-vectors.ts (writes them) and by
 * the tests (regenerate and compare byte for byte, then read and compare with the JSON).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageWriter, type WriterOptions } from '../image/writer.js';
import { xxh64 } from '../codec/checksum.js';
import { DEFAULT_CHUNK_SIZE, FOOTER_SIZE, HEADER_SIZE, REGION_RECORD_SIZE, CHUNK_RECORD_SIZE, TAG_SIZE } from '../format/constants.js';
import { deriveKeys, headerHash, resolveMasterKey } from '../codec/keys.js';
import { chunkAad, chunkNonce, indexAad, indexNonce } from '../codec/aad.js';
import { open, seal, suiteForCipherId } from '../codec/aead.js';
import { loadPortableEngine } from '../codec/portable.js';

// The portable engine's primitives are called directly here: load its libraries first.
await loadPortableEngine();

/** One region of a vector's input. */
export interface VectorRegion {
  address: bigint;
  kind?: 'anonymous' | 'heap' | 'stack' | 'code' | 'metadata' | 'file';
  prot?: string;
  name?: string;
  /** Region bytes; undefined for a gap of `gapLength`. */
  data?: Uint8Array;
  gapLength?: bigint;
  /** Region flags (section 8.1, 1.2). */
  shared?: boolean;
  fileOffset?: bigint;
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

/** The valid vectors of format 1.x. Never change an existing one: add new ones. */
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
    ...codecVectors(text, partial),
    {
      name: 'sparse',
      description: 'SPARSE layout (optional feature bit 1): each region at one file range, chunk j at its start + j * chunk size, zero chunks as holes (zero bytes in this file); a region starting with a zero chunk, an all-zero region, a partial last chunk',
      options: { imageId: id(8), created: FIXED.created, pageSize: 4096, chunkSize: 4096, validation: FIXED.validation, layout: 'sparse' },
      regions: [
        { address: 0x7f00_0000_0000n, data: pattern(16, 2), kind: 'heap', name: 'java heap' },
        { address: 0x7f00_0001_0000n, gapLength: 0x2000n, name: 'guard' },
        { address: 0x7f00_0001_2000n, data: concatBytes(new Uint8Array(4096), pattern(5, 3)), kind: 'stack', name: 'stack starting with a zero page' },
        { address: 0x7f00_1000_0000n, data: new Uint8Array(3 * 4096), kind: 'anonymous', name: 'all zero' },
        { address: 0x7f00_2000_0000n, data: partial, kind: 'metadata', prot: 'r--', name: 'partial last chunk' },
      ],
    },
    {
      name: 'region-flags',
      description: 'region flags (1.2, section 8.1): file offsets of a library\'s segments and of a gap left for one, SHARED on a shared file mapping and on shared anonymous memory (no offset), the largest file page 2^32 - 1, and a private anonymous region without flags; the header stays 1.0',
      options: { imageId: id(9), created: FIXED.created, pageSize: 4096, chunkSize: 4096, validation: FIXED.validation },
      regions: [
        { address: 0x7f10_0000_0000n, data: pattern(3, 31), kind: 'code', prot: 'r-x', name: '/usr/lib/x86_64-linux-gnu/libc.so.6', fileOffset: 0x28000n },
        { address: 0x7f10_0000_3000n, gapLength: 0x2000n, name: '/usr/lib/x86_64-linux-gnu/libc.so.6', fileOffset: 0x2b000n },
        { address: 0x7f10_0000_5000n, data: pattern(2, 32), kind: 'file', prot: 'r--', name: '/usr/lib/x86_64-linux-gnu/libc.so.6', fileOffset: 0x1bc000n },
        { address: 0x7f20_0000_0000n, data: pattern(2, 33), kind: 'file', name: '/dev/shm/crimg-vector', shared: true, fileOffset: 0n },
        { address: 0x7f30_0000_0000n, data: pattern(1, 34), kind: 'anonymous', name: '/dev/zero (deleted)', shared: true },
        { address: 0x7f40_0000_0000n, data: pattern(1, 35), kind: 'file', prot: 'r--', name: '/srv/huge.dat', fileOffset: 0xffff_ffffn * 4096n },
        { address: 0x7f50_0000_0000n, data: pattern(2, 36), kind: 'heap', name: 'private anonymous' },
      ],
    },
  ];
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** The master key of the encrypted vectors: bytes 0x00..0x1f. */
export const VECTOR_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
/** The passphrase of the passphrase vector. */
export const VECTOR_PASSPHRASE = 'crimg vector passphrase';

function codecVectors(text: Uint8Array, partial: Uint8Array): VectorDef[] {
  // The portable engine (fflate, pinned by the lockfile) makes the compressed bytes independent
  // of the zlib version bundled with Node.
  const regions = (): VectorRegion[] => [
    { address: 0x5500_0000_0000n, data: pattern(12, 21), kind: 'heap', name: 'heap' },
    { address: 0x5500_0001_0000n, data: text.slice(0, 3 * 4096 + 500), kind: 'metadata', prot: 'r--', name: 'strings' },
    { address: 0x5500_0002_0000n, gapLength: 0x2000n, name: 'guard' },
    { address: 0x5500_0002_2000n, data: partial, kind: 'stack', name: 'stack' },
  ];
  const base = (n: number): WriterOptions => ({
    imageId: id(n), created: FIXED.created, pageSize: 4096, chunkSize: 8192, validation: FIXED.validation,
    engine: 'portable', salt: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i),
  });
  return [
    { name: 'deflate', description: 'deflate level 6 per chunk, no cipher', options: { ...base(3), compress: 'deflate:6' }, regions: regions() },
    { name: 'aes-256-gcm', description: 'no codec, AES-256-GCM with a raw key', options: { ...base(4), encrypt: 'aes-256-gcm', key: VECTOR_KEY }, regions: regions() },
    { name: 'chacha20-poly1305', description: 'no codec, ChaCha20-Poly1305 with a raw key', options: { ...base(5), encrypt: 'chacha20-poly1305', key: VECTOR_KEY }, regions: regions() },
    { name: 'deflate-aes-256-gcm', description: 'deflate level 1 then AES-256-GCM with a raw key', options: { ...base(6), compress: 'deflate:1', encrypt: 'aes-256-gcm', key: VECTOR_KEY }, regions: regions() },
    {
      name: 'deflate-chacha20-poly1305-passphrase', description: 'deflate level 9 then ChaCha20-Poly1305, key from a passphrase by scrypt (log2 N 10, r 8, p 1)',
      options: { ...base(7), compress: 'deflate:9', encrypt: 'chacha20-poly1305', key: { passphrase: VECTOR_PASSPHRASE }, scrypt: { log2N: 10, r: 8, p: 1 } }, regions: regions(),
    },
  ];
}

/** Writes a vector's image to `path`; returns what the writer recorded per region. */
export async function writeVector(def: VectorDef, path: string): Promise<void> {
  const w = await ImageWriter.create(path, { ...def.options, fsync: false, workers: 0 });
  for (const r of def.regions) {
    const flags = { shared: r.shared, fileOffset: r.fileOffset };
    if (r.data) await w.addRegion({ address: r.address, data: r.data, prot: r.prot ?? 'rw-', kind: r.kind ?? 'anonymous', name: r.name ?? '', ...flags });
    else await w.addGap({ address: r.address, length: r.gapLength!, name: r.name ?? '', ...flags });
  }
  await w.finish();
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The expected reader view of a valid vector, computed from its inputs (not by reading it). */
export function expectedJson(def: VectorDef): unknown {
  const o = def.options;
  const chunkSize = o.chunkSize ?? DEFAULT_CHUNK_SIZE; // every vector names its chunk size
  const v = o.validation ?? {};
  // Vectors before 1.2's region flags have no `shared` and `fileOffset` keys (their JSON never
  // changes); a reader sees false and none there.
  const flags = def.regions.some((r) => r.shared !== undefined || r.fileOffset !== undefined);
  return {
    description: def.description,
    version: def.options.layout === 'sparse' ? '1.1' : '1.0',
    imageId: Buffer.from(o.imageId!).toString('hex'),
    created: Number(o.created),
    pageSize: o.pageSize ?? 4096,
    chunkSize,
    compression: o.compress ?? 'none',
    encryption: o.encrypt ?? 'none',
    ...(o.key instanceof Uint8Array ? { key: Buffer.from(o.key).toString('hex') } : {}),
    ...(o.key && !(o.key instanceof Uint8Array) && 'passphrase' in o.key ? { passphrase: String(o.key.passphrase), scrypt: o.scrypt } : {}),
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
        ...(flags ? { shared: r.shared ?? false, fileOffset: r.fileOffset === undefined ? null : '0x' + r.fileOffset.toString(16) } : {}),
      };
    }),
  };
}

/** An invalid vector: made from a valid one by a mutation; fails with `code` at `stage`. */
export interface InvalidDef {
  /** File name stem: `CODE--what`. */
  name: string;
  code: string;
  /**
   * Where a reader must fail: opening; reading data (and verifying); or only verifying (the
   * damage is in bytes reads never use but a one-mmap restore of a SPARSE image does).
   */
  stage: 'open' | 'read' | 'verify';
  from: string;
  /** Key to open with: default the vector's own; null for none. */
  key?: Uint8Array | null;
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

/** Keys and header hash of an encrypted vector file (spec section 7.2), from its bytes. */
export function vectorCrypto(b: Buffer, key: Uint8Array | { passphrase: string }): { master: Uint8Array; dataKey: Uint8Array; indexKey: Uint8Array; keyCheck: Uint8Array; h: Uint8Array; suite: 'aes-256-gcm' | 'chacha20-poly1305'; imageId: Uint8Array; salt: Uint8Array } {
  const hs = b.readUInt32LE(12);
  const vs = b.readUInt32LE(64);
  const imageId = b.subarray(40, 56);
  const salt = b.subarray(80, 96);
  const spec = key instanceof Uint8Array ? { key } : key;
  const master = resolveMasterKey(spec, { kdf: b[71]!, salt, log2N: b[72]!, r: b[73]!, p: b[74]! }, { engine: 'portable' });
  const k = deriveKeys(master, salt, imageId, 'portable');
  return { master, ...k, h: headerHash(b.subarray(0, hs), b.subarray(hs, hs + vs), 'portable'), suite: suiteForCipherId(b[70]!), imageId, salt };
}

/** Edits the chunk table of an unencrypted image in place and fixes its checksum in the footer. */
function reindexPlain(b: Buffer, edit: (chunks: Buffer, file: Buffer) => void): Buffer {
  const out = Buffer.from(b);
  const f = footerAt(out);
  const ct = chunkTable(out);
  const chunks = out.subarray(ct, ct + Number(out.readBigUInt64LE(f + 32)));
  edit(chunks, out);
  out.writeBigUInt64LE(xxh64(chunks), f + 64);
  return fixFooter(out);
}

/**
 * Inserts `bytes` at file offset `at` of an unencrypted image's data area: every stored chunk
 * at or after `at` and the index move by their length; with `grow`, chunk record `grow` (whose
 * stored bytes end at `at`) takes them (stored length, checksum, its region's stored bytes).
 * Checksums of the chunk table, region section and footer are fixed.
 */
function insertPlain(b: Buffer, at: number, bytes: Uint8Array, grow?: number): Buffer {
  return splicePlain(b, at, 0, bytes, grow);
}

/**
 * {@link insertPlain} generalised: `remove` bytes at `at` replaced by `bytes`; stored chunks at or
 * after `at + remove` move by the difference, and record `grow` (whose stored bytes end at
 * `at + remove`) grows or shrinks by it.
 */
function splicePlain(b: Buffer, at: number, remove: number, bytes: Uint8Array, grow?: number): Buffer {
  const n = bytes.length - remove;
  const out = Buffer.concat([b.subarray(0, at), bytes, b.subarray(at + remove)]);
  const f = footerAt(out);
  const ct = chunkTable(out) + n;
  out.writeBigUInt64LE(BigInt(ct), f + 16);
  out.writeBigUInt64LE(BigInt(regionSection(out) + n), f + 40);
  const chunks = out.subarray(ct, ct + Number(out.readBigUInt64LE(f + 32)));
  for (let i = 0; i * CHUNK_RECORD_SIZE < chunks.length; i++) {
    const o = Number(chunks.readBigUInt64LE(i * CHUNK_RECORD_SIZE));
    if (chunks.readUInt32LE(i * CHUNK_RECORD_SIZE + 8) !== 0 && o >= at + remove) chunks.writeBigUInt64LE(BigInt(o + n), i * CHUNK_RECORD_SIZE);
  }
  if (grow !== undefined) {
    const o = Number(chunks.readBigUInt64LE(grow * CHUNK_RECORD_SIZE));
    const len = chunks.readUInt32LE(grow * CHUNK_RECORD_SIZE + 8) + n;
    chunks.writeUInt32LE(len, grow * CHUNK_RECORD_SIZE + 8);
    chunks.writeBigUInt64LE(xxh64(out.subarray(o, o + len)), grow * CHUNK_RECORD_SIZE + 16);
    const rs = regionSection(out);
    for (let r = 0; r < out.readUInt32LE(f + 48); r++) {
      const first = Number(out.readBigUInt64LE(rs + r * REGION_RECORD_SIZE + 16));
      const count = Number(out.readBigUInt64LE(rs + r * REGION_RECORD_SIZE + 24));
      if (grow >= first && grow < first + count) out.writeBigUInt64LE(out.readBigUInt64LE(rs + r * REGION_RECORD_SIZE + 32) + BigInt(n), rs + r * REGION_RECORD_SIZE + 32);
    }
  }
  out.writeBigUInt64LE(xxh64(chunks), f + 64);
  return fixRegions(out);
}

/** Decrypts the index of an encrypted vector, lets `edit` change it, re-seals it and fixes checksums. */
function resealIndex(b: Buffer, edit: (chunks: Buffer, regions: Buffer, file: Buffer) => void): Buffer {
  const c = vectorCrypto(b, VECTOR_KEY);
  const f = footerAt(b);
  const ct = chunkTable(b);
  const chunkCount = b.readBigUInt64LE(f + 24);
  const ctLen = Number(b.readBigUInt64LE(f + 32));
  const rs = regionSection(b);
  const regionCount = b.readUInt32LE(f + 48);
  const rsLen = Number(b.readBigUInt64LE(f + 56));
  const openIdx = (d: 1 | 2, count: bigint | number, bytes: Uint8Array): Buffer =>
    Buffer.from(open(c.suite, c.indexKey, indexNonce(d), indexAad({ imageId: c.imageId, headerHash: c.h, domain: d, count, plainLength: bytes.length - TAG_SIZE }), bytes, 'portable'));
  const chunks = openIdx(1, chunkCount, b.subarray(ct, ct + ctLen));
  const regions = openIdx(2, regionCount, b.subarray(rs, rs + rsLen));
  const out = Buffer.from(b);
  edit(chunks, regions, out);
  const sealIdx = (d: 1 | 2, count: bigint | number, plain: Uint8Array): Uint8Array =>
    seal(c.suite, c.indexKey, indexNonce(d), indexAad({ imageId: c.imageId, headerHash: c.h, domain: d, count, plainLength: plain.length }), plain, 'portable');
  const sc = sealIdx(1, chunkCount, chunks);
  const sr = sealIdx(2, regionCount, regions);
  Buffer.from(sc).copy(out, ct);
  Buffer.from(sr).copy(out, rs);
  out.writeBigUInt64LE(xxh64(sc), f + 64);
  out.writeBigUInt64LE(xxh64(sr), f + 72);
  return fixFooter(out);
}

/** Stored (non-zero) chunk records of a plain chunk table: [record index, offset, length]. */
function storedRecords(chunks: Buffer): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let i = 0; i * CHUNK_RECORD_SIZE < chunks.length; i++) {
    const len = chunks.readUInt32LE(i * CHUNK_RECORD_SIZE + 8);
    if (len) out.push([i, Number(chunks.readBigUInt64LE(i * CHUNK_RECORD_SIZE)), len]);
  }
  return out;
}

/** The invalid vectors of format 1.0 and 1.1 (SPARSE). */
export function invalidVectors(): InvalidDef[] {
  const copy = (b: Buffer): Buffer => Buffer.from(b);
  return [
    { name: 'WRONG_KEY--other-key', code: 'WRONG_KEY', stage: 'open', from: 'aes-256-gcm', key: Buffer.alloc(32, 0xee), description: 'opened with a key that is not the image\'s',
      mutate: (b) => copy(b) },
    { name: 'KEY_REQUIRED--no-key', code: 'KEY_REQUIRED', stage: 'read', from: 'chacha20-poly1305', key: null, description: 'opened without a key: header and validation block are readable, the index is not',
      mutate: (b) => copy(b) },
    { name: 'AUTH_FAILED--swapped-chunks', code: 'AUTH_FAILED', stage: 'read', from: 'aes-256-gcm', description: 'two chunk records of equal stored length swapped in the (re-sealed) chunk table: reordering',
      mutate: (b) => resealIndex(b, (chunks) => {
        const s = storedRecords(chunks);
        const a = s[0]!;
        const bb = s.find((x) => x[2] === a[2] && x[0] !== a[0])!;
        const ra = Buffer.from(chunks.subarray(a[0] * CHUNK_RECORD_SIZE, (a[0] + 1) * CHUNK_RECORD_SIZE));
        chunks.copy(chunks, a[0] * CHUNK_RECORD_SIZE, bb[0] * CHUNK_RECORD_SIZE, (bb[0] + 1) * CHUNK_RECORD_SIZE);
        ra.copy(chunks, bb[0] * CHUNK_RECORD_SIZE);
      }) },
    { name: 'AUTH_FAILED--chunk-from-other-image', code: 'AUTH_FAILED', stage: 'read', from: 'aes-256-gcm', description: 'the first stored chunk replaced by the same chunk of chacha20-poly1305\'s sibling image sealed with the same key under another image id (checksum fixed in the re-sealed index)',
      mutate: (b) => {
        // A sibling: the same vector sealed for image id 99; the same plain bytes, another key schedule.
        const sibling = SIBLINGS.get('aes-256-gcm');
        if (!sibling) throw new Error('sibling image missing');
        return resealIndex(b, (chunks, _r, file) => {
          const [i, off, len] = storedRecords(chunks)[0]!;
          sibling.copy(file, off, off, off + len);
          chunks.writeBigUInt64LE(xxh64(file.subarray(off, off + len)), i * CHUNK_RECORD_SIZE + 16);
        });
      } },
    { name: 'AUTH_FAILED--truncated-last-chunk', code: 'AUTH_FAILED', stage: 'read', from: 'deflate-aes-256-gcm', description: 'the last encoded chunk cut by 5 bytes (record, checksum and region stored bytes fixed in the re-sealed index)',
      mutate: (b) => resealIndex(b, (chunks, regions, file) => {
        // The last ENCODED chunk, so the stored-length rules of section 5.3 still hold and the
        // AEAD is what must catch it; its region's stored byte count follows.
        const s = storedRecords(chunks).filter(([i]) => chunks.readUInt16LE(i * CHUNK_RECORD_SIZE + 12) & 4);
        const [i, off, len] = s[s.length - 1]!;
        chunks.writeUInt32LE(len - 5, i * CHUNK_RECORD_SIZE + 8);
        chunks.writeBigUInt64LE(xxh64(file.subarray(off, off + len - 5)), i * CHUNK_RECORD_SIZE + 16);
        for (let r = 0; r * REGION_RECORD_SIZE < regions.length; r++) {
          const first = Number(regions.readBigUInt64LE(r * REGION_RECORD_SIZE + 16));
          const count = Number(regions.readBigUInt64LE(r * REGION_RECORD_SIZE + 24));
          if (i >= first && i < first + count) {
            regions.writeBigUInt64LE(regions.readBigUInt64LE(r * REGION_RECORD_SIZE + 32) - 5n, r * REGION_RECORD_SIZE + 32);
            break;
          }
        }
      }) },
    { name: 'AUTH_FAILED--tampered-header', code: 'AUTH_FAILED', stage: 'open', from: 'deflate-aes-256-gcm', description: 'the creation time changed (header checksum fixed): the header is bound to every sealed message',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(1_800_000_000_000n, 56); return fixHeader(c); } },
    { name: 'AUTH_FAILED--tampered-validation', code: 'AUTH_FAILED', stage: 'open', from: 'chacha20-poly1305', description: 'the architecture changed to x86_65 (validation checksum fixed)',
      mutate: (b) => { const c = copy(b); const i = c.indexOf('x86_64', HEADER_SIZE); c[i + 5] = 0x35; return fixValidation(c); } },
    { name: 'AUTH_FAILED--tampered-index', code: 'AUTH_FAILED', stage: 'open', from: 'chacha20-poly1305', description: 'one byte of the sealed region section changed (its checksum fixed)',
      mutate: (b) => { const c = copy(b); c[regionSection(c) + 5]! ^= 1; return fixRegions(c); } },
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
    { name: 'CORRUPT_HEADER--sparse-without-mappable', code: 'CORRUPT_HEADER', stage: 'open', from: 'sparse', description: 'optional feature SPARSE left set, MAPPABLE cleared (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(2n, 24); return fixHeader(c); } },
    { name: 'CORRUPT_INDEX--sparse-chunk-out-of-place', code: 'CORRUPT_INDEX', stage: 'verify', from: 'sparse', description: 'a stored chunk moved into the hole of the zero chunk after it, its record pointing there (index re-sealed): reads still see the right bytes, a one-mmap restore of the region would not',
      mutate: (b) => reindexPlain(b, (chunks, file) => {
        const n = chunks.length / CHUNK_RECORD_SIZE;
        for (let i = 0; i + 1 < n; i++) {
          const flags = chunks.readUInt16LE(i * CHUNK_RECORD_SIZE + 12);
          const next = chunks.readUInt16LE((i + 1) * CHUNK_RECORD_SIZE + 12);
          const len = chunks.readUInt32LE(i * CHUNK_RECORD_SIZE + 8);
          if (flags !== 2 || next !== 1 || len !== 4096) continue;
          const off = Number(chunks.readBigUInt64LE(i * CHUNK_RECORD_SIZE));
          file.copy(file, off + 4096, off, off + 4096);
          file.fill(0, off, off + 4096);
          chunks.writeBigUInt64LE(BigInt(off + 4096), i * CHUNK_RECORD_SIZE);
          return;
        }
        throw new Error('no stored chunk followed by a zero chunk');
      }) },
    { name: 'CORRUPT_INDEX--sparse-hole-not-zero', code: 'CORRUPT_INDEX', stage: 'verify', from: 'sparse', description: 'a byte written into the hole of a zero chunk inside a region\'s span: reads see zeros, a one-mmap restore would see the byte, so verify refuses it',
      mutate: (b) => {
        const c = copy(b);
        // The stack region starts with a zero chunk: its hole is the page before the first stored chunk of that region.
        const t = chunkTable(c);
        let i = 16; // the heap has 16 chunks, the gap none: chunk 16 is the stack's first, a zero chunk
        while (c.readUInt16LE(t + i * CHUNK_RECORD_SIZE + 12) === 1) i++;
        const off = Number(c.readBigUInt64LE(t + i * CHUNK_RECORD_SIZE));
        c[off - (i - 16) * 4096 + 123] = 0x5a; // in the hole of chunk 16
        return c;
      } },
    { name: 'CORRUPT_INDEX--sparse-spans-overlap', code: 'CORRUPT_INDEX', stage: 'verify', from: 'sparse', description: 'the stack region\'s first stored chunk moved into the hole of a zero chunk of the heap region before it, its record pointing there (index re-sealed): the stack\'s span would start inside the heap\'s, so a one-mmap restore of the heap would show the stack\'s bytes',
      mutate: (b) => reindexPlain(b, (chunks, file) => {
        const flags = (i: number): number => chunks.readUInt16LE(i * CHUNK_RECORD_SIZE + 12);
        let heapHole = -1; // a zero chunk of the heap (chunks 0..15) with a stored chunk before it
        for (let i = 1; i < 16 && heapHole < 0; i++) if (flags(i) === 1 && flags(0) === 2) heapHole = i;
        let k = 16; // the stack's chunks follow the heap's (the gap has none)
        while (flags(k) === 1) k++;
        if (heapHole < 0) throw new Error('no zero chunk in the heap after a stored chunk 0');
        const heapStart = Number(chunks.readBigUInt64LE(0));
        const to = heapStart + heapHole * 4096;
        const from = Number(chunks.readBigUInt64LE(k * CHUNK_RECORD_SIZE));
        file.copy(file, to, from, from + 4096);
        file.fill(0, from, from + 4096);
        chunks.writeBigUInt64LE(BigInt(to), k * CHUNK_RECORD_SIZE);
      }) },
    { name: 'LIMIT_EXCEEDED--validation-record-count', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'minimal', description: 'validation block claims 2^31 records (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(0x80000000, HEADER_SIZE + 4); return fixValidation(c); } },
    // Issue 15: a vector for every rule of spec section 12 that had none (the rule each names is
    // in its description and in the section's table).
    { name: 'LIMIT_EXCEEDED--huge-string-table', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'minimal', description: 'footer claims a string table of 64 MiB + 1 bytes (checksum valid): over the limit of section 9, refused before the lengths are compared with the file',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(64 * 1024 * 1024 + 1, footerAt(c) + 52); return fixFooter(c); } },
    { name: 'LIMIT_EXCEEDED--region-chunk-count', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'minimal', description: 'the region made 2^44 bytes long with its 2^32 chunks (region checksum valid): a region of 2^32 chunks or more is over the limit of section 9',
      mutate: (b) => { const c = copy(b); const r = regionSection(c); c.writeBigUInt64LE(1n << 44n, r + 8); c.writeBigUInt64LE(1n << 32n, r + 24); return fixRegions(c); } },
    { name: 'LIMIT_EXCEEDED--chunk-count-past-file', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'minimal', description: 'footer claims floor(file length / 24) + 1 chunks (checksum valid): the smallest count whose records the file cannot hold',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(BigInt(Math.floor(c.length / CHUNK_RECORD_SIZE) + 1), footerAt(c) + 24); return fixFooter(c); } },
    { name: 'LIMIT_EXCEEDED--scrypt-cost', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'deflate-chacha20-poly1305-passphrase', description: 'scrypt log2 N 32 with r 8 (header checksum valid): 4 TiB of scrypt memory, over any reader\'s cap (section 7.1), refused before any scrypt work',
      mutate: (b) => { const c = copy(b); c[72] = 32; return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--header-size-over-limit', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'header size 4104, over the 4096 limit: checked before the file length and the header checksum',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(4104, 12); return c; } },
    { name: 'CORRUPT_HEADER--validation-size-over-limit', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'validation size 1 MiB + 8, over the limit (header checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(1024 * 1024 + 8, 64); return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--chunk-size-over-limit', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'chunk size 32 MiB, a power of two over the 16 MiB limit (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(32 * 1024 * 1024, 36); return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--page-size', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'page size 2048, under the 4096 limit (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(2048, 32); return fixHeader(c); } },
    { name: 'CORRUPT_INDEX--name-too-long', code: 'CORRUPT_INDEX', stage: 'open', from: 'minimal', description: 'the region\'s name length 4097, over the 4096 limit (region checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(4097, regionSection(c) + 52); return fixRegions(c); } },
    { name: 'CORRUPT_INDEX--region-checksum-no-key', code: 'CORRUPT_INDEX', stage: 'open', key: null, from: 'chacha20-poly1305', description: 'a byte of the sealed region section changed, opened without a key: the region section\'s checksum is checked at open with or without a key',
      mutate: (b) => { const c = copy(b); c[regionSection(c) + 5]! ^= 1; return c; } },
    { name: 'CORRUPT_INDEX--chunks-out-of-order', code: 'CORRUPT_INDEX', stage: 'verify', from: 'regions', description: 'the stored bytes of chunks 0 and 1 swapped in the file and their records\' offsets with them (chunk table checksum fixed): every record finds its bytes, but stored chunks are not in chunk-table order (section 5.2)',
      mutate: (b) => reindexPlain(b, (chunks, file) => {
        const a = Number(chunks.readBigUInt64LE(0));
        const o = Number(chunks.readBigUInt64LE(CHUNK_RECORD_SIZE));
        const len = chunks.readUInt32LE(8);
        if (chunks.readUInt32LE(CHUNK_RECORD_SIZE + 8) !== len) throw new Error('chunks 0 and 1 differ in length');
        const first = Buffer.from(file.subarray(a, a + len));
        file.copy(file, a, o, o + len);
        first.copy(file, o);
        chunks.writeBigUInt64LE(BigInt(o), 0);
        chunks.writeBigUInt64LE(BigInt(a), CHUNK_RECORD_SIZE);
      }) },
    { name: 'CORRUPT_INDEX--mappable-not-contiguous', code: 'CORRUPT_INDEX', stage: 'verify', from: 'regions', description: 'a zero page inserted between chunks 0 and 1, adjacent stored chunks of one region, and every later offset moved by a page (checksums fixed): reads are right, but MAPPABLE promises such chunks contiguous (section 3.1)',
      mutate: (b) => insertPlain(b, Number(b.readBigUInt64LE(chunkTable(b) + CHUNK_RECORD_SIZE)), new Uint8Array(4096)) },
    { name: 'CORRUPT_INDEX--encoded-chunks-not-packed', code: 'CORRUPT_INDEX', stage: 'verify', from: 'deflate', description: 'eight zero bytes inserted between chunks 1 and 2, every later offset moved by 8 (checksums fixed): reads are right, but an encoded image\'s stored chunks are packed (section 5.2)',
      mutate: (b) => insertPlain(b, Number(b.readBigUInt64LE(chunkTable(b) + 2 * CHUNK_RECORD_SIZE)), new Uint8Array(8)) },
    { name: 'CORRUPT_INDEX--validation-padding-not-zero', code: 'CORRUPT_INDEX', stage: 'verify', from: 'minimal', description: 'a byte between the end of the validation block and the data area set to 1: reads never see it, verifying checks that these bytes are zero',
      mutate: (b) => { const c = copy(b); c[HEADER_SIZE + c.readUInt32LE(64) + 100] = 1; return c; } },
    { name: 'CORRUPT_INDEX--chunk-in-index', code: 'CORRUPT_INDEX', stage: 'read', from: 'minimal', description: 'the chunk record points at the chunk table\'s offset (chunk table checksum fixed): the data area ends where the chunk table starts',
      mutate: (b) => reindexPlain(b, (chunks) => { chunks.writeBigUInt64LE(BigInt(chunkTable(b)), 0); }) },
    { name: 'CORRUPT_INDEX--region-stored-bytes', code: 'CORRUPT_INDEX', stage: 'read', from: 'regions', description: 'region 0\'s stored bytes one more than its chunks hold (region checksum valid): the totals are checked against the chunk table when it is read',
      mutate: (b) => { const c = copy(b); const r = regionSection(c); c.writeBigUInt64LE(c.readBigUInt64LE(r + 32) + 1n, r + 32); return fixRegions(c); } },
    { name: 'CORRUPT_INDEX--region-zero-chunks', code: 'CORRUPT_INDEX', stage: 'read', from: 'regions', description: 'region 0\'s zero chunk count one less than its ZERO chunks (region checksum valid): checked against the chunk table when it is read',
      mutate: (b) => { const c = copy(b); const r = regionSection(c); c.writeBigUInt64LE(c.readBigUInt64LE(r + 40) - 1n, r + 40); return fixRegions(c); } },
    { name: 'CORRUPT_CHUNK--deflate-trailing-bytes', code: 'CORRUPT_CHUNK', stage: 'read', from: 'deflate', description: 'eight bytes appended after the deflate stream of encoded chunk 1, inside its stored bytes (stored length, checksum, region stored bytes, later offsets fixed): a chunk is one complete stream and nothing else (section 6)',
      mutate: (b) => {
        const t = chunkTable(b);
        const off = Number(b.readBigUInt64LE(t + CHUNK_RECORD_SIZE));
        const len = b.readUInt32LE(t + CHUNK_RECORD_SIZE + 8);
        if (b.readUInt16LE(t + CHUNK_RECORD_SIZE + 12) !== 4) throw new Error('chunk 1 is not ENCODED');
        return insertPlain(b, off + len, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), 1);
      } },
    { name: 'TRUNCATED--header-8-bytes', code: 'TRUNCATED', stage: 'open', from: 'minimal', description: 'the file is its first 8 bytes: the magic, then nothing',
      mutate: (b) => copy(b.subarray(0, 8)) },
    { name: 'TRUNCATED--header-12-bytes', code: 'TRUNCATED', stage: 'open', from: 'minimal', description: 'the file is its first 12 bytes: magic and version, cut before the header size',
      mutate: (b) => copy(b.subarray(0, 12)) },
    { name: 'TRUNCATED--header-15-bytes', code: 'TRUNCATED', stage: 'open', from: 'minimal', description: 'the file is its first 15 bytes: cut inside the header size',
      mutate: (b) => copy(b.subarray(0, 15)) },
    { name: 'CORRUPT_VALIDATION--magic', code: 'CORRUPT_VALIDATION', stage: 'open', from: 'minimal', description: 'validation block magic CRVC (checksum valid)',
      mutate: (b) => { const c = copy(b); c[HEADER_SIZE + 3] = 0x43; return fixValidation(c); } },
    { name: 'CORRUPT_VALIDATION--record-padding-not-zero', code: 'CORRUPT_VALIDATION', stage: 'open', from: 'minimal', description: 'the first padding byte after the producer name record set to 0x20 (checksum valid)',
      mutate: (b) => { const c = copy(b); c[HEADER_SIZE + 16 + c.readUInt32LE(HEADER_SIZE + 12)] = 0x20; return fixValidation(c); } },
    { name: 'CORRUPT_HEADER--codec-level-without-codec', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'codec level 6 with codec id 0 (checksum valid)',
      mutate: (b) => { const c = copy(b); c[69] = 6; return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--salt-without-cipher', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'a non-zero salt byte with cipher id 0 (checksum valid)',
      mutate: (b) => { const c = copy(b); c[80] = 1; return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--key-check-without-cipher', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'a non-zero key check value byte with cipher id 0 (checksum valid)',
      mutate: (b) => { const c = copy(b); c[111] = 1; return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--kdf-without-cipher', code: 'CORRUPT_HEADER', stage: 'open', from: 'minimal', description: 'KDF id 1 with cipher id 0 (checksum valid)',
      mutate: (b) => { const c = copy(b); c[71] = 1; return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--mappable-with-codec', code: 'CORRUPT_HEADER', stage: 'open', from: 'deflate', description: 'optional feature MAPPABLE set on an encoded image (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(1n, 24); return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--codec-bit-mismatch', code: 'CORRUPT_HEADER', stage: 'open', from: 'deflate', description: 'codec id 1 with the CODEC required bit cleared (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(0n, 16); return fixHeader(c); } },
    { name: 'UNSUPPORTED_FEATURE--cipher-3', code: 'UNSUPPORTED_FEATURE', stage: 'open', from: 'minimal', description: 'cipher id 3, unknown, with the CIPHER required bit (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(2n, 16); c[70] = 3; return fixHeader(c); } },
    { name: 'UNSUPPORTED_FEATURE--kdf-2', code: 'UNSUPPORTED_FEATURE', stage: 'open', from: 'aes-256-gcm', description: 'KDF id 2, unknown (checksum valid)',
      mutate: (b) => { const c = copy(b); c[71] = 2; return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--scrypt-parameters', code: 'CORRUPT_HEADER', stage: 'open', from: 'deflate-chacha20-poly1305-passphrase', description: 'scrypt log2 N 0, which no scrypt accepts (checksum valid)',
      mutate: (b) => { const c = copy(b); c[72] = 0; return fixHeader(c); } },
    { name: 'CORRUPT_HEADER--deflate-level-0', code: 'CORRUPT_HEADER', stage: 'open', from: 'deflate', description: 'codec level 0 with codec deflate (checksum valid)',
      mutate: (b) => { const c = copy(b); c[69] = 0; return fixHeader(c); } },
    { name: 'CORRUPT_VALIDATION--record-count', code: 'CORRUPT_VALIDATION', stage: 'open', from: 'minimal', description: 'the record count one more than the records the block holds (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(c.readUInt32LE(HEADER_SIZE + 4) + 1, HEADER_SIZE + 4); return fixValidation(c); } },
    { name: 'CORRUPT_INDEX--chunk-table-offset-unaligned', code: 'CORRUPT_INDEX', stage: 'open', from: 'minimal', description: 'footer chunk table offset moved 4 bytes down, not a multiple of 8 (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(c.readBigUInt64LE(footerAt(c) + 16) - 4n, footerAt(c) + 16); return fixFooter(c); } },
    { name: 'CORRUPT_INDEX--no-regions', code: 'CORRUPT_INDEX', stage: 'open', from: 'minimal', description: 'the region section removed and the footer saying 0 regions (checksums valid): an image has at least one region',
      mutate: (b) => {
        const rs = regionSection(b);
        const footer = Buffer.from(b.subarray(footerAt(b)));
        footer.writeUInt32LE(0, 48);
        footer.writeUInt32LE(0, 52);
        footer.writeBigUInt64LE(0n, 56);
        footer.writeBigUInt64LE(xxh64(new Uint8Array(0)), 72);
        return fixFooter(Buffer.concat([b.subarray(0, rs), footer]));
      } },
    { name: 'CORRUPT_INDEX--protection-reserved-bits', code: 'CORRUPT_INDEX', stage: 'open', from: 'minimal', description: 'protection bit 3 set on the region (region checksum valid): bits 3-7 must be 0',
      mutate: (b) => { const c = copy(b); c[regionSection(c) + 56]! |= 8; return fixRegions(c); } },
    { name: 'CORRUPT_INDEX--name-outside-string-table', code: 'CORRUPT_INDEX', stage: 'open', from: 'minimal', description: 'the region\'s name offset moved one byte on, so its last byte is past the string table (region checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeUInt32LE(c.readUInt32LE(regionSection(c) + 48) + 1, regionSection(c) + 48); return fixRegions(c); } },
    { name: 'AUTH_FAILED--tampered-chunk-table', code: 'AUTH_FAILED', stage: 'read', from: 'chacha20-poly1305', description: 'one byte of the sealed chunk table changed (its checksum fixed): its tag fails when the chunk table is read',
      mutate: (b) => {
        const c = copy(b);
        const t = chunkTable(c);
        c[t + 3]! ^= 1;
        const f = footerAt(c);
        c.writeBigUInt64LE(xxh64(c.subarray(t, t + Number(c.readBigUInt64LE(f + 32)))), f + 64);
        return fixFooter(c);
      } },
    { name: 'CORRUPT_INDEX--chunk-flags', code: 'CORRUPT_INDEX', stage: 'read', from: 'minimal', description: 'reserved chunk flag bit 4 set on the chunk record (chunk table checksum fixed)',
      mutate: (b) => reindexPlain(b, (chunks) => { chunks.writeUInt16LE(chunks.readUInt16LE(12) | 0x10, 12); }) },
    { name: 'CORRUPT_INDEX--mappable-unaligned', code: 'CORRUPT_INDEX', stage: 'read', from: 'regions', description: 'chunk 0\'s offset moved 8 bytes on, inside the data area but not page-aligned, in a MAPPABLE image (chunk table checksum fixed)',
      mutate: (b) => reindexPlain(b, (chunks) => { chunks.writeBigUInt64LE(chunks.readBigUInt64LE(0) + 8n, 0); }) },
    { name: 'CORRUPT_CHUNK--deflate-truncated', code: 'CORRUPT_CHUNK', stage: 'read', from: 'deflate', description: 'the last 8 bytes of encoded chunk 1\'s stream cut (stored length, checksum, region stored bytes, later offsets fixed): the stream ends early',
      mutate: (b) => {
        const t = chunkTable(b);
        const off = Number(b.readBigUInt64LE(t + CHUNK_RECORD_SIZE));
        const len = b.readUInt32LE(t + CHUNK_RECORD_SIZE + 8);
        return splicePlain(b, off + len - 8, 8, new Uint8Array(0), 1);
      } },
  ];
}

/**
 * An accepted vector (issue 15): a valid vector changed where the format leaves a reader no
 * choice but to accept (an optional promise withdrawn, a flag or bytes a reader ignores). A
 * reader MUST read it as its JSON says, the `from` vector's with `edit` applied, and verify it.
 */
export interface AcceptedDef {
  /** File name stem: `FROM--what`. */
  name: string;
  from: string;
  description: string;
  mutate: (b: Buffer) => Buffer;
  /** Changes the expected reader view (a copy of `from`'s JSON) where the mutation changes it. */
  edit?: (json: Record<string, unknown>) => void;
}

/** The accepted vectors: each a rule of spec section 12 whose outcome is "accepted". */
export function acceptedVectors(): AcceptedDef[] {
  const copy = (b: Buffer): Buffer => Buffer.from(b);
  return [
    { name: 'minimal--not-mappable', from: 'minimal', description: 'optional feature MAPPABLE cleared on an image without codec and cipher (header checksum fixed): a writer MUST set it, a reader MUST accept its absence (the promise is withdrawn, nothing is wrong)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(0n, 24); return fixHeader(c); } },
    { name: 'sparse--minor-0', from: 'sparse', description: 'minor version 0 with SPARSE set (header checksum fixed): a reader accepts any minor version, and feature bits, not the version, say what an image uses',
      mutate: (b) => { const c = copy(b); c.writeUInt16LE(0, 10); return fixHeader(c); },
      edit: (j) => { j.version = '1.0'; } },
    { name: 'minimal--critical-known-record', from: 'minimal', description: 'CRITICAL set on the producer name record, a type the reader knows (validation checksum fixed): the flag only matters for a type the reader does not know',
      mutate: (b) => { const c = copy(b); c.writeUInt16LE(1, HEADER_SIZE + 10); return fixValidation(c); } },
    { name: 'minimal--unknown-record', from: 'minimal', description: 'the producer version record turned into type 999 without CRITICAL (validation checksum fixed): a reader skips a record of a type it does not know',
      mutate: (b) => {
        const c = copy(b);
        const second = HEADER_SIZE + 8 + 8 + Math.ceil(c.readUInt32LE(HEADER_SIZE + 12) / 8) * 8;
        if (c.readUInt16LE(second) !== 2) throw new Error('the second record is not the producer version');
        c.writeUInt16LE(999, second);
        return fixValidation(c);
      },
      edit: (j) => { delete (j.validation as Record<string, unknown>).producerVersion; } },
    { name: 'minimal--unreferenced-string-table-bytes', from: 'minimal', description: 'eight bytes no name references appended to the string table (footer lengths and checksums fixed): covered by the region section\'s checksum, and names may share bytes, so a reader accepts them',
      mutate: (b) => {
        const f = footerAt(b);
        const out = Buffer.concat([b.subarray(0, f), Buffer.from('unnamed!'), b.subarray(f)]);
        const g = footerAt(out);
        out.writeUInt32LE(out.readUInt32LE(g + 52) + 8, g + 52);
        out.writeBigUInt64LE(out.readBigUInt64LE(g + 56) + 8n, g + 56);
        return fixRegions(out);
      } },
    { name: 'minimal--header-reserved-bytes', from: 'minimal', description: 'the header\'s reserved bytes 75..79 and 112..119 made non-zero (checksum fixed): written as zero, ignored when read (section 1), room for a later minor version',
      mutate: (b) => { const c = copy(b); c.fill(0x5a, 75, 80); c.fill(0xa5, 112, 120); return fixHeader(c); } },
    { name: 'minimal--chunk-record-reserved-bytes', from: 'minimal', description: 'the chunk record\'s reserved bytes 14..15 made non-zero (chunk table checksum fixed): ignored when read',
      mutate: (b) => reindexPlain(b, (chunks) => { chunks.writeUInt16LE(0xbeef, 14); }) },
  ];
}

/** Vectors re-made with another image id (for splicing attacks), filled by generateAll. */
const SIBLINGS = new Map<string, Buffer>();

/** Writes every vector into `dir` (v1 layout): NAME.img + NAME.json, invalid/CODE--what.img + .json. */
export async function generateAll(dir: string): Promise<string[]> {
  const written: string[] = [];
  const bytes = new Map<string, Buffer>();
  const jsons = new Map<string, Record<string, unknown>>();
  for (const def of validVectors()) {
    const p = join(dir, `${def.name}.img`);
    await writeVector(def, p);
    const b = readFileSync(p);
    const json = expectedJson(def) as Record<string, unknown>;
    if (def.options.encrypt) json.crypto = workedExample(b, def.options.key as Uint8Array | { passphrase: string });
    writeFileSync(join(dir, `${def.name}.json`), JSON.stringify(json, null, 2) + '\n');
    bytes.set(def.name, b);
    jsons.set(def.name, json);
    written.push(`${def.name}.img`);
    if (def.name === 'aes-256-gcm') {
      const sp = join(dir, 'sibling.tmp');
      await writeVector({ ...def, options: { ...def.options, imageId: id(99) } }, sp);
      SIBLINGS.set(def.name, readFileSync(sp));
      unlinkSync(sp);
    }
  }
  for (const inv of invalidVectors()) {
    const src = bytes.get(inv.from)!;
    writeFileSync(join(dir, 'invalid', `${inv.name}.img`), inv.mutate(src));
    const key = inv.key === undefined ? undefined : inv.key === null ? null : Buffer.from(inv.key).toString('hex');
    writeFileSync(join(dir, 'invalid', `${inv.name}.json`), JSON.stringify({ code: inv.code, stage: inv.stage, from: inv.from, description: inv.description, ...(key !== undefined ? { key } : {}) }, null, 2) + '\n');
    written.push(`invalid/${inv.name}.img`);
  }
  mkdirSync(join(dir, 'accepted'), { recursive: true });
  for (const acc of acceptedVectors()) {
    writeFileSync(join(dir, 'accepted', `${acc.name}.img`), acc.mutate(bytes.get(acc.from)!));
    const json = structuredClone(jsons.get(acc.from)!);
    json.description = acc.description;
    acc.edit?.(json);
    writeFileSync(join(dir, 'accepted', `${acc.name}.json`), JSON.stringify({ from: acc.from, ...json }, null, 2) + '\n');
    written.push(`accepted/${acc.name}.img`);
  }
  return written;
}

/**
 * The worked example of spec section 7.5 for an encrypted vector: keys, header hash, and the
 * nonce and associated data of its first sealed chunk, all as hex.
 */
export function workedExample(b: Buffer, key: Uint8Array | { passphrase: string }): Record<string, unknown> {
  const c = vectorCrypto(b, key);
  const hex = (x: Uint8Array): string => Buffer.from(x).toString('hex');
  // First sealed chunk: its record, and its region for number, address and last flag.
  const f = footerAt(b);
  const ct = chunkTable(b);
  const rs = regionSection(b);
  const chunkCount = b.readBigUInt64LE(f + 24);
  const regionCount = b.readUInt32LE(f + 48);
  const chunks = Buffer.from(open(c.suite, c.indexKey, indexNonce(1), indexAad({ imageId: c.imageId, headerHash: c.h, domain: 1, count: chunkCount, plainLength: Number(b.readBigUInt64LE(f + 32)) - TAG_SIZE }), b.subarray(ct, ct + Number(b.readBigUInt64LE(f + 32))), 'portable'));
  const regions = Buffer.from(open(c.suite, c.indexKey, indexNonce(2), indexAad({ imageId: c.imageId, headerHash: c.h, domain: 2, count: regionCount, plainLength: Number(b.readBigUInt64LE(f + 56)) - TAG_SIZE }), b.subarray(rs, rs + Number(b.readBigUInt64LE(f + 56))), 'portable'));
  const [number, offset, storedLength] = storedRecords(chunks)[0]!;
  const flags = chunks.readUInt16LE(number * CHUNK_RECORD_SIZE + 12);
  const chunkSize = b.readUInt32LE(36);
  let region = 0;
  for (; region < regionCount; region++) {
    const first = Number(regions.readBigUInt64LE(region * REGION_RECORD_SIZE + 16));
    const count = Number(regions.readBigUInt64LE(region * REGION_RECORD_SIZE + 24));
    if (number >= first && number < first + count) break;
  }
  const r = region * REGION_RECORD_SIZE;
  const j = number - Number(regions.readBigUInt64LE(r + 16));
  const length = regions.readBigUInt64LE(r + 8);
  const count = Number(regions.readBigUInt64LE(r + 24));
  const plainLength = Number(BigInt(j + 1) * BigInt(chunkSize) <= length ? BigInt(chunkSize) : length - BigInt(j) * BigInt(chunkSize));
  const address = regions.readBigUInt64LE(r) + BigInt(j) * BigInt(chunkSize);
  const aad = chunkAad({ imageId: c.imageId, headerHash: c.h, chunkNumber: number, regionNumber: region, plainLength, address, encoded: (flags & 4) !== 0, last: j === count - 1 });
  return {
    masterKey: hex(c.master), salt: hex(c.salt), imageId: hex(c.imageId), headerHash: hex(c.h),
    dataKey: hex(c.dataKey), indexKey: hex(c.indexKey), keyCheck: hex(c.keyCheck),
    firstSealedChunk: {
      number, region, indexInRegion: j, address: '0x' + address.toString(16), plainLength, flags, offset, storedLength,
      nonce: hex(chunkNonce(number)), aad: hex(aad),
    },
  };
}
