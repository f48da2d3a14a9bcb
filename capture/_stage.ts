/**
 * Staging (issues 13 and 19): with a codec or cipher, or a pre-copy, the capture reads the
 * process's pages into a memory log next to the output (capture/_mem-log.ts: no encoding, so
 * the stop lasts as long as reading and writing the pages), resumes the process, and only then
 * writes the image from the log with the caller's codec and cipher (capture/_replay.ts). The log
 * is an owner-only file in the output's directory (same file system, so no other disk is filled
 * and nothing lands in a shared /tmp; an output given as a URL has none, and the log goes to
 * the system's temporary directory), and is removed on every path: success, failure, and the
 * signals the capture handles.
 *
 * The log is named as a temporary file of the output (`.NAME.<16 hex>.crimg-tmp`,
 * image/_output-file.ts), so a log left by SIGKILL is reported by the next writer of NAME
 * (warning CRIMG_STALE_TEMP), as a writer's own temporary file is.
 *
 * When the caller asked for a cipher, the log is sealed: AES-256-GCM per piece under a random
 * one-time key held only in memory ({@link stageKey}), so the plaintext of an encrypted capture
 * never reaches the disk.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { holdTemp, tempName } from '../image/_output-file.js';

/** The path of one stage (the memory log), and the hold on its name. */
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

/**
 * A one-time 32-byte key for a sealed log: random, never stored, logged or reused; the caller
 * fills it with zeros when the log is gone.
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
