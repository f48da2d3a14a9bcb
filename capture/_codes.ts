/**
 * Error codes of the capture layer (format/errors.ts lists them): a process that is not there,
 * refuses to be read, or exits mid-capture; an ELF core whose structures are inconsistent.
 */
import type { CrimgErrorCode } from '../format/errors.js';

/** The process id names no process (ESRCH), or a zombie with no memory left. */
export const NO_SUCH_PROCESS: CrimgErrorCode = 'NO_SUCH_PROCESS';
/** Signalling the process or reading its memory is refused (EPERM, EACCES). */
export const PERMISSION_DENIED: CrimgErrorCode = 'PERMISSION_DENIED';
/** The process exited while it was being captured. */
export const PROCESS_EXITED: CrimgErrorCode = 'PROCESS_EXITED';
/** Another capture of the same process is under way (capture/lock.ts). */
export const PROCESS_BUSY: CrimgErrorCode = 'PROCESS_BUSY';
/** An ELF core file's structures are inconsistent (overlapping segments, bad notes). */
export const CORRUPT_CORE: CrimgErrorCode = 'CORRUPT_CORE';
