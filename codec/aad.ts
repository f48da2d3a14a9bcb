/**
 * Exact bytes of the nonces and associated data of sealed messages (spec/FORMAT.md sections 7.3
 * and 7.4). All integers little-endian. These bind each sealed chunk to its image, header,
 * position, address, form and last-chunk status, and each index message to its role and size.
 */
import { expectBoolean, expectBytes, expectInt, toU64 } from './_check.js';
import { CHUNK_AAD_LENGTH, HEADER_HASH_LENGTH, IMAGE_ID_LENGTH, INDEX_AAD_LENGTH, NONCE_LENGTH } from '../format/constants.js';

/** Offset of the `u8` form byte (1 ENCODED, 0 RAW) in a chunk's associated data (spec 7.3). */
export const CHUNK_AAD_ENCODED_OFFSET = 72;

/** Index message domain `d` of the chunk table (spec section 7.4). */
export const INDEX_DOMAIN_CHUNK_TABLE = 1;
/** Index message domain `d` of the region section: region table then string table (spec 7.4). */
export const INDEX_DOMAIN_REGION_SECTION = 2;

/** Index message domain: 1 chunk table, 2 region section (spec section 7.4). */
export type IndexDomain = typeof INDEX_DOMAIN_CHUNK_TABLE | typeof INDEX_DOMAIN_REGION_SECTION;

/**
 * Nonce of chunk number `c`: `u64 c || u32 0` (spec section 7.3).
 * @param chunkNumber - the chunk's position in the chunk table, 0 to 2^64 - 1.
 * @returns 12 bytes.
 * @throws TypeError / RangeError on misuse.
 * @example
 * chunkNonce(1); // 01 00 00 00 00 00 00 00 00 00 00 00
 */
export function chunkNonce(chunkNumber: bigint | number): Uint8Array {
  const c = toU64('chunkNumber', chunkNumber);
  const out = new Uint8Array(NONCE_LENGTH);
  new DataView(out.buffer).setBigUint64(0, c, true); // 0: u64 c; 8: u32 0
  return out;
}

/** Fields of a chunk's associated data (spec section 7.3). */
export interface ChunkAadFields {
  /** Header image id, 16 bytes. */
  imageId: Uint8Array;
  /** `H` = SHA-256(header || validation block), 32 bytes (spec section 7.2). */
  headerHash: Uint8Array;
  /** Chunk number `c`: position in the chunk table. */
  chunkNumber: bigint | number;
  /** Region number `r`: position in the region table (u32). */
  regionNumber: number;
  /** The chunk's plain length (u32). */
  plainLength: number;
  /** Address of the chunk's first byte (u64). */
  address: bigint;
  /** True when the chunk is stored `ENCODED`, false when `RAW`. */
  encoded: boolean;
  /** True when the chunk is its region's last chunk. */
  last: boolean;
}

/**
 * Associated data of a sealed chunk, 76 bytes (spec section 7.3).
 * @returns `imageId(16) || H(32) || u64 c || u32 r || u32 plainLength || u64 address ||
 *   u8 encoded || u8 last || u16 0`.
 * @throws TypeError / RangeError on misuse.
 * @example
 * const aad = chunkAad({ imageId, headerHash, chunkNumber: 0, regionNumber: 0,
 *   plainLength: 65536, address: 0x7f0000000000n, encoded: true, last: false });
 */
export function chunkAad(f: ChunkAadFields): Uint8Array {
  expectBytes('imageId', f.imageId, IMAGE_ID_LENGTH);
  expectBytes('headerHash', f.headerHash, HEADER_HASH_LENGTH);
  const c = toU64('chunkNumber', f.chunkNumber);
  expectInt('regionNumber', f.regionNumber, 0, 0xffffffff);
  expectInt('plainLength', f.plainLength, 0, 0xffffffff);
  if (typeof f.address !== 'bigint') throw new TypeError(`expected address to be a bigint, got ${typeof f.address}`);
  const address = toU64('address', f.address);
  expectBoolean('encoded', f.encoded);
  expectBoolean('last', f.last);
  const out = new Uint8Array(CHUNK_AAD_LENGTH);
  const v = new DataView(out.buffer);
  out.set(f.imageId, 0); //                        0: image id (16)
  out.set(f.headerHash, 16); //                   16: H (32)
  v.setBigUint64(48, c, true); //                 48: u64 chunk number
  v.setUint32(56, f.regionNumber, true); //       56: u32 region number
  v.setUint32(60, f.plainLength, true); //        60: u32 plain length
  v.setBigUint64(64, address, true); //           64: u64 address
  out[CHUNK_AAD_ENCODED_OFFSET] = f.encoded ? 1 : 0; // 72: u8 encoded
  out[73] = f.last ? 1 : 0; //                    73: u8 last; 74: u16 zero
  return out;
}

/**
 * Nonce of an index message: `u64 0 || u32 d` (spec section 7.4).
 * @param domain - 1 chunk table, 2 region section.
 * @returns 12 bytes.
 * @throws RangeError for another domain.
 * @example
 * indexNonce(INDEX_DOMAIN_CHUNK_TABLE);
 */
export function indexNonce(domain: IndexDomain): Uint8Array {
  expectInt('domain', domain, 1, 2);
  const out = new Uint8Array(NONCE_LENGTH);
  new DataView(out.buffer).setUint32(8, domain, true); // 0: u64 0; 8: u32 d
  return out;
}

/** Fields of an index message's associated data (spec section 7.4). */
export interface IndexAadFields {
  /** Header image id, 16 bytes. */
  imageId: Uint8Array;
  /** `H`, 32 bytes (spec section 7.2). */
  headerHash: Uint8Array;
  /** 1 chunk table, 2 region section. */
  domain: IndexDomain;
  /** Record count: chunk count (domain 1) or region count (domain 2). */
  count: bigint | number;
  /** Plain length of the message in bytes. */
  plainLength: bigint | number;
}

/**
 * Associated data of a sealed index message, 65 bytes (spec section 7.4).
 * @returns `imageId(16) || H(32) || u8 d || u64 count || u64 plainLength`.
 * @throws TypeError / RangeError on misuse.
 * @example
 * const aad = indexAad({ imageId, headerHash, domain: 1, count: 10, plainLength: 240 });
 */
export function indexAad(f: IndexAadFields): Uint8Array {
  expectBytes('imageId', f.imageId, IMAGE_ID_LENGTH);
  expectBytes('headerHash', f.headerHash, HEADER_HASH_LENGTH);
  expectInt('domain', f.domain, 1, 2);
  const count = toU64('count', f.count);
  const plainLength = toU64('plainLength', f.plainLength);
  const out = new Uint8Array(INDEX_AAD_LENGTH);
  const v = new DataView(out.buffer);
  out.set(f.imageId, 0); //               0: image id (16)
  out.set(f.headerHash, 16); //          16: H (32)
  out[48] = f.domain; //                 48: u8 d
  v.setBigUint64(49, count, true); //    49: u64 record count
  v.setBigUint64(57, plainLength, true); // 57: u64 plain length
  return out;
}
