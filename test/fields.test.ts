/**
 * format/fields.ts: the field tables are the spec's tables. Each structure's table in
 * spec/FORMAT.md (sections 3, 5.3, 8.1, 8.2) is read here and compared row by row (offset, size,
 * type) with the library's table, so that the one description in code cannot drift from the
 * normative one. Then the generic decoder and encoder: round trip and misuse.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CHUNK_RECORD, CHUNK_RECORD_WORDS, FOOTER, HEADER, REGION_RECORD, decodeFields, encodeFields, offsetOf, sizeOf, type FieldTable,
} from '../format/fields.js';
import { HEADER_SIZE } from '../format/constants.js';

const spec = readFileSync(join(process.cwd(), 'spec', 'FORMAT.md'), 'utf8');

interface Row { offset: number; size: number; type: string }

/** The first table after `heading`: offset (a number, or "header size - N"), size, type. */
function specTable(heading: string, size: number): Row[] {
  const at = spec.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`spec/FORMAT.md has no heading ${heading}`);
  const lines = spec.slice(at).split('\n');
  const start = lines.findIndex((l) => l.startsWith('| offset |'));
  const rows: Row[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const [offset, len, type, , rules] = line.split('|').slice(1).map((c) => c.trim());
    const back = /^header size - (\d+)$/.exec(offset!);
    rows.push({
      offset: back ? size - Number(back[1]) : Number(offset),
      size: Number(len),
      // A field the spec names but reserves ("flags | reserved") is reserved bytes to the library.
      type: type === '' || rules === 'reserved' ? 'reserved' : type!,
    });
  }
  return rows;
}

function libraryTable(t: FieldTable): Row[] {
  return t.fields.map((f) => ({ offset: f.offset < 0 ? t.size + f.offset : f.offset, size: f.size, type: f.type }));
}

test.each([
  ['## 3. Header', HEADER],
  ['### 5.3 Chunk table', CHUNK_RECORD],
  ['### 8.1 Region table', REGION_RECORD],
  ['### 8.2 Footer', FOOTER],
] as const)('%s: the library table is the spec table', (heading, table) => {
  expect(libraryTable(table)).toEqual(specTable(heading, table.size));
});

test('the chunk record as words: u64s on even words, the flags the low half of word 3', () => {
  expect(CHUNK_RECORD_WORDS).toEqual({ size: 6, offset: 0, storedLength: 2, flags: 3, checksum: 4 });
  const rec = new Uint8Array(24);
  encodeFields(CHUNK_RECORD, { offset: 0x1_0000_2000n, storedLength: 4096, flags: 2, checksum: 0x1122334455667788n }, rec);
  const w = new Uint32Array(rec.buffer);
  expect([w[CHUNK_RECORD_WORDS.offset], w[CHUNK_RECORD_WORDS.offset + 1], w[CHUNK_RECORD_WORDS.storedLength], w[CHUNK_RECORD_WORDS.flags]! & 0xffff])
    .toEqual([0x2000, 1, 4096, 2]);
  expect([w[CHUNK_RECORD_WORDS.checksum], w[CHUNK_RECORD_WORDS.checksum + 1]]).toEqual([0x55667788, 0x11223344]);
});

test('offsetOf counts a field from the end against the structure length', () => {
  expect(offsetOf(HEADER, 'pageSize')).toBe(32);
  expect(offsetOf(HEADER, 'checksum')).toBe(HEADER_SIZE - 8);
  expect(offsetOf(HEADER, 'checksum', 256)).toBe(248);
  expect(offsetOf(FOOTER, 'endMagic')).toBe(88);
  expect(sizeOf(HEADER, 'imageId')).toBe(16);
  expect(() => offsetOf(HEADER, 'nope' as 'magic')).toThrow(RangeError);
});

test('encodeFields then decodeFields gives the values back, reserved bytes zero', () => {
  const out = new Uint8Array(3 * CHUNK_RECORD.size).fill(0xff);
  const values = { offset: 0x1_0000_0000n, storedLength: 4097, flags: 0xabcd, checksum: 0xfedcba9876543210n };
  encodeFields(CHUNK_RECORD, values, out, CHUNK_RECORD.size);
  expect(decodeFields(CHUNK_RECORD, out, CHUNK_RECORD.size)).toEqual(values);
  expect([...out.subarray(CHUNK_RECORD.size + 14, CHUNK_RECORD.size + 16)]).toEqual([0, 0]);
  expect(out[0]).toBe(0xff); // the record before is untouched
  expect(out[2 * CHUNK_RECORD.size]).toBe(0xff); // and the one after
});

test('decodeFields copies byte strings and reads a longer header\'s checksum at its end', () => {
  const b = new Uint8Array(256);
  b.fill(7, 40, 56);
  new DataView(b.buffer).setBigUint64(248, 99n, true);
  const r = decodeFields(HEADER, b, 0, 256);
  expect(r.checksum).toBe(99n);
  expect([...r.imageId]).toEqual(new Array(16).fill(7));
  b[40] = 0;
  expect(r.imageId[0]).toBe(7);
});

test('misuse throws RangeError: short buffers, wrong byte-string lengths', () => {
  expect(() => decodeFields(FOOTER, new Uint8Array(95))).toThrow(RangeError);
  expect(() => decodeFields(CHUNK_RECORD, new Uint8Array(24), 1)).toThrow(RangeError);
  expect(() => encodeFields(CHUNK_RECORD, { offset: 0n, storedLength: 0, flags: 0, checksum: 0n }, new Uint8Array(23))).toThrow(RangeError);
  const footer = {
    imageId: new Uint8Array(15), chunkTableOffset: 0n, chunkCount: 0n, chunkTableLength: 0n, regionSectionOffset: 0n,
    regionCount: 0, stringTableLength: 0, regionSectionLength: 0n, chunkTableChecksum: 0n, regionSectionChecksum: 0n,
    checksum: 0n, endMagic: new Uint8Array(8),
  };
  expect(() => encodeFields(FOOTER, footer, new Uint8Array(96))).toThrow(/expected footer field imageId of 16 bytes, got 15 bytes/);
});
