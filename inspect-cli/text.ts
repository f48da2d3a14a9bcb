/**
 * Text formatting of the numbers the library returns: addresses, byte counts, ratios.
 * Pure functions, no I/O.
 */

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** "0x7f0000001000": the hex form of an address (JSON and tables). */
export function hexAddress(v: bigint | number): string {
  return '0x' + v.toString(16);
}

/** A 64-bit address padded to 16 hex digits, for hexdumps. */
export function hexAddress16(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

/**
 * Human-readable byte count in binary units: "512 B", "64 KiB", "1.5 MiB".
 * @example humanBytes(1536) // "1.5 KiB"
 */
export function humanBytes(n: bigint | number): string {
  let v = Number(n);
  if (v < 1024) return `${v} B`;
  let u = -1;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const text = v >= 100 ? v.toFixed(0) : v.toFixed(1).replace(/\.0$/, '');
  return `${text} ${UNITS[u]}`;
}

/** `part / whole` as a number, 0 when `whole` is 0 (JSON ratios). */
export function ratio(part: bigint | number, whole: bigint | number): number {
  const w = Number(whole);
  return w === 0 ? 0 : Number(part) / w;
}

/** A ratio as a percentage with one decimal: "37.5%". */
export function percent(r: number): string {
  return `${(r * 100).toFixed(1).replace(/\.0$/, '')}%`;
}

/** `n` with a plural noun: "1 chunk", "3 chunks". */
export function plural(n: number | bigint, noun: string, nouns = `${noun}s`): string {
  return `${n} ${n === 1 || n === 1n ? noun : nouns}`;
}

/** "3 regions, 40 chunks (12 zero), 2.5 MiB mapped, 1.1 MiB stored (44%), file 1.1 MiB": what a writer reports. */
export function writeSummaryText(s: { regions: number; chunks: number; zeroChunks: number; plainBytes: number; storedBytes: number; fileSize: number }): string {
  return `${plural(s.regions, 'region')}, ${plural(s.chunks, 'chunk')} (${s.zeroChunks} zero), ${humanBytes(s.plainBytes)} mapped, ` +
    `${humanBytes(s.storedBytes)} stored (${percent(ratio(s.storedBytes, s.plainBytes))}), file ${humanBytes(s.fileSize)}`;
}
