/**
 * A large region section of a local file kept in the file (issue 14): its records are read
 * once at open, in 1 MiB pieces, for the section checksum and the checks of section 8.1, and
 * read again by pread in 64 KiB lines when a region is asked for (format/region-table.ts holds
 * a 4 MiB cache of them). Only the string table stays in memory (huge-page memory when large,
 * image/_huge.ts; unmapped at close). Each 4 KiB block's XXH64 is
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
import { hugeBytes } from './_huge.js';
import { nativeAddon } from '../native-mmap/index.js';

/** Bytes read at once at open: a multiple of the record and block sizes. */
const PIECE = 1 << 20;

/** Sections from this size are kept in the file (below it, reading them whole is as cheap). */
export const IN_FILE_SECTION = 4 * 1024 * 1024;

/**
 * A streaming XXH64 over a scratch buffer: pieces are read into {@link Stream.scratch} at 0 (a
 * pass at open) or at {@link READS} (later reads) and hashed there, no copy. The native addon's
 * (xxh64Init/Update/Digest over 2 MiB of huge-page scratch) when built, else xxhash-wasm's
 * module (init64/update64/digest64, pieces read straight into its memory). One per process,
 * made on first use; a pass uses it from start to end without yielding, so opens never
 * interleave on it. Why native first: the wasm module's compile and its memory's first touch
 * cost 8-13 ms of a first open here, its hash 1.6x the native one.
 */
interface Stream {
  /** 2 * PIECE bytes (a fresh view: growing a wasm memory detaches old ones). */
  scratch(): Uint8Array;
  begin(): void;
  /** Hashes the `length` bytes at `at` of the scratch. */
  update(at: number, length: number): void;
  digest(): bigint;
}
/** Where later reads go in the scratch (a read may come in the middle of a pass's piece: a record's second opinion). */
const READS = PIECE;
let stream: Stream | undefined;

function theStream(): Stream {
  return (stream ??= nativeStream() ?? wasmStream());
}

function nativeStream(): Stream | null {
  const addon = nativeAddon();
  if (addon === null) return null;
  const scratch = hugeBytes(2 * PIECE).bytes; // kept for the process
  const state = new Uint8Array(80);
  return {
    scratch: () => scratch,
    begin: () => addon.xxh64Init(state),
    update: (at, length) => addon.xxh64Update(state, scratch.subarray(at, at + length)),
    digest: () => addon.xxh64Digest(state),
  };
}

/** xxhash-wasm's module: its state at 0 (88 bytes), the scratch after it, 8-aligned. */
function wasmStream(): Stream {
  interface Wasm {
    mem: { buffer: ArrayBuffer; grow(pages: number): number };
    init64(state: number, seed: bigint): void;
    update64(state: number, at: number, length: number): void;
    digest64(state: number): bigint;
  }
  const DATA = 128;
  const entry = createRequire(import.meta.url).resolve('xxhash-wasm');
  const file = join(dirname(entry), '..', 'workerd', 'xxhash.wasm');
  // lib es2022 does not declare the WebAssembly global.
  const { Module, Instance } = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: unknown } } }).WebAssembly;
  const w = new Instance(new Module(readFileSync(file))).exports as Wasm;
  const need = DATA + 2 * PIECE - w.mem.buffer.byteLength;
  if (need > 0) w.mem.grow(Math.ceil(need / 65536));
  return {
    scratch: () => new Uint8Array(w.mem.buffer, DATA, 2 * PIECE),
    begin: () => {
      // init64 leaves part of the state as it was, so it is zeroed first (as xxhash-wasm's create64 does).
      new Uint8Array(w.mem.buffer, 0, DATA).fill(0);
      w.init64(0, 0n);
    },
    update: (at, length) => w.update64(0, DATA + at, length),
    digest: () => BigInt.asUintN(64, w.digest64(0)),
  };
}

/**
 * XXH64 of each {@link RECORD_BLOCK} of `bytes` (the last may be short) into `sums`: the
 * addon's hashChunks in one call when built (no BigInt per block), else xxh64 per block.
 */
