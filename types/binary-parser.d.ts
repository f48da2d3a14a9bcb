// binary-parser 2.x ships types only for its CommonJS build; its ESM entry has none.
// This declares the subset crimg uses (format/header.ts, format/footer.ts).
declare module 'binary-parser' {
  export class Parser<T = Record<string, unknown>> {
    static start(): Parser;
    endianness(e: 'little' | 'big'): this;
    uint8(name: string): this;
    uint16le(name: string): this;
    uint32le(name: string): this;
    uint64le(name: string): this;
    doublele(name: string): this;
    buffer(name: string, opts: { length: number | string; clone?: boolean }): this;
    seek(relOffset: number): this;
    saveOffset(name: string): this;
    parse(buffer: Uint8Array): T;
    sizeOf(): number;
  }
}
