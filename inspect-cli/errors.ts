/**
 * Exit status and the one-line error report of the CLI. The status follows the library's error
 * category (ERROR_CATEGORY of crimg/format):
 *
 * - 0: success.
 * - 1: the image is invalid, corrupt or incompatible, or the key is wrong (categories image,
 *   key and host).
 * - 2: usage or I/O error, or a process that is gone, refuses to be read or has the addresses
 *   taken (categories usage, io and process), and internal errors.
 */
import { safeText } from './text.js';
import { CrimgError, ERROR_CATEGORY, isCrimgError, type CrimgErrorCategory, type CrimgErrorCode } from '../format/index.js';

export const EXIT_OK = 0;
export const EXIT_BAD_IMAGE = 1;
export const EXIT_USAGE = 2;

/** A usage error (bad option, bad value): code INVALID_ARGUMENT, exit 2. */
export function usageError(message: string, hint = 'see `crimg --help`'): CrimgError {
  return new CrimgError('INVALID_ARGUMENT', message, { hint });
}

function isErrnoError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && (e as NodeJS.ErrnoException).syscall !== undefined;
}

/** The error as a CrimgError code and message; misuse errors of the library are usage errors. */
export function describeError(e: unknown): { code: CrimgErrorCode | 'INTERNAL'; message: string } {
  if (isCrimgError(e)) return { code: e.code, message: e.message };
  if (isErrnoError(e)) return { code: 'IO_ERROR', message: e.message };
  // The library throws TypeError/RangeError for values it refuses (an unaligned address, a bad
  // chunk size, an unknown kind): on the command line those come from the user's arguments.
  if (e instanceof RangeError || e instanceof TypeError) return { code: 'INVALID_ARGUMENT', message: e.message };
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

/** Categories of errors whose cause lies outside the image and the key: exit 2. */
const USAGE_CATEGORIES: ReadonlySet<CrimgErrorCategory> = new Set(['usage', 'io', 'process']);

/** Exit status for an error (see the module comment). */
export function exitCodeOf(e: unknown): number {
  const { code } = describeError(e);
  if (code === 'INTERNAL') return EXIT_USAGE;
  const category = Object.hasOwn(ERROR_CATEGORY, code) ? ERROR_CATEGORY[code] : undefined;
  return category !== undefined && USAGE_CATEGORIES.has(category) ? EXIT_USAGE : EXIT_BAD_IMAGE;
}

/**
 * "crimg: CODE: message" (the library's message already carries the offset and the hint), on
 * one line; what the message quotes from an image or the command line (a region name, a path)
 * is made safe for a terminal (text.ts safeText).
 */
export function errorLine(e: unknown): string {
  const { code, message } = describeError(e);
  return `crimg: ${code}: ${safeText(message.replace(/\s*\n\s*/g, ' '))}`;
}
