/**
 * The vectors of the hot list (issue 17, spec/FORMAT.md section 4.1): validation record type 9
 * with optional feature bit 2 (`HOT_LIST`), the chunks a lazy restore fetches first. One valid
 * image with a list of three runs; invalid copies breaking rules 64 and 65 of section 12.1, each
 * with the validation checksum (and, for the header bit, the header checksum) fixed so the hot
 * list's own rule is the one that fails, at open. Part of spec/vectors-lib.ts: `validVectors()`
 * ends with {@link prefetchValid}, `invalidVectors()` with {@link prefetchInvalid}; never
 * change a definition.
 */
import { HEADER_SIZE } from '../format/constants.js';
import { fixHeader, fixValidation } from './_vector-bytes.js';
import { pattern, type InvalidDef, type VectorDef } from './vectors-lib.js';

const CREATED = 1_700_000_000_000n;
const VALIDATION = { producerName: 'crimg-vectors', producerVersion: '1.0', architecture: 'x86_64' };

/** Runs of `u64 first chunk, u32 count`. */
function runs(list: readonly [number, number][]): Uint8Array {
  const out = Buffer.alloc(list.length * 12);
  list.forEach(([first, count], k) => {
    out.writeBigUInt64LE(BigInt(first), k * 12);
    out.writeUInt32LE(count, k * 12 + 8);
  });
  return out;
}

/** The valid vector's list: chunks 8, 9 (the stack), 2, 3, 4, then 0 (of 10 chunks). */
const HOT = runs([[8, 2], [2, 3], [0, 1]]);

/** The valid hot-list vector. */
export function prefetchValid(): VectorDef[] {
  const imageId = Uint8Array.from({ length: 16 }, (_, i) => 0x90 + i);
  return [{
    name: 'hot-list',
    description: 'a hot list (validation record type 9, optional feature bit 2 HOT_LIST): runs (8, 2), (2, 3), (0, 1) of 10 chunks; deflate level 6, 8 KiB chunks. A reader restores the same bytes with or without the list',
    options: {
      imageId, created: CREATED, pageSize: 4096, chunkSize: 8192, compress: 'deflate:6', engine: 'portable',
      validation: { ...VALIDATION, skipped: [{ type: 9, payload: HOT }] },
    },
    regions: [
      { address: 0x6700_0000_0000n, data: pattern(16, 61), kind: 'heap', name: 'heap' },
      { address: 0x6700_0001_0000n, gapLength: 0x2000n, name: 'guard' },
      { address: 0x6700_0001_2000n, data: pattern(4, 62), kind: 'stack', name: 'stack' },
    ],
  }];
}

/** File offset of the header of the first validation record of `type`. */
function recordAt(b: Buffer, type: number): number {
  const count = b.readUInt32LE(HEADER_SIZE + 4);
  let at = HEADER_SIZE + 8;
  for (let i = 0; i < count; i++) {
    if (b.readUInt16LE(at) === type) return at;
    at += 8 + Math.ceil(b.readUInt32LE(at + 4) / 8) * 8;
  }
  throw new Error(`no validation record of type ${type}`);
}

/** A copy with the hot list's payload edited in place (its length kept), validation checksum fixed. */
function editList(edit: (payload: Buffer, record: number, b: Buffer) => void): (b: Buffer) => Buffer {
  return (b) => {
    const c = Buffer.from(b);
    const at = recordAt(c, 9);
    edit(c.subarray(at + 8, at + 8 + c.readUInt32LE(at + 4)), at, c);
    return fixValidation(c);
  };
}

/** The invalid hot-list vectors (rules 64 and 65 of section 12.1), all at open. */
export function prefetchInvalid(): InvalidDef[] {
  const from = 'hot-list';
  return [
    { name: 'CORRUPT_VALIDATION--hot-list-bit-without-record', code: 'CORRUPT_VALIDATION', stage: 'open', from, description: 'the hot-list record turned into an unknown type 999 (skipped), the header\'s optional feature HOT_LIST left set (validation checksum fixed)',
      mutate: editList((_, at, c) => c.writeUInt16LE(999, at)) },
    { name: 'CORRUPT_VALIDATION--hot-list-record-without-bit', code: 'CORRUPT_VALIDATION', stage: 'open', from, description: 'the header\'s optional feature HOT_LIST (bit 2) cleared, the hot-list record kept (header checksum fixed)',
      mutate: (b) => { const c = Buffer.from(b); c.writeBigUInt64LE(c.readBigUInt64LE(24) & ~4n, 24); return fixHeader(c); } },
    { name: 'CORRUPT_VALIDATION--hot-list-twice', code: 'CORRUPT_VALIDATION', stage: 'open', from, description: 'the producer version record (type 2) turned into a second hot-list record (type 9) (validation checksum fixed)',
      mutate: (b) => { const c = Buffer.from(b); c.writeUInt16LE(9, recordAt(c, 2)); return fixValidation(c); } },
    { name: 'CORRUPT_VALIDATION--hot-list-length', code: 'CORRUPT_VALIDATION', stage: 'open', from, description: 'the hot-list payload length 36 made 35 (not a multiple of 12; the record still ends where it did, its padding zero) (validation checksum fixed)',
      mutate: editList((_, at, c) => c.writeUInt32LE(35, at + 4)) },
    { name: 'CORRUPT_VALIDATION--hot-list-count-0', code: 'CORRUPT_VALIDATION', stage: 'open', from, description: 'the hot list\'s run 1 given count 0 (validation checksum fixed)',
      mutate: editList((p) => p.writeUInt32LE(0, 12 + 8)) },
    { name: 'CORRUPT_VALIDATION--hot-list-out-of-range', code: 'CORRUPT_VALIDATION', stage: 'open', from, description: 'the hot list\'s run 0 starts at chunk 9 with count 2: chunk 10 is beyond the image\'s 10 chunks (validation checksum fixed)',
      mutate: editList((p) => p.writeBigUInt64LE(9n, 0)) },
    { name: 'CORRUPT_VALIDATION--hot-list-duplicate', code: 'CORRUPT_VALIDATION', stage: 'open', from, description: 'the hot list\'s run 2 names chunk 3, which run 1 (chunks 2 to 4) names too (validation checksum fixed)',
      mutate: editList((p) => p.writeBigUInt64LE(3n, 24)) },
  ];
}
