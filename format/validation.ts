/**
 * Validation block encode/decode, spec/FORMAT.md section 4. Pure: bytes in, fields out.
 */
import type { Checksum } from './checksum.js';
import { LIMITS, VALIDATION_MAGIC, alignUp } from './constants.js';
import { equalBytes, view } from './bytes.js';
import { CrimgError } from './errors.js';

/** Record types of section 4. */
export const RECORD = {
  producerName: 1,
  producerVersion: 2,
  architecture: 3,
  pageSize: 4,
  label: 5,
  bitmap: 6,
  metric: 7,
  parent: 8,
} as const;

/** Section 8.3: length of the parent record's fixed part (image id, index hash, depth, reserved). */
export const PARENT_RECORD_FIXED = 56;
/** Section 8.3: length of the parent index hash (SHA-256). */
export const PARENT_HASH_LENGTH = 32;

/** The parent record (type 8, section 8.3) of a child image. */
export interface ParentRecord {
  /** The parent's image id (16 bytes). */
  imageId: Uint8Array;
  /** SHA-256 of the parent's header, validation block and index (section 8.3). */
  indexHash: Uint8Array;
  /** Images below this one in its chain: 1 when the parent has no parent. */
  depth: number;
  /** Where the parent was, as the writer was told (informational): a path relative to the child's directory, or empty. */
  hint: string;
}
const FLAG_CRITICAL = 1;

/** Restore constraints and identity of an image (section 4). */
export interface Validation {
  producerName?: string;
  producerVersion?: string;
  /** `uname -m` name; must equal the host's on restore. */
  architecture?: string;
  /** Must equal the host's page size on restore. */
  pageSize?: number;
  /** Must be equal on restore. */
  labels: Record<string, string>;
  /** The image's bits must be a subset of the host's. */
  bitmaps: Record<string, Uint8Array>;
  /** Informational numbers. */
  metrics: Record<string, number>;
  /** The parent image of a child (record type 8, section 8.3); absent for a standalone image. */
  parent?: ParentRecord;
  /**
   * Records of types this version does not know, in block order: not interpreted (section 4:
   * a reader skips them unless CRITICAL, which it refuses), but kept so that a copy of the
   * image (convert, import of an exported core) writes them back unchanged.
   */
  skipped: SkippedRecord[];
}

/** A validation record of a type this version does not know, as it was stored (section 4). */
export interface SkippedRecord {
  /** Record type (u16). */
  type: number;
  /** Record flags (u16); never CRITICAL, which a reader refuses instead of skipping. */
  flags: number;
  /** Payload length in bytes (= payload.length). */
  length: number;
  /** Payload without its zero padding. */
  payload: Uint8Array;
}

/** What a writer gives; absent maps mean none. */
export interface ValidationInput {
  producerName?: string;
  producerVersion?: string;
  architecture?: string;
  pageSize?: number;
  labels?: Record<string, string>;
  bitmaps?: Record<string, Uint8Array>;
  metrics?: Record<string, number>;
  /** The parent record of a child image (section 8.3), written CRITICAL. */
  parent?: ParentRecord;
  /**
   * Records of types this version does not know, written after the known ones in this order,
   * each with its flags and payload as given (to carry {@link Validation.skipped} into another
   * image). Flags default to 0; CRITICAL is refused: this version's reader would refuse the image.
   */
  skipped?: readonly { type: number; flags?: number; payload: Uint8Array }[];
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function checkKey(kind: string, key: string): Uint8Array {
  const k = enc.encode(key);
  if (k.length < 1 || k.length > LIMITS.maxKeyLength) {
    throw new RangeError(`expected a ${kind} key of 1..${LIMITS.maxKeyLength} UTF-8 bytes, got ${k.length} bytes`);
  }
  if (key.includes('=') && kind !== 'metric') {
    throw new RangeError(`expected a ${kind} key without "=", got ${JSON.stringify(key)}`);
  }
  return k;
}

function keyed(k: Uint8Array, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + k.length + rest.length);
  view(out).setUint16(0, k.length, true);
  out.set(k, 2);
  out.set(rest, 2 + k.length);
  return out;
}

const KNOWN_TYPES = new Set<number>(Object.values(RECORD));

