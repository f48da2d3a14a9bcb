/**
 * A large region section of a local file kept in the file (issue 14): its records are read
 * once at open, in 1 MiB pieces, for the section checksum and the checks of section 8.1, and
 * read again by pread in 64 KiB lines when a region is asked for (format/region-table.ts holds
 * a 4 MiB cache of them). Only the string table stays in memory. Each 4 KiB block's XXH64 is
 * kept from the pass at open (8 bytes per 4 KiB) and checked on every later read, so a file
 * changed after open is told (SOURCE_CHANGED), never read as checked records. pread, not mmap:
 * a file truncated under the reader is an error, not a SIGBUS.
 *
 * Why: a 64 MiB section held in memory cost +69-73 MiB at open and 66-182 ms (the two 64 MiB
 * files of test/hostile-corpus.ts); the bound is 64 MiB and 100 ms whatever the file.
 */
import { readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { xxh64Chunks } from '../codec/checksum.js';
import { REGION_RECORD_SIZE } from '../format/constants.js';
import { CrimgError } from '../format/errors.js';
import { RECORD_BLOCK, type SectionRecords } from '../format/region-table.js';

/** Bytes read at once at open: a multiple of the record and block sizes. */
const PIECE = 1 << 20;

/** Sections from this size are kept in the file (below it, reading them whole is as cheap). */
export const IN_FILE_SECTION = 4 * 1024 * 1024;

/**
 * Streaming XXH64 by xxhash-wasm's module (the wasm engine of codec/checksum.ts; the addon has
 * no streaming hash): its init64/update64/digest64 on a state at 0, pieces read by pread
 * straight into its memory at {@link DATA} (no copy), where the checks read them too. One
 * instance per process, instantiated synchronously on first use (2-7 ms here); a pass uses it
 * from start to end without yielding, so opens never interleave on it.
 */
interface Stream {
  mem: { buffer: ArrayBuffer; grow(pages: number): number };
  init64(state: number, seed: bigint): void;
  update64(state: number, at: number, length: number): void;
  digest64(state: number): bigint;
}
/** Where pieces go in the module's memory: after the 88-byte state, 8-aligned. */
const DATA = 128;
/** Where later reads go (a read may come in the middle of a pass's piece: a record's second opinion). */
const READS = DATA + PIECE;
let stream: Stream | undefined;

function wasmStream(): Stream {
  if (!stream) {
    const entry = createRequire(import.meta.url).resolve('xxhash-wasm');
    const file = join(dirname(entry), '..', 'workerd', 'xxhash.wasm');
    // lib es2022 does not declare the WebAssembly global.
    const { Module, Instance } = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: unknown } } }).WebAssembly;
    const s = new Instance(new Module(readFileSync(file))).exports as Stream;
    const need = READS + PIECE - s.mem.buffer.byteLength;
    if (need > 0) s.mem.grow(Math.ceil(need / 65536));
    stream = s;
  }
  return stream;
}

/** Starts a hash: init64 leaves part of the state as it was, so it is zeroed first (as xxhash-wasm's create64 does). */
function begin(s: Stream): void {
  new Uint8Array(s.mem.buffer, 0, DATA).fill(0);
  s.init64(0, 0n);
}

/** `length` bytes at `at` of the module's memory (a fresh view: growing the memory detaches old ones). */
const wasmBytes = (s: Stream, length: number, at = DATA): Uint8Array => new Uint8Array(s.mem.buffer, at, length);

/**
 * XXH64 of each {@link RECORD_BLOCK} of the `length` bytes at `at` of the module's memory (the
 * last may be short) into `sums`: the addon's hashChunks in one call when built (no BigInt per
 * block), else xxh64 per block.
 */
function blockSums(s: Stream, at: number, length: number, sums: BigUint64Array): void {
  xxh64Chunks(wasmBytes(s, length, at), RECORD_BLOCK, sums.subarray(0, Math.ceil(length / RECORD_BLOCK)));
}

/** Where the section lies and what it must hash to. */
export interface SectionPlace {
  fd: number;
  /** The file's name, for messages. */
  name: string;
  offset: number;
  length: number;
  regionCount: number;
  checksum: bigint;
}

/**
 * The section's records as {@link SectionRecords}: the string table read now, the records
 * streamed by `scan` (checksummed with the whole section; a mismatch is CORRUPT_INDEX, and
 * beats any record's error) and read by `read` afterwards. Synchronous, like the table's checks.
 * @throws CrimgError SOURCE_CHANGED, IO_ERROR when reading fails.
 */
