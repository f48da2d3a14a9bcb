/** Addresses and lengths are bigint in the API; a Number is accepted where it is exact. */

const MAX_U64 = (1n << 64n) - 1n;

/**
 * `v` as a bigint in 0..2^64-1.
 * @throws TypeError for other types; RangeError for negative, fractional, unsafe or too large values.
 */
export function toBigAddress(v: bigint | number, what = 'address'): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > MAX_U64) throw new RangeError(`expected ${what} in 0..2^64-1, got ${v}`);
    return v;
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`expected ${what} as a non-negative safe integer or a bigint, got ${v}`);
    }
    return BigInt(v);
  }
  throw new TypeError(`expected ${what} as a bigint or a number, got ${typeof v}`);
}

/** Parses "0x..." hex or decimal text to a bigint (CLI numbers). @throws RangeError */
export function parseBigNumber(text: string, what = 'number'): bigint {
  const t = text.trim().replace(/_/g, '');
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(t)) throw new RangeError(`expected ${what} as 0x-prefixed hex or decimal, got ${JSON.stringify(text)}`);
  const v = BigInt(t);
  if (v > MAX_U64) throw new RangeError(`expected ${what} below 2^64, got ${text}`);
  return v;
}