/** A skipped record to write back: type, payload and flags checked. @throws TypeError, RangeError */
function skippedRecord(r: { type: number; flags?: number; payload: Uint8Array }): [number, Uint8Array, number] {
  const flags = r.flags ?? 0;
  if (!Number.isInteger(r.type) || r.type < 0 || r.type > 0xffff) throw new RangeError(`expected a record type 0..65535, got ${r.type}`);
  if (KNOWN_TYPES.has(r.type)) throw new RangeError(`expected a record type this version does not know, got ${r.type}: give it as its own field`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff) throw new RangeError(`expected record flags 0..65535, got ${flags}`);
  if (flags & FLAG_CRITICAL) throw new RangeError(`expected record type ${r.type} without the CRITICAL flag: a reader of this version refuses it`);
  if (!(r.payload instanceof Uint8Array)) throw new TypeError(`expected the payload of record type ${r.type} as a Uint8Array, got ${typeof r.payload}`);
  return [r.type, r.payload, flags];
}

/** Encodes a validation block (section 4), with its checksum. */
export function encodeValidation(v: ValidationInput, xxh64: Checksum): Uint8Array {
  const records: [type: number, payload: Uint8Array, flags?: number][] = [];
  if (v.producerName !== undefined) records.push([RECORD.producerName, enc.encode(v.producerName)]);
  if (v.producerVersion !== undefined) records.push([RECORD.producerVersion, enc.encode(v.producerVersion)]);
  if (v.architecture !== undefined) records.push([RECORD.architecture, enc.encode(v.architecture)]);
  if (v.pageSize !== undefined) {
    const p = new Uint8Array(4);
    view(p).setUint32(0, v.pageSize, true);
    records.push([RECORD.pageSize, p]);
  }
  for (const [key, value] of Object.entries(v.labels ?? {})) {
    records.push([RECORD.label, keyed(checkKey('label', key), enc.encode(value))]);
  }
  for (const [key, bits] of Object.entries(v.bitmaps ?? {})) {
    if (!(bits instanceof Uint8Array)) throw new TypeError(`expected bitmap ${key} as a Uint8Array, got ${typeof bits}`);
    records.push([RECORD.bitmap, keyed(checkKey('bitmap', key), bits)]);
  }
  for (const [key, value] of Object.entries(v.metrics ?? {})) {
    if (typeof value !== 'number') throw new TypeError(`expected metric ${key} as a number, got ${typeof value}`);
    const f = new Uint8Array(8);
    view(f).setFloat64(0, value, true);
    records.push([RECORD.metric, keyed(checkKey('metric', key), f)]);
  }
  if (v.parent !== undefined) records.push([RECORD.parent, encodeParent(v.parent), FLAG_CRITICAL]);
  for (const r of v.skipped ?? []) records.push(skippedRecord(r));
  if (records.length > LIMITS.maxValidationRecords) {
    throw new RangeError(`expected at most ${LIMITS.maxValidationRecords} validation records, got ${records.length}`);
  }
  let size = 8 + 8;
  for (const [, p] of records) size += 8 + alignUp(p.length, 8);
  if (size > LIMITS.maxValidationSize) {
    throw new RangeError(`expected a validation block of at most ${LIMITS.maxValidationSize} bytes, got ${size}`);
  }
  const out = new Uint8Array(size);
  const dv = view(out);
  out.set(VALIDATION_MAGIC, 0);
  dv.setUint32(4, records.length, true);
  let off = 8;
  for (const [type, p, flags] of records) {
    dv.setUint16(off, type, true);
    dv.setUint16(off + 2, flags ?? 0, true);
    dv.setUint32(off + 4, p.length, true);
    out.set(p, off + 8);
    off += 8 + alignUp(p.length, 8);
  }
  dv.setBigUint64(size - 8, xxh64(out.subarray(0, size - 8)), true);
  return out;
}

/**
 * Decodes a validation block. `base` is its file offset, for messages.
 * @throws CrimgError CORRUPT_VALIDATION, UNSUPPORTED_FEATURE, LIMIT_EXCEEDED
 */
