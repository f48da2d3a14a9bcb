/**
 * Text formatting of what the library returns: addresses, byte counts, ratios, and strings
 * that come from an image (names, labels, keys) made safe for a terminal. Pure functions, no I/O.
 */

/**
 * Characters a terminal acts on rather than shows: C0 controls (ESC, BEL, CR, LF...), DEL, C1
 * controls (U+0080-U+009F, CSI among them), the line and paragraph separators, and the bidi
 * controls that reorder what is shown (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `s` with every terminal control and bidi character written as a visible escape: `\x1b` for
 * C0, DEL and C1, `\u202e` for the others. Every string an image (or a command line) supplies
 * goes through this before it reaches text output, so that a region name cannot move the
 * cursor, forge a line or reverse what follows. JSON output needs none: JSON.stringify escapes
 * C0, and JSON readers do not act on the rest.
 * @example safeText('a\x1b[2Jb') // "a\\x1b[2Jb"
 */
export function safeText(s: string): string {
  return s.replace(UNSAFE, (ch) => {
    const c = ch.charCodeAt(0);
    return c <= 0xff ? `\\x${c.toString(16).padStart(2, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`;
  });
}

/** Characters of a name shown in text output; the rest is counted (--json has it all). */
export const MAX_NAME = 256;

/**
 * A name from an image for text output: made safe ({@link safeText}) and cut at
 * {@link MAX_NAME} characters with a count of the rest, so that 2^20 regions naming one 4 KiB
 * string print 2^20 short lines, not 4 GiB.
 */
export function shownName(s: string): string {
  return s.length <= MAX_NAME ? safeText(s) : `${safeText(s.slice(0, MAX_NAME))}... (${s.length - MAX_NAME} more characters)`;
}

/** A string from an image in double quotes with JSON escapes, then made safe (see {@link safeText}). */
export function quotedText(s: string | null | undefined): string {
  return safeText(JSON.stringify(s ?? null));
}

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
