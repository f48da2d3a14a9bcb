/**
 * The memory log (issues 13 and 19): the pages read from /proc/PID/mem while the process is
 * stopped (or, for a pre-copy, while it runs) go to a plain append-only file of pieces beside
 * the output, not into the image; the image is written from the log after SIGCONT
 * (capture/_replay.ts), with the caller's codec and cipher. A piece is at most `pieceSize`
 * bytes of one run of pages at one address; the log keeps where each piece lies, in memory.
 *
 * Why not a raw stage image (what the capture wrote before): an image's writer cuts the bytes
 * into chunks, hashes them, and when sealed takes a fresh buffer per read (its plain bytes wait
 * for the encoder), so sealing the stage cost 2.0-2.3x the raw stop. Here a read lands in one
 * of a few reused buffers, is sealed at once (one AEAD call per piece, Node's OpenSSL through
 * the addon, into a reused buffer) while the next reads run on libuv's pool, and the sealed
 * bytes are written at an offset fixed in advance, so reads, sealing and writes overlap.
 *
 * Sealed when the output is encrypted: AES-256-GCM under a random one-time key held only in
 * memory (capture/_stage.ts), nonce = the piece's number, associated data = its address and
 * length, so no plaintext page reaches the disk and a piece cannot be moved or swapped
 * unnoticed. Without a cipher the pieces are the plain pages, as the raw stage was.
 */
import { timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { CrimgError } from '../format/errors.js';
import { hex } from '../format/bytes.js';
import { CIPHER_AES_256_GCM, TAG_SIZE } from '../format/constants.js';
import { open as aeadOpen, seal } from '../codec/aead.js';
import { xxh64 } from '../codec/checksum.js';
import { nativeAddon } from '../native-mmap/index.js';

/** Reads of /proc/PID/mem in flight ahead of the one being sealed. */
const READ_AHEAD = 3;
/** Log writes in flight. */
const WRITES_IN_FLIGHT = 4;
/** Errors that end a readable stretch of /proc/PID/mem (an unreadable page) instead of failing. */
const ENDS_STRETCH = new Set(['EIO', 'EFAULT', 'ENOMEM']);

/** One piece in the log: `length` bytes of memory at `address`, stored at `offset` (plus a tag when sealed). */
export interface LogPiece {
  address: bigint;
  length: number;
  offset: number;
  /** The piece's number: its nonce when sealed. */
  seq: number;
  /** XXH64 of each page of the piece, when asked for ({@link LogOptions.hashes}). */
  hashes?: BigUint64Array;
}

/** How {@link MemLog.logRuns} treats what it reads. */
export interface LogOptions {
  /** Keep each piece's page checksums (a pre-copy's running pass, for {@link LogOptions.previous}). */
  hashes?: boolean;
  /**
   * The checksum a page at this address had when read before (undefined: not read before).
   * Given: only pages whose checksum differs are logged (a pre-copy's stop without soft-dirty
   * tracking: every page is read, only the changed ones are sealed and written).
   */
  previous?: (address: bigint) => bigint | undefined;
}

/** [start, end) of memory to read, page-aligned. */
export interface AddressRun {
  start: bigint;
  end: bigint;
}

/** A fixed pool of equal buffers, handed out in turn. */
class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: ((b: Buffer) => void)[] = [];
  constructor(count: number, size: number) {
    for (let i = 0; i < count; i++) this.free.push(Buffer.allocUnsafe(size));
  }
  take(): Promise<Buffer> {
    const b = this.free.pop();
    return b ? Promise.resolve(b) : new Promise((r) => this.waiting.push(r));
  }
  give(b: Buffer): void {
    const w = this.waiting.shift();
    if (w) w(b);
    else this.free.push(b);
  }
}

