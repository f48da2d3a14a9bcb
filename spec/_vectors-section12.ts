/**
 * The vectors of spec section 12 (issue 15): an invalid vector for every rule that had none,
 * and the accepted vectors (what a reader must accept). Part of spec/vectors-lib.ts: its
 * `invalidVectors()` ends with {@link section12Invalid}; never change an existing definition.
 */
import { xxh64 } from '../codec/checksum.js';
import { CHUNK_RECORD_SIZE, HEADER_SIZE } from '../format/constants.js';
import { chunkTable, fixFooter, fixHeader, fixRegions, fixValidation, footerAt, insertPlain, regionSection, reindexPlain, splicePlain } from './_vector-bytes.js';
import type { InvalidDef } from './vectors-lib.js';

/** The invalid vectors of section 12, after those of format 1.0 and 1.1 (in this order, forever). */
export function section12Invalid(): InvalidDef[] {
  const copy = (b: Buffer): Buffer => Buffer.from(b);
  return [
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
