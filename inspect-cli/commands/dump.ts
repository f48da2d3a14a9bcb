/**
 * `crimg dump IMG --address A [--length N]`: a hexdump of memory at a virtual address, or the
 * raw bytes with --raw. Reads in 64 KiB pieces, so a long dump streams.
 */
import type { Argv } from 'yargs';
import type { Cli } from '../context.js';
import { HexDumper } from '../hexdump.js';
import { withImage } from '../open.js';
import { keySources, withKeyOptions, withParentOption } from '../options.js';
import { parseAddress, parseSize } from '../numbers.js';

const DUMP_PIECE = 64 * 1024; // a multiple of 16: hexdump lines never straddle pieces

export function registerDump(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'dump <img>',
    'hexdump memory at a virtual address (or write the raw bytes with --raw)',
    (a) => withParentOption(withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' })))
      .option('address', { alias: 'a', type: 'string', demandOption: true, requiresArg: true, describe: 'virtual address, 0x hex or decimal' })
      .option('length', { alias: 'n', type: 'string', default: '256', requiresArg: true, describe: 'bytes to show (hex, decimal, or with K/M suffix)' })
      .option('raw', { type: 'boolean', describe: 'write the bytes themselves to stdout' })
      .option('all', { type: 'boolean', describe: 'show repeated lines instead of one "*"' })
      .example('$0 dump app.img --address 0x7f0000001000', '256 bytes as address, 16 hex bytes, ASCII')
      .example('$0 dump app.img -a 0x7f0000001000 -n 4K --raw > page.bin', 'the raw bytes of one page'),
    async (a) => {
      const address = parseAddress(a.address);
      const length = BigInt(parseSize(a.length, 'length'));
      await withImage(a.img, keySources(a), cli.env, async (image) => {
        const dumper = new HexDumper(address, a.all !== true);
        for await (const piece of image.readStream(address, length, { pieceSize: DUMP_PIECE })) {
          if (a.raw) await cli.writeBytes(piece);
          else {
            const lines = dumper.push(piece);
            if (lines.length) cli.print(...lines);
          }
        }
        if (!a.raw) {
          const tail = dumper.end();
          if (tail.length) cli.print(...tail);
        }
      });
      exit(0);
    },
  );
}
