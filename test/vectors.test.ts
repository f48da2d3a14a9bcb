/**
 * Conformance vectors (spec/vectors/v1): the committed bytes equal a fresh generation (the
 * generator is deterministic and vectors never change), every valid vector reads as its JSON
 * says, and every invalid vector fails with the code in its name at its stage.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openImage, CrimgError } from '../index.js';
import { generateAll } from '../spec/vectors-lib.js';
import { tempDir } from './helpers.js';

const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');
const t = tempDir();
afterAll(() => t.cleanup());

/** The key a vector's JSON names: `key` (hex) or `passphrase`; none when null or absent. */
function keyOf(exp: { key?: string | null; passphrase?: string }): Uint8Array | { passphrase: string } | undefined {
  if (typeof exp.key === 'string') return Buffer.from(exp.key, 'hex');
  if (typeof exp.passphrase === 'string') return { passphrase: exp.passphrase };
  return undefined;
}

const valid = readdirSync(V1).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4));
const invalid = readdirSync(join(V1, 'invalid')).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4));
/** Valid vectors changed where a reader must accept the change (spec section 12): read like valid ones. */
const accepted = readdirSync(join(V1, 'accepted')).filter((f) => f.endsWith('.img')).map((f) => `accepted/${f.slice(0, -4)}`);

test('the committed vectors are exactly what the generator writes', async () => {
  mkdirSync(join(t.dir, 'invalid'), { recursive: true });
  const files = await generateAll(t.dir);
  for (const f of files) {
    expect({ f, same: readFileSync(join(t.dir, f)).equals(readFileSync(join(V1, f))) }).toEqual({ f, same: true });
    const json = f.replace(/\.img$/, '.json');
    expect(readFileSync(join(t.dir, json), 'utf8')).toBe(readFileSync(join(V1, json), 'utf8'));
  }
  expect(files.length).toBe(valid.length + invalid.length + accepted.length);
});

describe.each([...valid, ...accepted])('valid vector %s', (name) => {
  test('reads as its JSON says', async () => {
    const exp = JSON.parse(readFileSync(join(V1, `${name}.json`), 'utf8'));
    const img = await openImage(join(V1, `${name}.img`), { key: keyOf(exp) });
    expect(img.version).toBe(exp.version);
    expect(img.imageId).toBe(exp.imageId);
    expect(Number(img.header.created)).toBe(exp.created);
    expect(img.pageSize).toBe(exp.pageSize);
    expect(img.chunkSize).toBe(exp.chunkSize);
    expect(img.compression).toBe(exp.compression);
    expect(img.encryption).toBe(exp.encryption);
    const v = img.validation;
    expect({
      producerName: v.producerName, producerVersion: v.producerVersion, architecture: v.architecture, pageSize: v.pageSize,
      labels: v.labels, metrics: v.metrics,
      bitmaps: Object.fromEntries(Object.entries(v.bitmaps).map(([k, b]) => [k, Buffer.from(b).toString('hex')])),
    }).toEqual(exp.validation);
    expect(img.regions.length).toBe(exp.regions.length);
    for (const [i, r] of img.regions.entries()) {
      const e = exp.regions[i];
      expect({ address: '0x' + r.address.toString(16), length: Number(r.length), prot: r.prot, kind: r.kind, name: r.name, chunkCount: r.chunkCount, zeroChunks: r.zeroChunks })
        .toEqual({ address: e.address, length: e.length, prot: e.prot, kind: e.kind, name: e.name, chunkCount: e.chunkCount, zeroChunks: e.zeroChunks });
      // Region flags (1.2): vectors before them have no such keys and read as not shared, no offset.
      expect({ shared: r.shared, fileOffset: r.fileOffset === undefined ? null : '0x' + r.fileOffset.toString(16) })
        .toEqual({ shared: e.shared ?? false, fileOffset: e.fileOffset ?? null });
      if (e.sha256) {
        const bytes = await img.read(r.address, Number(r.length));
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(e.sha256);
      } else {
        await expect(img.read(r.address, 1)).rejects.toMatchObject({ code: 'NOT_MAPPED' });
      }
    }
    expect((await img.verify()).ok).toBe(true);
    await img.close();
  });

  test('truncation at every page boundary (and just before the footer) gives a CrimgError, never a crash', async () => {
    const key = keyOf(JSON.parse(readFileSync(join(V1, `${name}.json`), 'utf8')));
    const bytes = readFileSync(join(V1, `${name}.img`));
    const cuts = [];
    for (let c = 0; c < bytes.length; c += 4096) cuts.push(c);
    cuts.push(bytes.length - 1, bytes.length - 96, bytes.length - 97, 7, 8, 9, 10, 11, 12, 13, 14, 15, 127, 129);
    for (const c of cuts) {
      const e = await openImage(bytes.subarray(0, c), { key }).then(() => null, (err) => err);
      expect(e).toBeInstanceOf(CrimgError);
      // Shorter than the magic: not an image; the magic and then too few bytes: truncated (spec section 3).
      expect({ c, code: e.code }).toEqual({ c, code: c < 8 ? 'BAD_MAGIC' : 'TRUNCATED' });
    }
  });
});

