/**
 * Argument checks shared by the codec modules (internal). Misuse of the API throws
 * `TypeError` (wrong type) or `RangeError` (right type, wrong value) with the message
 * "expected X, got Y". Descriptions of values never show byte contents or string contents,
 * so a key passed in the wrong place does not end up in a log.
 */

/** A short description of `v` that never reveals its contents. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return `a string of ${v.length} characters`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (typeof v === 'bigint') return `bigint ${v}n`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name} of ${v.byteLength} bytes`;
  if (v instanceof ArrayBuffer) return `ArrayBuffer of ${v.byteLength} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length} items`;
  if (typeof v === 'object') return `${(v as object).constructor?.name ?? 'Object'} object`;
  return typeof v;
}

/** Throws unless `v` is a Uint8Array (Buffer counts), optionally of exactly `length` bytes. */
export function expectBytes(name: string, v: unknown, length?: number): asserts v is Uint8Array {
  if (!(v instanceof Uint8Array)) {
    throw new TypeError(`expected ${name} to be a Uint8Array${length !== undefined ? ` of ${length} bytes` : ''}, got ${describe(v)}`);
  }
  if (length !== undefined && v.byteLength !== length) {
    throw new RangeError(`expected ${name} to be ${length} bytes, got ${v.byteLength} bytes`);
  }
}

/** Throws unless `v` is an integer number in `[min, max]`. */
export function expectInt(name: string, v: unknown, min: number, max: number): asserts v is number {
  if (typeof v !== 'number') throw new TypeError(`expected ${name} to be an integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`expected ${name} to be an integer from ${min} to ${max}, got ${v}`);
  }
}

/** Throws unless `v` is a boolean. */
export function expectBoolean(name: string, v: unknown): asserts v is boolean {
  if (typeof v !== 'boolean') throw new TypeError(`expected ${name} to be a boolean, got ${describe(v)}`);
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * Converts a u64 given as a bigint or a safe non-negative integer to a bigint, throwing on
 * anything outside `[0, 2^64)`.
 */
export function toU64(name: string, v: unknown): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw new RangeError(`expected ${name} to be a u64 (0 to 2^64 - 1), got ${v}n`);
    return v;
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`expected ${name} to be a non-negative safe integer or a bigint, got ${v}`);
    }
    return BigInt(v);
  }
  throw new TypeError(`expected ${name} to be a bigint or a number, got ${describe(v)}`);
}

/** Throws unless `v` is one of `allowed` (short string constants, shown in the message). */
export function expectOneOf<T extends string | number>(name: string, v: unknown, allowed: readonly T[]): asserts v is T {
  if (!(allowed as readonly unknown[]).includes(v)) {
    const shown = typeof v === 'string' && v.length <= 40 ? JSON.stringify(v) : describe(v);
    throw new (typeof v === typeof allowed[0] ? RangeError : TypeError)(
      `expected ${name} to be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${shown}`,
    );
  }
}
