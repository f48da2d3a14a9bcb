/**
 * The fixed structures of spec/FORMAT.md as field tables: header (section 3), chunk record
 * (5.3), region record (8.1) and footer (8.2). Each table is the one place a structure's byte
 * offsets are written; its encoder, decoder and error offsets are derived from it. Every table
 * describes every byte of its structure (reserved bytes included), which is checked when this
 * module loads. Pure: no I/O.
 */
import {
  CHUNK_RECORD_SIZE, FOOTER_SIZE, HEADER_SIZE, IMAGE_ID_LENGTH, KEY_CHECK_LENGTH, REGION_RECORD_SIZE,
  SALT_LENGTH,
} from './constants.js';
import { view } from './bytes.js';

/** Little-endian unsigned integers (section 1), a byte string, or reserved (written as zero). */
export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes' | 'reserved';

/** One row of a structure's table in spec/FORMAT.md. */
export interface Field<N extends string = string, T extends FieldType = FieldType> {
  /** Name in the library's vocabulary, e.g. `pageSize` for the spec's "page size". */
  readonly name: N;
  /**
   * Byte offset from the structure's start; a negative offset counts back from its end (the
   * header checksum lies at `header size - 8`, and a header may be longer than 128 bytes).
   */
  readonly offset: number;
  readonly size: number;
  readonly type: T;
  /** The spec section that defines the field's meaning and rules. */
  readonly section: string;
}

/** A fixed structure: its size as written by this version, and its fields in offset order. */
export interface FieldTable<F extends Field = Field> {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly F[];
  /** The named fields by name. */
  readonly byName: ReadonlyMap<string, F>;
}

type ValueOf<T extends FieldType> = T extends 'u64' ? bigint : T extends 'bytes' ? Uint8Array : number;

/** The decoded values of a table's named (not reserved) fields. */
export type FieldValues<F extends Field> = {
  -readonly [K in F as K['type'] extends 'reserved' ? never : K['name']]: ValueOf<K['type']>;
};

/** Names of a table's named (not reserved) fields. */
export type FieldName<F extends Field> = keyof FieldValues<F> & string;

const u8 = <N extends string>(name: N, offset: number, section: string): Field<N, 'u8'> => ({ name, offset, size: 1, type: 'u8', section });
const u16 = <N extends string>(name: N, offset: number, section: string): Field<N, 'u16'> => ({ name, offset, size: 2, type: 'u16', section });
const u32 = <N extends string>(name: N, offset: number, section: string): Field<N, 'u32'> => ({ name, offset, size: 4, type: 'u32', section });
const u64 = <N extends string>(name: N, offset: number, section: string): Field<N, 'u64'> => ({ name, offset, size: 8, type: 'u64', section });
const bytes = <N extends string>(name: N, offset: number, size: number, section: string): Field<N, 'bytes'> => ({ name, offset, size, type: 'bytes', section });
const reserved = (offset: number, size: number, section: string): Field<'reserved', 'reserved'> => ({ name: 'reserved', offset, size, type: 'reserved', section });

/** Builds a table after checking that its fields cover `[0, size)` exactly, in order. */
function fieldTable<F extends Field>(name: string, size: number, fields: readonly F[]): FieldTable<F> {
  let next = 0;
  for (const f of fields) {
    const at = f.offset < 0 ? size + f.offset : f.offset;
    if (at !== next) throw new Error(`field table ${name}: ${f.name} at ${at}, expected ${next}`);
    next = at + f.size;
  }
  if (next !== size) throw new Error(`field table ${name}: fields end at ${next}, expected ${size}`);
  const byName = new Map(fields.filter((f) => f.type !== 'reserved').map((f) => [f.name as string, f]));
  return { name, size, fields: Object.freeze(fields.slice()), byName };
}

