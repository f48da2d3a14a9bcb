/**
 * The vectors of codec id 2, zstd (issue 16, spec/FORMAT.md section 6.2): zstd alone, under
 * AES-256-GCM and under ChaCha20-Poly1305 (written by the native engine: zstd 1.5.7 as vendored
 * in native-mmap/deps/zstd, so the bytes do not depend on the machine); invalid vectors for
 * each frame rule, a zstd level out of range and an unknown codec id. Part of
 * spec/vectors-lib.ts: `validVectors()` ends with {@link zstdValid}, `invalidVectors()` with
 * {@link zstdInvalid}; never change a definition.
 */
import { xxh64 } from '../codec/checksum.js';
import { CHUNK_ENCODED, CHUNK_RECORD_SIZE } from '../format/constants.js';
import { chunkTable, fixHeader, footerAt, reindexPlain, splicePlain, storedRecords } from './_vector-bytes.js';
import { pattern, VECTOR_KEY, type InvalidDef, type VectorDef } from './vectors-lib.js';

const CREATED = 1_700_000_000_000n;
const VALIDATION = { producerName: 'crimg-vectors', producerVersion: '1.0', architecture: 'x86_64' };
const CHUNK = 8192;

function imageId(n: number): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = (n * 16 + i) & 0xff;
  return b;
}

function regions(): VectorDef['regions'] {
  const text = new TextEncoder().encode('crimg zstd vector: pack my box with five dozen liquor jugs\n'.repeat(80));
  return [
    { address: 0x5600_0000_0000n, data: pattern(12, 51), kind: 'heap', name: 'heap' },
    { address: 0x5600_0001_0000n, data: text.slice(0, 3 * 4096 + 700), kind: 'metadata', prot: 'r--', name: 'strings' },
    { address: 0x5600_0002_0000n, gapLength: 0x2000n, name: 'guard' },
    { address: 0x5600_0002_2000n, data: pattern(3, 52).subarray(0, 3 * 4096 - 900), kind: 'stack', name: 'stack' },
  ];
}

/** The valid zstd vectors. */
export function zstdValid(): VectorDef[] {
  const base = (n: number) => ({
    imageId: imageId(n), created: CREATED, pageSize: 4096, chunkSize: CHUNK, validation: VALIDATION,
    engine: 'node' as const, salt: Uint8Array.from({ length: 16 }, (_, i) => 0xb0 + i),
  });
  return [
    { name: 'zstd', description: 'zstd level 1 per chunk (one single-segment frame with its content size), no cipher', options: { ...base(30), compress: 'zstd:1' }, regions: regions() },
    { name: 'zstd-aes-256-gcm', description: 'zstd level 3 then AES-256-GCM with a raw key', options: { ...base(31), compress: 'zstd:3', encrypt: 'aes-256-gcm', key: VECTOR_KEY }, regions: regions() },
    { name: 'zstd-chacha20-poly1305', description: 'zstd level 19 then ChaCha20-Poly1305 with a raw key', options: { ...base(32), compress: 'zstd:19', encrypt: 'chacha20-poly1305', key: VECTOR_KEY }, regions: regions() },
  ];
}

/** The first ENCODED chunk of an unencrypted image: record index, file offset, stored length. */
function firstEncoded(b: Buffer): [number, number, number] {
  const ct = chunkTable(b);
  const n = Number(b.readBigUInt64LE(footerAt(b) + 24));
  for (let i = 0; i < n; i++) {
    const r = ct + i * CHUNK_RECORD_SIZE;
    if (b.readUInt16LE(r + 12) & CHUNK_ENCODED) return [i, Number(b.readBigUInt64LE(r)), b.readUInt32LE(r + 8)];
  }
  throw new Error('no encoded chunk');
}

/**
 * Replaces the first encoded chunk's frame with `edit(frame)`: in place (its checksum fixed)
 * when as long, else spliced (the record's length and checksum, and what follows, moved).
 */
function reframe(b: Buffer, edit: (frame: Buffer) => Uint8Array): Buffer {
  const [i, off, len] = firstEncoded(b);
  const next = edit(Buffer.from(b.subarray(off, off + len)));
  if (next.length !== len) return realign(splicePlain(b, off, len, next, i));
  return reindexPlain(b, (chunks, file) => {
    file.set(next, off);
    chunks.writeBigUInt64LE(xxh64(next), i * CHUNK_RECORD_SIZE + 16);
  });
}

/** Sets the zero padding after the last stored chunk back to what aligns the chunk table to 8 (section 5.2). */
function realign(b: Buffer): Buffer {
  const ct = chunkTable(b);
  const chunks = b.subarray(ct, ct + Number(b.readBigUInt64LE(footerAt(b) + 32)));
  let end = 0;
  for (const [, o, l] of storedRecords(chunks)) end = Math.max(end, o + l);
  return splicePlain(b, end, ct - end, new Uint8Array((8 - (end % 8)) % 8));
}

