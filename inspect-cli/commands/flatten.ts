/**
 * `crimg flatten CHILD -o OUT`: a standalone image of a child image (spec/FORMAT.md section
 * 8.3), its parents' chunks copied in, with the library's flattenImage. The chain is opened and
 * checked (image ids, index hashes) before OUT is created; OUT keeps CHILD's settings unless
 * --compress or --encrypt say otherwise, and a raw OUT is MAPPABLE again.
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
import { safeText, writeSummaryText } from '../text.js';

const CIPHER_CHOICES = ['none', 'aes-256-gcm', 'chacha20-poly1305'] as const;

export function registerFlatten(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'flatten <child>',
    'write a standalone image of a child image: its parents\' chunks copied in (streaming)',
    (a) => withMode(withJson(withParentOption(withKeyOptions(a
      .positional('child', { type: 'string', demandOption: true, describe: 'child image to read' }), 'read CHILD and its parents (and encrypt OUT)'))))
      .option('out', { alias: 'o', type: 'string', demandOption: true, requiresArg: true, describe: 'standalone image to write' })
      .option('compress', { type: 'string', requiresArg: true, describe: "none, deflate[:LEVEL] or zstd[:LEVEL] (default: CHILD's)" })
      .option('encrypt', { type: 'string', choices: CIPHER_CHOICES, requiresArg: true, describe: "cipher of OUT (default: CHILD's)" })
      .example('$0 flatten child.img -o whole.img', 'the parent is found where the child records it')
      .example('$0 flatten child.img --parent base.img -o whole.img', 'name the parent')
      .example('$0 flatten child.img --key-file app.key -o whole.img', 'an encrypted chain (one key for all)'),
    async (a) => {
      const out = a.out as string;
      const summary = await withImage(a.child, keySources(a), cli.env, async (image) => {
        const encrypt = (a.encrypt ?? image.encryption) as CipherName;
        const key = encrypt !== 'none' ? await readKey(keySources(a), cli.env) : undefined;
        if (encrypt !== 'none' && key === undefined) throw usageError(`expected a key to encrypt ${out} with ${encrypt}`, 'give --key-file, --key-env or --passphrase-file (or --encrypt none)');
        const { flattenImage } = await import('../../image/index.js');
        let progress: Progress | undefined;
        try {
          return await flattenImage(image, out, {
            ...(a.compress !== undefined ? { compress: a.compress } : {}),
            encrypt,
            ...(key !== undefined ? { outKey: key } : {}),
            ...modeOption(a),
            onProgress: (done, total) => {
              progress ??= cli.progress(a.quiet as boolean | undefined, 'flatten', total, 'bytes');
              if (done > 0) progress.update(done);
            },
          });
        } finally {
          progress?.finish();
        }
      });
      if (a.json) cli.printJson(summary);
      else if (!a.quiet) cli.print(`flattened ${safeText(a.child)} to ${safeText(out)}: ${writeSummaryText(summary)}`);
      exit(0);
    },
  );
}
