/**
 * Staging (issue 13, item 5): with a codec or cipher, the capture reads the stopped process's
 * pages into a raw image next to the output (a "stage": no encoding, so the stop lasts as long
 * as reading and copying the pages), resumes the process, and only then encodes the stage into
 * the final image with convertImage, which streams it in bounded pieces. The stage is an
 * owner-only file in the output's directory (same file system, so no other disk is filled and
 * nothing lands in a shared /tmp), and is removed on every path: success, failure, and the
 * signals the capture handles.
 *
 * The stage is named as a temporary file of the output (`.NAME.<16 hex>.crimg-tmp`,
 * image/_output-file.ts), so a stage left by SIGKILL is reported by the next writer of NAME
 * (warning CRIMG_STALE_TEMP), as the stage writer's own temporary file is.
 *
 * When the caller asked for a cipher, the stage is sealed too: aes-256-gcm (no codec, so the
 * stop stays short) under a random one-time key held only in memory ({@link stageKey}), so the
 * plaintext of an encrypted capture never reaches the disk; the conversion opens the stage
 * with that key and writes the final image with the caller's codec, cipher and key.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { holdTemp, tempName } from '../image/_output-file.js';

/**
 * The path of one stage: the raw image, written by its writer under its own temporary name
 * (which that writer removes on failure and on signals) and renamed to this path on finish.
 */
export interface StagePaths {
  path: string;
  /** Ends this process's claim on the name (until then its own writers do not report it as stale). */
  release: () => void;
}

/** A fresh stage name beside `outPath`: a temporary name of it, `.NAME.<16 hex>.crimg-tmp` (hidden, unique). */
export function stagePaths(outPath: string): StagePaths {
  const path = join(dirname(outPath), tempName(basename(outPath)));
  return { path, release: holdTemp(path) };
}

/** The stage's cipher when the output is encrypted: fast, with the writer's workers. */
export const STAGE_CIPHER = 'aes-256-gcm' as const;

/**
 * A one-time 32-byte key for a sealed stage: random, never stored, logged or reused; the
 * caller fills it with zeros when the stage is gone.
 */
export function stageKey(): Uint8Array {
  return new Uint8Array(randomBytes(32));
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
