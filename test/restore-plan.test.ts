/**
 * Restore plans (restore/_plan.ts): the in-place record scan against a reference built on
 * ChunkTable.get alone, for random images (property), and damaged records, which must reach
 * ChunkTable.get and its CORRUPT_INDEX. Pure: no addon needed.
 */
import fc from 'fast-check';
import { ImageWriter, openImage, type Image } from '../index.js';
import { CHUNK_RECORD_SIZE, CHUNK_ZERO } from '../format/constants.js';
import { ChunkTable, type Region } from '../format/index-table.js';
import { RecordScanner, dataRuns, mapPlan, pieces, planGeometry } from '../restore/_plan.js';
import { memoryLike, tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

/** The plan from ChunkTable.get only: [offset, length, file offset | -1] per run. */
function reference(image: Image, table: ChunkTable, r: Region): number[] {
  const out: number[] = [];
  let fileEnd = -1;
  for (let j = 0; j < r.chunkCount; j++) {
    const plain = image.plainLength(r, j);
    const rec = table.get(r.firstChunk + j, plain);
    const zero = (rec.flags & CHUNK_ZERO) !== 0;
    const n = out.length;
    if (n > 0 && (zero ? out[n - 1] === -1 : fileEnd === rec.offset)) out[n - 2]! += plain;
    else out.push(j * image.chunkSize, plain, zero ? -1 : rec.offset);
    fileEnd = zero ? -1 : rec.offset + rec.storedLength;
  }
  return out;
}

async function write(specs: { pages: number; tail: number; seed: number; zeroFrom: number; zeroPages: number }[], chunkSize: number): Promise<Image> {
  const path = t.path('plan.img');
  const w = await ImageWriter.create(path, { chunkSize, fsync: false });
  let address = 0x7f0000000000n;
  for (const s of specs) {
    const data = Buffer.concat([memoryLike(s.pages, s.seed), Buffer.alloc(s.tail, 3)]);
    data.fill(0, Math.min(data.length, s.zeroFrom * 4096), Math.min(data.length, (s.zeroFrom + s.zeroPages) * 4096));
    await w.addRegion({ address, data });
    address += BigInt(Math.ceil(data.length / 4096) * 4096 + 4096);
  }
  await w.finish();
  return openImage(path);
}

test('the in-place scan gives the reference plan (property)', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({
      pages: fc.integer({ min: 1, max: 40 }), tail: fc.integer({ min: 0, max: 4095 }), seed: fc.integer(),
      zeroFrom: fc.integer({ min: 0, max: 40 }), zeroPages: fc.integer({ min: 0, max: 20 }),
    }), { minLength: 1, maxLength: 4 }),
    fc.constantFrom(4096, 16384, 65536),
    async (specs, chunkSize) => {
      const image = await write(specs, chunkSize);
      try {
        const table = await image.chunkTable();
        const scan = new RecordScanner(table, planGeometry(image));
        for (const r of image.regions) {
          expect([...mapPlan(scan, r)]).toEqual(reference(image, table, r));
          const data = reference(image, table, r).flatMap((v, i, a) => (i % 3 === 0 && a[i + 2] !== -1 ? [[v, a[i + 1]!]] : []));
          // Copy mode merges stored runs whatever their file offsets.
          const merged: number[][] = [];
          for (const [o, l] of data) {
            const last = merged.at(-1);
            if (last && last[0]! + last[1]! === o) last[1]! += l!; else merged.push([o!, l!]);
          }
          expect(dataRuns(scan, r).map((x) => [x.offset, x.length])).toEqual(merged);
        }
      } finally {
        await image.close();
      }
    },
  ), { numRuns: 25 });
});

describe('damaged records reach ChunkTable.get', () => {
  let image: Image;
  let table: ChunkTable;
  beforeAll(async () => {
    image = await write([{ pages: 16, tail: 0, seed: 5, zeroFrom: 4, zeroPages: 4 }], 16384);
    table = await image.chunkTable();
  });
  afterAll(() => image.close());

  /** The table with record `i` changed by `edit` (a DataView at the record). */
  function damaged(i: number, edit: (dv: DataView) => void): RecordScanner {
    const bytes = Uint8Array.from(table.bytes);
    edit(new DataView(bytes.buffer, i * CHUNK_RECORD_SIZE, CHUNK_RECORD_SIZE));
    const g = planGeometry(image);
    const copy = new ChunkTable(bytes, { dataStart: g.dataStart, dataEnd: g.dataEnd, pageSize: g.pageSize, mappable: true, hasCodec: false, hasCipher: false, base: g.dataEnd });
    return new RecordScanner(copy, g);
  }

  test.each([
    ['reserved flag bit on a raw record', 0, (dv: DataView) => dv.setUint16(12, 0x12, true)],
    ['zero record with a checksum', 1, (dv: DataView) => dv.setUint32(20, 1, true)],
    ['zero record with stored bytes', 1, (dv: DataView) => dv.setUint32(8, 4096, true)],
    ['raw record one byte short', 0, (dv: DataView) => dv.setUint32(8, 16383, true)],
    ['raw record at an unaligned offset', 2, (dv: DataView) => dv.setUint32(0, dv.getUint32(0, true) + 8, true)],
    ['raw record past the data area', 2, (dv: DataView) => dv.setUint32(4, 1, true)],
    ['encoded record in a raw image', 0, (dv: DataView) => dv.setUint16(12, 4, true)],
  ])('%s', (_label, i, edit) => {
    const scan = damaged(i, edit);
    const r = image.regions[0]!;
    expect(() => mapPlan(scan, r)).toThrow(expect.objectContaining({ code: 'CORRUPT_INDEX', chunk: i }));
  });

  test('a record the fast check refuses but get() accepts plans the same', () => {
    // The reserved u16 at 14 is ignored by both; an offset hi word of zero is the common case.
    const scan = damaged(0, (dv) => dv.setUint16(14, 0xffff, true));
    expect([...mapPlan(scan, image.regions[0]!)]).toEqual(reference(image, table, image.regions[0]!));
  });

  test('copy mode: a damaged zero record is refused, stored records are left to readInto', () => {
    const r = image.regions[0]!;
    expect(() => dataRuns(damaged(1, (dv) => dv.setUint32(20, 1, true)), r)).toThrow(expect.objectContaining({ code: 'CORRUPT_INDEX' }));
    expect(dataRuns(damaged(0, (dv) => dv.setUint32(8, 16383, true)), r)).toEqual(dataRuns(new RecordScanner(table, planGeometry(image)), r));
  });
});

test('pieces cut runs at the piece size', () => {
  expect([...pieces([{ offset: 0, length: 10 }, { offset: 20, length: 4 }], 4)]).toEqual([
    { offset: 0, length: 4 }, { offset: 4, length: 4 }, { offset: 8, length: 2 }, { offset: 20, length: 4 },
  ]);
});
