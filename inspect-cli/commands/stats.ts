/**
 * `crimg stats IMG`: bytes mapped, stored and zero, and how the chunks are stored (zero, raw,
 * encoded; encrypted), per region, per kind and in total: the library's chunkStats(), which
 * reads the chunk table (section 5.3), not the data.
 */
import type { Argv } from 'yargs';
import type { ChunkForms, ChunkStats, ChunkUsage } from '../../image/index.js';
import type { Cli } from '../context.js';
import type { Colors } from '../colors.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions, withParentOption } from '../options.js';
import { renderTable } from '../table.js';
import { hexAddress, humanBytes, percent, ratio, safeText, shownName } from '../text.js';

/** Byte counts of a region, a kind or the whole image, as the JSON prints them. */
export interface Usage {
  /** Plain bytes (the region lengths). */
  mapped: number;
  /** Bytes stored in the file for them. */
  stored: number;
  /** Plain bytes of zero chunks (stored as nothing). */
  zero: number;
  /** stored / mapped. */
  ratio: number;
  chunks: ChunkForms;
}

export interface StatsJson {
  file: string;
  compression: string;
  encryption: string;
  chunkSize: number;
  regions: (Usage & { index: number; address: string; kind: string; name: string })[];
  kinds: (Usage & { kind: string; regions: number })[];
  totals: Usage & { regions: number };
}

function usage(u: ChunkUsage): Usage {
  return { mapped: Number(u.mapped), stored: Number(u.stored), zero: Number(u.zero), ratio: ratio(u.stored, u.mapped), chunks: { ...u.chunks } };
}

/** The JSON model of `crimg stats` (key order is the output's). */
export function statsJson(s: ChunkStats, image: { compression: string; encryption: string; chunkSize: number }, file: string): StatsJson {
  return {
    file, compression: image.compression, encryption: image.encryption, chunkSize: image.chunkSize,
    regions: s.regions.map((r) => ({ index: r.region.index, address: hexAddress(r.region.address), kind: r.region.kind, name: r.region.name, ...usage(r) })),
    kinds: s.kinds.map((k) => ({ kind: k.kind, regions: k.regions, ...usage(k) })),
    totals: { ...usage(s.totals), regions: s.totals.regions },
  };
}

const USAGE_COLUMNS = [
  { title: 'mapped', align: 'right' }, { title: 'stored', align: 'right' }, { title: 'zero', align: 'right' },
  { title: 'ratio', align: 'right' }, { title: 'chunks', align: 'right' }, { title: 'zero', align: 'right' },
  { title: 'raw', align: 'right' }, { title: 'encoded', align: 'right' },
] as const;

function usageCells(u: Usage): string[] {
  return [humanBytes(u.mapped), humanBytes(u.stored), humanBytes(u.zero), percent(u.ratio),
    String(u.chunks.total), String(u.chunks.zero), String(u.chunks.raw), String(u.chunks.encoded)];
}

function share(n: number, total: number): string {
  return `${n} (${percent(ratio(n, total))})`;
}

export function renderStats(s: StatsJson, c: Colors): string[] {
  const lines = [`${safeText(s.file)}: chunk size ${humanBytes(s.chunkSize)}, compression ${s.compression}, encryption ${s.encryption}`, ''];
  lines.push(c.bold('by kind'));
  // Pushed one by one: lines.push(...rows) overflows the stack from 125,000 rows.
  for (const l of renderTable([{ title: 'kind' }, { title: 'regions', align: 'right' }, ...USAGE_COLUMNS],
    s.kinds.map((k) => [safeText(k.kind), String(k.regions), ...usageCells(k)]), '  ')) lines.push(l);
  lines.push('', c.bold('by region'));
  for (const l of renderTable([{ title: '#', align: 'right' }, { title: 'address', align: 'right' }, { title: 'kind' }, ...USAGE_COLUMNS, { title: 'name' }],
    s.regions.map((r) => [String(r.index), r.address, safeText(r.kind), ...usageCells(r), shownName(r.name)]), '  ')) lines.push(l);
  const t = s.totals;
  lines.push('', c.bold('totals'));
  lines.push(`  ${humanBytes(t.mapped)} mapped in ${t.regions} regions, ${humanBytes(t.stored)} stored (${percent(t.ratio)}), ${humanBytes(t.zero)} zero`);
  lines.push(`  chunks ${t.chunks.total}: zero ${share(t.chunks.zero, t.chunks.total)}, raw ${share(t.chunks.raw, t.chunks.total)}, encoded ${share(t.chunks.encoded, t.chunks.total)}, encrypted ${share(t.chunks.encrypted, t.chunks.total)}${t.chunks.inParent !== undefined ? `, in parent ${share(t.chunks.inParent, t.chunks.total)}` : ''}`);
  return lines;
}

export function registerStats(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'stats <img>',
    'bytes mapped, stored and zero, and chunk forms, per kind and per region',
    (a) => withJson(withParentOption(withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' }))))
      .example('$0 stats app.img', 'tables by kind and by region, then totals and the codec share')
      .example('$0 stats app.img --json | jq .totals.chunks', 'how many chunks are zero, raw, encoded'),
    async (a) => {
      const s = await withImage(a.img, keySources(a), cli.env, async (image) => statsJson(await image.chunkStats(), image, a.img));
      if (a.json) await cli.printJsonStream(s);
      else cli.printLines(renderStats(s, cli.colors));
      exit(0);
    },
  );
}
