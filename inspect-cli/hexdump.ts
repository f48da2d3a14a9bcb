/**
 * `hexdump -C` style lines of memory at virtual addresses: address, 16 bytes in hex (two groups
 * of 8), the printable ASCII. Runs of identical lines collapse to one `*` line; the last line is
 * always shown so the end of the range is visible. Streaming: push pieces whose lengths are
 * multiples of 16 (the last one may be shorter). Pure.
 */
import { hexAddress16 } from './text.js';

export const BYTES_PER_LINE = 16;

/** One hexdump line. */
export function formatLine(address: bigint, bytes: Uint8Array): string {
  let hex = '';
  let ascii = '';
  for (let i = 0; i < BYTES_PER_LINE; i++) {
    if (i === 8) hex += ' ';
    if (i < bytes.length) {
      const b = bytes[i]!;
      hex += b.toString(16).padStart(2, '0') + ' ';
      ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
    } else hex += '   ';
  }
  return `${hexAddress16(address)}  ${hex} |${ascii}|`;
}

/** Streams lines for consecutive pieces of memory starting at `address`. */
export class HexDumper {
  private address: bigint;
  private prev: Uint8Array | null = null;
  private held: { address: bigint; bytes: Uint8Array } | null = null;
  private starred = false;

  constructor(address: bigint, private readonly squeeze = true) {
    this.address = address;
  }

  /** Lines for `bytes`; the last line is held back until the next push or end(). */
  push(bytes: Uint8Array): string[] {
    const out: string[] = [];
    for (let o = 0; o < bytes.length; o += BYTES_PER_LINE) {
      const line = bytes.subarray(o, Math.min(o + BYTES_PER_LINE, bytes.length));
      if (this.held) this.emit(this.held, out);
      this.held = { address: this.address, bytes: Uint8Array.from(line) };
      this.address += BigInt(line.length);
    }
    return out;
  }

  /** The held last line. */
  end(): string[] {
    const out = this.held ? [formatLine(this.held.address, this.held.bytes)] : [];
    this.held = null;
    return out;
  }

  private emit(h: { address: bigint; bytes: Uint8Array }, out: string[]): void {
    const same = this.squeeze && this.prev !== null && h.bytes.length === BYTES_PER_LINE && Buffer.from(h.bytes).equals(this.prev);
    if (same) {
      if (!this.starred) out.push('*');
      this.starred = true;
    } else {
      out.push(formatLine(h.address, h.bytes));
      this.starred = false;
    }
    this.prev = h.bytes;
  }
}