/**
 * Invalid vectors a later rule made valid: kept forever (their bytes and JSON never change), and
 * read as the valid images they now are. The rule each tested has a new vector.
 */
const SUPERSEDED: Record<string, { compression: string; by: string }> = {
  // Codec id 2 is zstd since issue 16 (spec section 6.2): this minimal image with codec 2 level 1
  // now opens. An unknown codec id is UNSUPPORTED_FEATURE--codec-3.
  'UNSUPPORTED_FEATURE--codec-zstd': { compression: 'zstd:1', by: 'UNSUPPORTED_FEATURE--codec-3' },
};

describe.each(invalid)('invalid vector %s', (name) => {
  test('fails with the code in its name', async () => {
    const exp = JSON.parse(readFileSync(join(V1, 'invalid', `${name}.json`), 'utf8'));
    const superseded = SUPERSEDED[name];
    if (superseded !== undefined) {
      expect(invalid).toContain(superseded.by);
      const img = await openImage(join(V1, 'invalid', `${name}.img`));
      expect(img.compression).toBe(superseded.compression);
      expect((await img.read(img.regions[0]!.address, Number(img.regions[0]!.length))).length).toBe(Number(img.regions[0]!.length));
      await img.close();
      return;
    }
    expect(name.split('--')[0]).toBe(exp.code);
    const path = join(V1, 'invalid', `${name}.img`);
    const from = JSON.parse(readFileSync(join(V1, `${exp.from}.json`), 'utf8'));
    const key = exp.key === null ? undefined : exp.key !== undefined ? keyOf(exp) : keyOf(from);
    if (exp.stage === 'open') {
      await expect(openImage(path, { key })).rejects.toMatchObject({ name: 'CrimgError', code: exp.code });
      return;
    }
    const img = await openImage(path, { key });
    if (exp.code === 'KEY_REQUIRED') {
      expect(img.indexLocked).toBe(true);
      await expect(img.verify()).rejects.toMatchObject({ code: 'KEY_REQUIRED' });
      await expect(img.read(0x1000n, 1)).rejects.toMatchObject({ code: 'KEY_REQUIRED' });
      await img.close();
      return;
    }
    const report = await img.verify().catch((e) => ({ ok: false, errors: [{ code: (e as CrimgError).code }] }));
    expect(report.ok).toBe(false);
    expect(report.errors.map((e) => e.code)).toContain(exp.code);
    if (exp.stage === 'verify') {
      // Reads never use the damaged bytes: they still see the image's data.
      const from = JSON.parse(readFileSync(join(V1, `${exp.from}.json`), 'utf8')) as { regions: { address: string; length: number; sha256: string | null }[] };
      for (const r of from.regions) {
        if (r.sha256 === null) continue;
        const got = await img.read(BigInt(r.address), r.length);
        expect(createHash('sha256').update(got).digest('hex')).toBe(r.sha256);
      }
      await img.close();
      return;
    }
    // and a read of all data fails with the same code
    const failures = [];
    for (const r of img.regions) {
      if (r.isGap) continue;
      failures.push(await img.read(r.address, Number(r.length)).then(() => null, (e) => e.code));
    }
    expect(failures).toContain(exp.code);
    await img.close();
  });
});

describe('accepted vectors', () => {
  test.each(accepted)('%s names the valid vector it was made from', (name) => {
    const exp = JSON.parse(readFileSync(join(V1, `${name}.json`), 'utf8')) as { from: string };
    expect(name.split('/')[1]!.split('--')[0]).toBe(exp.from);
    expect(valid).toContain(exp.from);
  });
});

test('read-stage vectors fail with their code with the portable engine too (deflate decoding is as strict in both)', async () => {
  const reads = invalid.map((name) => ({ name, exp: JSON.parse(readFileSync(join(V1, 'invalid', `${name}.json`), 'utf8')) }))
    .filter(({ exp }) => exp.stage === 'read' && exp.code !== 'KEY_REQUIRED');
  expect(reads.map((r) => r.name)).toContain('CORRUPT_CHUNK--deflate-trailing-bytes');
  for (const { name, exp } of reads) {
    const from = JSON.parse(readFileSync(join(V1, `${exp.from}.json`), 'utf8'));
    const key = exp.key === null ? undefined : exp.key !== undefined ? keyOf(exp) : keyOf(from);
    const img = await openImage(join(V1, 'invalid', `${name}.img`), { key, engine: 'portable', workers: 0 });
    const failures = [];
    for (const r of img.regions) {
      if (r.isGap) continue;
      failures.push(await img.read(r.address, Number(r.length)).then(() => null, (e) => e.code));
    }
    expect({ name, failures }).toEqual({ name, failures: expect.arrayContaining([exp.code]) });
    await img.close();
  }
});
