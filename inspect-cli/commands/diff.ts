/**
 * `crimg diff A B`: regions added, removed or changed (length, protection, kind, name), and the
 * page ranges whose bytes differ in regions present in both (same address). Memory is compared
 * page by page in bounded pieces. Exit 0 whatever the result, unless --exit-code (as git diff).
 */
import type { Argv } from 'yargs';
import type { Image } from '../../restore/image.js';
import type { Region } from '../../format/index-table.js';
import type { Cli } from '../context.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { RangeCollector, readPieces, PIECE } from '../ranges.js';
import { hexAddress, humanBytes, plural } from '../text.js';

interface RegionBrief {
  index: number;
  address: string;
  length: number;
  prot: string;
  kind: string;
  name: string;
}

type Field = 'length' | 'prot' | 'kind' | 'name';

export interface DiffJson {
  a: string;
  b: string;
  identical: boolean;
  pageSize: number;
  added: RegionBrief[];
  removed: RegionBrief[];
  changed: { address: string; a: RegionBrief; b: RegionBrief; fields: Field[] }[];
  memory: { address: string; name: string; ranges: { start: string; end: string; pages: number }[] }[];
}

function brief(r: Region): RegionBrief {
  return { index: r.index, address: hexAddress(r.address), length: Number(r.length), prot: r.prot, kind: r.kind, name: r.name };
}

/** Differing pages of `[address, address + length)`, as merged ranges. */
async function differingPages(a: Image, b: Image, address: bigint, length: bigint, pageSize: number): Promise<{ start: bigint; end: bigint }[]> {
  const ranges = new RangeCollector();
  const pa = readPieces(a, address, length, PIECE);
  const pb = readPieces(b, address, length, PIECE);
  let at = address;
  for (;;) {
    const [x, y] = await Promise.all([pa.next(), pb.next()]);
    if (x.done || y.done) break;
    // Pieces are multiples of the page size (PIECE is), so pages line up with `at`.
    for (let o = 0; o < x.value.length; o += pageSize) {
      const end = Math.min(o + pageSize, x.value.length);
      if (!x.value.subarray(o, end).equals(y.value.subarray(o, end))) ranges.add(at + BigInt(o), at + BigInt(end));
    }
    at += BigInt(x.value.length);
  }
  return ranges.ranges;
}

export async function diffImages(a: Image, b: Image, nameA: string, nameB: string): Promise<DiffJson> {
  const pageSize = Math.max(a.pageSize, b.pageSize);
  const out: DiffJson = { a: nameA, b: nameB, identical: true, pageSize, added: [], removed: [], changed: [], memory: [] };
  const inB = new Map(b.regions.map((r) => [r.address, r]));
  const inA = new Map(a.regions.map((r) => [r.address, r]));
  for (const r of b.regions) if (!inA.has(r.address)) out.added.push(brief(r));
  for (const ra of a.regions) {
    const rb = inB.get(ra.address);
    if (!rb) { out.removed.push(brief(ra)); continue; }
    const fields: Field[] = [];
    if (ra.length !== rb.length) fields.push('length');
    if (ra.prot !== rb.prot) fields.push('prot');
    if (ra.kind !== rb.kind) fields.push('kind');
    if (ra.name !== rb.name) fields.push('name');
    if (fields.length) out.changed.push({ address: hexAddress(ra.address), a: brief(ra), b: brief(rb), fields });
    if (ra.isGap || rb.isGap) continue;
    const common = ra.length < rb.length ? ra.length : rb.length;
    const ranges = await differingPages(a, b, ra.address, common, pageSize);
    if (ranges.length) {
      out.memory.push({
        address: hexAddress(ra.address), name: ra.name,
        ranges: ranges.map((x) => ({ start: hexAddress(x.start), end: hexAddress(x.end), pages: Math.ceil(Number(x.end - x.start) / pageSize) })),
      });
    }
  }
  out.identical = !out.added.length && !out.removed.length && !out.changed.length && !out.memory.length;
  return out;
}

function regionText(r: RegionBrief): string {
  return `${r.address} ${humanBytes(r.length)} ${r.prot} ${r.kind}${r.name ? ` "${r.name}"` : ''}`;
}

export function renderDiff(d: DiffJson): string[] {
  const lines = [`--- ${d.a}`, `+++ ${d.b}`];
  for (const r of d.removed) lines.push(`- region ${regionText(r)}`);
  for (const r of d.added) lines.push(`+ region ${regionText(r)}`);
  for (const c of d.changed) {
    const what = c.fields.map((f) => `${f} ${f === 'length' ? humanBytes(c.a.length) : JSON.stringify(c.a[f])} -> ${f === 'length' ? humanBytes(c.b.length) : JSON.stringify(c.b[f])}`);
    lines.push(`~ region ${c.address}: ${what.join(', ')}`);
  }
  for (const m of d.memory) {
    const pages = m.ranges.reduce((s, r) => s + r.pages, 0);
    lines.push(`~ region ${m.address}${m.name ? ` "${m.name}"` : ''}: ${plural(pages, 'page')} differ${pages === 1 ? 's' : ''}`);
    for (const r of m.ranges) lines.push(`    ${r.start}-${r.end} (${plural(r.pages, 'page')})`);
  }
  lines.push(d.identical ? 'identical: same regions, same memory' : 'images differ');
  return lines;
}

export function registerDiff(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'diff <a> <b>',
    'compare two images: regions added, removed, changed, and differing page ranges',
    (y2) => withJson(withKeyOptions(y2
      .positional('a', { type: 'string', demandOption: true, describe: 'first image' })
      .positional('b', { type: 'string', demandOption: true, describe: 'second image' }), 'read encrypted images (the same key for both)'))
      .option('exit-code', { type: 'boolean', describe: 'exit 1 when the images differ (as git diff --exit-code)' })
      .example('$0 diff before.img after.img', 'regions and page ranges that changed')
      .example('$0 diff a.img b.img --exit-code --json', 'exit 1 if different; the report as JSON'),
    async (args) => {
      const keys = keySources(args);
      const d = await withImage(args.a, keys, cli.env, (a) => withImage(args.b, keys, cli.env, (b) => diffImages(a, b, args.a, args.b)));
      if (args.json) cli.printJson(d);
      else cli.print(...renderDiff(d));
      exit(args.exitCode && !d.identical ? 1 : 0);
    },
  );
}