/** Header, section 3 (128 bytes as written by this version; 128 to 4096 when read). */
export const HEADER = fieldTable('header', HEADER_SIZE, [
  bytes('magic', 0, 8, '3'),
  u16('major', 8, '3, 10'),
  u16('minor', 10, '3, 10'),
  u32('headerSize', 12, '3'),
  u64('requiredFeatures', 16, '3.1'),
  u64('optionalFeatures', 24, '3.1'),
  u32('pageSize', 32, '3'),
  u32('chunkSize', 36, '3, 9'),
  bytes('imageId', 40, IMAGE_ID_LENGTH, '3'),
  u64('created', 56, '3'),
  u32('validationSize', 64, '3, 4'),
  u8('codec', 68, '3, 6'),
  u8('codecLevel', 69, '3, 6'),
  u8('cipher', 70, '3, 7'),
  u8('kdf', 71, '3, 7.1'),
  u8('scryptLog2N', 72, '3, 7.1'),
  u8('scryptR', 73, '3, 7.1'),
  u8('scryptP', 74, '3, 7.1'),
  reserved(75, 5, '3'),
  bytes('salt', 80, SALT_LENGTH, '3, 7.2'),
  bytes('keyCheck', 96, KEY_CHECK_LENGTH, '3, 7.2'),
  reserved(112, 8, '3'),
  u64('checksum', -8, '3, 2.2'),
]);

/** Chunk record, section 5.3. */
export const CHUNK_RECORD = fieldTable('chunk record', CHUNK_RECORD_SIZE, [
  u64('offset', 0, '5.3'),
  u32('storedLength', 8, '5.3'),
  u16('flags', 12, '5.3'),
  reserved(14, 2, '5.3'),
  u64('checksum', 16, '5.3, 2.2'),
]);

/** Region record, section 8.1. */
export const REGION_RECORD = fieldTable('region record', REGION_RECORD_SIZE, [
  u64('address', 0, '8.1'),
  u64('length', 8, '8.1'),
  u64('firstChunk', 16, '8.1'),
  u64('chunkCount', 24, '8.1'),
  u64('storedBytes', 32, '8.1'),
  u64('zeroChunks', 40, '8.1'),
  u32('nameOffset', 48, '8.1'),
  u32('nameLength', 52, '8.1, 9'),
  u8('protection', 56, '8.1'),
  u8('kind', 57, '8.1'),
  u16('flags', 58, '8.1'),
  u32('filePage', 60, '8.1'),
]);

/** Footer, section 8.2. */
export const FOOTER = fieldTable('footer', FOOTER_SIZE, [
  bytes('imageId', 0, IMAGE_ID_LENGTH, '8.2'),
  u64('chunkTableOffset', 16, '8.2'),
  u64('chunkCount', 24, '8.2'),
  u64('chunkTableLength', 32, '8.2'),
  u64('regionSectionOffset', 40, '8.2'),
  u32('regionCount', 48, '8.2'),
  u32('stringTableLength', 52, '8.2'),
  u64('regionSectionLength', 56, '8.2'),
  u64('chunkTableChecksum', 64, '8.2'),
  u64('regionSectionChecksum', 72, '8.2'),
  u64('checksum', 80, '8.2, 2.2'),
  bytes('endMagic', 88, 8, '8.2'),
]);

function field<F extends Field>(table: FieldTable<F>, name: string): F {
  const f = table.byName.get(name);
  if (!f) throw new RangeError(`expected a field of the ${table.name}, got ${JSON.stringify(name)}`);
  return f;
}

/**
 * Offset of a field from the structure's start: the offset error messages name.
 * @param length the structure's length, for a field counted from its end; default the table's size.
 * @throws RangeError for a name the table does not have.
 * @example
 * offsetOf(HEADER, 'pageSize'); // 32
 * offsetOf(HEADER, 'checksum', 256); // 248
 */
export function offsetOf<F extends Field>(table: FieldTable<F>, name: FieldName<F>, length = table.size): number {
  const f = field(table, name);
  return f.offset < 0 ? length + f.offset : f.offset;
}

/**
 * The chunk record as 32-bit little-endian words, from {@link CHUNK_RECORD}: the index of each
 * field's first word (a u64 is two, low half first; the u16 flags are the low half of theirs,
 * the reserved u16 the high half). The writer's and the restore planner's fast paths read and
 * write records as words, with no BigInt per record.
 */
