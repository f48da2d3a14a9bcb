/**
 * `crimg optimize IMG --profile P -o OUT`: IMG rewritten with a hot list (spec/FORMAT.md section
 * 4.1) from the access profile P, with the library's optimizeImage; a lazy restore of OUT
 * prefetches those chunks first. P is a JSON array of chunk numbers in first-touch order, as
 * `JSON.stringify(restored.accessProfile())` writes it (at most 32 MiB). OUT keeps IMG's
 * settings (chunk size always: the profile names IMG's chunks) unless --compress or --encrypt
 * say otherwise.
 */
import type { Argv } from 'yargs';
import type { CipherName } from '../../format/index.js';
import type { Cli } from '../context.js';
import type { Progress } from '../progress.js';
import { usageError } from '../errors.js';
import { readKey } from '../keys.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { modeOption, withMode } from '../file-mode.js';
import { readSmallFile } from '../small-file.js';
import { safeText, writeSummaryText } from '../text.js';

const CIPHER_CHOICES = ['none', 'aes-256-gcm', 'chacha20-poly1305'] as const;
/** Largest profile file read: about three million chunk numbers. */
const MAX_PROFILE = 32 << 20;

export function registerOptimize(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'optimize <img>',
    'write IMG with a hot list from an access profile: a lazy restore fetches those chunks first',
    (a) => withMode(withJson(withKeyOptions(a
      .positional('img', { type: 'string', demandOption: true, describe: 'image to read' }), 'read IMG (and encrypt OUT)')))
      .option('profile', { type: 'string', demandOption: true, requiresArg: true, describe: 'JSON array of chunk numbers in first-touch order (restored.accessProfile())' })
      .option('out', { alias: 'o', type: 'string', demandOption: true, requiresArg: true, describe: 'image to write' })
      .option('compress', { type: 'string', requiresArg: true, describe: "none, deflate[:LEVEL] or zstd[:LEVEL] (default: IMG's)" })
      .option('encrypt', { type: 'string', choices: CIPHER_CHOICES, requiresArg: true, describe: "cipher of OUT (default: IMG's)" })
      .example('$0 optimize app.img --profile app.profile.json -o app-hot.img', 'record the profile with restore({ mode: "lazy", prefetch: false })'),
    async (a) => {
      const out = a.out as string;
      const profilePath = a.profile as string;
      const profile = parseProfile(await readSmallFile(profilePath, 'profile', MAX_PROFILE), profilePath);
      const summary = await withImage(a.img, keySources(a), cli.env, async (image) => {
        const encrypt = (a.encrypt ?? image.encryption) as CipherName;
        const key = encrypt !== 'none' ? await readKey(keySources(a), cli.env) : undefined;
        if (encrypt !== 'none' && key === undefined) throw usageError(`expected a key to encrypt ${out} with ${encrypt}`, 'give --key-file, --key-env or --passphrase-file (or --encrypt none)');
        const { optimizeImage } = await import('../../image/index.js');
        let progress: Progress | undefined;
        try {
          return await optimizeImage(image, out, {
            profile,
            ...(a.compress !== undefined ? { compress: a.compress as string } : {}),
            encrypt,
            ...(key !== undefined ? { outKey: key } : {}),
            ...modeOption(a),
            onProgress: (done, total) => {
              progress ??= cli.progress(a.quiet as boolean | undefined, 'optimize', total, 'bytes');
              if (done > 0) progress.update(done);
            },
          });
        } finally {
          progress?.finish();
        }
      });
      if (a.json) cli.printJson(summary);
      else if (!a.quiet) cli.print(`optimized ${safeText(a.img)} to ${safeText(out)}: hot list of ${summary.hotChunks} chunks; ${writeSummaryText(summary)}`);
      exit(0);
    },
  );
}

/** The profile file's chunk numbers (range-checked against the image by optimizeImage). */
function parseProfile(bytes: Buffer, path: string): number[] {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw usageError(`profile ${path} is not JSON: ${(e as Error).message}`, 'give the JSON array of chunk numbers that restored.accessProfile() returns');
  }
  if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x) && x >= 0)) {
    throw usageError(`profile ${path} is not a JSON array of chunk numbers (non-negative integers)`, 'give the JSON array of chunk numbers that restored.accessProfile() returns');
  }
  return v as number[];
}
