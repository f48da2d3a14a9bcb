/**
 * The one error class of crimg (spec/FORMAT.md section 2.1). Every failure caused by the
 * bytes of an image carries a stable `code`; the message names the file offset where known
 * and a hint that suggests the fix. Messages never contain key material or plaintext.
 */

/** Stable error codes. Never renamed: tools and other implementations match on them. */
export const ERROR_CODES = [
  'BAD_MAGIC',
  'UNSUPPORTED_VERSION',
  'UNSUPPORTED_FEATURE',
  'TRUNCATED',
  'CORRUPT_HEADER',
  'CORRUPT_VALIDATION',
  'CORRUPT_INDEX',
  'CORRUPT_CHUNK',
  'LIMIT_EXCEEDED',
  'NOT_MAPPED',
  'INCOMPATIBLE',
  'KEY_REQUIRED',
  'WRONG_KEY',
  'AUTH_FAILED',
  'PARENT_REQUIRED',
  'PARENT_MISMATCH',
  'ADDRESS_IN_USE',
  'NO_SUCH_PROCESS',
  'PERMISSION_DENIED',
  'PROCESS_EXITED',
  'PROCESS_BUSY',
  'CORRUPT_CORE',
  'IO_ERROR',
  'INVALID_ARGUMENT',
  'SOURCE_CHANGED',
] as const;

/** One of {@link ERROR_CODES}. */
export type CrimgErrorCode = (typeof ERROR_CODES)[number];

/**
 * What an error is about, so that a program can react by kind rather than list codes:
 * - `image`: the bytes of an image (or of an ELF core to import) are not what the format says,
 *   or a read asks for memory the image does not hold; copying or making it again helps.
 * - `key`: a key is missing or wrong.
 * - `host`: this host does not meet the image's restore constraints (section 4).
 * - `process`: a process is gone, refuses to be read, exited, or has the addresses taken.
 * - `io`: the operating system failed to read or write a file.
 * - `usage`: the caller passed a value the library refuses.
 */
export type CrimgErrorCategory = 'image' | 'key' | 'host' | 'process' | 'io' | 'usage';

/** The category of every code (spec/FORMAT.md section 2.1 lists the codes). */
export const ERROR_CATEGORY: Readonly<Record<CrimgErrorCode, CrimgErrorCategory>> = Object.freeze({
  BAD_MAGIC: 'image',
  UNSUPPORTED_VERSION: 'image',
  UNSUPPORTED_FEATURE: 'image',
  TRUNCATED: 'image',
  CORRUPT_HEADER: 'image',
  CORRUPT_VALIDATION: 'image',
  CORRUPT_INDEX: 'image',
  CORRUPT_CHUNK: 'image',
  LIMIT_EXCEEDED: 'image',
  NOT_MAPPED: 'image',
  INCOMPATIBLE: 'host',
  KEY_REQUIRED: 'key',
  WRONG_KEY: 'key',
  // A tag that does not verify under a key that passed the key check: the bytes were altered.
  AUTH_FAILED: 'image',
  // A child image's parent (section 8.3) cannot be found, or is not the image the child names.
  PARENT_REQUIRED: 'image',
  PARENT_MISMATCH: 'image',
  ADDRESS_IN_USE: 'process',
  NO_SUCH_PROCESS: 'process',
  PERMISSION_DENIED: 'process',
  PROCESS_EXITED: 'process',
  PROCESS_BUSY: 'process',
  CORRUPT_CORE: 'image',
  IO_ERROR: 'io',
  INVALID_ARGUMENT: 'usage',
  SOURCE_CHANGED: 'io',
});

/**
 * The category of an error code.
 * @throws RangeError for a string that is not one of {@link ERROR_CODES}.
 * @example errorCategory('WRONG_KEY') // 'key'
 */
export function errorCategory(code: CrimgErrorCode): CrimgErrorCategory {
  const c = Object.hasOwn(ERROR_CATEGORY, code) ? ERROR_CATEGORY[code] : undefined;
  if (c === undefined) throw new RangeError(`expected one of ERROR_CODES, got ${JSON.stringify(code)}`);
  return c;
}

/** Where in an image an error was found. All fields optional. */
export interface CrimgErrorDetail {
  /** File offset of the damaged structure or byte. */
  offset?: number;
  /** Region number (position in the region table). */
  region?: number;
  /** Chunk number (position in the chunk table). */
  chunk?: number;
  /** Virtual address involved, for NOT_MAPPED and chunk errors. */
  address?: bigint;
  /** What the reader should try, e.g. "re-copy the file in binary mode". */
  hint?: string;
  /** The underlying error (I/O errors). Never holds key material. */
  cause?: unknown;
}

/**
 * A failure caused by an image's bytes, the host, or the key.
 * @example
 * try { await openImage('x.img'); } catch (e) { if (e instanceof CrimgError && e.code === 'TRUNCATED') ... }
 */
export class CrimgError extends Error {
  /** Stable machine-readable code. */
  readonly code: CrimgErrorCode;
  readonly offset?: number;
  readonly region?: number;
  readonly chunk?: number;
  readonly address?: bigint;
  readonly hint?: string;

  constructor(code: CrimgErrorCode, message: string, detail: CrimgErrorDetail = {}) {
    const at = detail.offset !== undefined ? ` (at file offset ${detail.offset})` : '';
    const hint = detail.hint ? `; ${detail.hint}` : '';
    super(`${message}${at}${hint}`, detail.cause !== undefined ? { cause: detail.cause } : undefined);
    this.name = 'CrimgError';
    this.code = code;
    if (detail.offset !== undefined) this.offset = detail.offset;
    if (detail.region !== undefined) this.region = detail.region;
    if (detail.chunk !== undefined) this.chunk = detail.chunk;
    if (detail.address !== undefined) this.address = detail.address;
    if (detail.hint !== undefined) this.hint = detail.hint;
  }

  /** What the error is about (see {@link CrimgErrorCategory}). */
  get category(): CrimgErrorCategory {
    return ERROR_CATEGORY[this.code];
  }
}

/** True when `e` is a CrimgError, optionally with the given code. */
export function isCrimgError(e: unknown, code?: CrimgErrorCode): e is CrimgError {
  return e instanceof CrimgError && (code === undefined || e.code === code);
}
