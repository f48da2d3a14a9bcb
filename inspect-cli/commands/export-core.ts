/**
 * `crimg export-core IMG CORE`: an image as an ELF64 core file for gdb and other core readers,
 * streamed region by region. See capture/elf-export.ts for the layout.
 */
import type { Argv } from 'yargs';
import type { Cli } from '../context.js';
import type { Progress } from '../progress.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions, withParentOption } from '../options.js';
import { modeOption, withMode } from '../file-mode.js';
import { humanBytes, safeText } from '../text.js';
import { parsePid } from './capture.js';

export function registerExportCore(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'export-core <image> <core>',
    'write an image as an ELF core file (gdb -c CORE)',
    (a) => withMode(withJson(withParentOption(withKeyOptions(a
      .positional('image', { type: 'string', demandOption: true, describe: 'image to read' })
      .positional('core', { type: 'string', demandOption: true, describe: 'core file to write' })))))
      .option('arch', { type: 'string', choices: ['x86_64', 'aarch64'] as const, requiresArg: true, describe: "architecture of the core (default: the image's)" })
      .option('pid', { type: 'string', requiresArg: true, describe: "thread id in the core's NT_PRSTATUS (default: the image's capture.pid, else 1)" })
      .example('$0 export-core app.img app.core && gdb -batch -c app.core -ex "x/8gx 0x7f0000000000"', 'read memory with gdb'),
    async (a) => {
      const { exportCore } = await import('../../capture/index.js');
      const result = await withImage(a.image, keySources(a), cli.env, async (image) => {
        // Made at the first report, which brings the total (the image's data bytes).
        let progress: Progress | undefined;
        try {
          return await exportCore(image, a.core, {
            ...(a.arch !== undefined ? { architecture: a.arch } : {}),
            ...(a.pid !== undefined ? { pid: parsePid(a.pid) } : {}),
            ...modeOption(a),
            onProgress: (done, total) => {
              progress ??= cli.progress(a.quiet as boolean | undefined, 'export', total, 'bytes');
              progress.update(done);
            },
          });
        } finally {
          progress?.finish();
        }
      });
      if (a.json) cli.printJson(result);
      else if (!a.quiet) {
        cli.print(`exported ${safeText(a.image)} to ${safeText(a.core)}: ${result.segments} segments (${result.gapSegments} gaps), ${result.files} files in NT_FILE, ` +
          `${safeText(result.architecture)}; file ${humanBytes(result.fileSize)} (${humanBytes(result.bytesWritten)} written, the rest holes)`);
      }
      exit(0);
    },
  );
}
