/**
 * `crimg convert IN OUT`: re-encodes an image (chunk size, compression, encryption) in one
 * streaming pass: each region is read in 8 MiB pieces and fed to the writer as an async
 * generator. Gaps, the validation block and the creation time are kept; the image id is new.
 * Unset options keep IN's settings, so converting an encrypted image stays encrypted unless
 * `--encrypt none` is given.
 */
import type { Argv } from 'yargs';
import type { Image } from '../../restore/image.js';
import type { CipherName } from '../../format/constants.js';
import type { Cli } from '../context.js';
import { usageError } from '../errors.js';
import { readKey } from '../keys.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { parseSize } from '../numbers.js';
import { readPieces } from '../ranges.js';
import { writeSummaryText } from '../text.js';

const CIPHER_CHOICES = ['none', 'aes-256-gcm', 'chacha20-poly1305'] as const;

export function registerConvert(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'convert <in> <out>',
    're-encode an image: chunk size, compression, encryption (streaming)',
    (a) => withJson(withKeyOptions(a
      .positional('in', { type: 'string', demandOption: true, describe: 'image to read' })
      .positional('out', { type: 'string', demandOption: true, describe: 'image to write' }), 'read IN (and encrypt OUT when no --out-key-* option is given)'))
      .option('chunk-size', { type: 'string', requiresArg: true, describe: "chunk size of OUT (default: IN's)" })
      .option('compress', { type: 'string', requiresArg: true, describe: "none, deflate or deflate:LEVEL (default: IN's)" })
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
        const regions = image.regions;
        const total = regions.reduce((s, r) => s + (r.isGap ? 0 : Number(r.length)), 0);
        const [{ ImageWriter }, { toValidationInput }] = await Promise.all([import('../../image/writer.js'), import('../../format/validation.js')]);
        const writer = await ImageWriter.create(a.out, {
          pageSize: image.pageSize,
          chunkSize: a.chunkSize !== undefined ? parseSize(a.chunkSize, 'chunk size') : image.chunkSize,
          compress: a.compress ?? image.compression,
          layout: (a.layout ?? (image.sparse && (a.compress ?? image.compression) === 'none' && encrypt === 'none' ? 'sparse' : 'compact')) as 'compact' | 'sparse',
          ...(encrypt !== 'none' ? { encrypt, key } : {}),
          validation: toValidationInput(image.validation),
          created: image.header.created,
        });
        const progress = cli.progress(a.quiet as boolean | undefined, 'convert', total, 'bytes');
        let done = 0;
        try {
          for (const r of regions) {
            if (r.isGap) {
              await writer.addGap({ address: r.address, length: r.length, name: r.name });
              continue;
            }
            const data = (async function* () {
              for await (const piece of readPieces(image, r.address, r.length)) {
                yield piece;
                done += piece.length;
                progress.update(done);
              }
            })();
            await writer.addRegion({ address: r.address, data, prot: r.prot, kind: r.kind as 'anonymous', name: r.name });
          }
          return await writer.finish();
        } catch (e) {
          await writer.abort();
          throw e;
        } finally {
          progress.finish();
        }
      });
      if (a.json) cli.printJson(summary);
      else if (!a.quiet) {
        cli.print(`converted ${a.in} to ${a.out}: ${writeSummaryText(summary)}`);
      }
      exit(0);
    },
  );
}
