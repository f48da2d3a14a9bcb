/**
 * Corruption matrix: every single-byte change of a plain vector either fails with a CrimgError
 * (open, read or verify) or leaves every byte a reader returns unchanged (the byte was padding
 * no reader looks at). Never a crash, never silently wrong bytes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openImage, CrimgError } from '../index.js';

const V1 = join(process.cwd(), 'spec', 'vectors', 'v1');

async function readAll(bytes: Uint8Array): Promise<{ error: string | null; data: Buffer[] }> {
  try {
    const img = await openImage(bytes);
    const data: Buffer[] = [];
    for (const r of img.regions) if (!r.isGap) data.push(await img.read(r.address, Number(r.length)));
    const v = await img.verify();
    return { error: v.ok ? null : v.errors[0]!.code, data };
  } catch (e) {
    if (!(e instanceof CrimgError)) throw e;
    return { error: e.code, data: [] };
  }
}

test.each(['minimal'])('every single-byte change of %s is caught or harmless', async (name) => {
  const good = readFileSync(join(V1, `${name}.img`));
  const ref = await readAll(good);
  expect(ref.error).toBeNull();
  let caught = 0;
  let harmless = 0;
  for (let i = 0; i < good.length; i++) {
    const bad = Buffer.from(good);
    bad[i]! ^= 0x5a;
    const got = await readAll(bad);
    if (got.error) { caught++; continue; }
    expect(got.data.length).toBe(ref.data.length);
    got.data.forEach((d, k) => expect(d.equals(ref.data[k]!)).toBe(true));
    harmless++;
  }
  // Only the zero padding between the validation block and the data area, and after the data, is unchecked.
  expect(caught).toBeGreaterThan(4096 + 128 + 96);
  expect(caught + harmless).toBe(good.length);
});
