/**
 * `crimg extract IMG (--region N | --address A --length N) -o FILE`: the raw bytes of a region
 * or an address range, read in 8 MiB pieces and written as they come (never all in memory).
 * A file is written under a temporary name and renamed when complete (mode 0600 unless --mode),
 * with runs of zero chunks as holes; stdout gets every byte, zeros included. An existing FIFO
 * or character device at -o (a named pipe, /dev/null) is written into directly, as stdout is,
 * never replaced; any other non-file there (a directory, a socket) is refused.
 */
import { constants as fsConstants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { CrimgError } from '../../format/index.js';
import type { Image } from '../../restore/index.js';
import type { Cli } from '../context.js';
import type { Progress } from '../progress.js';
import { modeOption, withMode } from '../file-mode.js';
import { usageError } from '../errors.js';
import { withImage } from '../open.js';
import { keySources, withKeyOptions, withParentOption } from '../options.js';
import { parseAddress, parseSize } from '../numbers.js';
import { hexAddress, humanBytes, safeText } from '../text.js';

/** The address range of region `n`. @throws CrimgError NOT_MAPPED for a gap. */
function regionRange(image: Image, n: number): { address: bigint; length: bigint } {
  // One region made from the table in place (region(i)), not the whole table.
  if (!Number.isSafeInteger(n) || n < 0 || n >= image.regionCount) {
    throw usageError(`expected a region number below ${image.regionCount}, got ${n}`, 'list the regions with `crimg inspect`');
  }
  const r = image.region(n);
  if (r.isGap) throw new CrimgError('NOT_MAPPED', `region ${n}${r.name ? ` (${r.name})` : ''} is a gap, which holds no data`, { region: n, address: r.address });
  return { address: r.address, length: r.length };
}

/**
 * Writes the range to `path` through a temporary file renamed over it when complete (the
 * library's OutputFile): a symlink at `path` is replaced, never followed; on failure only the
 * temporary file is removed, so a file already at `path` stays as it was. Runs of zero chunks
 * are holes (skipped, then the file's length set), never written zeros.
 */
async function toFile(path: string, mode: { mode?: number }, image: Image, address: bigint, length: bigint, progress: Progress): Promise<void> {
  const { OutputFile, readSegments, isZeroRun } = await import('../../image/index.js');
  const out = await OutputFile.create(path, mode);
  try {
    let at = 0;
    for await (const s of readSegments(image, address, length)) {
      if (isZeroRun(s)) at += s.zeros;
      else {
        for (let o = 0; o < s.length;) o += (await out.fh.write(s, o, s.length - o, at + o)).bytesWritten;
        at += s.length;
      }
      progress.update(at);
    }
    await out.fh.truncate(at); // trailing zero runs: holes up to the end
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  }
}

/** Zeros written for runs of zero chunks on stdout: the user asked for the bytes. */
const ZEROS = Buffer.alloc(1024 * 1024);

/**
 * Whether `path` is a FIFO or a character device (not through a symlink): a stream to write
 * into, not a file to replace.
 */
async function isStream(path: string): Promise<boolean> {
  const st = await lstat(path).catch(() => null);
  return st !== null && (st.isFIFO() || st.isCharacterDevice());
}

/**
 * Writes the range into the FIFO or character device at `path`, opened O_WRONLY | O_NOFOLLOW
 * without O_CREAT or O_TRUNC (a FIFO's open waits for a reader): every byte, as on stdout.
 */
async function toStream(path: string, image: Image, address: bigint, length: bigint, progress: Progress): Promise<void> {
  let fh;
  try {
    fh = await open(path, fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW);
  } catch (e) {
    throw new CrimgError('IO_ERROR', `cannot open ${safeText(path)} for writing: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
  try {
    await toStdout(async (b) => {
      for (let o = 0; o < b.length;) o += (await fh.write(b, o, b.length - o)).bytesWritten;
    }, image, address, length, progress);
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Writes the range through `write` (stdout, a pipe): a zero run as zeros, in 1 MiB writes that wait for the pipe. */
async function toStdout(write: (b: Uint8Array) => Promise<void>, image: Image, address: bigint, length: bigint, progress: Progress): Promise<void> {
  const { readSegments, isZeroRun } = await import('../../image/index.js');
  let done = 0;
  for await (const s of readSegments(image, address, length)) {
    if (isZeroRun(s)) {
      for (let left = s.zeros; left > 0; left -= ZEROS.length) {
        const n = Math.min(left, ZEROS.length);
        await write(ZEROS.subarray(0, n));
        done += n;
        progress.update(done);
      }
    } else {
      await write(s);
      done += s.length;
      progress.update(done);
    }
  }
}

export function registerExtract(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'extract <img>',
    'write the raw bytes of a region or an address range to a file',
    (a) => withMode(withParentOption(withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' }))))
      .option('region', { alias: 'r', type: 'string', requiresArg: true, describe: 'region number (the # column of `crimg inspect`)' })
      .option('address', { alias: 'a', type: 'string', requiresArg: true, describe: 'start address, 0x hex or decimal (with --length)' })
      .option('length', { alias: 'n', type: 'string', requiresArg: true, describe: 'bytes to extract (with --address)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, requiresArg: true, describe: 'output file, - for stdout, or an existing FIFO or character device (written into)' })
      .conflicts('region', ['address', 'length'])
      .example('$0 extract app.img --region 0 -o heap.bin', 'the bytes of region 0')
      .example('$0 extract app.img -a 0x7f0000000000 -n 1M -o part.bin', '1 MiB from an address'),
    async (a) => {
      if (a.region === undefined && (a.address === undefined || a.length === undefined)) {
        throw usageError('expected --region N, or --address A with --length N');
      }
      const mode = modeOption(a);
      const summary = await withImage(a.img, keySources(a), cli.env, async (image) => {
        const { address, length } = a.region !== undefined
          ? regionRange(image, parseSize(a.region, 'region number'))
          : { address: parseAddress(a.address!), length: BigInt(parseSize(a.length!, 'length')) };
        const progress = cli.progress(a.quiet as boolean | undefined, 'extract', Number(length), 'bytes');
        try {
          if (a.output === '-') await toStdout((b) => cli.writeBytes(b), image, address, length, progress);
          else if (await isStream(a.output)) await toStream(a.output, image, address, length, progress);
          else await toFile(a.output, mode, image, address, length, progress);
        } finally {
          progress.finish();
        }
        return `extracted ${hexAddress(address)}-${hexAddress(address + length)} (${humanBytes(length)}) to ${safeText(a.output)}`;
      });
      if (a.output !== '-' && !a.quiet) cli.print(summary);
      exit(0);
    },
  );
}
