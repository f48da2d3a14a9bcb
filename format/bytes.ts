/** Small byte helpers shared by the encoders and decoders of format/. No I/O. */

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** "0x..." hex text of a 64-bit value, as used in messages and JSON. */
export function hex(v: bigint | number): string {
  return '0x' + v.toString(16);
}

/** A u64 read from a DataView as a Number, or null when it does not fit in 2^53. */
export function u64AsNumber(dv: DataView, off: number): number | null {
  const v = dv.getBigUint64(off, true);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}