export const CHUNK_RECORD_WORDS = Object.freeze({
  size: CHUNK_RECORD_SIZE / 4,
  offset: offsetOf(CHUNK_RECORD, 'offset') / 4,
  storedLength: offsetOf(CHUNK_RECORD, 'storedLength') / 4,
  flags: offsetOf(CHUNK_RECORD, 'flags') / 4,
  checksum: offsetOf(CHUNK_RECORD, 'checksum') / 4,
});

/**
 * Size in bytes of a field.
 * @throws RangeError for a name the table does not have.
 */
export function sizeOf<F extends Field>(table: FieldTable<F>, name: FieldName<F>): number {
  return field(table, name).size;
}

function checkSpan(table: FieldTable, bytes: Uint8Array, base: number, length: number): void {
  if (!Number.isInteger(base) || base < 0 || length < table.size || base + length > bytes.length) {
    throw new RangeError(`expected ${length} bytes of ${table.name} at ${base} (at least ${table.size}), got ${bytes.length - base} bytes`);
  }
}

/**
 * Reads every named field of a structure at `bytes[base..]`. Byte strings are copies.
 * @param length the structure's length (fields counted from the end are read there); default the table's size.
 * @throws RangeError when `bytes` is shorter than the structure (callers check lengths first and
 *   throw TRUNCATED).
 * @example
 * const f = decodeFields(FOOTER, last96); // f.chunkCount: bigint
 */
export function decodeFields<F extends Field>(table: FieldTable<F>, bytes: Uint8Array, base = 0, length = table.size): FieldValues<F> {
  checkSpan(table, bytes, base, length);
  const dv = view(bytes);
  const out: Record<string, number | bigint | Uint8Array> = {};
  for (const f of table.fields) {
    const o = base + (f.offset < 0 ? length + f.offset : f.offset);
    switch (f.type) {
      case 'u8': out[f.name] = bytes[o]!; break;
      case 'u16': out[f.name] = dv.getUint16(o, true); break;
      case 'u32': out[f.name] = dv.getUint32(o, true); break;
      case 'u64': out[f.name] = dv.getBigUint64(o, true); break;
      case 'bytes': out[f.name] = bytes.slice(o, o + f.size); break;
      case 'reserved': break;
    }
  }
  return out as FieldValues<F>;
}

/**
 * Writes every field of a structure into `out[base..]`, reserved bytes as zero. Integers are
 * stored modulo their width, as DataView does.
 * @throws RangeError when `out` is too short or a byte string has the wrong length.
 * @example
 * encodeFields(CHUNK_RECORD, { offset: 4096n, storedLength: 4096, flags: CHUNK_RAW, checksum }, table, i * CHUNK_RECORD_SIZE);
 */
export function encodeFields<F extends Field>(table: FieldTable<F>, values: FieldValues<F>, out: Uint8Array, base = 0): void {
  checkSpan(table, out, base, table.size);
  const dv = view(out);
  const v = values as Record<string, number | bigint | Uint8Array>;
  for (const f of table.fields) {
    const o = base + (f.offset < 0 ? table.size + f.offset : f.offset);
    switch (f.type) {
      case 'u8': out[o] = v[f.name] as number; break;
      case 'u16': dv.setUint16(o, v[f.name] as number, true); break;
      case 'u32': dv.setUint32(o, v[f.name] as number, true); break;
      case 'u64': dv.setBigUint64(o, v[f.name] as bigint, true); break;
      case 'bytes': {
        const b = v[f.name] as Uint8Array;
        if (!(b instanceof Uint8Array) || b.length !== f.size) {
          throw new RangeError(`expected ${table.name} field ${f.name} of ${f.size} bytes, got ${b instanceof Uint8Array ? `${b.length} bytes` : typeof b}`);
        }
        out.set(b, o);
        break;
      }
      case 'reserved': out.fill(0, o, o + f.size); break;
    }
  }
}
