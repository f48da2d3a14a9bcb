/**
 * Numbers on the command line: addresses and lengths as 0x hex or decimal (the library's
 * parseBigNumber), and sizes with an optional binary suffix (64K, 1M).
 */
import { parseBigNumber } from '../format/index.js';

/** An address: "0x7f0000001000" or decimal. @throws RangeError */
export function parseAddress(text: string, what = 'address'): bigint {
  return parseBigNumber(text, what);
}

const SUFFIX: Record<string, number> = { '': 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

/**
 * A length or size as a safe integer: hex or decimal, with an optional binary suffix
 * K/KiB, M/MiB, G/GiB (decimal only).
 * @throws RangeError when the text is not such a number.
 * @example parseSize('64K') // 65536
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d[\d_]*)\s*([a-zA-Z]*)\s*$/.exec(text);
  let v: bigint;
  if (m && m[2] !== '' && !/^0x/i.test(text.trim())) {
    const mul = SUFFIX[m[2]!.toLowerCase()];
    if (mul === undefined) throw new RangeError(`expected ${what} as hex, decimal or with a K/M/G suffix, got ${JSON.stringify(text)}`);
    v = BigInt(m[1]!.replace(/_/g, '')) * BigInt(mul);
  } else {
    v = parseBigNumber(text, what);
  }
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`expected ${what} below 2^53, got ${text}`);
  return Number(v);
}
