/**
 * Safe output files: every file crimg writes (images, exported cores, extracted bytes) is
 * written to a temporary file beside it and renamed over the final name when complete.
 *
 * - The final name must be absent, a regular file or a symlink: anything else there (a FIFO, a
 *   device, a directory, a socket) is refused with INVALID_ARGUMENT before anything is
 *   written, as the rename would replace it (`-o /dev/null` as root would replace the device).
 * - The temporary file is `.NAME.<16 random hex digits>.crimg-tmp` in the final name's
 *   directory (the same file system, so the rename is atomic), NAME cut to its first
 *   {@link TEMP_BASE_BYTES} bytes (so a final name of up to 255 bytes has a temporary name
 *   within the file system's 255), created with
 *   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW: a file or symlink planted at any name is never
 *   opened, followed or truncated, and the name cannot be guessed ahead.
 * - Its mode is 0o600 by default (memory images hold secrets), or `mode`, set with fchmod right
 *   after the open so the umask neither widens nor narrows it.
 * - {@link OutputFile.commit} fsyncs the file, closes it, renames it over the final name (a
 *   symlink there is replaced, never followed) and fsyncs the directory: the final name is
 *   then either absent, the previous file, or the complete new one, whenever the machine stops.
 * - {@link OutputFile.abort} closes and removes the temporary file, and only it: never a file
 *   the writer did not create (an existing final file is left as it was).
 * - Until commit or abort, SIGINT, SIGTERM, SIGHUP and process exit remove the temporary file
 *   (image/_interrupt.ts; `cleanupOnSignal: false` opts out).
 * - A temporary file left by SIGKILL (or a power cut) is reported, never reused: creating an
 *   output emits a process warning, code `CRIMG_STALE_TEMP`, naming the temporary files of the
 *   same final name found in the directory and saying they can be removed. That includes a
 *   capture's stage (capture/_stage.ts: itself a temporary name of the output) and the stage
 *   writer's own temporary file (`..NAME.<hex>.crimg-tmp.<hex>.crimg-tmp`). Two final names
 *   sharing their first {@link TEMP_BASE_BYTES} bytes see each other's temporary files.
 *
 * @example
 * const out = await OutputFile.create('core.elf', { mode: 0o600 });
 * try {
 *   await out.fh.write(bytes, 0, bytes.length, 0);
 *   await out.commit();
 * } catch (e) {
 *   await out.abort();
 *   throw e;
 * }
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, fsyncSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CrimgError } from '../format/errors.js';
import { onInterrupt } from './_interrupt.js';

/** The suffix of every temporary output file. */
export const TEMP_SUFFIX = '.crimg-tmp';
/** Bytes of the final name kept inside a temporary name (255 - 1 - 1 - 16 - 10 leaves room). */
export const TEMP_BASE_BYTES = 100;
/** Default mode of created files: owner read and write only. */
export const DEFAULT_OUTPUT_MODE = 0o600;

export interface OutputFileOptions {
  /**
   * Permission bits of the file, 0 to 0o777 (default 0o600: owner only, memory images hold
   * secrets). Applied with fchmod after the open, so the process umask does not change them:
   * 0o644 gives 0644 under umask 077 too.
   */
  mode?: number;
  /** Remove the temporary file on SIGINT, SIGTERM, SIGHUP and exit (default true; image/_interrupt.ts). */
  cleanupOnSignal?: boolean;
}

/** One output file being written under a temporary name. */
export class OutputFile {
  private state: 'open' | 'committed' | 'aborted' = 'open';
  /** Set when an interruption removed the temporary file: commit must then fail. */
  private interrupted = false;
  private dispose: () => void = () => {};

  private constructor(
    /** The final name, as given. */
    readonly path: string,
    /** The temporary file's name, beside {@link path}. */
    readonly tmpPath: string,
    /** The temporary file, open for writing (positional writes, truncate, sync). */
    readonly fh: FileHandle,
  ) {}

