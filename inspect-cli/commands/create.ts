/**
 * `crimg create OUT --region ADDR:FILE...`: builds an image from raw memory files, each handed
 * to the writer as a file range (the library's fastest path: it reads the file itself into
 * reused buffers), or streamed to its end when stat gives size 0 (/proc, sysfs). Regions and gaps are written in address order whatever the order on
 * the command line. Architecture and page size default to this machine's (describeHost()).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { WriteSummary } from '../../image/index.js';
import { CrimgError, type CipherName } from '../../format/index.js';
import type { Cli } from '../context.js';
import { usageError } from '../errors.js';
import { readKey } from '../keys.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { modeOption, withMode } from '../file-mode.js';
import { parseSize } from '../numbers.js';
import { keyedValues, parseBitmapHex, parseGapSpec, parseMetric, parseProducer, parseRegionSpec, type GapSpec, type RegionSpec } from '../specs.js';
import { safeText, writeSummaryText } from '../text.js';
import { packageVersion } from '../version.js';

/** Bytes per read of a region file streamed to its end. */
const READ_SIZE = 1024 * 1024;

/** A file read to its end, for one whose stat size is not its content's; `onRead` gets the bytes so far. */
async function* streamed(file: string, onRead: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const piece of createReadStream(file, { highWaterMark: READ_SIZE })) {
    const b = piece as Buffer;
    n += b.length;
    onRead(n);
    yield b;
  }
}

type Entry = { gap: false; spec: RegionSpec; size: number } | { gap: true; spec: GapSpec };

