/**
 * codec/aad.ts: exact bytes of nonces and associated data, spec/FORMAT.md sections 7.3 and 7.4.
 */
import {
  CHUNK_AAD_ENCODED_OFFSET,
  INDEX_DOMAIN_CHUNK_TABLE,
  INDEX_DOMAIN_REGION_SECTION,
  chunkAad,
  chunkNonce,
  indexAad,
  indexNonce,
} from '../codec/aad.js';

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const imageId = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const headerHash = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);

describe('chunk nonce: u64 c || u32 0', () => {
  test('layout', () => {
    expect(toHex(chunkNonce(0))).toBe('000000000000000000000000');
    expect(toHex(chunkNonce(1))).toBe('010000000000000000000000');
    expect(toHex(chunkNonce(0x0102030405n))).toBe('050403020100000000000000');
    expect(toHex(chunkNonce((1n << 64n) - 1n))).toBe('ffffffffffffffff00000000');
    expect(toHex(chunkNonce(Number.MAX_SAFE_INTEGER))).toBe('ffffffffffff1f0000000000');
  });
  test('misuse', () => {
    expect(() => chunkNonce(-1)).toThrow(RangeError);
    expect(() => chunkNonce(1.5)).toThrow(RangeError);
    expect(() => chunkNonce(1n << 64n)).toThrow(RangeError);
    expect(() => chunkNonce(2 ** 53)).toThrow(RangeError);
    expect(() => chunkNonce('1' as unknown as number)).toThrow(TypeError);
  });
});

describe('chunk associated data: 76 bytes', () => {
  const base = {
    imageId,
    headerHash,
    chunkNumber: 0x1122334455667788n,
    regionNumber: 0xaabbccdd,
    plainLength: 65536,
    address: 0x00007f0012345000n,
    encoded: true,
    last: false,
  };
  test('layout, field by field', () => {
    const a = chunkAad(base);
    expect(a.length).toBe(76);
    expect(toHex(a)).toBe(
      toHex(imageId) + //              0: image id
        toHex(headerHash) + //         16: H
        '8877665544332211' + //        48: u64 c
        'ddccbbaa' + //                56: u32 r
        '00000100' + //                60: u32 plain length
        '00503412007f0000' + //        64: u64 address
        '01' + //                      72: encoded
        '00' + //                      73: last
        '0000', //                     74: zero
    );
    expect(a[CHUNK_AAD_ENCODED_OFFSET]).toBe(1);
    const b = chunkAad({ ...base, encoded: false, last: true, chunkNumber: 3 });
    expect(toHex(b.subarray(48, 56))).toBe('0300000000000000');
    expect(toHex(b.subarray(72))).toBe('00010000');
  });
  test('misuse', () => {
    expect(() => chunkAad({ ...base, imageId: new Uint8Array(15) })).toThrow(/expected imageId to be 16 bytes, got 15/);
    expect(() => chunkAad({ ...base, headerHash: new Uint8Array(31) })).toThrow(RangeError);
    expect(() => chunkAad({ ...base, regionNumber: 2 ** 32 })).toThrow(RangeError);
    expect(() => chunkAad({ ...base, plainLength: -1 })).toThrow(RangeError);
    expect(() => chunkAad({ ...base, address: 4096 as unknown as bigint })).toThrow(TypeError);
    expect(() => chunkAad({ ...base, address: -1n })).toThrow(RangeError);
    expect(() => chunkAad({ ...base, encoded: 1 as unknown as boolean })).toThrow(TypeError);
  });
});

describe('index nonce and associated data (spec section 7.4)', () => {
  test('nonce: u64 0 || u32 d', () => {
    expect(toHex(indexNonce(INDEX_DOMAIN_CHUNK_TABLE))).toBe('000000000000000001000000');
    expect(toHex(indexNonce(INDEX_DOMAIN_REGION_SECTION))).toBe('000000000000000002000000');
    expect(() => indexNonce(0 as 1)).toThrow(RangeError);
    expect(() => indexNonce(3 as 1)).toThrow(RangeError);
  });
  test('associated data: 65 bytes', () => {
    const a = indexAad({ imageId, headerHash, domain: 2, count: 3, plainLength: 0x102n });
    expect(a.length).toBe(65);
    expect(toHex(a)).toBe(toHex(imageId) + toHex(headerHash) + '02' + '0300000000000000' + '0201000000000000');
    expect(() => indexAad({ imageId, headerHash, domain: 1, count: -1, plainLength: 0 })).toThrow(RangeError);
  });
  test('no chunk nonce equals an index nonce (they use different keys anyway)', () => {
    expect(toHex(chunkNonce(0))).not.toBe(toHex(indexNonce(1)));
  });
});
