/** Options shared by several commands, defined once so that their names and help agree. */
import type { Argv } from 'yargs';

export interface KeyArgs {
  'key-file': string | undefined;
  'key-env': string | undefined;
  'passphrase-file': string | undefined;
  'max-scrypt': string | undefined;
  parent: string | undefined;
}

export interface JsonArgs {
  json: boolean | undefined;
}

/** --key-file, --key-env, --passphrase-file (to read an encrypted image). */
export function withKeyOptions<T>(y: Argv<T>, what = 'read an encrypted image'): Argv<T & KeyArgs> {
  return y
    .option('key-file', { type: 'string', requiresArg: true, group: 'Key:', describe: `key file to ${what}: 32 raw bytes or 64 hex characters` })
    .option('key-env', { type: 'string', requiresArg: true, group: 'Key:', describe: `environment variable holding the key as 64 hex characters, to ${what}` })
    .option('passphrase-file', { type: 'string', requiresArg: true, group: 'Key:', describe: `file holding a passphrase (one trailing newline is dropped), to ${what}` })
    .option('max-scrypt', { type: 'string', requiresArg: true, group: 'Key:', describe: 'largest scrypt cost accepted from an image read with a passphrase, as LOG2N[,R[,P]] (default 17,8,1: what writers use)' }) as unknown as Argv<T & KeyArgs>;
}

/** --parent FILE: the parent of a child image read by the command (spec/FORMAT.md section 8.3). */
export function withParentOption<T>(y: Argv<T>): Argv<T> {
  return y.option('parent', { type: 'string', requiresArg: true, describe: "parent image of a child image (default: where the child records it, relative to the child's directory); read with the same key" }) as unknown as Argv<T>;
}

/** --json: machine-readable output. */
export function withJson<T>(y: Argv<T>): Argv<T & JsonArgs> {
  return y.option('json', { type: 'boolean', describe: 'print JSON instead of text (addresses as "0x..." strings)' }) as unknown as Argv<T & JsonArgs>;
}

/** The key sources of parsed arguments, for keys.ts. */
export function keySources(a: { keyFile?: string | undefined; keyEnv?: string | undefined; passphraseFile?: string | undefined; maxScrypt?: string | undefined; parent?: string | undefined }): {
  keyFile: string | undefined; keyEnv: string | undefined; passphraseFile: string | undefined; maxScrypt: string | undefined; parent: string | undefined;
} {
  return { keyFile: a.keyFile, keyEnv: a.keyEnv, passphraseFile: a.passphraseFile, maxScrypt: a.maxScrypt, parent: a.parent };
}
