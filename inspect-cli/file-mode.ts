/**
 * `--mode OCTAL`: the permission bits of the file a command writes (create, convert,
 * export-core, extract). The default is the library's, 0600: memory images, cores and
 * extracted bytes hold a process's secrets (an image's plaintext too, when extracted from an
 * encrypted one), so they are owner-only unless widened on purpose.
 */
import type { Argv } from 'yargs';
import { usageError } from './errors.js';

export interface ModeArgs {
  mode: string | undefined;
}

/** --mode OCTAL. */
export function withMode<T>(y: Argv<T>): Argv<T & ModeArgs> {
  return y.option('mode', {
    type: 'string', requiresArg: true,
    describe: 'permission bits of the file written, octal (default 600, owner only: memory holds secrets; e.g. 640 or 644 to share)',
  }) as unknown as Argv<T & ModeArgs>;
}

/**
 * A file mode in octal, as chmod takes it: "600", "0644", "0o640"; 0 to 0777.
 * @throws CrimgError INVALID_ARGUMENT for anything else.
 * @example parseMode('640') // 0o640
 */
export function parseMode(text: string): number {
  const m = /^\s*(?:0o?)?([0-7]{1,3})\s*$/i.exec(text);
  if (!m) throw usageError(`expected --mode as octal permission bits 000 to 777 (e.g. 600 or 644), got ${JSON.stringify(text)}`);
  return parseInt(m[1]!, 8);
}

/** `{ mode }` for the library's options when --mode is given, else nothing (the library's 0600). */
export function modeOption(a: ModeArgs): { mode?: number } {
  return a.mode === undefined ? {} : { mode: parseMode(a.mode) };
}