export function decodeValidation(bytes: Uint8Array, base: number, xxh64: Checksum): Validation {
  const size = bytes.length;
  const corrupt = (why: string, at: number): never => {
    throw new CrimgError('CORRUPT_VALIDATION', `validation block ${why}`, {
      offset: base + at, hint: 'the restore constraints are damaged; restore the image from a good copy',
    });
  };
  if (size < 16 || size % 8 !== 0) corrupt(`size ${size} is invalid`, 0);
  const dv = view(bytes);
  if (dv.getBigUint64(size - 8, true) !== xxh64(bytes.subarray(0, size - 8))) corrupt('checksum mismatch', size - 8);
  if (!equalBytes(bytes.subarray(0, 4), VALIDATION_MAGIC)) corrupt('magic is wrong', 0);
  const count = dv.getUint32(4, true);
  if (count > LIMITS.maxValidationRecords) {
    throw new CrimgError('LIMIT_EXCEEDED', `validation block claims ${count} records (limit ${LIMITS.maxValidationRecords})`, { offset: base + 4 });
  }
  // Prototype-free maps: keys like "constructor" or "__proto__" are ordinary keys here.
  const v: Validation = { labels: Object.create(null) as Record<string, string>, bitmaps: Object.create(null) as Record<string, Uint8Array>, metrics: Object.create(null) as Record<string, number>, skipped: [] };
  const seen = new Set<string>();
  let off = 8;
  const end = size - 8;
  const text = (p: Uint8Array, at: number): string => {
    try { return dec.decode(p); } catch { return corrupt('holds text that is not UTF-8', at); }
  };
  const splitKey = (p: Uint8Array, at: number, minRest: number): [string, Uint8Array] => {
    if (p.length < 2) corrupt('record is too short for its key length', at);
    const k = view(p).getUint16(0, true);
    if (k < 1 || k > LIMITS.maxKeyLength || 2 + k + minRest > p.length) corrupt(`record key length ${k} is invalid`, at);
    return [text(p.subarray(2, 2 + k), at), p.subarray(2 + k)];
  };
  for (let i = 0; i < count; i++) {
    if (off + 8 > end) corrupt(`record ${i} starts past the end of the records`, off);
    const type = dv.getUint16(off, true);
    const flags = dv.getUint16(off + 2, true);
    const len = dv.getUint32(off + 4, true);
    const next = off + 8 + alignUp(len, 8);
    if (next > end) corrupt(`record ${i} of ${len} bytes runs past the end of the block`, off + 4);
    const p = bytes.subarray(off + 8, off + 8 + len);
    const at = off;
    for (let z = off + 8 + len; z < next; z++) if (bytes[z] !== 0) corrupt(`record ${i} has a non-zero padding byte`, z);
    const once = (name: string): void => {
      if (seen.has(name)) corrupt(`has a second ${name} record`, at);
      seen.add(name);
    };
    switch (type) {
      case RECORD.producerName: once('producer name'); v.producerName = text(p, at); break;
      case RECORD.producerVersion: once('producer version'); v.producerVersion = text(p, at); break;
      case RECORD.architecture: once('architecture'); v.architecture = text(p, at); break;
      case RECORD.pageSize:
        once('page size');
        if (len !== 4) corrupt('page size record is not 4 bytes', at);
        v.pageSize = view(p).getUint32(0, true);
        break;
      case RECORD.label: {
        const [k, rest] = splitKey(p, at, 0);
        if (Object.hasOwn(v.labels, k)) corrupt(`repeats label ${JSON.stringify(k)}`, at);
        v.labels[k] = text(rest, at);
        break;
      }
      case RECORD.bitmap: {
        const [k, rest] = splitKey(p, at, 0);
        if (Object.hasOwn(v.bitmaps, k)) corrupt(`repeats bitmap ${JSON.stringify(k)}`, at);
        v.bitmaps[k] = rest.slice();
        break;
      }
      case RECORD.metric: {
        const [k, rest] = splitKey(p, at, 8);
        if (rest.length !== 8) corrupt('metric record value is not 8 bytes', at);
        if (Object.hasOwn(v.metrics, k)) corrupt(`repeats metric ${JSON.stringify(k)}`, at);
        v.metrics[k] = view(rest).getFloat64(0, true);
        break;
      }
      case RECORD.parent:
        once('parent');
        v.parent = decodeParent(p, base + at, corrupt, at);
        break;
      default:
        if (flags & FLAG_CRITICAL) {
          throw new CrimgError('UNSUPPORTED_FEATURE', `validation record type ${type} is marked critical and unknown to this reader`, {
            offset: base + at, hint: 'use a newer crimg that understands this restore constraint',
          });
        }
        v.skipped.push({ type, flags, length: len, payload: p.slice() });
    }
    off = next;
  }
  if (off !== end) corrupt(`records end at ${off}, not at ${end}`, off);
  return v;
}