/** The memory log of one capture. */
export class MemLog {
  /** Every piece, in the order written. */
  readonly pieces: LogPiece[] = [];
  /** Bytes of memory logged. */
  bytes = 0;
  /** Bytes read from /proc/PID/mem (logged or not). */
  readBytes = 0;
  private size = 0;
  private seq = 0;
  private readonly buffers: BufferPool;
  private readonly writes = new Set<Promise<void>>();
  private writeError: unknown = null;
  private readonly aad = new Uint8Array(16);
  private readonly nonce = new Uint8Array(12);

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly key: Uint8Array | null,
    private readonly pieceSize: number,
    readonly pageSize: number,
  ) {
    // A piece is read, sealed in place (the tag after it) and written from one buffer.
    this.buffers = new BufferPool(READ_AHEAD + 1 + WRITES_IN_FLIGHT, pieceSize + TAG_SIZE);
  }

  /**
   * Creates the log at `path` (owner-only, exclusively: nothing may be there).
   * @param key - a one-time 32-byte key to seal the pieces with, or null for plain pieces.
   * @throws CrimgError IO_ERROR
   */
  static async create(path: string, key: Uint8Array | null, pieceSize: number, pageSize: number): Promise<MemLog> {
    let fh: FileHandle;
    try {
      // Read back by this process: O_RDWR, created here (O_EXCL), never through a symlink.
      fh = await open(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
    } catch (e) {
      throw new CrimgError('IO_ERROR', `cannot create the capture's memory log ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e, hint: 'the output directory must be writable' });
    }
    return new MemLog(path, fh, key, pieceSize, pageSize);
  }

  /**
   * Reads `runs` (ascending, page-aligned) of the memory behind `mem` into the log, in pieces of
   * at most the piece size, reads ahead on libuv's pool while each piece is sealed and written.
   * @returns the address where the readable memory ended early (the first page that could not
   *   be read: EIO, EFAULT, ENOMEM or end of file), or null when every run was read whole. The
   *   pieces logged cover exactly the runs' pages before that address.
   * @throws CrimgError IO_ERROR on another read error or when the log cannot be written.
   */
  async logRuns(mem: FileHandle, memName: string, runs: readonly AddressRun[], onRead?: (n: number) => void, options: LogOptions = {}): Promise<bigint | null> {
    const parts: AddressRun[] = [];
    const step = BigInt(this.pieceSize);
    for (const r of runs) {
      for (let a = r.start; a < r.end; a += step) parts.push({ start: a, end: a + step < r.end ? a + step : r.end });
    }
    const inflight: Promise<{ buf: Buffer; n: number }>[] = [];
    let next = 0;
    const start = (): void => {
      const p = parts[next++]!;
      inflight.push(this.buffers.take().then((buf) => readStretch(mem, memName, buf, p.start, Number(p.end - p.start), this.pageSize).then((n) => ({ buf, n }))));
    };
    let ended: bigint | null = null;
    try {
      for (let i = 0; i < parts.length; i++) {
        while (next < parts.length && next <= i + READ_AHEAD) start();
        const { buf, n } = await inflight.shift()!;
        const want = Number(parts[i]!.end - parts[i]!.start);
        this.readBytes += n;
        if (n > 0 && options.previous) await this.appendChanged(parts[i]!.start, buf, n, options.previous);
        else if (n > 0) await this.append(parts[i]!.start, buf, n, options.hashes === true);
        else this.buffers.give(buf);
        onRead?.(n);
        if (n < want) {
          ended = parts[i]!.start + BigInt(n);
          break;
        }
      }
    } finally {
      // Reads started past an early end are waited for and dropped.
      for (const p of inflight) {
        const r = await p.catch(() => null);
        if (r) this.buffers.give(r.buf);
      }
    }
    if (this.writeError) throw this.writeError;
    return ended;
  }

  /** Logs the pages of `buf` (`n` bytes read at `address`) whose checksum differs from `previous`'s; gives `buf` back. */
  private async appendChanged(address: bigint, buf: Buffer, n: number, previous: (address: bigint) => bigint | undefined): Promise<void> {
    const page = this.pageSize;
    const sums = pageHashes(buf.subarray(0, n), page);
    let run = -1;
    try {
      for (let k = 0; k <= sums.length; k++) {
        const changed = k < sums.length && previous(address + BigInt(k * page)) !== sums[k];
        if (changed && run < 0) run = k;
        if (!changed && run >= 0) {
          const b = await this.buffers.take();
          buf.copy(b, 0, run * page, k * page);
          await this.append(address + BigInt(run * page), b, (k - run) * page, false);
          run = -1;
        }
      }
    } finally {
      this.buffers.give(buf);
    }
  }

  /** Seals (when keyed) and writes `n` bytes of `buf`, read at `address`; gives `buf` back when done with it. */
  private async append(address: bigint, buf: Buffer, n: number, hashes = false): Promise<void> {
    if (this.writeError) {
      this.buffers.give(buf);
      throw this.writeError;
    }
    while (this.writes.size >= WRITES_IN_FLIGHT) await Promise.race(this.writes);
    const seq = this.seq++;
    const offset = this.size;
    const out = buf.subarray(0, this.key ? n + TAG_SIZE : n);
    const sums = hashes ? pageHashes(buf.subarray(0, n), this.pageSize) : undefined;
    if (this.key) this.sealInto(seq, address, buf.subarray(0, n), out);
    this.size += out.length;
    this.bytes += n;
    this.pieces.push({ address, length: n, offset, seq, ...(sums && { hashes: sums }) });
    const w: Promise<void> = writeAll(this.fh, out, offset, this.path)
      .catch((e: unknown) => { this.writeError ??= e; })
      .finally(() => { this.buffers.give(buf); this.writes.delete(w); });
    this.writes.add(w);
  }

  /** Seals `plain` into `out` (the same bytes, and 16 more for the tag: OpenSSL seals in place). */
  private sealInto(seq: number, address: bigint, plain: Uint8Array, out: Uint8Array): void {
    this.nonceOf(seq, address, plain.length);
    const addon = nativeAddon();
    if (addon) addon.aeadSeal(CIPHER_AES_256_GCM, this.key!, this.nonce, this.aad, plain, out);
    else out.set(seal('aes-256-gcm', this.key!, this.nonce, this.aad, plain));
  }

  private nonceOf(seq: number, address: bigint, length: number): void {
    const nv = new DataView(this.nonce.buffer);
    nv.setUint32(0, seq >>> 0, true);
    nv.setUint32(4, Math.floor(seq / 2 ** 32), true);
    const av = new DataView(this.aad.buffer);
    av.setBigUint64(0, address, true);
    av.setBigUint64(8, BigInt(length), true);
  }

  /** Waits for every write. @throws the first write error */
  async flush(): Promise<void> {
    await Promise.all([...this.writes]);
    if (this.writeError) throw this.writeError;
  }

  /**
   * The plain bytes of `piece` (a fresh array), read back from the log and, when sealed,
   * opened: a piece changed on disk, moved or swapped fails with AUTH_FAILED.
   * @throws CrimgError IO_ERROR, AUTH_FAILED
   */
  async read(piece: LogPiece): Promise<Uint8Array> {
    const stored = Buffer.allocUnsafe(piece.length + (this.key ? TAG_SIZE : 0));
    let done = 0;
    while (done < stored.length) {
      const { bytesRead } = await this.fh.read(stored, done, stored.length - done, piece.offset + done);
      if (bytesRead === 0) throw new CrimgError('IO_ERROR', `the capture's memory log ${this.path} ends at byte ${piece.offset + done}, inside the piece of ${hex(piece.address)}`, { hint: 'another process truncated it: capture again' });
      done += bytesRead;
    }
    if (!this.key) return stored;
    this.nonceOf(piece.seq, piece.address, piece.length);
    const addon = nativeAddon();
    if (!addon) return aeadOpen('aes-256-gcm', this.key, this.nonce, this.aad, stored);
    // node:crypto's decipher takes 1-2 s per 256 MiB of 2 MiB messages here, the addon's seal
    // 60 ms: GCM's keystream turns the ciphertext back into the plaintext, and sealing that
    // plaintext again must give the stored ciphertext and tag exactly (GCM is deterministic for
    // a key, nonce and associated data), which is GCM's own check.
    const n = piece.length;
    const plain = Buffer.allocUnsafe(n + TAG_SIZE);
    addon.aeadSeal(CIPHER_AES_256_GCM, this.key, this.nonce, this.aad, stored.subarray(0, n), plain);
    const again = Buffer.allocUnsafe(n + TAG_SIZE);
    addon.aeadSeal(CIPHER_AES_256_GCM, this.key, this.nonce, this.aad, plain.subarray(0, n), again);
    if (!timingSafeEqual(again.subarray(n), stored.subarray(n)) || !again.subarray(0, n).equals(stored.subarray(0, n))) {
      plain.fill(0);
      throw new CrimgError('AUTH_FAILED', `the capture's memory log ${this.path} was changed at the piece of ${hex(piece.address)} (its tag does not verify)`, { hint: 'another process wrote to it: capture again' });
    }
    return plain.subarray(0, n);
  }

  /** Closes the log (the caller removes the file). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.writes]);
    await this.fh.close().catch(() => {});
  }
}

/** XXH64 of each page of `bytes` (a whole number of pages): the addon's, else codec/checksum.ts's. */
function pageHashes(bytes: Uint8Array, pageSize: number): BigUint64Array {
  const sums = new BigUint64Array(bytes.length / pageSize);
  const addon = nativeAddon();
  if (addon) addon.hashChunks(bytes, pageSize, sums);
  else for (let k = 0; k < sums.length; k++) sums[k] = xxh64(bytes.subarray(k * pageSize, (k + 1) * pageSize));
  return sums;
}

/**
 * Reads `want` bytes at `position` of /proc/PID/mem into `buf`.
 * @returns the bytes read, whole pages: fewer than `want` when an unreadable page (or the end
 *   of the process's memory) stopped the read.
 * @throws CrimgError IO_ERROR on an unexpected error
 */
async function readStretch(mem: FileHandle, name: string, buf: Buffer, position: bigint, want: number, pageSize: number): Promise<number> {
  let done = 0;
  while (done < want) {
    let n: number;
    try {
      ({ bytesRead: n } = await mem.read(buf, done, want - done, Number(position) + done));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (ENDS_STRETCH.has(code)) break;
      throw new CrimgError('IO_ERROR', `cannot read ${name} at ${hex(position + BigInt(done))}: ${code || String(e)}`, { cause: e });
    }
    if (n === 0) break;
    done += n;
  }
  return done < want ? done - (done % pageSize) : done;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, offset: number, path: string): Promise<void> {
  let done = 0;
  try {
    while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done, offset + done)).bytesWritten;
  } catch (e) {
    throw new CrimgError('IO_ERROR', `cannot write the capture's memory log ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e, hint: 'free space beside the output (the log holds the pages read until the image is written)' });
  }
}
