/**
 * `crimg stats IMG`: bytes mapped, stored and zero, and how the chunks are stored (zero, raw,
 * encoded; encrypted), per region, per kind and in total. Reads the chunk table (section 5.3),
 * not the data.
 */
import type { Argv } from 'yargs';
import type { Image } from '../../restore/image.js';
import { CHUNK_ENCODED, CHUNK_ENCRYPTED, CHUNK_RAW, CHUNK_ZERO } from '../../format/constants.js';
import type { Cli } from '../context.js';
import type { Colors } from '../colors.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { renderTable } from '../table.js';
import { hexAddress, humanBytes, percent, ratio } from '../text.js';

/** Chunk counts by stored form (section 5.1). */
export interface ChunkShare {
  total: number;
  zero: number;
  raw: number;
  encoded: number;
  encrypted: number;
}

/** Byte counts of a region, a kind or the whole image. */
export interface Usage {
  /** Plain bytes (the region lengths). */
  mapped: number;
  /** Bytes stored in the file for them. */
  stored: number;
  /** Plain bytes of zero chunks (stored as nothing). */
  zero: number;
  /** stored / mapped. */
  ratio: number;
  chunks: ChunkShare;
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

function emptyUsage(): Usage {
  return { mapped: 0, stored: 0, zero: 0, ratio: 0, chunks: { total: 0, zero: 0, raw: 0, encoded: 0, encrypted: 0 } };
}

function addUsage(to: Usage, u: Usage): void {
  to.mapped += u.mapped;
  to.stored += u.stored;
  to.zero += u.zero;
  for (const k of ['total', 'zero', 'raw', 'encoded', 'encrypted'] as const) to.chunks[k] += u.chunks[k];
  to.ratio = ratio(to.stored, to.mapped);
}

/** Counts every data region's chunks by their flags in the chunk table. */
export async function collectStats(image: Image, file: string): Promise<StatsJson> {
  const table = await image.chunkTable();
  const regions: StatsJson['regions'] = [];
  const kinds = new Map<string, Usage & { kind: string; regions: number }>();
  const totals: StatsJson['totals'] = { ...emptyUsage(), regions: 0 };
  for (const r of image.regions) {
    if (r.isGap) continue;
    const u = emptyUsage();
    u.mapped = Number(r.length);
    for (let j = 0; j < r.chunkCount; j++) {
      const plain = image.plainLength(r, j);
      const rec = table.get(r.firstChunk + j, plain);
      u.chunks.total++;
      u.stored += rec.storedLength;
      if (rec.flags & CHUNK_ZERO) { u.chunks.zero++; u.zero += plain; }
      if (rec.flags & CHUNK_RAW) u.chunks.raw++;
      if (rec.flags & CHUNK_ENCODED) u.chunks.encoded++;
      if (rec.flags & CHUNK_ENCRYPTED) u.chunks.encrypted++;
    }
    u.ratio = ratio(u.stored, u.mapped);
    regions.push({ index: r.index, address: hexAddress(r.address), kind: r.kind, name: r.name, ...u, chunks: { ...u.chunks } });
    let k = kinds.get(r.kind);
    if (!k) kinds.set(r.kind, (k = { kind: r.kind, regions: 0, ...emptyUsage() }));
    k.regions++;
    addUsage(k, u);
    totals.regions++;
    addUsage(totals, u);
  }
  return {
    file, compression: image.compression, encryption: image.encryption, chunkSize: image.chunkSize,
    regions, kinds: [...kinds.values()], totals,
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
  const lines = [`${s.file}: chunk size ${humanBytes(s.chunkSize)}, compression ${s.compression}, encryption ${s.encryption}`, ''];
  lines.push(c.bold('by kind'));
  lines.push(...renderTable([{ title: 'kind' }, { title: 'regions', align: 'right' }, ...USAGE_COLUMNS],
    s.kinds.map((k) => [k.kind, String(k.regions), ...usageCells(k)]), '  '));
  lines.push('', c.bold('by region'));
  lines.push(...renderTable([{ title: '#', align: 'right' }, { title: 'address', align: 'right' }, { title: 'kind' }, ...USAGE_COLUMNS, { title: 'name' }],
    s.regions.map((r) => [String(r.index), r.address, r.kind, ...usageCells(r), r.name]), '  '));
  const t = s.totals;
  lines.push('', c.bold('totals'));
  lines.push(`  ${humanBytes(t.mapped)} mapped in ${t.regions} regions, ${humanBytes(t.stored)} stored (${percent(t.ratio)}), ${humanBytes(t.zero)} zero`);
  lines.push(`  chunks ${t.chunks.total}: zero ${share(t.chunks.zero, t.chunks.total)}, raw ${share(t.chunks.raw, t.chunks.total)}, encoded ${share(t.chunks.encoded, t.chunks.total)}, encrypted ${share(t.chunks.encrypted, t.chunks.total)}`);
  return lines;
}

export function registerStats(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'stats <img>',
    'bytes mapped, stored and zero, and chunk forms, per kind and per region',
    (a) => withJson(withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' })))
      .example('$0 stats app.img', 'tables by kind and by region, then totals and the codec share')
      .example('$0 stats app.img --json | jq .totals.chunks', 'how many chunks are zero, raw, encoded'),
    async (a) => {
      const s = await withImage(a.img, keySources(a), cli.env, (image) => collectStats(image, a.img));
      if (a.json) cli.printJson(s);
      else cli.print(...renderStats(s, cli.colors));
      exit(0);
    },
  );
}