  /**
   * Creates the temporary file of `path` (see the module comment) and reports stale ones.
   * @throws RangeError on a bad mode; CrimgError INVALID_ARGUMENT when `path` is something
   *   else than a regular file or a symlink; IO_ERROR when it cannot be created
   */
  static async create(path: string, options: OutputFileOptions = {}): Promise<OutputFile> {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError(`expected an output path, got ${typeof path}`);
    const mode = options.mode ?? DEFAULT_OUTPUT_MODE;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new RangeError(`expected a file mode 0 to 0o777, got ${String(mode)}`);
    const dir = dirname(resolve(path));
    const base = basename(path);
    if (base === '' || base === '.' || base === '..') throw new TypeError(`expected an output file name, got ${JSON.stringify(path)}`);
    await refuseSpecial(path);
    reportStale(dir, base);
    const tmpPath = join(dirname(path), tempName(base));
    const release = holdTemp(tmpPath);
    // The cleanup is registered before the file exists: a signal that arrives while the open
    // and fchmod run on libuv's pool would otherwise leave the file behind.
    let f: OutputFile | null = null;
    let interrupted = false;
    const unregister = (options.cleanupOnSignal ?? true)
      ? onInterrupt(() => {
        interrupted = true;
        if (f) f.interrupted = true;
        try { unlinkSync(tmpPath); } catch { /* not created yet, or gone already */ }
      })
      : () => {};
    const dispose = (): void => { unregister(); release(); };
    let fh: FileHandle;
    try {
      fh = await createExclusive(tmpPath, mode);
    } catch (e) {
      dispose();
      throw e;
    }
    f = new OutputFile(path, tmpPath, fh);
    f.interrupted = interrupted;
    f.dispose = dispose;
    return f;
  }

