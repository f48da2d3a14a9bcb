/**
 * `crimg inspect IMG`: header, validation block, region table and totals. Reads what opening
 * reads (footer, header, validation block, region section) and never the chunk table or data
 * (spec/FORMAT.md section 8.2).
 */
import type { Argv } from 'yargs';
import type { Region } from '../../format/index.js';
import type { Image } from '../../restore/index.js';
import type { Cli } from '../context.js';
import type { Colors } from '../colors.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { renderPairs, renderTable } from '../table.js';
import { hexAddress, humanBytes, percent, plural, ratio } from '../text.js';

export interface RegionJson {
  index: number;
  address: string;
  end: string;
  length: number;
  prot: string;
  kind: string;
  name: string;
  gap: boolean;
  storedBytes: number;
  zeroChunks: number;
  chunkCount: number;
  ratio: number;
}

export interface InspectJson {
  file: string;
  version: string;
  imageId: string;
  created: string;
  pageSize: number;
  chunkSize: number;
  compression: string;
  encryption: string;
  mappable: boolean;
  /** Layout: "sparse" (each region at one file range, zero chunks as holes) or "compact". */
  layout: 'compact' | 'sparse';
  fileSize: number;
  validation: {
    producerName: string | null;
    producerVersion: string | null;
    architecture: string | null;
    pageSize: number | null;
    labels: Record<string, string>;
    bitmaps: Record<string, string>;
    metrics: Record<string, number>;
    skippedRecords: number;
  };
  /** True when the image has a cipher: its index (region and chunk tables) is encrypted. */
  indexEncrypted: boolean;
  /** True when the index is encrypted and no key was given: regions and totals are null. */
  indexLocked: boolean;
  regions: RegionJson[] | null;
  totals: { regions: number; gaps: number; mapped: number; reserved: number; stored: number; zeroChunks: number; chunks: number; ratio: number } | null;
}

function isoTime(ms: bigint): string {
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? `${ms} ms since the epoch` : d.toISOString();
}

/** The JSON model of `crimg inspect`. */
export function regionJson(r: Region): RegionJson {
  return {
    index: r.index, address: hexAddress(r.address), end: hexAddress(r.address + r.length), length: Number(r.length),
    prot: r.prot, kind: r.kind, name: r.name, gap: r.isGap,
    storedBytes: Number(r.storedBytes), zeroChunks: r.zeroChunks, chunkCount: r.chunkCount,
    ratio: r.isGap ? 0 : ratio(r.storedBytes, r.length),
  };
}

export function describeImage(image: Image, file: string): InspectJson {
  const v = image.validation;
  const bitmaps: Record<string, string> = {};
  for (const [k, bits] of Object.entries(v.bitmaps)) bitmaps[k] = Buffer.from(bits).toString('hex');
  const out: InspectJson = {
    file,
    version: image.version,
    imageId: image.imageId,
    created: isoTime(image.header.created),
    pageSize: image.pageSize,
    chunkSize: image.chunkSize,
    compression: image.compression,
    encryption: image.encryption,
    mappable: image.mappable,
    layout: image.sparse ? 'sparse' : 'compact',
    fileSize: image.fileSize,
    validation: {
      producerName: v.producerName ?? null,
      producerVersion: v.producerVersion ?? null,
      architecture: v.architecture ?? null,
      pageSize: v.pageSize ?? null,
      labels: { ...v.labels },
      bitmaps,
      metrics: { ...v.metrics },
      skippedRecords: v.skipped.length,
    },
    indexEncrypted: image.encryption !== 'none',
    indexLocked: image.indexLocked,
    regions: null,
    totals: null,
  };
  if (image.indexLocked) return out;
  const regions = image.regions;
  let mapped = 0n, reserved = 0n, stored = 0n, zeroChunks = 0, chunks = 0, gaps = 0;
  for (const r of regions) {
    if (r.isGap) { gaps++; reserved += r.length; continue; }
    mapped += r.length;
    stored += r.storedBytes;
    zeroChunks += r.zeroChunks;
    chunks += r.chunkCount;
  }
  out.regions = regions.map(regionJson);
  out.totals = {
    regions: regions.length, gaps, mapped: Number(mapped), reserved: Number(reserved), stored: Number(stored),
    zeroChunks, chunks, ratio: ratio(stored, mapped),
  };
  return out;
}

/** Names a bit of the `cpu.features` bitmap (the library's featureName). */
export type FeatureName = (bit: number) => string;

/** Set bits of a bitmap, by CPU feature name for `cpu.features`. */
function bitNames(key: string, hex: string, featureName: FeatureName): string[] {
  const bytes = Buffer.from(hex, 'hex');
  const names: string[] = [];
  for (let i = 0; i < bytes.length * 8; i++) {
    if ((bytes[i >> 3]! >> (i & 7)) & 1) names.push(key === 'cpu.features' ? featureName(i) : String(i));
  }
  return names;
}

