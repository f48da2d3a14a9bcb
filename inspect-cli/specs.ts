/**
 * Parsing of the repeatable option values of `crimg create` and `crimg check`:
 * `ADDR:FILE[:PROT[:KIND[:NAME]]]`, `ADDR:LEN[:NAME]`, `K=V`, `K=HEX`, `K=NUM`, `NAME[:VERSION]`.
 * Pure; values are checked with the library's own parsers so that errors match its rules.
 */
import { parseKind, parseProt, type RegionKind } from '../format/index.js';
import { parseAddress, parseSize } from './numbers.js';
import { usageError } from './errors.js';

export interface RegionSpec {
  address: bigint;
  file: string;
  prot: string;
  kind: Exclude<RegionKind, 'gap'>;
  name: string;
}

export interface GapSpec {
  address: bigint;
  length: bigint;
  name: string;
}

/**
 * `ADDR:FILE[:PROT[:KIND[:NAME]]]`. The file name cannot hold ':'; the name may.
 * @example parseRegionSpec('0x7f0000000000:heap.bin:rw-:heap:java heap')
 */
export function parseRegionSpec(text: string): RegionSpec {
  const parts = text.split(':');
  if (parts.length < 2 || parts[0] === '' || parts[1] === '') {
    throw usageError(`expected --region ADDR:FILE[:PROT[:KIND[:NAME]]], got ${JSON.stringify(text)}`);
  }
  const prot = parts[2] || 'rw-';
  const kind = parts[3] || 'anonymous';
  parseProt(prot);
  if (parseKind(kind) === parseKind('gap')) throw usageError('expected a data region kind in --region, got "gap": use --gap ADDR:LEN');
  return {
    address: parseAddress(parts[0]!, 'region address'),
    file: parts[1]!,
    prot,
    kind: kind as Exclude<RegionKind, 'gap'>,
    name: parts.slice(4).join(':'),
  };
}

/** `ADDR:LEN[:NAME]`. */
export function parseGapSpec(text: string): GapSpec {
  const parts = text.split(':');
  if (parts.length < 2 || parts[0] === '' || parts[1] === '') throw usageError(`expected --gap ADDR:LEN[:NAME], got ${JSON.stringify(text)}`);
  return {
    address: parseAddress(parts[0]!, 'gap address'),
    length: BigInt(parseSize(parts[1]!, 'gap length')),
    name: parts.slice(2).join(':'),
  };
}

/** `K=V`, split at the first '='. */
export function parseKeyValue(text: string, option: string): [string, string] {
  const i = text.indexOf('=');
  if (i <= 0) throw usageError(`expected ${option} KEY=VALUE, got ${JSON.stringify(text)}`);
  return [text.slice(0, i), text.slice(i + 1)];
}

/**
 * Bitmap bytes from hex written in byte order: byte 0 first, bit 0 is the low bit of byte 0
 * (spec/FORMAT.md section 4), the form `crimg inspect` prints.
 */
export function parseBitmapHex(text: string, what: string): Uint8Array {
  const t = text.trim();
  if (/^0x/i.test(t)) throw usageError(`expected ${what} as hex bytes in order without 0x, got ${JSON.stringify(text)}`, 'bit 0 is the low bit of the first byte, as `crimg inspect` prints bitmaps');
  if (!/^([0-9a-fA-F]{2})*$/.test(t)) throw usageError(`expected ${what} as an even number of hex digits, got ${JSON.stringify(text)}`);
  return Uint8Array.from(Buffer.from(t, 'hex'));
}

/** A metric value: any finite number JavaScript parses. */
export function parseMetric(text: string, what: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) throw usageError(`expected ${what} as a finite number, got ${JSON.stringify(text)}`);
  return v;
}

/** `NAME[:VERSION]`. */
export function parseProducer(text: string): { producerName: string; producerVersion?: string } {
  const i = text.indexOf(':');
  if (text === '' || i === 0) throw usageError(`expected --producer NAME[:VERSION], got ${JSON.stringify(text)}`);
  return i < 0 ? { producerName: text } : { producerName: text.slice(0, i), producerVersion: text.slice(i + 1) };
}

/** Applies `parse` to each `K=V` of a repeatable option, refusing a key given twice. */
export function keyedValues<T>(texts: readonly string[] | undefined, option: string, parse: (v: string, what: string) => T): Record<string, T> {
  const out = Object.create(null) as Record<string, T>; // `__proto__` is a key like any other
  for (const t of texts ?? []) {
    const [k, v] = parseKeyValue(t, option);
    if (Object.hasOwn(out, k)) throw usageError(`${option} ${k} is given twice`);
    out[k] = parse(v, `${option} ${k}`);
  }
  return out;
}
