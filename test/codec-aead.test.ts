/**
 * codec/aead.ts: AES-256-GCM (cipher id 1) and ChaCha20-Poly1305 (cipher id 2), spec/FORMAT.md
 * section 7. Known answers, engine equality, tamper detection, misuse.
 */
import fc from 'fast-check';
import { cipherIdForSuite, nodeSealEngine, open, seal, sealWithCipheriv, suiteForCipherId, type AeadSuite } from '../codec/aead.js';
import type { Engine } from '../codec/engine.js';
import { isCrimgError } from '../format/errors.js';
import { loadPortableEngine } from '../codec/portable.js';

// The portable engine's primitives are called directly here: load its libraries first.
await loadPortableEngine();

const ENGINES: Engine[] = ['node', 'portable'];
const SUITES: AeadSuite[] = ['aes-256-gcm', 'chacha20-poly1305'];
const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/[\s:]/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Vector {
  name: string;
  suite: AeadSuite;
  key: string;
  nonce: string;
  aad: string;
  plaintext: string;
  sealed: string; // ciphertext || tag
}

const VECTORS: Vector[] = [
  {
    name: 'RFC 8439 section 2.8.2',
    suite: 'chacha20-poly1305',
    key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
    nonce: '070000004041424344454647',
    aad: '50515253c0c1c2c3c4c5c6c7',
    plaintext: Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.").toString('hex'),
    sealed:
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
      '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
      '3ff4def08e4b7a9de576d26586cec64b6116' + '1ae10b594f09e26a7e902ecbd0600691',
  },
  {
    name: 'GCM specification (McGrew-Viega, NIST) test case 16, AES-256',
    suite: 'aes-256-gcm',
    key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
    nonce: 'cafebabefacedbaddecaf888',
    aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    plaintext:
      'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525' +
      'b16aedf5aa0de657ba637b39',
    sealed:
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838' +
      'c5f61e6393ba7a0abcc9f662' + '76fc6ece0f4e1768cddf8853bb2d551b',
  },
  {
    name: 'GCM specification test case 13, AES-256, empty plaintext',
    suite: 'aes-256-gcm',
    key: '00'.repeat(32),
    nonce: '00'.repeat(12),
    aad: '',
    plaintext: '',
    sealed: '530f8afbc74536b9a963b4f1c4cb738b',
  },
  {
    name: 'GCM specification test case 14, AES-256, one zero block',
    suite: 'aes-256-gcm',
    key: '00'.repeat(32),
    nonce: '00'.repeat(12),
    aad: '',
    plaintext: '00'.repeat(16),
    sealed: 'cea7403d4d606b6e074ec5d3baf39d18' + 'd0d1c8a799996bf0265b98b5d48ab919',
  },
];

describe('known answers', () => {
  for (const v of VECTORS) {
    test.each(ENGINES)(`${v.name} (%s)`, (engine) => {
      const sealed = seal(v.suite, hex(v.key), hex(v.nonce), hex(v.aad), hex(v.plaintext), engine);
      expect(toHex(sealed)).toBe(v.sealed);
      expect(toHex(open(v.suite, hex(v.key), hex(v.nonce), hex(v.aad), hex(v.sealed), engine))).toBe(v.plaintext);
    });
  }
});

describe('engines', () => {
  test('property: ciphertext is byte-identical across engines, and each opens the other\'s', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SUITES),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ maxLength: 5000 }),
        fc.nat(3),
        (suite, key, nonce, aad, plaintext, shift) => {
          // deliberately unaligned input
          const buf = new Uint8Array(plaintext.length + shift);
          buf.set(plaintext, shift);
          const p = buf.subarray(shift);
          const a = seal(suite, key, nonce, aad, p, 'node');
          const b = seal(suite, key, nonce, aad, p, 'portable');
          expect(toHex(a)).toBe(toHex(b));
          expect(a.length).toBe(plaintext.length + 16);
          expect(toHex(open(suite, key, nonce, aad, a, 'portable'))).toBe(toHex(plaintext));
          expect(toHex(open(suite, key, nonce, aad, b, 'node'))).toBe(toHex(plaintext));
        },
      ),
      { seed: 0xae0d, numRuns: 200 },
    );
  });

  test('the node engine seals through the addon (Node\'s OpenSSL), byte-identical to createCipheriv', () => {
    expect(nodeSealEngine()).toBe('native');
    fc.assert(
      fc.property(
        fc.constantFrom(...SUITES), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 20000 }),
        (suite, key, nonce, aad, plaintext) => {
          expect(toHex(seal(suite, key, nonce, aad, plaintext, 'node'))).toBe(toHex(sealWithCipheriv(suite, key, nonce, aad, plaintext)));
        },
      ),
      { seed: 0x5ea1, numRuns: 200 },
    );
  });

  test('a 64 KiB chunk seals identically', () => {
    const key = new Uint8Array(32).fill(7);
    const nonce = new Uint8Array(12).fill(1);
    const aad = new Uint8Array(76).fill(2);
    const plain = Uint8Array.from({ length: 65536 }, (_, i) => (i * 31) & 255);
    for (const suite of SUITES) {
      expect(toHex(seal(suite, key, nonce, aad, plain, 'node'))).toBe(toHex(seal(suite, key, nonce, aad, plain, 'portable')));
    }
  });
});

