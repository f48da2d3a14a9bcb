/**
 * `crimg check IMG`: the image's restore constraints (spec/FORMAT.md section 4) against this
 * machine (--host, the default) or a host described in a constraints file; exit 1 if
 * incompatible. `crimg check --print-host` prints this machine in the constraints file format.
 */
import { readSmallFile } from '../small-file.js';
import type { Argv } from 'yargs';
import type { CompatibilityReport, HostDescription } from '../../image/index.js';
import type { Cli } from '../context.js';
import type { Colors } from '../colors.js';
import { formatConstraints, parseConstraints } from '../constraints.js';
import { usageError } from '../errors.js';
import { withImage } from '../open.js';
import { withJson } from '../options.js';
import { keyedValues } from '../specs.js';
import { quotedText, safeText } from '../text.js';

export interface CheckJson extends CompatibilityReport {
  file: string;
  host: { source: string; architecture: string; pageSize: number; labels: Record<string, string>; bitmaps: Record<string, string> };
}

export function renderCheck(r: CheckJson, c: Colors): string[] {
  const lines = [`${safeText(r.file)} on ${safeText(r.host.source)}: ${r.compatible ? c.green('compatible') : c.red('incompatible')}`];
  if (r.architecture) lines.push(`  architecture: image ${safeText(r.architecture.image)}, host ${safeText(r.architecture.host)}`);
  if (r.pageSize) lines.push(`  page size: image ${r.pageSize.image}, host ${r.pageSize.host}`);
  for (const l of r.labels) lines.push(`  label ${safeText(l.key)}: image ${quotedText(l.image)}, host ${l.host === null ? 'unset' : quotedText(l.host)}`);
  // The library lists the first missing bits and counts the rest: a bitmap may lack millions.
  for (const b of r.bitmaps) {
    const more = b.count > b.names.length ? ` ... ${b.count - b.names.length} more` : '';
    lines.push(`  bitmap ${safeText(b.key)}: host lacks ${safeText(b.names.join(' '))}${more}`);
  }
  return lines;
}

async function hostFrom(file: string | undefined, here: HostDescription): Promise<{ host: HostDescription; source: string }> {
  if (file === undefined) return { host: here, source: 'this host' };
  const text = (await readSmallFile(file, 'constraints file', 1024 * 1024)).toString('utf8');
  return { host: parseConstraints(text, here, file), source: file };
}

export function registerCheck(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'check [img]',
    "compare an image's restore constraints with this host or a constraints file; exit 1 if incompatible",
    (a) => withJson(a.positional('img', { type: 'string', describe: 'image file' }))
      .option('host', { type: 'boolean', describe: 'check against this machine (the default)' })
      .option('constraints', { type: 'string', requiresArg: true, describe: 'file describing the host: KEY=VALUE labels, architecture=, page.size=, bitmap:KEY=HEX' })
      .option('label', { type: 'string', array: true, nargs: 1, describe: 'K=V host label, repeatable (adds to the host or the file)' })
      .option('print-host', { type: 'boolean', describe: 'print this machine as a constraints file and exit' })
      .conflicts('host', 'constraints')
      .example('$0 check app.img', 'can this machine restore app.img?')
      .example('$0 check --print-host > target.host', 'describe this machine (run it on the target)')
      .example('$0 check app.img --constraints target.host', 'can the target restore app.img?'),
    async (a) => {
      const labels = keyedValues(a.label, '--label', (v) => v);
      const { describeHost } = await import('../../image/index.js');
      if (a.printHost) {
        if (a.img !== undefined) throw usageError('expected no image with --print-host');
        cli.stdout.write(formatConstraints(describeHost(labels)));
        exit(0);
        return;
      }
      if (a.img === undefined) throw usageError('expected an image to check (or --print-host)');
      const img = a.img;
      const { host, source } = await hostFrom(a.constraints, describeHost(labels));
      // The validation block is readable without a key (section 4): no key options needed.
      const report = await withImage(img, {}, cli.env, async (image) => image.checkCompatibility(host));
      const bitmaps = Object.create(null) as Record<string, string>; // a key `__proto__` too
      for (const [k, v] of Object.entries(host.bitmaps)) bitmaps[k] = Buffer.from(v).toString('hex');
      const out: CheckJson = { file: img, ...report, host: { source, architecture: host.architecture, pageSize: host.pageSize, labels: host.labels, bitmaps } };
      if (a.json) cli.printJson(out);
      else cli.printLines(renderCheck(out, cli.colors));
      exit(report.compatible ? 0 : 1);
    },
  );
}