const MAX_NAMES = 16;

/** The human form of {@link describeImage}'s model. */
export function renderInspect(d: InspectJson, c: Colors, featureName: FeatureName): string[] {
  const v = d.validation;
  const lines = renderPairs([
    ['image', d.file],
    ['format', d.version],
    ['image id', d.imageId],
    ['created', d.created],
    ['page size', String(d.pageSize)],
    ['chunk size', humanBytes(d.chunkSize)],
    ['compression', d.compression],
    ['encryption', d.encryption],
    ['mappable', d.mappable ? (d.layout === 'sparse' ? 'yes, sparse: one mapping per region' : 'yes') : 'no'],
    ['file size', `${humanBytes(d.fileSize)} (${d.fileSize} bytes)`],
  ]);
  lines.push('', c.bold('validation block'));
  const pairs: [string, string][] = [];
  if (v.producerName !== null) pairs.push(['producer', [v.producerName, v.producerVersion].filter((x) => x !== null).join(' ')]);
  if (v.architecture !== null) pairs.push(['architecture', v.architecture]);
  if (v.pageSize !== null) pairs.push(['page size', String(v.pageSize)]);
  for (const [k, val] of Object.entries(v.labels)) pairs.push(['label', `${k}=${val}`]);
  for (const [k, hex] of Object.entries(v.bitmaps)) {
    const names = bitNames(k, hex, featureName);
    const shown = names.length > MAX_NAMES ? [...names.slice(0, MAX_NAMES), `... ${names.length - MAX_NAMES} more`] : names;
    pairs.push(['bitmap', `${k}=${hex} (${plural(names.length, 'bit')}${names.length ? `: ${shown.join(' ')}` : ''})`]);
  }
  for (const [k, val] of Object.entries(v.metrics)) pairs.push(['metric', `${k}=${val}`]);
  if (v.skippedRecords) pairs.push(['skipped', `${plural(v.skippedRecords, 'record')} of unknown types`]);
  lines.push(...(pairs.length ? renderPairs(pairs, '  ') : ['  (empty)']));
  lines.push('');
  if (d.regions === null || d.totals === null) {
    lines.push(c.yellow('index: encrypted; the region table needs a key (--key-file, --key-env or --passphrase-file)'));
    return lines;
  }
  lines.push(c.bold(`regions (${d.regions.length})`));
  const rows = d.regions.map((r) => [
    String(r.index), r.address, r.end, humanBytes(r.length), r.prot, r.kind,
    r.gap ? '-' : String(r.chunkCount), r.gap ? '-' : String(r.zeroChunks), r.gap ? '-' : humanBytes(r.storedBytes),
    r.gap ? '-' : percent(r.ratio), r.name,
  ]);
  lines.push(...renderTable([
    { title: '#', align: 'right' }, { title: 'address', align: 'right' }, { title: 'end', align: 'right' }, { title: 'length', align: 'right' },
    { title: 'prot' }, { title: 'kind' }, { title: 'chunks', align: 'right' }, { title: 'zero', align: 'right' },
    { title: 'stored', align: 'right' }, { title: 'ratio', align: 'right' }, { title: 'name' },
  ], rows, '  '));
  const t = d.totals;
  lines.push('', c.bold('totals'));
  lines.push(...renderPairs([
    ['regions', `${t.regions - t.gaps} data, ${plural(t.gaps, 'gap')} (${humanBytes(t.reserved)} reserved)`],
    ['mapped', `${humanBytes(t.mapped)} (${t.mapped} bytes)`],
    ['stored', `${humanBytes(t.stored)} (${t.stored} bytes), ratio ${percent(t.ratio)}`],
    ['chunks', `${t.chunks}, ${t.zeroChunks} zero`],
  ], '  '));
  return lines;
}

export function registerInspect(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'inspect <img>',
    'show the header, validation block, region table and totals (reads no chunk data)',
    (a) => withJson(withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' }), 'list the regions of an encrypted image'))
      .example('$0 inspect app.img', 'header, restore constraints and regions as aligned tables')
      .example('$0 inspect app.img --json | jq .totals', 'the same as JSON')
      .example('$0 inspect secret.img --key-file app.key', 'an encrypted image: without a key only header and validation block'),
    async (a) => {
      const d = await withImage(a.img, keySources(a), cli.env, async (image) => describeImage(image, a.img));
      if (a.json) cli.printJson(d);
      else {
        const { featureName } = await import('../../image/index.js');
        cli.print(...renderInspect(d, cli.colors, featureName));
      }
      exit(0);
    },
  );
}
