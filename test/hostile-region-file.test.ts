/**
 * A large region section kept in the file (image/_region-file.ts, issue 14): opened by path, a
 * section of 4 MiB or more is checked as it streams by and read again by pread when a region is
 * asked for. The same regions, codes, messages and offsets as the section held in memory (the
 * same bytes opened as a buffer); a section changed or cut short after open is told
 * (SOURCE_CHANGED), never read as checked records.
 */
import { truncateSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { CrimgError, openImage, type Image } from '../index.js';
import { REGION_RECORD, REGION_RECORD_SIZE, decodeFooter, encodeFooter, offsetOf, type Region } from '../format/index.js';
import { FOOTER_SIZE } from '../format/constants.js';
import { xxh64 } from '../codec/checksum.js';
import { manyRegions } from './hostile-corpus.js';
import { tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

/** 2^16 regions (every other a gap): a 4 MiB region section, the smallest kept in the file. */
const COUNT = 1 << 16;
const bytes = manyRegions(COUNT);
const footer = decodeFooter(bytes.subarray(bytes.length - FOOTER_SIZE), bytes.length - FOOTER_SIZE, xxh64);
const sectionAt = Number(footer.regionSectionOffset);
const sectionLength = Number(footer.regionSectionLength);

/** `b` with its footer's region section checksum made right again (a crafted section, not a damaged one). */
function resealed(b: Uint8Array): Uint8Array {
  const out = b.slice();
  const f = { ...footer, regionSectionChecksum: xxh64(out.subarray(sectionAt, sectionAt + sectionLength)) };
  out.set(encodeFooter(f, xxh64), out.length - FOOTER_SIZE);
  return out;
}

function line(r: Region): string {
  return [r.index, r.address, r.length, r.protBits, r.prot, r.kindId, r.kind, JSON.stringify(r.name), r.firstChunk, r.chunkCount, r.storedBytes, r.zeroChunks, r.isGap, r.shared, r.fileOffset].join(' ');
}

/** What opening `b` gives: every region (compared field by field), or the error's code, message and offset. */
async function outcome(b: Uint8Array | string): Promise<unknown> {
  let image: Image | undefined;
  try {
    image = await openImage(b, { workers: 0 });
    // Every field of every region as one line (a deep compare of 2^16 objects takes seconds).
    const lines: string[] = [];
    for (let i = 0; i < image.regionCount; i++) lines.push(line(image.region(i)));
    // A read of the first data region: the chunk table's totals are checked against the records, piece by piece.
    const read = (await image.read(image.region(0).address, 4096)).length;
    return { regions: lines.join('\n'), count: lines.length, read };
  } catch (e) {
    if (!(e instanceof CrimgError)) throw e;
    return { code: e.code, message: e.message, offset: e.offset };
  } finally {
    await image?.close();
  }
}

test('the same regions, lookups and reads from the file as from the same bytes in memory', async () => {
  const path = t.path('many.img');
  writeFileSync(path, bytes);
  expect(sectionLength).toBeGreaterThanOrEqual(4 << 20);
  const inFile = await outcome(path);
  expect(inFile).toEqual(await outcome(bytes));
  expect(inFile).toMatchObject({ count: COUNT, read: 4096 });
  const image = await openImage(path, { workers: 0 });
  try {
    // Lookups far apart and at the edges of the 1024-record lines the lookup index keeps (first
    // and last byte of each region), past the end, and the regions array.
    for (const i of [0, 1, 1023, 1024, 1025, 4095, 4096, 30_001, COUNT - 1024, COUNT - 1]) {
      const r = image.region(i);
      expect([i, image.regionAt(r.address)?.index, image.regionAt(r.address + r.length - 1n)?.index]).toEqual([i, i, i]);
    }
    const last = image.region(COUNT - 1);
    expect(image.regionAt(last.address + last.length)).toBeUndefined();
    expect(image.regionAt(0x1000n)).toBeUndefined();
    expect(image.regions.map(line).join('\n')).toBe((inFile as { regions: string }).regions);
  } finally {
    await image.close();
  }
});

test('a crafted record (checksum right): the same code, message and offset either way, wherever it lies', async () => {
  const address = offsetOf(REGION_RECORD, 'address');
  const length = offsetOf(REGION_RECORD, 'length');
  for (const [k, field, value] of [[0, address, 1], [20_000, length, 0], [COUNT - 1, address, 0x800]] as const) {
    const b = bytes.slice();
    const dv = new DataView(b.buffer);
    dv.setUint32(sectionAt + k * REGION_RECORD_SIZE + field, value, true);
    const c = resealed(b);
    const path = t.path(`crafted-${k}.img`);
    writeFileSync(path, c);
    const got = await outcome(path);
    expect(got).toEqual(await outcome(c));
    expect(got).toMatchObject({ code: 'CORRUPT_INDEX', message: expect.stringContaining(`region ${k} `) });
  }
});

test('a damaged section (checksum wrong): the checksum mismatch, told before any record error', async () => {
  const b = bytes.slice();
  b[sectionAt + 30_000 * REGION_RECORD_SIZE] ^= 1; // an address made unaligned, and the checksum wrong
  const path = t.path('damaged.img');
  writeFileSync(path, b);
  const got = await outcome(path);
  expect(got).toEqual(await outcome(b));
  expect(got).toMatchObject({ code: 'CORRUPT_INDEX', message: expect.stringContaining('region section checksum mismatch'), offset: sectionAt });
});

test('changed or cut short after open: SOURCE_CHANGED when those records are read, never unchecked records', async () => {
  const path = t.path('changing.img');
  writeFileSync(path, bytes);
  const image = await openImage(path, { workers: 0 });
  try {
    const far = COUNT - 10;
    const fd = openSync(path, 'r+');
    try {
      writeSync(fd, Uint8Array.of(0xff), 0, 1, sectionAt + far * REGION_RECORD_SIZE + 3);
    } finally {
      closeSync(fd);
    }
    const e = (() => { try { image.region(far); } catch (err) { return err; } return null; })();
    expect(e).toBeInstanceOf(CrimgError);
    expect((e as CrimgError).code).toBe('SOURCE_CHANGED');
    expect((e as CrimgError).message).toMatch(/the region section changed since the image was opened/);
    // Records the change did not touch still read.
    expect(image.region(5).index).toBe(5);
    truncateSync(path, sectionAt + 1000 * REGION_RECORD_SIZE);
    const cut = (() => { try { image.region(far - 2000); } catch (err) { return err; } return null; })();
    expect((cut as CrimgError).code).toBe('SOURCE_CHANGED');
    expect((cut as CrimgError).message).toMatch(/the file ended at/);
  } finally {
    await image.close();
  }
});
