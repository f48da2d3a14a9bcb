/**
 * Corruption matrix: every single-byte change of a vector fails with a CrimgError at open, read
 * or verify (verify also checks that alignment padding is zero). Never a crash, never silently
 * wrong bytes: where a read succeeds anyway, its bytes must equal the original's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openImage, CrimgError } from '../index.js';

const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');

let key: Uint8Array | undefined;

async function readAll(bytes: Uint8Array): Promise<{ error: string | null; data: Buffer[] }> {
  try {
    const img = await openImage(bytes, { key, workers: 0 });
    const data: Buffer[] = [];
    for (const r of img.regions) if (!r.isGap) data.push(await img.read(r.address, Number(r.length)));
    const v = await img.verify();
    return { error: v.ok ? null : v.errors[0]!.code, data };
  } catch (e) {
    if (!(e instanceof CrimgError)) throw e;
    return { error: e.code, data: [] };
  }
}

test.each(['minimal', 'deflate-aes-256-gcm'])('every single-byte change of %s is caught', async (name) => {
  const good = readFileSync(join(V1, `${name}.img`));
  const exp = JSON.parse(readFileSync(join(V1, `${name}.json`), 'utf8'));
  key = exp.key ? Buffer.from(exp.key, 'hex') : undefined;
  const ref = await readAll(good);
  expect(ref.error).toBeNull();
  let caught = 0;
  let harmless = 0;
  // Every byte of the header, validation block, index and footer; data bytes with a stride
  // (each chunk is covered by one checksum or tag, so a stride still hits every chunk).
  const dataStart = 4096;
  const indexStart = Number(good.readBigUInt64LE(good.length - 96 + 16));
  const offsets: number[] = [];
  for (let i = 0; i < good.length; i++) if (i < dataStart + 64 || i >= indexStart - 64 || i % 17 === 0) offsets.push(i);
  for (const i of offsets) {
    const bad = Buffer.from(good);
    bad[i]! ^= 0x5a;
    const got = await readAll(bad);
    if (got.error) { caught++; continue; }
    expect(got.data.length).toBe(ref.data.length);
    got.data.forEach((d, k) => expect(d.equals(ref.data[k]!)).toBe(true));
    harmless++;
  }
  // verify() also checks that alignment padding is zero, so every byte is covered by something.
  expect(harmless).toBe(0);
  expect(caught).toBe(offsets.length);
});
