/**
 * `crimg verify IMG`: every chunk checksum (and authentication tag) and the index's
 * consistency, through Image.verify(). Lists each bad chunk with its region, address range and
 * file offset; exit 1 when anything is wrong.
 */
import type { Argv } from 'yargs';
import type { VerifyError, VerifyReport } from '../../image/index.js';
import type { Image } from '../../restore/index.js';
import type { Cli } from '../context.js';
import { describeError, exitCodeOf, EXIT_USAGE } from '../errors.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions, withParentOption } from '../options.js';
import { hexAddress, humanBytes, plural, safeText } from '../text.js';

export interface VerifyErrorJson {
  code: string;
  message: string;
  region?: number;
  regionName?: string;
  chunk?: number;
  address?: string;
  end?: string;
  length?: number;
  offset?: number;
  /** The image of a child's chain the problem belongs to: 1 its parent, 2 the parent's parent... (absent: the image itself). */
  image?: number;
  /** That parent's image id. */
  imageId?: string;
}

export interface VerifyJson {
  file: string;
  ok: boolean;
  chunksChecked: number;
  bytesChecked: number;
  errors: VerifyErrorJson[];
}

function errorJson(e: VerifyError, image: Image): VerifyErrorJson {
  const out: VerifyErrorJson = { code: e.code, message: e.message };
  if (e.image) out.image = e.image;
  if (e.imageId !== undefined) out.imageId = e.imageId;
  if (e.region !== undefined) {
    out.region = e.region;
    // One region made from the table in place, not the whole table (2^20 regions: ~260 MiB);
    // a parent's region is not this image's.
    const name = !e.image && e.region >= 0 && e.region < image.regionCount ? image.region(e.region).name : undefined;
    if (name) out.regionName = name;
  }
  if (e.chunk !== undefined) out.chunk = e.chunk;
  if (e.address !== undefined) {
    out.address = hexAddress(e.address);
    if (e.length !== undefined) out.end = hexAddress(e.address + BigInt(e.length));
  }
  if (e.length !== undefined) out.length = e.length;
  if (e.offset !== undefined) out.offset = e.offset;
  return out;
}

/** One line per problem: code, where (region, chunk, addresses, offset), then the message. */
export function renderVerifyError(e: VerifyErrorJson): string {
  const where: string[] = [];
  if (e.image) where.push(`in parent ${e.image}${e.imageId ? ` (${e.imageId})` : ''}`);
  if (e.region !== undefined) where.push(`region ${e.region}${e.regionName ? ` (${e.regionName})` : ''}`);
  if (e.chunk !== undefined) where.push(`chunk ${e.chunk}`);
  if (e.address !== undefined) where.push(e.end !== undefined ? `${e.address}-${e.end}` : e.address);
  if (e.offset !== undefined) where.push(`offset ${e.offset}`);
  return safeText(`${e.code}${where.length ? ` ${where.join(' ')}` : ''}: ${e.message}`);
}

export function registerVerify(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'verify <img>',
    'check every chunk checksum (and tag) and the index; exit 1 if anything is wrong',
    (a) => withJson(withParentOption(withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' }))))
      .example('$0 verify app.img', 'prints "ok" or each bad chunk with region, addresses and file offset')
      .example('$0 verify app.img --json', '{ ok, chunksChecked, bytesChecked, errors: [...] }')
      .example('$0 verify secret.img --key-env CRIMG_KEY', 'an encrypted image: checks the tags too'),
    async (a) => {
      let report: VerifyJson;
      try {
        report = await withImage(a.img, keySources(a), cli.env, async (image) => {
          const chunks = image.chunkCount;
          const progress = cli.progress(a.quiet as boolean | undefined, 'verify', chunks, 'items');
          let r: VerifyReport;
          try {
            r = await image.verify({ onProgress: (done) => progress.update(done) });
          } finally {
            progress.finish();
          }
          return { file: a.img, ok: r.ok, chunksChecked: r.chunksChecked, bytesChecked: r.bytesChecked, errors: r.errors.map((e) => errorJson(e, image)) };
        });
      } catch (e) {
        // An image that cannot be read at all (bad magic, corrupt index, wrong key) is a failed
        // verification: in JSON mode it is reported as such; usage and I/O errors stay errors.
        if (!a.json || exitCodeOf(e) === EXIT_USAGE) throw e;
        const d = describeError(e);
        cli.printJson({ file: a.img, ok: false, chunksChecked: 0, bytesChecked: 0, errors: [{ code: d.code, message: d.message }] });
        exit(1);
        return;
      }
      if (a.json) await cli.printJsonStream(report);
      else {
        const c = cli.colors;
        for (const e of report.errors) cli.print(c.red(renderVerifyError(e)));
        const checked = `${plural(report.chunksChecked, 'chunk')}, ${humanBytes(report.bytesChecked)} of data checked`;
        cli.print(report.ok ? `${c.green('ok')}: ${checked}` : `${c.red('FAILED')}: ${plural(report.errors.length, 'problem')}; ${checked}`);
      }
      exit(report.ok ? 0 : 1);
    },
  );
}
