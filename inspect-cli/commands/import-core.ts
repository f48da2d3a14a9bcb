/**
 * `crimg import-core CORE OUT`: an ELF64 core file (gcore, a kernel core dump, export-core) as
 * an image, streamed segment by segment. See capture/elf-import.ts for what each segment
 * becomes.
 */
import type { Argv } from 'yargs';
import { DEFAULT_CHUNK_SIZE, type CipherName } from '../../format/index.js';
import type { Cli } from '../context.js';
import { usageError } from '../errors.js';
import { readKey } from '../keys.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { parseSize } from '../numbers.js';
import { safeText, writeSummaryText } from '../text.js';
import { modeOption, withMode } from '../file-mode.js';

export function registerImportCore(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'import-core <core> <out>',
    'convert an ELF core file (gcore, kernel core dump) to an image',
    (a) => withMode(withJson(withKeyOptions(a
      .positional('core', { type: 'string', demandOption: true, describe: 'ELF64 little-endian core file' })
      .positional('out', { type: 'string', demandOption: true, describe: 'image file to write' }), 'encrypt the image (with --encrypt)'))
      .option('chunk-size', { type: 'string', requiresArg: true, describe: `chunk size, a power of two (default: the page size without --compress and --encrypt, else ${DEFAULT_CHUNK_SIZE / 1024}K)` })
      .option('page-size', { type: 'string', requiresArg: true, describe: "page size of the core's process (default: its NT_FILE note's, else this machine's)" })
      .option('compress', { type: 'string', requiresArg: true, default: 'none', describe: 'none, deflate[:LEVEL] (1-9) or zstd[:LEVEL] (1-19)' })
      .option('encrypt', { type: 'string', choices: ['aes-256-gcm', 'chacha20-poly1305'] as const, requiresArg: true, describe: 'cipher suite; needs a key option' })
      .example('$0 import-core core.1234 app.img', 'convert a gcore file')
      .example('$0 import-core core.1234 app.img --compress deflate:1', 'compressed')),
    async (a) => {
      const mode = modeOption(a); // a bad --mode is refused before anything is read
      const key = await readKey(keySources(a), cli.env);
      if (a.encrypt !== undefined && key === undefined) throw usageError(`expected a key option with --encrypt ${a.encrypt}`, 'give --key-file, --key-env or --passphrase-file');
      if (a.encrypt === undefined && key !== undefined) throw usageError('expected --encrypt SUITE with a key option');
      const { importCore } = await import('../../capture/index.js');
      const progress = cli.progress(a.quiet as boolean | undefined, 'import', 0, 'bytes');
      let result;
      try {
        result = await importCore(a.core, a.out, {
          ...(a.chunkSize !== undefined ? { chunkSize: parseSize(a.chunkSize, 'chunk size') } : {}),
          ...(a.pageSize !== undefined ? { pageSize: parseSize(a.pageSize, 'page size') } : {}),
          compress: a.compress,
          ...(a.encrypt !== undefined ? { encrypt: a.encrypt as CipherName, key } : {}),
          ...mode,
          onProgress: (done) => progress.update(done),
        });
      } finally {
        progress.finish();
      }
      if (a.json) cli.printJson(result);
      else if (!a.quiet) {
        cli.print(
          `imported ${safeText(a.core)} into ${safeText(a.out)}: ${writeSummaryText(result.summary)}`,
          `  ${result.segments} segments: ${result.dataRegions} data regions, ${result.gaps} gaps; architecture ${safeText(result.architecture ?? 'unknown')}, page size ${result.pageSize}${result.fromCrimg ? '; kinds, names and restore constraints from its CRIMG notes' : ''}`,
          ...result.notes.map((n) => `  note: ${safeText(n)}`),
        );
      }
      exit(0);
    },
  );
}
