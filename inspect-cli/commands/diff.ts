/**
 * `crimg diff A B`: regions added, removed or changed (length, protection, kind, name), and the
 * page ranges whose bytes differ in regions present in both (same address): the library's
 * diffImages(), which compares memory in bounded pieces. Exit 0 whatever the result, unless
 * --exit-code (as git diff).
 */
import type { Argv } from 'yargs';
import type { Region } from '../../format/index.js';
import type { ImageDiff, RegionField } from '../../image/index.js';
import type { Cli } from '../context.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions, withParentOption } from '../options.js';
import { MAX_NAME, hexAddress, humanBytes, plural, quotedText, safeText } from '../text.js';

interface RegionBrief {
  index: number;
  address: string;
  length: number;
  prot: string;
  kind: string;
  name: string;
}

export interface DiffJson {
  a: string;
  b: string;
  identical: boolean;
  pageSize: number;
  added: RegionBrief[];
  removed: RegionBrief[];
  changed: { address: string; a: RegionBrief; b: RegionBrief; fields: RegionField[] }[];
  memory: { address: string; name: string; ranges: { start: string; end: string; pages: number }[] }[];
}

function brief(r: Region): RegionBrief {
  return { index: r.index, address: hexAddress(r.address), length: Number(r.length), prot: r.prot, kind: r.kind, name: r.name };
}

/** The JSON model of `crimg diff` (key order is the output's). */
export function diffJson(d: ImageDiff, nameA: string, nameB: string): DiffJson {
  return {
    a: nameA, b: nameB, identical: d.identical, pageSize: d.pageSize,
    added: d.added.map(brief),
    removed: d.removed.map(brief),
    changed: d.changed.map((c) => ({ address: hexAddress(c.address), a: brief(c.a), b: brief(c.b), fields: c.fields })),
    memory: d.memory.map((m) => ({
      address: hexAddress(m.a.address), name: m.a.name,
      ranges: m.ranges.map((x) => ({ start: hexAddress(x.start), end: hexAddress(x.end), pages: Math.ceil(Number(x.end - x.start) / d.pageSize) })),
    })),
  };
}

function regionText(r: RegionBrief): string {
  return `${r.address} ${humanBytes(r.length)} ${r.prot} ${safeText(r.kind)}${r.name ? ` ${quotedName(r.name)}` : ''}`;
}

/** A region name in quotes for text: escaped, and cut at MAX_NAME characters (text.ts). */
function quotedName(name: string): string {
  return name.length <= MAX_NAME ? quotedText(name) : `${quotedText(name.slice(0, MAX_NAME))}... (${name.length - MAX_NAME} more characters)`;
}

/** Differing ranges listed per region in text. */
const MAX_RANGES = 64;

/** The text report, line by line (a diff of 2^20 regions is printed as it is made). */
export function* diffLines(d: DiffJson): Generator<string> {
  yield `--- ${safeText(d.a)}`;
  yield `+++ ${safeText(d.b)}`;
  for (const r of d.removed) yield `- region ${regionText(r)}`;
  for (const r of d.added) yield `+ region ${regionText(r)}`;
  for (const c of d.changed) {
    const what = c.fields.map((f) => `${f} ${f === 'length' ? humanBytes(c.a.length) : f === 'name' ? quotedName(c.a.name) : quotedText(c.a[f])} -> ${f === 'length' ? humanBytes(c.b.length) : f === 'name' ? quotedName(c.b.name) : quotedText(c.b[f])}`);
    yield `~ region ${c.address}: ${what.join(', ')}`;
  }
  for (const m of d.memory) {
    const pages = m.ranges.reduce((s, r) => s + r.pages, 0);
    yield `~ region ${m.address}${m.name ? ` ${quotedName(m.name)}` : ''}: ${plural(pages, 'page')} differ${pages === 1 ? 's' : ''}`;
    // The first ranges of a region, then a count: text summarises, --json lists them all.
    for (const r of m.ranges.slice(0, MAX_RANGES)) yield `    ${r.start}-${r.end} (${plural(r.pages, 'page')})`;
    if (m.ranges.length > MAX_RANGES) yield `    ... ${plural(m.ranges.length - MAX_RANGES, 'more range')}`;
  }
  yield d.identical ? 'identical: same regions, same memory' : 'images differ';
}

/** {@link diffLines} as an array. */
export function renderDiff(d: DiffJson): string[] {
  return [...diffLines(d)];
}

export function registerDiff(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'diff <a> <b>',
    'compare two images: regions added, removed, changed, and differing page ranges',
    (y2) => withJson(withParentOption(withKeyOptions(y2
      .positional('a', { type: 'string', demandOption: true, describe: 'first image' })
      .positional('b', { type: 'string', demandOption: true, describe: 'second image' }), 'read encrypted images (the same key for both)')))
      .option('exit-code', { type: 'boolean', describe: 'exit 1 when the images differ (as git diff --exit-code)' })
      .example('$0 diff before.img after.img', 'regions and page ranges that changed')
      .example('$0 diff a.img b.img --exit-code --json', 'exit 1 if different; the report as JSON'),
    async (args) => {
      const keys = keySources(args);
      const { diffImages } = await import('../../image/index.js');
      const d = await withImage(args.a, keys, cli.env, (a) => withImage(args.b, keys, cli.env, async (b) => diffJson(await diffImages(a, b), args.a, args.b)));
      if (args.json) await cli.printJsonStream(d);
      else await cli.printLineStream(diffLines(d));
      exit(args.exitCode && !d.identical ? 1 : 0);
    },
  );
}