/** The payload of a parent record (section 8.3). @throws RangeError on a bad field */
function encodeParent(r: ParentRecord): Uint8Array {
  if (!(r.imageId instanceof Uint8Array) || r.imageId.length !== 16) throw new RangeError('expected a 16-byte parent image id');
  if (!(r.indexHash instanceof Uint8Array) || r.indexHash.length !== PARENT_HASH_LENGTH) throw new RangeError(`expected a ${PARENT_HASH_LENGTH}-byte parent index hash`);
  if (!Number.isInteger(r.depth) || r.depth < 1 || r.depth > LIMITS.maxChainDepth) {
    throw new RangeError(`expected a chain depth from 1 to ${LIMITS.maxChainDepth}, got ${r.depth}: flatten the parent first`);
  }
  const hint = enc.encode(r.hint);
  if (hint.length > LIMITS.maxParentHint) throw new RangeError(`expected a parent location hint of at most ${LIMITS.maxParentHint} bytes, got ${hint.length}`);
  const out = new Uint8Array(PARENT_RECORD_FIXED + hint.length);
  out.set(r.imageId, 0);
  out.set(r.indexHash, 16);
  view(out).setUint32(48, r.depth, true);
  out.set(hint, PARENT_RECORD_FIXED);
  return out;
}

/** Decodes a parent record's payload `p`, at file offset `at`. @throws CrimgError CORRUPT_VALIDATION, LIMIT_EXCEEDED */
function decodeParent(p: Uint8Array, at: number, corrupt: (why: string, at: number) => never, rel: number): ParentRecord {
  if (p.length < PARENT_RECORD_FIXED) corrupt(`parent record is ${p.length} bytes, shorter than ${PARENT_RECORD_FIXED}`, rel);
  const depth = view(p).getUint32(48, true);
  if (depth === 0) corrupt('parent record has depth 0', rel);
  if (depth > LIMITS.maxChainDepth) {
    throw new CrimgError('LIMIT_EXCEEDED', `the image is a child at depth ${depth} of a chain of parent images (limit ${LIMITS.maxChainDepth})`, {
      offset: at + 8 + 48, hint: 'flatten the chain (`crimg flatten`) closer to the top',
    });
  }
  const hintBytes = p.subarray(PARENT_RECORD_FIXED);
  if (hintBytes.length > LIMITS.maxParentHint) corrupt(`parent record's location hint is ${hintBytes.length} bytes (at most ${LIMITS.maxParentHint})`, rel);
  let hint: string;
  try { hint = dec.decode(hintBytes); } catch { return corrupt('parent record\'s location hint is not UTF-8', rel); }
  return { imageId: p.slice(0, 16), indexHash: p.slice(16, 16 + PARENT_HASH_LENGTH), depth, hint };
}

/**
 * A decoded validation block as writer input, to carry it into another image (convert, import):
 * skipped records are kept, after the known ones, so the copy loses nothing this version cannot read.
 * The parent record is not: the copy holds every byte itself (a standalone image).
 */
export function toValidationInput(v: Validation): ValidationInput {
  const out: ValidationInput = { labels: { ...v.labels }, bitmaps: { ...v.bitmaps }, metrics: { ...v.metrics } };
  if (v.skipped.length > 0) out.skipped = v.skipped.map((r) => ({ type: r.type, flags: r.flags, payload: r.payload }));
  if (v.producerName !== undefined) out.producerName = v.producerName;
  if (v.producerVersion !== undefined) out.producerVersion = v.producerVersion;
  if (v.architecture !== undefined) out.architecture = v.architecture;
  if (v.pageSize !== undefined) out.pageSize = v.pageSize;
  return out;
}
