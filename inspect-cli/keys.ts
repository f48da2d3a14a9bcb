/**
 * Key material from the command line (spec/FORMAT.md section 7.1): a key file (32 raw bytes, or
 * 64 hex characters with an optional trailing newline), an environment variable holding 64 hex
 * characters, or a passphrase file (the library drops one trailing newline). Parsing is the
 * library's (parseKeyFile, keyFromHex, passphraseBytes of `crimg/image`); this module reads the
 * files and names the source in messages. Key material never appears in a message. The library
 * is imported only when a key option is given.
 */
import { readSmallFile } from './small-file.js';
import type { KeyInput } from '../image/index.js';
import { CrimgError, isCrimgError } from '../format/index.js';
import { usageError } from './errors.js';

/** The key options of a command (also the --out-* ones of convert, under these names). */
export interface KeySources {
  keyFile?: string | undefined;
  keyEnv?: string | undefined;
  passphraseFile?: string | undefined;
  /** --max-scrypt LOG2N[,R[,P]]: the scrypt cost accepted from an image (library option maxScrypt). */
  maxScrypt?: string | undefined;
  /** --parent FILE: a child image's parent (library option parent). */
  parent?: string | undefined;
}

/**
 * The library's `maxScrypt` from `--max-scrypt LOG2N[,R[,P]]` (spec section 7.1); undefined
 * when the option is not given (the library's default, the writers' cost, applies).
 * @throws CrimgError INVALID_ARGUMENT for anything but one to three integers 0..255.
 */
export function parseMaxScrypt(text: string | undefined): { log2N: number; r?: number; p?: number } | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(',');
  const nums = parts.map((x) => (/^\d{1,3}$/.test(x.trim()) ? Number(x.trim()) : NaN));
  if (parts.length > 3 || nums.some((n) => !(n <= 255))) {
    throw usageError(`expected --max-scrypt as LOG2N[,R[,P]] with integers 0..255, got ${JSON.stringify(text)}`, 'for example --max-scrypt 18 or --max-scrypt 18,8,2');
  }
  const [log2N, r, p] = nums as [number, number | undefined, number | undefined];
  return { log2N, ...(r !== undefined ? { r } : {}), ...(p !== undefined ? { p } : {}) };
}

function readSecret(path: string, what: string): Promise<Buffer> {
  return readSmallFile(path, what, 64 * 1024);
}

/** Runs a library parser, prefixing its INVALID_ARGUMENT message with where the key came from. */
function from<T>(where: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (isCrimgError(e, 'INVALID_ARGUMENT')) throw new CrimgError('INVALID_ARGUMENT', `${where}: ${e.message}`);
    throw e;
  }
}

/**
 * The KeyInput the options name, or undefined when none is given.
 * @param prefix option name prefix for messages: '' or 'out-'.
 * @throws CrimgError INVALID_ARGUMENT when more than one source is given or a key is malformed;
 *   IO_ERROR when a file cannot be read.
 */
export async function readKey(s: KeySources, env: NodeJS.ProcessEnv, prefix = ''): Promise<KeyInput | undefined> {
  const given = [s.keyFile, s.keyEnv, s.passphraseFile].filter((v) => v !== undefined);
  if (given.length > 1) throw usageError(`expected one of --${prefix}key-file, --${prefix}key-env, --${prefix}passphrase-file, got ${given.length}`);
  if (given.length === 0) return undefined;
  const { keyFromHex, parseKeyFile, passphraseBytes } = await import('../image/index.js');
  if (s.keyFile !== undefined) {
    const bytes = await readSecret(s.keyFile, 'key file');
    return from(s.keyFile, () => parseKeyFile(bytes));
  }
  if (s.keyEnv !== undefined) {
    const v = env[s.keyEnv];
    if (v === undefined || v === '') throw usageError(`environment variable ${s.keyEnv} is not set`, `export ${s.keyEnv}=<64 hex characters>`);
    return from(`environment variable ${s.keyEnv}`, () => keyFromHex(v));
  }
  if (s.passphraseFile !== undefined) {
    // The file's bytes as they are: the library removes the one trailing newline (section 7.1).
    const bytes = Uint8Array.from(await readSecret(s.passphraseFile, 'passphrase file'));
    if (passphraseBytes(bytes).length === 0) throw usageError(`passphrase file ${s.passphraseFile} is empty`);
    return { passphrase: bytes };
  }
  return undefined;
}
