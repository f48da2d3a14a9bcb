/**
 * Staging (issue 13, item 5): with a codec or cipher, the capture reads the stopped process's
 * pages into a raw image next to the output (a "stage": no encoding, so the stop lasts as long
 * as reading and copying the pages), resumes the process, and only then encodes the stage into
 * the final image with convertImage, which streams it in bounded pieces. The stage is an
 * owner-only file in the output's directory (same file system, so no other disk is filled and
 * nothing lands in a shared /tmp), and is removed on every path: success, failure, and the
 * signals the capture handles.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * The path of one stage: the raw image, written by its writer under its own temporary name
 * (which that writer removes on failure and on signals) and renamed to this path on finish.
 */
export interface StagePaths {
  path: string;
}

/** A fresh stage name beside `outPath`: `.NAME.crimg-stage-RANDOM` (hidden, unique). */
export function stagePaths(outPath: string): StagePaths {
  return { path: join(dirname(outPath), `.${basename(outPath)}.crimg-stage-${randomBytes(6).toString('hex')}`) };
}

/** Removes files, ignoring those already gone (synchronous: also used from a signal handler). */
export function removeFiles(files: readonly string[]): void {
  for (const f of files) {
    try {
      unlinkSync(f);
    } catch {
      // absent already, or not ours to remove any more
    }
  }
}
