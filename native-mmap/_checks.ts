/**
 * The addon's bindings for checking an index section as it is read (native-mmap/src/scan.cc,
 * src/region_check_js.cc): a streaming XXH64 over pieces, and section 8.1's record and totals
 * checks as a fast engine that only says how far records are good (format/region-table.ts and
 * format/region-totals.ts check the record it stops at themselves, so it decides no outcome).
 */
export interface CheckBindings {
  /** Starts XXH64 (seed 0) over pieces in `state`, 80 bytes the caller keeps (the hash of several xxh64Update calls, then xxh64Digest). */
  xxh64Init(state: Uint8Array): void;
  /** The next piece of a hash begun by xxh64Init. */
  xxh64Update(state: Uint8Array, bytes: Uint8Array): void;
  /** XXH64 of every piece given to `state` so far (the state is left as it was). */
  xxh64Digest(state: Uint8Array): bigint;
  /**
   * Section 8.1's record checks over whole 64-byte region records (`first` the number of the
   * first), after the records before them: `state` = [next chunk number, previous region's end
   * high word (-1: none; 2^32: end of the address space), its low word], `ctx` = [page size,
   * chunk size, chunk table records, max chunks per region, max name length, records per line
   * of `lineStarts`, kind number of a gap]; `clean` and `badBlocks` as format/region-table.ts
   * keeps them for a string table that is not UTF-8 (null otherwise). Returns how many records
   * from the start pass every check, `state` advanced past them and their line starts set. The
   * caller checks the record it stopped at itself: this decides no outcome.
   */
  checkRegionRecords(records: Uint8Array, first: number, state: Float64Array, ctx: Float64Array, strings: Uint8Array,
    clean: Uint8Array | null, badBlocks: Uint32Array | null, lineStarts: Uint32Array | null): number;
  /**
   * How many of the first `count` region records of `regions` have stored bytes and zero chunks
   * (chunks with flag `zeroFlag`) equal to their chunk records' in `chunks` (section 8.1).
   */
  checkRegionTotals(chunks: Uint8Array, regions: Uint8Array, count: number, zeroFlag: number): number;
}