function blockSums(bytes: Uint8Array, sums: BigUint64Array): void {
  xxh64Chunks(bytes, RECORD_BLOCK, sums.subarray(0, Math.ceil(bytes.length / RECORD_BLOCK)));
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
export function sectionInFile(p: SectionPlace): SectionRecords & { release(): void } {
  const recordsEnd = p.regionCount * REGION_RECORD_SIZE;
  const held = hugeBytes(p.length - recordsEnd); // kept while the image is open: names are sliced from it
  const strings = held.bytes;
  try {
    pread(p, strings, recordsEnd);
  } catch (e) {
    held.release();
    throw e;
  }
  const sums = new BigUint64Array(Math.ceil(recordsEnd / RECORD_BLOCK));
  /** Blocks whose sums are known: those the pass at open has read so far (all, once it is done). */
  let summed = 0;
  return {
    strings,
    release: held.release,
    scan(visit) {
      const s = theStream();
      s.begin();
      let failure: { error: unknown } | null = null;
      for (let at = 0; at < recordsEnd; at += PIECE) {
        const part = s.scratch().subarray(0, Math.min(PIECE, recordsEnd - at));
        pread(p, part, at);
        s.update(0, part.length);
        blockSums(part, sums.subarray(at / RECORD_BLOCK));
        summed = Math.ceil((at + part.length) / RECORD_BLOCK); // a record's second opinion reads these again
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
        s.scratch().set(part);
        s.update(0, part.length);
      }
      if (s.digest() !== p.checksum) {
        throw new CrimgError('CORRUPT_INDEX', 'region section checksum mismatch', { offset: p.offset, hint: 'the index is damaged; restore the image from a good copy' });
      }
      summed = sums.length;
      if (failure !== null) throw failure.error;
    },
    read(offset, into) {
      for (let done = 0; done < into.length; done += PIECE) {
        into.set(checkedPiece(offset + done, Math.min(PIECE, into.length - done)), done);
      }
    },
    each(visit) {
      for (let at = 0; at < recordsEnd; at += PIECE) visit(checkedPiece(at, Math.min(PIECE, recordsEnd - at)), at / REGION_RECORD_SIZE);
    },
  };

  /**
   * The `n` (<= PIECE) section bytes at `offset` (a multiple of RECORD_BLOCK), read into the
   * scratch and hashed there per block against the sums of the pass at open; valid until the
   * next read.
   */
  function checkedPiece(offset: number, n: number): Uint8Array {
    const part = theStream().scratch().subarray(READS, READS + n);
    pread(p, part, offset);
    const first = offset / RECORD_BLOCK;
    const got = new BigUint64Array(Math.ceil(n / RECORD_BLOCK));
    blockSums(part, got);
    // Only the blocks the pass at open has summed are known: while it runs, a record's second
    // opinion reads its own piece again (summed just before), and must get those same bytes.
    const known = Math.max(0, Math.min(got.length, summed - first));
    if (known < got.length || !sameSums(got, sums.subarray(first, first + got.length))) {
      let k = 0;
      while (k < known && got[k] === sums[first + k]) k++;
      const at = p.offset + offset + k * RECORD_BLOCK;
      throw new CrimgError('SOURCE_CHANGED', `${p.name}: the region section changed since the image was opened (bytes at ${at})`, {
        offset: at, hint: 'open the image again once nothing writes to it',
      });
    }
    return part;
  }
}

/** Whether two runs of sums are equal, compared as bytes (a BigInt per block cost 5.7 ms per 64 MiB). */
function sameSums(a: BigUint64Array, b: BigUint64Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * XXH64 of the `length` bytes at `offset` of a file, read in 1 MiB pieces (a sealed section
 * checked without a key, as {@link sectionInFile}'s scan does, without holding it).
 * @throws CrimgError SOURCE_CHANGED, IO_ERROR when reading fails.
 */
export function fileChecksum(p: Omit<SectionPlace, 'regionCount' | 'checksum'>): bigint {
  const s = theStream();
  s.begin();
  for (let at = 0; at < p.length; at += PIECE) {
    const n = Math.min(PIECE, p.length - at);
    pread(p, s.scratch().subarray(0, n), at);
    s.update(0, n);
  }
  return s.digest();
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
