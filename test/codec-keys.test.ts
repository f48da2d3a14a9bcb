/**
 * codec/keys.ts: master key, scrypt and its caps, HKDF subkeys, key check, header hash
 * (spec/FORMAT.md sections 7.1 and 7.2).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Engine } from '../codec/engine.js';
import {
  DEFAULT_SCRYPT_CAPS,
  checkScryptCost,
  deriveKeys,
  headerHash,
  hkdfSha256,
  keyFromHex,
  parseKeyFile,
  passphraseBytes,
  resolveMasterKey,
  scrypt,
  verifyKeyCheck,
} from '../codec/keys.js';
import { CrimgError, isCrimgError } from '../format/errors.js';
import { loadPortableEngine } from '../codec/portable.js';
import { budget } from './machine.js';

// The portable engine's primitives are called directly here: load its libraries first.
await loadPortableEngine();

const ENGINES: Engine[] = ['node', 'portable'];
const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const utf8 = (s: string) => new TextEncoder().encode(s);

function thrown(f: () => unknown): CrimgError {
  try {
    f();
  } catch (e) {
    if (e instanceof CrimgError) return e;
    throw e;
  }
  throw new Error('expected a CrimgError');
}

describe('HKDF-SHA-256 (RFC 5869)', () => {
  test.each(ENGINES)('test case 1 (%s)', (engine) => {
    const okm = hkdfSha256(hex('0b'.repeat(22)), hex('000102030405060708090a0b0c'), hex('f0f1f2f3f4f5f6f7f8f9'), 42, engine);
    expect(toHex(okm)).toBe('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  });
  test.each(ENGINES)('test case 3, empty salt and info (%s)', (engine) => {
    const okm = hkdfSha256(hex('0b'.repeat(22)), new Uint8Array(0), new Uint8Array(0), 42, engine);
    expect(toHex(okm)).toBe('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8');
  });
});

describe('scrypt (RFC 7914 section 12)', () => {
  test.each(ENGINES)('P="", S="", N=16, r=1, p=1 (%s)', (engine) => {
    expect(toHex(scrypt(new Uint8Array(0), new Uint8Array(0), 4, 1, 1, engine, 64))).toBe(
      '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906',
    );
  });
  test.each(ENGINES)('P="password", S="NaCl", N=1024, r=8, p=16 (%s)', (engine) => {
    expect(toHex(scrypt(utf8('password'), utf8('NaCl'), 10, 8, 16, engine, 64))).toBe(
      'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640',
    );
  });
  test('the default length is 32 bytes, the prefix of the longer output', () => {
    const k = scrypt(utf8('password'), utf8('NaCl'), 10, 8, 16);
    expect(toHex(k)).toBe('fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162');
  });
  test('property: engines agree', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 20 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), (pw, salt, log2N, r, p) => {
        expect(toHex(scrypt(pw, salt, log2N, r, p, 'node'))).toBe(toHex(scrypt(pw, salt, log2N, r, p, 'portable')));
      }),
      { seed: 0x5c, numRuns: 30 },
    );
  });
  test('parameters no scrypt accepts are RangeErrors', () => {
    const e = new Uint8Array(0);
    expect(() => scrypt(e, e, 0, 8, 1)).toThrow(RangeError);
    expect(() => scrypt(e, e, 16, 1, 1)).toThrow(/expected log2N to be an integer from 1 to 15, got 16/); // N < 2^(16 r)
    expect(() => scrypt(e, e, 33, 8, 1)).toThrow(RangeError);
    expect(() => scrypt(e, e, 4, 0, 1)).toThrow(RangeError);
    expect(() => scrypt(e, e, 4, 1, 0)).toThrow(RangeError);
    expect(() => scrypt('pw' as unknown as Uint8Array, e, 4, 1, 1)).toThrow(TypeError);
  });
});

describe('scrypt caps (spec section 7.1)', () => {
  test('the defaults: 128 * r * N <= 256 MiB and p <= 16', () => {
    expect(DEFAULT_SCRYPT_CAPS).toEqual({ maxMemory: 256 * 1024 * 1024, maxP: 16 });
    expect(() => checkScryptCost(17, 8, 1)).not.toThrow(); // writer default: 128 MiB
    expect(() => checkScryptCost(18, 8, 16)).not.toThrow(); // exactly 256 MiB, p = 16
    const mem = thrown(() => checkScryptCost(19, 8, 1));
    expect(mem.code).toBe('LIMIT_EXCEEDED');
    expect(mem.message).toMatch(/log2 N = 19, r = 8, p = 1 needs 512 MiB .* over the cap of 256 MiB/);
    expect(mem.hint).toMatch(/scryptCaps\.maxMemory/);
    const p = thrown(() => checkScryptCost(10, 8, 17));
    expect(p.code).toBe('LIMIT_EXCEEDED');
    expect(p.message).toMatch(/p = 17, over the cap of 16/);
    expect(p.hint).toMatch(/scryptCaps\.maxP/);
    expect(thrown(() => checkScryptCost(255, 255, 255)).code).toBe('LIMIT_EXCEEDED');
  });
  test('raising the caps', () => {
    expect(() => checkScryptCost(19, 8, 17, { maxMemory: 512 * 1024 * 1024, maxP: 32 })).not.toThrow();
    expect(() => checkScryptCost(17, 8, 1, { maxMemory: 1024, maxP: 16 })).toThrow(CrimgError);
  });
  test('misuse', () => {
    expect(() => checkScryptCost(-1, 8, 1)).toThrow(RangeError);
    expect(() => checkScryptCost(17, 8, 1, null as unknown as typeof DEFAULT_SCRYPT_CAPS)).toThrow(TypeError);
  });
});

describe('key files and hex keys (spec section 7.1)', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 5) & 255);
  const h = toHex(key);

  test('32 raw bytes, 64 hex characters, with \\n or \\r\\n, either case', () => {
    for (const file of [key, utf8(h), utf8(`${h}\n`), utf8(`${h}\r\n`), utf8(h.toUpperCase()), utf8(`${h.toUpperCase()}\n`)]) {
      expect(toHex(parseKeyFile(file))).toBe(h);
    }
    const copy = parseKeyFile(key);
    expect(copy).not.toBe(key);
  });

  test('anything else is INVALID_ARGUMENT with a hint and no key bytes in the message', () => {
    const bad = [
      new Uint8Array(0),
      key.subarray(0, 31),
      new Uint8Array(33),
      utf8(h.slice(0, 63)),
      utf8(`${h}0`),
      utf8(`${h}\n\n`),
      utf8(`${h} `),
      utf8(`${h}\r`),
      utf8(` ${h}`),
      utf8(`${h.slice(0, 62)}zz`),
      utf8(`${h.slice(0, 62)}0x`),
      utf8(`${h}${h}`),
    ];
    for (const file of bad) {
      const e = thrown(() => parseKeyFile(file));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.hint).toMatch(/32 raw bytes, or 64 hexadecimal characters/);
      expect(e.message).not.toContain(h.slice(0, 16));
    }
    expect(thrown(() => parseKeyFile(new Uint8Array(33))).message).toMatch(/key file of 33 bytes/);
    expect(() => parseKeyFile(h as unknown as Uint8Array)).toThrow(TypeError);
  });

  test('keyFromHex', () => {
    expect(toHex(keyFromHex(h))).toBe(h);
    expect(toHex(keyFromHex(`${h.toUpperCase()}\n`))).toBe(h);
    for (const s of ['', h.slice(1), `${h} `, `0x${h.slice(2)}`, `${h.slice(0, 63)}g`, 'é'.repeat(64)]) {
      const e = thrown(() => keyFromHex(s));
      expect(e.code).toBe('INVALID_ARGUMENT');
      if (s.length > 8) expect(e.message).not.toContain(s.slice(0, 8));
    }
    expect(() => keyFromHex(key as unknown as string)).toThrow(TypeError);
  });
});

describe('passphrases (spec section 7.1)', () => {
  test('UTF-8, one trailing newline removed, strings and bytes alike', () => {
    expect(toHex(passphraseBytes('pässword'))).toBe(toHex(utf8('pässword')));
    expect(toHex(passphraseBytes('pw\n'))).toBe(toHex(utf8('pw')));
    expect(toHex(passphraseBytes('pw\r\n'))).toBe(toHex(utf8('pw')));
    expect(toHex(passphraseBytes('pw\n\n'))).toBe(toHex(utf8('pw\n')));
    expect(toHex(passphraseBytes(utf8('pw\n')))).toBe(toHex(utf8('pw')));
    expect(toHex(passphraseBytes('\n'))).toBe('');
    expect(toHex(passphraseBytes(' pw '))).toBe(toHex(utf8(' pw ')));
    expect(() => passphraseBytes(3 as unknown as string)).toThrow(TypeError);
  });
});

describe('subkeys, key check and H (spec section 7.2)', () => {
  const K = Uint8Array.from({ length: 32 }, (_, i) => i);
  const salt = Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i);
  const imageId = Uint8Array.from({ length: 16 }, (_, i) => 0x60 + i);

  test('HKDF with salt = salt || image id and the exact info strings; engines agree', () => {
    const s = new Uint8Array([...salt, ...imageId]);
    const expected = {
      dataKey: toHex(hkdf(sha256, K, s, utf8('crimg v1 data'), 32)),
      indexKey: toHex(hkdf(sha256, K, s, utf8('crimg v1 index'), 32)),
      keyCheck: toHex(hkdf(sha256, K, s, utf8('crimg v1 key check'), 16)),
    };
    for (const engine of ENGINES) {
      const k = deriveKeys(K, salt, imageId, engine);
      expect({ dataKey: toHex(k.dataKey), indexKey: toHex(k.indexKey), keyCheck: toHex(k.keyCheck) }).toEqual(expected);
    }
    expect(expected.dataKey).not.toBe(expected.indexKey);
  });

  test('verifyKeyCheck: WRONG_KEY on mismatch', () => {
    const { keyCheck } = deriveKeys(K, salt, imageId);
    expect(() => verifyKeyCheck(keyCheck, keyCheck.slice())).not.toThrow();
    const other = deriveKeys(K.map((x) => x ^ 1), salt, imageId).keyCheck;
    expect(thrown(() => verifyKeyCheck(other, keyCheck)).code).toBe('WRONG_KEY');
    expect(() => verifyKeyCheck(other.subarray(1), keyCheck)).toThrow(RangeError);
  });

  test('H = SHA-256(header || validation block), both engines', () => {
    const header = Uint8Array.from({ length: 128 }, (_, i) => i);
    const validation = Uint8Array.from({ length: 40 }, (_, i) => 255 - i);
    const expected = createHash('sha256').update(Buffer.concat([header, validation])).digest('hex');
    for (const engine of ENGINES) expect(toHex(headerHash(header, validation, engine))).toBe(expected);
    expect(toHex(headerHash(new Uint8Array(0), new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  test('misuse', () => {
    expect(() => deriveKeys(K.subarray(1), salt, imageId)).toThrow(/expected masterKey to be 32 bytes, got 31/);
    expect(() => deriveKeys(K, salt.subarray(1), imageId)).toThrow(RangeError);
    expect(() => deriveKeys(K, salt, 'id' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('resolveMasterKey (spec section 7.1)', () => {
  const salt = new Uint8Array(16).fill(9);
  const key = new Uint8Array(32).fill(3);
  const raw = { kdf: 0, salt, log2N: 0, r: 0, p: 0 };
  const pass = { kdf: 1, salt, log2N: 10, r: 8, p: 1 };

  test('KDF 0 takes the key as it is', () => {
    expect(resolveMasterKey({ key }, raw)).toBe(key);
    expect(() => resolveMasterKey({ key: key.subarray(1) }, raw)).toThrow(RangeError);
  });
  test('KDF 1 is scrypt of the passphrase bytes, with either engine', () => {
    const expected = toHex(scrypt(utf8('pw'), salt, 10, 8, 1));
    for (const engine of ENGINES) {
      expect(toHex(resolveMasterKey({ passphrase: 'pw\n' }, pass, { engine }))).toBe(expected);
      expect(toHex(resolveMasterKey({ passphrase: utf8('pw') }, pass, { engine }))).toBe(expected);
    }
  });
  test('no key, the wrong kind of key, unknown KDF, over the caps, invalid parameters', () => {
    expect(thrown(() => resolveMasterKey(undefined, pass)).code).toBe('KEY_REQUIRED');
    expect(thrown(() => resolveMasterKey({ passphrase: 'pw' }, raw)).code).toBe('INVALID_ARGUMENT');
    expect(thrown(() => resolveMasterKey({ key }, pass)).code).toBe('INVALID_ARGUMENT');
    expect(thrown(() => resolveMasterKey({ key }, { ...pass, kdf: 2 })).code).toBe('UNSUPPORTED_FEATURE');
    const t0 = performance.now();
    expect(thrown(() => resolveMasterKey({ passphrase: 'pw' }, { ...pass, log2N: 30 })).code).toBe('LIMIT_EXCEEDED');
    expect(performance.now() - t0).toBeLessThan(budget(100)); // refused before any work
    expect(thrown(() => resolveMasterKey({ passphrase: 'pw' }, { ...pass, p: 200 })).code).toBe('LIMIT_EXCEEDED');
    expect(
      thrown(() => resolveMasterKey({ passphrase: 'pw' }, { ...pass, log2N: 40, r: 1 }, { scryptCaps: { maxMemory: 2 ** 60, maxP: 16 } })).code,
    ).toBe('LIMIT_EXCEEDED');
    expect(thrown(() => resolveMasterKey({ passphrase: 'pw' }, { ...pass, log2N: 0 })).code).toBe('CORRUPT_HEADER');
    expect(thrown(() => resolveMasterKey({ passphrase: 'pw' }, { ...pass, r: 0 })).code).toBe('CORRUPT_HEADER');
    expect(thrown(() => resolveMasterKey({ passphrase: 'pw' }, { ...pass, log2N: 17, r: 1 })).code).toBe('CORRUPT_HEADER');
    expect(isCrimgError(thrown(() => resolveMasterKey(undefined, raw)), 'KEY_REQUIRED')).toBe(true);
  });
});
