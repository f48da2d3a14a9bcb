/**
 * `crimg extract IMG (--region N | --address A --length N) -o FILE`: the raw bytes of a region
 * or an address range, read in 8 MiB pieces and written as they come (never all in memory).
 */
import { open, unlink } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { CrimgError } from '../../format/index.js';
import type { Image } from '../../restore/index.js';
import type { Cli } from '../context.js';
import { usageError } from '../errors.js';
import { withImage } from '../open.js';
import { keySources, withKeyOptions } from '../options.js';
import { parseAddress, parseSize } from '../numbers.js';
import { hexAddress, humanBytes, safeText } from '../text.js';

/** The address range of region `n`. @throws CrimgError NOT_MAPPED for a gap. */
function regionRange(image: Image, n: number): { address: bigint; length: bigint } {
  const r = image.regions[n];
  if (!r) throw usageError(`expected a region number below ${image.regions.length}, got ${n}`, 'list the regions with `crimg inspect`');
  if (r.isGap) throw new CrimgError('NOT_MAPPED', `region ${n}${r.name ? ` (${r.name})` : ''} is a gap, which holds no data`, { region: n, address: r.address });
  return { address: r.address, length: r.length };
}

export function registerExtract(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'extract <img>',
    'write the raw bytes of a region or an address range to a file',
    (a) => withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' }))
      .option('region', { alias: 'r', type: 'string', requiresArg: true, describe: 'region number (the # column of `crimg inspect`)' })
      .option('address', { alias: 'a', type: 'string', requiresArg: true, describe: 'start address, 0x hex or decimal (with --length)' })
      .option('length', { alias: 'n', type: 'string', requiresArg: true, describe: 'bytes to extract (with --address)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, requiresArg: true, describe: 'output file, or - for stdout' })
      .conflicts('region', ['address', 'length'])
      .example('$0 extract app.img --region 0 -o heap.bin', 'the bytes of region 0')
      .example('$0 extract app.img -a 0x7f0000000000 -n 1M -o part.bin', '1 MiB from an address'),
    async (a) => {
      if (a.region === undefined && (a.address === undefined || a.length === undefined)) {
        throw usageError('expected --region N, or --address A with --length N');
      }
      const summary = await withImage(a.img, keySources(a), cli.env, async (image) => {
        const { address, length } = a.region !== undefined
          ? regionRange(image, parseSize(a.region, 'region number'))
          : { address: parseAddress(a.address!), length: BigInt(parseSize(a.length!, 'length')) };
        const toStdout = a.output === '-';
        const fh = toStdout ? null : await open(a.output, 'w');
        const progress = cli.progress(a.quiet as boolean | undefined, 'extract', Number(length), 'bytes');
        let done = 0;
        try {
          for await (const piece of image.readStream(address, length)) {
            if (fh) {
              let off = 0;
              while (off < piece.length) off += (await fh.write(piece, off, piece.length - off)).bytesWritten;
            } else await cli.writeBytes(piece);
            done += piece.length;
            progress.update(done);
          }
        } catch (e) {
          if (fh) {
            await fh.close();
            await unlink(a.output).catch(() => {});
          }
          throw e;
        } finally {
          progress.finish();
        }
        await fh?.close();
        return `extracted ${hexAddress(address)}-${hexAddress(address + length)} (${humanBytes(length)}) to ${safeText(a.output)}`;
      });
      if (a.output !== '-' && !a.quiet) cli.print(summary);
      exit(0);
    },
  );
}
