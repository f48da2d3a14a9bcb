/**
 * The vectors of parent images (issue 19, spec/FORMAT.md section 8.3): a parent, a child of it,
 * and a rewrite of the parent under its own image id; the invalid children of a missing, a
 * different and a tampered parent, of a chain deeper than the limit, and of the PARENT bit
 * without its record. Part of spec/vectors-lib.ts: `validVectors()` ends with
 * {@link parentValid}, `invalidVectors()` with {@link parentInvalid}; never change a definition.
 *
 * Location hints are relative to the child's directory: the valid child (in v1/) names
 * `parent.img`; its invalid copies (in v1/invalid/) differ from it by their parent record's
 * hint only (`../absent.img`, `../sparse.img`, `../parent-b.img`), the validation block
 * re-encoded and its size and checksums fixed (the data area still starts at 4096).
 */
import { xxh64 } from '../codec/checksum.js';
import { HEADER_SIZE } from '../format/constants.js';
import { decodeValidation, encodeValidation, toValidationInput } from '../format/validation.js';
import { fixHeader, fixValidation } from './_vector-bytes.js';
import { pattern, type InvalidDef, type VectorDef } from './vectors-lib.js';

const CREATED = 1_700_000_000_000n;
const VALIDATION = { producerName: 'crimg-vectors', producerVersion: '1.0', architecture: 'x86_64' };

function imageId(n: number): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = (n * 16 + i) & 0xff;
  return b;
}

/** The parent's regions: a heap of 8 chunks and a stack of 2 (deflate, 8 KiB chunks). */
function parentRegions(heap: Uint8Array): VectorDef['regions'] {
  return [
    { address: 0x6600_0000_0000n, data: heap, kind: 'heap', name: 'heap' },
    { address: 0x6600_0001_0000n, gapLength: 0x2000n, name: 'guard' },
    { address: 0x6600_0001_2000n, data: pattern(4, 42), kind: 'stack', name: 'stack' },
  ];
}

/** The hint of the valid child, and the ones its invalid copies (in invalid/) carry instead. */
export const PARENT_HINTS = {
  valid: 'parent.img',
  missing: '../absent.img',
  other: '../sparse.img',
  tampered: '../parent-b.img',
} as const;

/** The valid vectors of parent images, the parent before its child (generateAll writes them in order). */
export function parentValid(): VectorDef[] {
  const heap = pattern(16, 41);
  const rewritten = Uint8Array.from(heap);
  rewritten[5000]! ^= 1;
  const child = Uint8Array.from(heap);
  child.fill(0x11, 3 * 4096, 3 * 4096 + 200); // heap chunk 1 changed
  const options = { created: CREATED, pageSize: 4096, chunkSize: 8192, validation: VALIDATION, compress: 'deflate:6', engine: 'portable' as const };
  return [
    { name: 'parent', description: 'the parent of parent-child: a heap, a gap and a stack, deflate level 6', options: { ...options, imageId: imageId(20) }, regions: parentRegions(heap) },
    {
      name: 'parent-b', description: 'the parent vector rewritten under its image id with one heap byte changed: a valid image, and the tampered parent of PARENT_MISMATCH--tampered-parent (image ids are unique only in images a writer makes)',
      options: { ...options, imageId: imageId(20) }, regions: parentRegions(rewritten),
    },
    {
      name: 'parent-child',
      description: `a child of the parent vector (required feature PARENT, validation record type 8 CRITICAL with the parent's image id, index hash, depth 1 and the hint ${PARENT_HINTS.valid}): heap chunk 1 changed and stored, the others IN_PARENT, the stack grown by a stored chunk, a new region; read through the parent`,
      options: { ...options, imageId: imageId(21), parent: 'parent.img', parentHint: PARENT_HINTS.valid },
      regions: [
        { address: 0x6600_0000_0000n, data: child, kind: 'heap', name: 'heap' },
        { address: 0x6600_0001_0000n, gapLength: 0x2000n, name: 'guard' },
        { address: 0x6600_0001_2000n, data: Uint8Array.from([...pattern(4, 42), ...pattern(2, 43)]), kind: 'stack', name: 'stack' },
        { address: 0x6600_0010_0000n, data: pattern(2, 44), kind: 'anonymous', name: 'new' },
      ],
    },
  ];
}

