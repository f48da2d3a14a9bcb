/**
 * `crimg convert IN OUT`: re-encodes an image (chunk size, compression, encryption, layout)
 * with the library's convertImage, which streams each region in bounded pieces and keeps gaps,
 * kinds (unknown ones too), the validation block and the creation time; the image id is new.
 * Unset options keep IN's settings, so converting an encrypted image stays encrypted unless
 * `--encrypt none` is given. This module reads the options and keys and prints the result.
 */
import type { Argv } from 'yargs';
import type { CipherName } from '../../format/index.js';
import type { Cli } from '../context.js';
import type { Progress } from '../progress.js';
import { usageError } from '../errors.js';
import { readKey } from '../keys.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions, withParentOption } from '../options.js';
import { modeOption, withMode } from '../file-mode.js';
import { parseSize } from '../numbers.js';
import { safeText, writeSummaryText } from '../text.js';

const CIPHER_CHOICES = ['none', 'aes-256-gcm', 'chacha20-poly1305'] as const;

export function registerConvert(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'convert <in> <out>',
    're-encode an image: chunk size, compression, encryption (streaming)',
    (a) => withMode(withJson(withParentOption(withKeyOptions(a
      .positional('in', { type: 'string', demandOption: true, describe: 'image to read' })
      .positional('out', { type: 'string', demandOption: true, describe: 'image to write' }), 'read IN (and encrypt OUT when no --out-key-* option is given)'))))
      .option('chunk-size', { type: 'string', requiresArg: true, describe: "chunk size of OUT (default: IN's)" })
      .option('compress', { type: 'string', requiresArg: true, describe: "none, deflate[:LEVEL] (1-9) or zstd[:LEVEL] (1-19) (default: IN's)" })
      .option('encrypt', { type: 'string', choices: CIPHER_CHOICES, requiresArg: true, describe: "cipher of OUT (default: IN's)" })
      .option('layout', { type: 'string', choices: ['compact', 'sparse'] as const, requiresArg: true, describe: "compact or sparse (raw OUT only; default: IN's when OUT is raw)" })
      .option('out-key-file', { type: 'string', requiresArg: true, group: 'Key:', describe: 'key file to encrypt OUT' })
      .option('out-key-env', { type: 'string', requiresArg: true, group: 'Key:', describe: 'environment variable holding the key (hex) to encrypt OUT' })
      .option('out-passphrase-file', { type: 'string', requiresArg: true, group: 'Key:', describe: 'passphrase file to encrypt OUT' })
      .example('$0 convert app.img small.img --compress deflate:6', 'compress')
      .example('$0 convert app.img big-chunks.img --chunk-size 1M', 'another chunk size')
      .example('$0 convert app.img fast.img --layout sparse', 'one mapping per region at restore')
      .example('$0 convert app.img secret.img --encrypt aes-256-gcm --out-key-file new.key', 'encrypt with a new key')
      .example('$0 convert secret.img plain.img --key-file app.key --encrypt none', 'decrypt'),
    async (a) => {
      const outKeys = { keyFile: a.outKeyFile, keyEnv: a.outKeyEnv, passphraseFile: a.outPassphraseFile };
      const summary = await withImage(a.in, keySources(a), cli.env, async (image) => {
        const encrypt = (a.encrypt ?? image.encryption) as CipherName;
        let key = await readKey(outKeys, cli.env, 'out-');
        if (encrypt !== 'none') {
          key ??= await readKey(keySources(a), cli.env);
          if (key === undefined) throw usageError(`expected a key to encrypt ${a.out} with ${encrypt}`, 'give --out-key-file, --out-key-env or --out-passphrase-file (or --encrypt none)');
        }
        const chunkSize = a.chunkSize !== undefined ? parseSize(a.chunkSize, 'chunk size') : undefined;
        const { convertImage } = await import('../../image/index.js');
        let progress: Progress | undefined;
        try {
          return await convertImage(image, a.out, {
            ...(chunkSize !== undefined ? { chunkSize } : {}),
            ...(a.compress !== undefined ? { compress: a.compress } : {}),
            ...(a.layout !== undefined ? { layout: a.layout as 'compact' | 'sparse' } : {}),
            encrypt,
            ...(key !== undefined ? { outKey: key } : {}),
            ...modeOption(a),
            // Called first when OUT is created: the bar exists from then on and is drawn from the first piece.
            onProgress: (done, total) => {
              progress ??= cli.progress(a.quiet as boolean | undefined, 'convert', total, 'bytes');
              if (done > 0) progress.update(done);
            },
          });
        } finally {
          progress?.finish();
        }
      });
      if (a.json) cli.printJson(summary);
      else if (!a.quiet) {
        cli.print(`converted ${safeText(a.in)} to ${safeText(a.out)}: ${writeSummaryText(summary)}`);
      }
      exit(0);
    },
  );
}
