/**
 * The conformance vectors of spec/vectors/: their definitions (deterministic inputs), and the
 * mutations that make the invalid ones. Used by spec/generate-vectors.ts (writes them) and by
 * the tests (regenerate and compare byte for byte, then read and compare with the JSON).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ImageWriter, type WriterOptions } from '../image/writer.js';
import { xxh64 } from '../codec/checksum.js';
import { DEFAULT_CHUNK_SIZE, HEADER_SIZE, REGION_RECORD_SIZE, CHUNK_RECORD_SIZE, TAG_SIZE } from '../format/constants.js';
import { deriveKeys, headerHash, resolveMasterKey } from '../codec/keys.js';
import { chunkAad, chunkNonce, indexAad, indexNonce } from '../codec/aad.js';
import { open, seal, suiteForCipherId } from '../codec/aead.js';
import { loadPortableEngine } from '../codec/portable.js';
import { chunkTable, firstStoredChunk, fixFooter, fixHeader, fixRegions, fixValidation, footerAt, regionSection, reindexPlain, storedRecords } from './_vector-bytes.js';
import { acceptedVectors, section12Invalid } from './_vectors-section12.js';
import { parentInvalid, parentValid } from './_vectors-parent.js';
import { prefetchInvalid, prefetchValid } from './_vectors-prefetch.js';
import { zstdInvalid, zstdValid } from './_vectors-zstd.js';

export { acceptedVectors, type AcceptedDef } from './_vectors-section12.js';

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
    ...parentValid(),
    ...prefetchValid(),
    ...zstdValid(),
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
  // A child's parent is named relative to the vectors' directory (spec/_vectors-parent.ts).
  const parent = typeof def.options.parent === 'string' ? { parent: join(dirname(path), def.options.parent) } : {};
  const w = await ImageWriter.create(path, { ...def.options, ...parent, fsync: false, workers: 0 });
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
    ...section12Invalid(),
    ...parentInvalid(),
    ...prefetchInvalid(),
    ...zstdInvalid(),
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