describe('tampering -> AUTH_FAILED (spec section 7.3)', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
  const aad = Uint8Array.from({ length: 76 }, (_, i) => i);
  const plain = new TextEncoder().encode('secret plaintext that must not leak into error messages');

  const expectAuthFailed = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(isCrimgError(e, 'AUTH_FAILED')).toBe(true);
      const msg = String((e as Error).message);
      expect(msg).not.toContain('secret');
      expect(msg).not.toContain(toHex(key));
      return;
    }
    throw new Error('expected AUTH_FAILED');
  };

  for (const suite of SUITES) {
    test.each(ENGINES)(`${suite} (%s): every byte of the sealed message, the AAD, the nonce and the key`, (engine) => {
      const sealed = seal(suite, key, nonce, aad, plain, engine);
      for (let i = 0; i < sealed.length; i++) {
        const t = sealed.slice();
        t[i] = t[i]! ^ 0x01;
        expectAuthFailed(() => open(suite, key, nonce, aad, t, engine));
      }
      for (let i = 0; i < aad.length; i++) {
        const t = aad.slice();
        t[i] = t[i]! ^ 0x80;
        expectAuthFailed(() => open(suite, key, nonce, t, sealed, engine));
      }
      for (let i = 0; i < nonce.length; i++) {
        const t = nonce.slice();
        t[i] = t[i]! ^ 0x01;
        expectAuthFailed(() => open(suite, key, t, aad, sealed, engine));
      }
      const k2 = key.slice();
      k2[31] = k2[31]! ^ 1;
      expectAuthFailed(() => open(suite, k2, nonce, aad, sealed, engine));
      expectAuthFailed(() => open(suite, key, nonce, aad.subarray(1), sealed, engine));
      expectAuthFailed(() => open(suite, key, nonce, aad, sealed.subarray(0, sealed.length - 1), engine));
      expectAuthFailed(() => open(suite, key, nonce, aad, sealed.subarray(1), engine));
      expectAuthFailed(() => open(suite, key, nonce, aad, sealed.subarray(0, 15), engine));
      expectAuthFailed(() => open(suite, key, nonce, aad, new Uint8Array(0), engine));
      // the other suite with the same key does not open it either
      expectAuthFailed(() => open(suite === 'aes-256-gcm' ? 'chacha20-poly1305' : 'aes-256-gcm', key, nonce, aad, sealed, engine));
    });
  }
});

describe('cipher ids (spec section 7 table)', () => {
  test('ids map to suites and back; unknown ids are UNSUPPORTED_FEATURE', () => {
    expect(suiteForCipherId(1)).toBe('aes-256-gcm');
    expect(suiteForCipherId(2)).toBe('chacha20-poly1305');
    expect(cipherIdForSuite('aes-256-gcm')).toBe(1);
    expect(cipherIdForSuite('chacha20-poly1305')).toBe(2);
    for (const id of [0, 3, 255]) {
      expect(() => suiteForCipherId(id)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_FEATURE' }));
    }
  });
});

describe('misuse', () => {
  const k = new Uint8Array(32);
  const n = new Uint8Array(12);
  const a = new Uint8Array(0);
  const p = new Uint8Array(1);
  test.each(ENGINES)('%s: wrong lengths and types', (engine) => {
    expect(() => seal('aes-256-gcm', new Uint8Array(16), n, a, p, engine)).toThrow(/expected key to be 32 bytes, got 16 bytes/);
    expect(() => seal('aes-256-gcm', k, new Uint8Array(24), a, p, engine)).toThrow(RangeError);
    expect(() => seal('aes-256-gcm', 'k' as unknown as Uint8Array, n, a, p, engine)).toThrow(TypeError);
    expect(() => seal('aes-256-gcm', k, n, null as unknown as Uint8Array, p, engine)).toThrow(TypeError);
    expect(() => seal('aes-128-gcm' as AeadSuite, k, n, a, p, engine)).toThrow(/expected suite to be one of/);
    expect(() => open('chacha20-poly1305', k, n, a, [1] as unknown as Uint8Array, engine)).toThrow(TypeError);
  });
  test('a string key is never echoed in the message', () => {
    const secret = 'ab'.repeat(32);
    try {
      seal('aes-256-gcm', secret as unknown as Uint8Array, n, a, p);
    } catch (e) {
      expect((e as Error).message).not.toContain(secret);
      expect((e as Error).message).toMatch(/got a string of 64 characters/);
    }
  });
});
