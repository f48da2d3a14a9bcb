/**
 * Map mode's default check (issue 14 item 14): before a map-mode restore returns, every chunk
 * mapped from the image file is hashed in place, through the very mapping the caller gets, and
 * compared with its chunk record, so that a damaged image throws CORRUPT_CHUNK instead of
 * restoring silently wrong memory. Zero runs are fresh anonymous memory (zero by construction)
 * and are not read; a SPARSE image's spans are file-mapped whole, so their zero chunks are read
 * and compared with the hash of zeros.
 *
 * The cost is reading every stored page once (page cache, or the disk on a cold cache): the
 * mapping is no longer lazy. `check: false` is the explicit unchecked mapping.
 */
import type { Region } from '../format/index-table.js';
import { CrimgError } from '../format/errors.js';
import { CHUNK_ZERO } from '../format/constants.js';
import { hex } from '../format/bytes.js';
import { xxh64, xxh64Chunks } from '../codec/checksum.js';
import { protect, unmap, type Prot, type ReadableProt } from '../native-mmap/index.js';
import type { RecordScanner } from './_plan.js';
import { syscallFailure, viewOf, type Slot } from './_place.js';
import { label } from './_result.js';

/** Bytes hashed per native call (and per temporary window), rounded down to whole chunks. */
const PIECE_BYTES = 64 * 1024 * 1024;

/** Checks mapped chunks against the chunk table of one image. */
export class MapCheck {
  private readonly zeroSums = new Map<number, bigint>();
  private readonly piece: number;
  private readonly sums: BigUint64Array;

  constructor(private readonly scan: RecordScanner) {
    const cs = scan.g.chunkSize;
    this.piece = Math.max(cs, Math.floor(PIECE_BYTES / cs) * cs);
    this.sums = new BigUint64Array(this.piece / cs);
  }

  /**
   * Checks every file-mapped run of slot `s` (`plan`: the `[offset, length, file offset]`
   * triples it was placed with). `memory` is the region's view when it has one; otherwise each
   * piece is read through a temporary window (`r--` for an unreadable region, whose recorded
   * protection is put back afterwards).
   * @throws CrimgError CORRUPT_CHUNK for the first chunk whose mapped bytes do not match.
   */
  slot(s: Slot, plan: Float64Array, memory: ArrayBuffer | undefined): void {
    const r = s.region;
    const unreadable = (r.protBits & 1) === 0;
    let windows = false;
    for (let k = 0; k < plan.length; k += 3) {
      const fileOffset = plan[k + 2]!;
      if (fileOffset < 0) continue;
      const start = plan[k]!;
      const end = start + plan[k + 1]!;
      for (let off = start; off < end; off += this.piece) {
        const len = Math.min(this.piece, end - off);
        if (memory) {
          this.bytes(s, off, new Uint8Array(memory, off, len), fileOffset + (off - start));
          continue;
        }
        windows = true;
        const w = viewOf(s, off, len, unreadable ? 'r--' : (r.prot as ReadableProt));
        try {
          this.bytes(s, off, new Uint8Array(w, 0, len), fileOffset + (off - start));
        } finally {
          unmap(w);
        }
      }
    }
    if (windows && unreadable) {
      try {
        protect(s.entry.address, s.span, r.prot as Prot);
      } catch (e) {
        throw syscallFailure(e, `protect ${label(r)} at ${hex(s.entry.address)}`, 'map', r);
      }
    }
  }

  /** Hashes `bytes`, the region's bytes from `offset` (a chunk boundary), chunk by chunk. */
  private bytes(s: Slot, offset: number, bytes: Uint8Array, fileOffset: number): void {
    const r = s.region;
    const cs = this.scan.g.chunkSize;
    const n = Math.ceil(bytes.byteLength / cs);
    const sums = n === this.sums.length ? this.sums : this.sums.subarray(0, n);
    xxh64Chunks(bytes, cs, sums);
    const first = offset / cs;
    for (let k = 0; k < n; k++) {
      const number = r.firstChunk + first + k;
      const plain = Math.min(cs, bytes.byteLength - k * cs);
      const want = (this.scan.flags(number) & CHUNK_ZERO) !== 0 ? this.zeroSum(plain) : this.scan.checksum(number);
      if (sums[k] === want) continue;
      const at = fileOffset + k * cs;
      const address = s.entry.address + BigInt(offset + k * cs);
      throw new CrimgError('CORRUPT_CHUNK', `chunk ${number} of ${label(r)}, mapped from file offset ${at} to ${hex(address)}, does not match its checksum (XXH64 ${hex(sums[k]!)}, expected ${hex(want)})`, {
        chunk: number, region: r.index, offset: at, address,
        hint: 'the image is damaged, or its file changed while mapped; restore it from a good copy (verify() lists every damaged chunk)',
      });
    }
  }

  private zeroSum(plain: number): bigint {
    let sum = this.zeroSums.get(plain);
    if (sum === undefined) {
      sum = xxh64(new Uint8Array(plain));
      this.zeroSums.set(plain, sum);
    }
    return sum;
  }
}