export function sectionInFile(p: SectionPlace): SectionRecords {
  const recordsEnd = p.regionCount * REGION_RECORD_SIZE;
  const strings = new Uint8Array(p.length - recordsEnd);
  pread(p, strings, recordsEnd);
  const sums = new BigUint64Array(Math.ceil(recordsEnd / RECORD_BLOCK));
  let scanned = false;
  return {
    strings,
    scan(visit) {
      const s = wasmStream();
      begin(s);
      let failure: { error: unknown } | null = null;
      for (let at = 0; at < recordsEnd; at += PIECE) {
        const part = wasmBytes(s, Math.min(PIECE, recordsEnd - at));
        pread(p, part, at);
        s.update64(0, DATA, part.length);
        blockSums(s, DATA, part.length, sums.subarray(at / RECORD_BLOCK));
        if (failure === null) {
          try {
            visit(part, at / REGION_RECORD_SIZE);
          } catch (error) {
            failure = { error }; // thrown once the checksum is known good: damage is told first
          }
        }
      }
      for (let at = 0; at < strings.length; at += PIECE) {
        const part = strings.subarray(at, Math.min(strings.length, at + PIECE));
        wasmBytes(s, part.length).set(part);
        s.update64(0, DATA, part.length);
      }
      if (BigInt.asUintN(64, s.digest64(0)) !== p.checksum) {
        throw new CrimgError('CORRUPT_INDEX', 'region section checksum mismatch', { offset: p.offset, hint: 'the index is damaged; restore the image from a good copy' });
      }
      scanned = true;
      if (failure !== null) throw failure.error;
    },
    read(offset, into) {
      // Read into the module's memory (hashed there, no copy to hash), then copied out.
      const s = wasmStream();
      for (let done = 0; done < into.length; done += PIECE) {
        const n = Math.min(PIECE, into.length - done);
        const part = wasmBytes(s, n, READS);
        pread(p, part, offset + done);
        const first = (offset + done) / RECORD_BLOCK;
        const got = new BigUint64Array(Math.ceil(n / RECORD_BLOCK));
        blockSums(s, READS, n, got);
        for (let k = 0; k < got.length; k++) {
          // Before the scan has passed a block its sum is 0 (not yet known): only the scan's own
          // second opinion on a record reads that early, from a block it has just summed.
          if (scanned && got[k] !== sums[first + k]) {
            const at = p.offset + offset + done + k * RECORD_BLOCK;
            throw new CrimgError('SOURCE_CHANGED', `${p.name}: the region section changed since the image was opened (bytes at ${at})`, {
              offset: at, hint: 'open the image again once nothing writes to it',
            });
          }
        }
        into.set(part, done);
      }
    },
  };
}

/**
 * XXH64 of the `length` bytes at `offset` of a file, read in 1 MiB pieces (a sealed section
 * checked without a key, as {@link sectionInFile}'s scan does, without holding it).
 * @throws CrimgError SOURCE_CHANGED, IO_ERROR when reading fails.
 */
export function fileChecksum(p: Omit<SectionPlace, 'regionCount' | 'checksum'>): bigint {
  const s = wasmStream();
  begin(s);
  for (let at = 0; at < p.length; at += PIECE) {
    const part = wasmBytes(s, Math.min(PIECE, p.length - at));
    pread(p, part, at);
    s.update64(0, DATA, part.length);
  }
  return BigInt.asUintN(64, s.digest64(0));
}

/** Fills `into` from the section's byte `at` (pread: no mapping, so no SIGBUS on truncation). */
function pread(p: Pick<SectionPlace, 'fd' | 'name' | 'offset'>, into: Uint8Array, at: number): void {
  let done = 0;
  while (done < into.length) {
    let n: number;
    try {
      n = readSync(p.fd, into, done, into.length - done, p.offset + at + done);
    } catch (e) {
      throw new CrimgError('IO_ERROR', `${p.name}: cannot read the region section: ${(e as NodeJS.ErrnoException).code ?? 'EIO'}`, { offset: p.offset + at + done, cause: e });
    }
    if (n === 0) {
      throw new CrimgError('SOURCE_CHANGED', `${p.name}: the file ended at ${p.offset + at + done}, inside its region section, after the image was opened`, {
        offset: p.offset + at + done, hint: 'open the image again once nothing writes to it',
      });
    }
    done += n;
  }
}