/** Regions (with their file sizes) and gaps, sorted by address. @throws IO_ERROR for a missing file */
async function plan(regions: readonly string[], gaps: readonly string[]): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (const text of regions) {
    const spec = parseRegionSpec(text);
    let size: number;
    try {
      const st = await stat(spec.file);
      if (!st.isFile()) throw new CrimgError('IO_ERROR', `${spec.file} is not a regular file`);
      size = st.size;
    } catch (e) {
      if (e instanceof CrimgError) throw e;
      throw new CrimgError('IO_ERROR', `cannot read region file ${spec.file}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
    }
    entries.push({ gap: false, spec, size });
  }
  for (const text of gaps) entries.push({ gap: true, spec: parseGapSpec(text) });
  return entries.sort((x, y) => (x.spec.address < y.spec.address ? -1 : x.spec.address > y.spec.address ? 1 : 0));
}

export function registerCreate(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'create <out>',
    'build an image from raw memory files',
    (a) => withMode(withJson(withKeyOptions(a.positional('out', { type: 'string', demandOption: true, describe: 'image file to write' }), 'encrypt the image (with --encrypt)')))
      .option('region', { type: 'string', array: true, nargs: 1, demandOption: true, describe: 'ADDR:FILE[:PROT[:KIND[:NAME]]], repeatable; PROT like rw-, KIND anonymous|heap|stack|code|metadata|file' })
      .option('gap', { type: 'string', array: true, nargs: 1, describe: 'ADDR:LEN[:NAME]: a reserved range with no data, repeatable' })
      .option('page-size', { type: 'string', requiresArg: true, describe: "page size (default: this machine's)" })
      .option('chunk-size', { type: 'string', requiresArg: true, describe: 'chunk size, a power of two (default: the page size without --compress and --encrypt, else 16K)' })
      .option('layout', { type: 'string', choices: ['compact', 'sparse'] as const, default: 'compact', describe: 'compact, or sparse: each region at one file range with holes for zero chunks, so a map restore needs one mmap per region (no codec or cipher)' })
      .option('label', { type: 'string', array: true, nargs: 1, describe: 'K=V restore label the host must match, repeatable' })
      .option('bitmap', { type: 'string', array: true, nargs: 1, describe: 'K=HEX bitmap (bytes in order) the host must cover, repeatable' })
      .option('metric', { type: 'string', array: true, nargs: 1, describe: 'K=NUM informational metric, repeatable' })
      .option('arch', { type: 'string', requiresArg: true, describe: "architecture, uname -m (default: this machine's)" })
      .option('producer', { type: 'string', requiresArg: true, describe: 'NAME[:VERSION] of the producing runtime (default crimg)' })
      .option('compress', { type: 'string', requiresArg: true, default: 'none', describe: 'none, deflate[:LEVEL] (1-9) or zstd[:LEVEL] (1-19)' })
      .option('encrypt', { type: 'string', choices: ['aes-256-gcm', 'chacha20-poly1305'] as const, requiresArg: true, describe: 'cipher suite; needs a key option' })
      .example('$0 create app.img --region 0x7f0000000000:heap.bin:rw-:heap:java-heap', 'one heap region from a raw file')
      .example('$0 create app.img --region 0x400000:text.bin:r-x:code --gap 0x600000:64K:guard --label engine=jvm-21', 'a code region, a guard gap and a restore label')
      .example('$0 create app.img --region 0x10000:mem.bin --compress deflate:6 --encrypt aes-256-gcm --key-file app.key', 'compressed and encrypted')
      .example('$0 create app.img --region 0x10000:mem.bin --layout sparse', 'raw, for the fastest map restore'),
    async (a) => {
      const entries = await plan(a.region, a.gap ?? []);
      const { ImageWriter, describeHost } = await import('../../image/index.js');
      const host = describeHost();
      const producer = a.producer !== undefined ? parseProducer(a.producer) : { producerName: 'crimg', producerVersion: packageVersion() };
      const key = await readKey(keySources(a), cli.env);
      if (a.encrypt !== undefined && key === undefined) throw usageError(`expected a key option with --encrypt ${a.encrypt}`, 'give --key-file, --key-env or --passphrase-file');
      if (a.encrypt === undefined && key !== undefined) throw usageError('expected --encrypt SUITE with a key option');
      const writer = await ImageWriter.create(a.out, {
        pageSize: a.pageSize !== undefined ? parseSize(a.pageSize, 'page size') : host.pageSize,
        ...(a.chunkSize !== undefined ? { chunkSize: parseSize(a.chunkSize, 'chunk size') } : {}),
        compress: a.compress,
        layout: a.layout as 'compact' | 'sparse',
        ...(a.encrypt !== undefined ? { encrypt: a.encrypt as CipherName, key } : {}),
        ...modeOption(a),
        validation: {
          ...producer,
          architecture: a.arch ?? host.architecture,
          labels: keyedValues(a.label, '--label', (v) => v),
          bitmaps: keyedValues(a.bitmap, '--bitmap', parseBitmapHex),
          metrics: keyedValues(a.metric, '--metric', parseMetric),
        },
      });
      const total = entries.reduce((s, e) => s + (e.gap ? 0 : e.size), 0);
      const progress = cli.progress(a.quiet as boolean | undefined, 'create', total, 'bytes');
      let done = 0;
      let summary: WriteSummary;
      try {
        for (const e of entries) {
          if (e.gap) {
            await writer.addGap({ address: e.spec.address, length: e.spec.length, name: e.spec.name });
            continue;
          }
          const before = done;
          // A file range only where stat's size is the content's: a file of size 0 (/proc,
          // sysfs; or truly empty, which the writer refuses as it always has) is read to its end.
          const data = e.size > 0
            ? { path: e.spec.file, length: e.size, onRead: (n: number) => progress.update(before + n) }
            : streamed(e.spec.file, (n) => progress.update(before + n));
          const rec = await writer.addRegion({ address: e.spec.address, data, prot: e.spec.prot, kind: e.spec.kind, name: e.spec.name });
          done = before + Number(rec.length);
        }
        summary = await writer.finish();
      } catch (err) {
        await writer.abort();
        throw err;
      } finally {
        progress.finish();
      }
      if (a.json) cli.printJson(summary);
      else if (!a.quiet) {
        cli.print(`created ${safeText(a.out)}: ${writeSummaryText(summary)}`);
      }
      exit(0);
    },
  );
}