/** The frame's header fields: descriptor byte, where the content size field starts, its size. */
function header(f: Buffer): { fhd: number; fcsAt: number; fcsBytes: number } {
  const fhd = f[4]!;
  const single = (fhd >> 5) & 1;
  const fcsFlag = fhd >> 6;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  return { fhd, fcsAt: 5 + (single ? 0 : 1) + dictBytes, fcsBytes: fcsFlag === 0 ? single : 1 << fcsFlag };
}

/** The invalid zstd vectors (after those of vectors-lib.ts and _vectors-parent.ts, forever). */
export function zstdInvalid(): InvalidDef[] {
  const copy = (b: Buffer): Buffer => Buffer.from(b);
  return [
    { name: 'CORRUPT_CHUNK--zstd-skippable-frame', code: 'CORRUPT_CHUNK', stage: 'read', from: 'zstd', description: 'the first encoded chunk turned into one skippable frame of its length (checksum fixed): a chunk is one zstd frame, never a skippable one (section 6.2)',
      mutate: (b) => reframe(b, (f) => { const c = Buffer.from(f); c.writeUInt32LE(0x184d2a50, 0); c.writeUInt32LE(c.length - 8, 4); return c; }) },
    { name: 'CORRUPT_CHUNK--zstd-dictionary-id', code: 'CORRUPT_CHUNK', stage: 'read', from: 'zstd', description: 'dictionary id 42 (one byte) added to the first encoded chunk\'s frame header (stored length and checksums fixed): dictionaries are not allowed (section 6.2)',
      mutate: (b) => reframe(b, (f) => { const h = header(f); return Buffer.concat([f.subarray(0, 4), Buffer.of(h.fhd | 1, 42), f.subarray(5)]); }) },
    { name: 'CORRUPT_CHUNK--zstd-window-over-chunk', code: 'CORRUPT_CHUNK', stage: 'read', from: 'zstd', description: 'the first encoded chunk\'s frame made multi-segment with a 128 KiB window, larger than the 8 KiB chunk, and a 4-byte content size (stored length and checksums fixed): frames are single-segment (section 6.2)',
      mutate: (b) => reframe(b, (f) => {
        const h = header(f);
        let size = 0;
        for (let k = 0; k < h.fcsBytes; k++) size += f[h.fcsAt + k]! * 2 ** (8 * k);
        if (h.fcsBytes === 2) size += 256;
        const fcs = Buffer.alloc(4);
        fcs.writeUInt32LE(size, 0);
        return Buffer.concat([f.subarray(0, 4), Buffer.of((2 << 6) | (h.fhd & 0x04), (17 - 10) << 3), fcs, f.subarray(h.fcsAt + h.fcsBytes)]);
      }) },
    { name: 'CORRUPT_CHUNK--zstd-content-size', code: 'CORRUPT_CHUNK', stage: 'read', from: 'zstd', description: 'the first encoded chunk\'s frame content size made one less than its plain length (checksum fixed): it must equal the plain length (section 6.2)',
      mutate: (b) => reframe(b, (f) => { const c = Buffer.from(f); const h = header(c); c.writeUIntLE(c.readUIntLE(h.fcsAt, h.fcsBytes) - 1, h.fcsAt, h.fcsBytes); return c; }) },
    { name: 'CORRUPT_CHUNK--zstd-trailing-byte', code: 'CORRUPT_CHUNK', stage: 'read', from: 'zstd', description: 'a zero byte after the end of the first encoded chunk\'s frame (stored length and checksums fixed): nothing may follow the frame (section 6.2)',
      mutate: (b) => reframe(b, (f) => Buffer.concat([f, Buffer.of(0)])) },
    { name: 'CORRUPT_CHUNK--zstd-truncated', code: 'CORRUPT_CHUNK', stage: 'read', from: 'zstd', description: 'the last byte of the first encoded chunk\'s frame removed (stored length and checksums fixed): a truncated frame (section 6.2)',
      mutate: (b) => reframe(b, (f) => f.subarray(0, f.length - 1)) },
    { name: 'CORRUPT_HEADER--zstd-level-20', code: 'CORRUPT_HEADER', stage: 'open', from: 'zstd', description: 'codec level 20 with codec zstd (checksum valid): zstd levels are 1 to 19 (section 3)',
      mutate: (b) => { const c = copy(b); c[69] = 20; return fixHeader(c); } },
    { name: 'UNSUPPORTED_FEATURE--codec-3', code: 'UNSUPPORTED_FEATURE', stage: 'open', from: 'minimal', description: 'codec id 3 (unknown) with the CODEC bit (checksum valid)',
      mutate: (b) => { const c = copy(b); c.writeBigUInt64LE(1n, 16); c[68] = 3; c[69] = 1; c.writeBigUInt64LE(0n, 24); return fixHeader(c); } },
  ];
}