/** The offset of the child's parent record's payload (validation record type 8). */
function parentPayload(b: Buffer): number {
  const count = b.readUInt32LE(HEADER_SIZE + 4);
  let off = HEADER_SIZE + 8;
  for (let i = 0; i < count; i++) {
    const len = b.readUInt32LE(off + 4);
    if (b.readUInt16LE(off) === 8) return off + 8;
    off += 8 + Math.ceil(len / 8) * 8;
  }
  throw new Error('no parent record');
}

/** The child with another location hint: its validation block re-encoded, header size and checksum fixed. */
function withHint(b: Buffer, hint: string): Buffer {
  const size = b.readUInt32LE(64);
  const v = decodeValidation(b.subarray(HEADER_SIZE, HEADER_SIZE + size), HEADER_SIZE, xxh64);
  if (v.parent?.hint !== PARENT_HINTS.valid) throw new Error('unexpected hint');
  const block = encodeValidation({ ...toValidationInput(v), parent: { ...v.parent, hint } }, xxh64);
  if (HEADER_SIZE + block.length > 4096) throw new Error('validation block too long');
  const c = Buffer.from(b);
  c.fill(0, HEADER_SIZE, 4096);
  c.set(block, HEADER_SIZE);
  c.writeUInt32LE(block.length, 64);
  return fixHeader(c);
}

/** The invalid vectors of parent images (after those of section 12, in this order, forever). */
export function parentInvalid(): InvalidDef[] {
  return [
    { name: 'PARENT_REQUIRED--missing-parent', code: 'PARENT_REQUIRED', stage: 'read', from: 'parent-child', description: `the child with the hint ${PARENT_HINTS.missing}, where no file is (validation checksum fixed): it opens and reads its own chunks; a parent chunk is PARENT_REQUIRED`,
      mutate: (b) => withHint(b, PARENT_HINTS.missing) },
    { name: 'PARENT_MISMATCH--other-image', code: 'PARENT_MISMATCH', stage: 'read', from: 'parent-child', description: `the child with the hint ${PARENT_HINTS.other}, another valid image (validation checksum fixed): its image id is not the parent's`,
      mutate: (b) => withHint(b, PARENT_HINTS.other) },
    { name: 'PARENT_MISMATCH--tampered-parent', code: 'PARENT_MISMATCH', stage: 'read', from: 'parent-child', description: `the child with the hint ${PARENT_HINTS.tampered}, the parent rewritten under its image id with one byte changed (validation checksum fixed): the image id matches, the index hash does not`,
      mutate: (b) => withHint(b, PARENT_HINTS.tampered) },
    { name: 'LIMIT_EXCEEDED--chain-depth', code: 'LIMIT_EXCEEDED', stage: 'open', from: 'parent-child', description: 'the parent record\'s depth set to 33, one past the limit of section 9 (validation checksum fixed)',
      mutate: (b) => { const c = Buffer.from(b); c.writeUInt32LE(33, parentPayload(c) + 48); return fixValidation(c); } },
    { name: 'CORRUPT_VALIDATION--parent-bit-without-record', code: 'CORRUPT_VALIDATION', stage: 'open', from: 'parent-child', description: 'the parent record turned into an unknown type 999 without CRITICAL (skipped), the header\'s required feature PARENT left set (validation checksum fixed)',
      mutate: (b) => { const c = Buffer.from(b); const at = parentPayload(c) - 8; c.writeUInt16LE(999, at); c.writeUInt16LE(0, at + 2); return fixValidation(c); } },
    { name: 'CORRUPT_HEADER--mappable-child', code: 'CORRUPT_HEADER', stage: 'open', from: 'parent-child', description: 'optional feature MAPPABLE set on the child (header checksum valid): a child\'s chunks are not all in its file',
      mutate: (b) => { const c = Buffer.from(b); c.writeBigUInt64LE(1n, 24); return fixHeader(c); } },
  ];
}