  /**
   * Makes the temporary file the final one: fsync (with `fsync`, default true), close, rename
   * over {@link path} (replacing a file or symlink there, never following one), fsync the
   * directory. Call once all writes are done.
   * @throws CrimgError IO_ERROR (the temporary file is then removed)
   */
  async commit(options: { fsync?: boolean } = {}): Promise<void> {
    if (this.state !== 'open') throw new TypeError(`expected an open output file, got one that is ${this.state}`);
    const fsync = options.fsync ?? true;
    try {
      if (this.interrupted) throw new Error('interrupted');
      if (fsync) await this.fh.sync();
      await this.fh.close();
      // Replacing a file frees the old one inside rename() (ext4: ~50 ms per 160 MiB, as long
      // as a capture) unless someone still has it open: hold it open across the rename and let
      // the last close free it on libuv's pool after this call returns.
      // Checked again: something else may have been put there since create.
      await refuseSpecial(this.path);
      const previous = await holdPrevious(this.path);
      try {
        if (this.interrupted) throw new Error('interrupted');
        await rename(this.tmpPath, this.path);
      } finally {
        void previous?.close().catch(() => {});
      }
    } catch (e) {
      await this.abort();
      if (e instanceof CrimgError) throw e;
      if (this.interrupted) throw new CrimgError('IO_ERROR', `${this.path} was not written: an interruption signal removed its temporary file ${this.tmpPath}`, { cause: e });
      throw new CrimgError('IO_ERROR', `cannot complete ${this.path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
    }
    this.state = 'committed';
    this.dispose();
    if (fsync) fsyncDir(dirname(this.path));
  }

  /** Closes and removes the temporary file (never the final one). Safe to call more than once; never throws. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.fh.close().catch(() => {});
    await unlink(this.tmpPath).catch(() => {});
    this.dispose();
  }
}

/**
 * Opens `path` as a new file: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, then fchmod `mode`.
 * Anything already at `path` (a file, a symlink, dangling or not) makes it fail with EEXIST.
 * @throws CrimgError IO_ERROR
 */
export async function createExclusive(path: string, mode: number): Promise<FileHandle> {
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
  let fh: FileHandle;
  try {
    fh = await open(path, flags, 0o600);
  } catch (e) {
    throw new CrimgError('IO_ERROR', `cannot create ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
  try {
    await fh.chmod(mode);
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(path).catch(() => {});
    throw new CrimgError('IO_ERROR', `cannot set the mode of ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
  return fh;
}

/**
 * Temporary files this process is writing or holding now (resolved paths): never reported as
 * stale by its own writers (a capture's stage is a temporary name of the image it converts to).
 */
const live = new Set<string>();

/**
 * Marks `path` as a live temporary file of this process until the returned function is called
 * (capture/_stage.ts: the stage, once its writer has renamed it into place).
 */
export function holdTemp(path: string): () => void {
  const p = resolve(path);
  live.add(p);
  return () => { live.delete(p); };
}

/**
 * A fresh temporary name for the final name `base`: `.BASE.<16 hex>.crimg-tmp`, BASE cut to
 * its first {@link TEMP_BASE_BYTES} bytes (at a character boundary).
 */
export function tempName(base: string): string {
  return `.${cutBase(base)}.${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`;
}

/** `base` cut to at most {@link TEMP_BASE_BYTES} bytes of UTF-8, never inside a character. */
function cutBase(base: string): string {
  if (Buffer.byteLength(base) <= TEMP_BASE_BYTES) return base;
  let out = '';
  let bytes = 0;
  for (const ch of base) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > TEMP_BASE_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** `.X.<16 hex>.crimg-tmp`: the X, or null. */
function tempBase(name: string): string | null {
  const m = /^\.(.*)\.[0-9a-f]{16}\.crimg-tmp$/s.exec(name);
  return m ? m[1]! : null;
}

/**
 * Whether `name` is a temporary name of the final name `base`: its own
 * (`.BASE.<hex>.crimg-tmp`, which a capture's stage also is), or the temporary name of one of
 * those (a stage being written: `..BASE.<hex>.crimg-tmp.<hex>.crimg-tmp`, its inner part cut
 * like any base).
 */
export function isTempOf(name: string, base: string): boolean {
  const cut = cutBase(base);
  const x = tempBase(name);
  if (x === null) return false;
  if (x === cut) return true;
  // A temporary name of a temporary name: x is `.CUT.<hex>.crimg-tmp`, or that cut.
  if (tempBase(x) === cut) return true;
  // Or `.CUT.<hex>.crimg-tmp` cut short (a long base): a prefix of it, of a cut's length.
  if (Buffer.byteLength(x) <= TEMP_BASE_BYTES - 4) return false;
  const inner = `.${cut}.`;
  if (inner.startsWith(x)) return true;
  if (!x.startsWith(inner)) return false;
  const rest = x.slice(inner.length);
  return /^[0-9a-f]{0,16}$/.test(rest) || (/^[0-9a-f]{16}/.test(rest) && TEMP_SUFFIX.startsWith(rest.slice(16)));
}

/**
 * Emits a `CRIMG_STALE_TEMP` warning naming the temporary files of `base` in `dir` (left by a
 * writer that was killed). They are not touched: another writer of the same name may be live.
 */
function reportStale(dir: string, base: string): void {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => isTempOf(n, base) && !live.has(join(dir, n)));
  } catch {
    return; // an unreadable directory: creating the file will say what is wrong
  }
  if (names.length === 0) return;
  const shown = names.slice(0, 5).map((n) => join(dir, n)).join(', ');
  const more = names.length > 5 ? ` and ${names.length - 5} more` : '';
  process.emitWarning(
    `${names.length} temporary file(s) of ${join(dir, base)} found: ${shown}${more}. They are left by a writer that was killed `
      + '(SIGKILL, power loss) and are never reused; remove them if no other crimg process is writing that file.',
    { code: 'CRIMG_STALE_TEMP' },
  );
}

/**
 * Refuses a final name that the rename must not replace: anything but a regular file or a
 * symlink (which is replaced itself, never followed). Absent is fine.
 * @throws CrimgError INVALID_ARGUMENT naming the path and what it is
 */
async function refuseSpecial(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (st === null || st.isFile() || st.isSymbolicLink()) return;
  throw new CrimgError('INVALID_ARGUMENT', `${path} is ${fileType(st)}, not a regular file; crimg writes files by rename: give a file path, or use \`-o -\` for stdout`, {
    hint: 'crimg writes a temporary file and renames it over the output name, which would replace what is there',
  });
}

/** What kind of file `st` is, in words ("a FIFO", "a character device"...). */
export function fileType(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isSymbolicLink(): boolean; isFile(): boolean }): string {
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * The regular file at `path`, open, or null (none, not a regular file, not readable): only
 * ever a file a rename is about to replace, held so that freeing it happens at our close.
 * Never a FIFO or device (opening those can block or have effects), never through a symlink.
 */
async function holdPrevious(path: string): Promise<FileHandle | null> {
  const st = await lstat(path).catch(() => null);
  if (!st?.isFile()) return null;
  return open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK).catch(() => null);
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}
