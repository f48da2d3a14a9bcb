/**
 * `crimg inspect IMG`: header, validation block, region table and totals. Reads what opening
 * reads (footer, header, validation block, region section) and never the chunk table or data
 * (spec/FORMAT.md section 8.2).
 */
import type { Argv } from 'yargs';
import { isCrimgError, type Region } from '../../format/index.js';
import { HOT_LIST_RECORD, hotListChunks } from '../../image/index.js';
import type { Image } from '../../restore/index.js';
import { jsonReplacer, type Cli } from '../context.js';
import type { Colors } from '../colors.js';
import { withImage } from '../open.js';
import { keySources, withJson, withKeyOptions, withParentOption } from '../options.js';
import { columnWidths, renderPairs, tableLine, type Column } from '../table.js';
import { hexAddress, humanBytes, percent, plural, ratio, safeText, shownName } from '../text.js';

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
  /** Region flag SHARED (spec/FORMAT.md section 8.1). */
  shared: boolean;
  /** The mapping's file offset, "0x..." hex; null when the image records none. */
  fileOffset: string | null;
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
    /** Records of types this reader does not know (the hot list, type 9, is not one of them). */
    skippedRecords: number;
    /** The hot list (spec/FORMAT.md section 4.1): chunks a restore fetches first; absent without one. */
    hotList?: { chunks: number; runs: number };
  };
  /** True when the image has a cipher: its index (region and chunk tables) is encrypted. */
  indexEncrypted: boolean;
  /** True when the index is encrypted and no key was given: regions and totals are null. */
  indexLocked: boolean;
  /** The region table; null while the index is locked (printInspectJson streams it from the image). */
  regions: RegionJson[] | null;
  totals: { regions: number; gaps: number; mapped: number; reserved: number; stored: number; zeroChunks: number; chunks: number; ratio: number } | null;
  /** A child image's chain of parents, nearest first (spec/FORMAT.md section 8.3); absent for a standalone image. */
  chain?: ChainEntryJson[];
}

/** One parent of a child image's chain, as `crimg inspect` shows it. */
export interface ChainEntryJson {
  /** 1 for the parent, 2 for its parent... */
  level: number;
  /** The image id the image above records for it. */
  imageId: string;
  /** Where it was looked for. */
  location: string;
  /** "ok" once opened and checked (image id and index hash), else the error code. */
  status: string;
  /** The error's message when not ok. */
  error?: string;
}

/** Opens and checks a child's parents one by one (kept open by the image until it closes). */
export async function describeChain(image: Image): Promise<ChainEntryJson[] | undefined> {
  if (!image.isChild) return undefined;
  const out: ChainEntryJson[] = [];
  let cur: Pick<Image, 'validation' | 'parentLocation' | 'parent'> = image;
  for (let level = 1; cur.validation.parent !== undefined; level++) {
    const entry: ChainEntryJson = { level, imageId: Buffer.from(cur.validation.parent.imageId).toString('hex'), location: cur.parentLocation ?? '', status: 'ok' };
    out.push(entry);
    try {
      const next = await cur.parent();
      if (next === null) break;
      cur = next;
    } catch (e) {
      entry.status = isCrimgError(e) ? e.code : 'ERROR';
      entry.error = e instanceof Error ? e.message : String(e);
      break;
    }
  }
  return out;
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
    shared: r.shared, fileOffset: r.fileOffset === undefined ? null : hexAddress(r.fileOffset),
  };
}

export function describeImage(image: Image, file: string): InspectJson {
  const v = image.validation;
  // Null-prototype records: a key `__proto__` is a key like any other (check enforces it).
  const bitmaps = Object.create(null) as Record<string, string>;
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
      labels: Object.assign(Object.create(null) as Record<string, string>, v.labels),
      bitmaps,
      metrics: Object.assign(Object.create(null) as Record<string, number>, v.metrics),
      skippedRecords: v.skipped.filter((r) => r.type !== HOT_LIST_RECORD).length,
    },
    indexEncrypted: image.encryption !== 'none',
    indexLocked: image.indexLocked,
    regions: null,
    totals: null,
  };
  const hot = v.skipped.find((r) => r.type === HOT_LIST_RECORD);
  if (hot) out.validation.hotList = { chunks: hotListChunks(v, image.chunkCount).length, runs: hot.payload.length / 12 };
  if (image.indexLocked) return out;
  // Region by region, nothing kept: 2^20 regions naming one 4 KiB string never become 4 GiB of names.
  const count = image.regionCount;
  let mapped = 0n, reserved = 0n, stored = 0n, zeroChunks = 0, chunks = 0, gaps = 0;
  for (let i = 0; i < count; i++) {
    const r = image.region(i);
    if (r.isGap) { gaps++; reserved += r.length; continue; }
    mapped += r.length;
    stored += r.storedBytes;
    zeroChunks += r.zeroChunks;
    chunks += r.chunkCount;
  }
  out.totals = {
    regions: count, gaps, mapped: Number(mapped), reserved: Number(reserved), stored: Number(stored),
    zeroChunks, chunks, ratio: ratio(stored, mapped),
  };
  return out;
}

/** What the region table of {@link describeImage}'s model is made from: the open image. */
export type RegionSource = Pick<Image, 'regionCount' | 'region'>;

/** Characters of JSON text written at once: the output of 2^20 regions is streamed, never one string. */
const WRITE_BATCH = 1 << 20;

/**
 * Writes `d` as JSON, its `regions` made from `image` one at a time and written in batches
 * (the same bytes as JSON.stringify of the whole with indent 2).
 */
export async function printInspectJson(cli: Cli, d: InspectJson, image: RegionSource): Promise<void> {
  if (d.totals === null) { cli.printJson(d); return; }
  const mark = '\u0000regions\u0000';
  const text = JSON.stringify({ ...d, regions: mark }, jsonReplacer, 2);
  const quoted = JSON.stringify(mark);
  // The last occurrence: only totals (numbers) follow the regions; a label may hold the mark too.
  const at = text.lastIndexOf(quoted);
  let batch = text.slice(0, at) + '[';
  const count = d.totals.regions;
  for (let i = 0; i < count; i++) {
    batch += `${i ? ',' : ''}\n    ${JSON.stringify(regionJson(image.region(i)), jsonReplacer, 2).replace(/\n/g, '\n    ')}`;
    if (batch.length >= WRITE_BATCH) { await cli.writeText(batch); batch = ''; }
  }
  await cli.writeText(`${batch}${count ? '\n  ]' : ']'}${text.slice(at + quoted.length)}\n`);
}

/** Names a bit of the `cpu.features` bitmap (the library's featureName). */
export type FeatureName = (bit: number) => string;

/** How many of a bitmap's bits are set, and its first runs of set bits (at most `limit`). */
export function setBitRuns(bytes: Uint8Array, limit: number): { count: number; runs: [number, number][]; moreRuns: boolean } {
  let count = 0;
  const runs: [number, number][] = [];
  let moreRuns = false;
  let open = -1; // first bit of the run being read, or -1
  const close = (end: number): void => {
    if (runs.length < limit) runs.push([open, end]);
    else moreRuns = true;
    open = -1;
  };
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    // Whole bytes first: a megabyte of 0x00 or 0xff costs one step per byte, not eight.
    if (b === 0) { if (open >= 0) close(i * 8 - 1); continue; }
    if (b === 0xff) { count += 8; if (open < 0) open = i * 8; continue; }
    for (let k = 0; k < 8; k++) {
      if ((b >> k) & 1) { count++; if (open < 0) open = i * 8 + k; } else if (open >= 0) close(i * 8 + k - 1);
    }
  }
  if (open >= 0) close(bytes.length * 8 - 1);
  return { count, runs, moreRuns };
}

/**
 * Hex digits of a bitmap shown in text (64 bytes: a whole cpu.features bitmap of 402 bits); the
 * rest is counted, not printed (--json has it all).
 */
const MAX_HEX = 128;
/** Set bits (or runs of them) named in text. */
const MAX_NAMES = 16;

/**
 * "KEY=HEX (N bits: ...)": the set bits by CPU feature name for `cpu.features`, else as runs
 * ("0-8388607"), at most {@link MAX_NAMES} of them; work and output are bounded by the
 * bitmap's bytes, never by its bits.
 */
export function bitmapText(key: string, hex: string, featureName: FeatureName): string {
  const bytes = Buffer.from(hex, 'hex');
  const { count, runs, moreRuns } = setBitRuns(bytes, MAX_NAMES);
  const shown: string[] = [];
  let listed = 0;
  for (const [a, b] of runs) {
    if (key === 'cpu.features') {
      for (let i = a; i <= b && shown.length < MAX_NAMES; i++, listed++) shown.push(safeText(featureName(i)));
    } else {
      shown.push(a === b ? String(a) : `${a}-${b}`);
      listed += b - a + 1;
    }
    if (shown.length >= MAX_NAMES) break;
  }
  if (listed < count) shown.push(`... ${count - listed} more`);
  else if (moreRuns) shown.push('...');
  const hexShown = hex.length > MAX_HEX ? `${hex.slice(0, MAX_HEX)}... (${plural(bytes.length, 'byte')})` : hex;
  return `${safeText(key)}=${hexShown} (${plural(count, 'bit')}${count ? `: ${shown.join(' ')}` : ''})`;
}

const REGION_COLUMNS: readonly Column[] = [
  { title: '#', align: 'right' }, { title: 'address', align: 'right' }, { title: 'end', align: 'right' }, { title: 'length', align: 'right' },
  { title: 'prot' }, { title: 'kind' }, { title: 'chunks', align: 'right' }, { title: 'zero', align: 'right' },
  { title: 'stored', align: 'right' }, { title: 'ratio', align: 'right' }, { title: 'name' },
];

/** A row of the region table. */
function regionCells(r: RegionJson): string[] {
  return [
    String(r.index), r.address, r.end, humanBytes(r.length), r.prot, safeText(r.kind),
    r.gap ? '-' : String(r.chunkCount), r.gap ? '-' : String(r.zeroChunks), r.gap ? '-' : humanBytes(r.storedBytes),
    r.gap ? '-' : percent(r.ratio), shownName(r.name),
  ];
}

/** The rows of the region table, made one at a time. */
function* regionRows(image: RegionSource, count: number): Generator<string[]> {
  for (let i = 0; i < count; i++) yield regionCells(regionJson(image.region(i)));
}

/**
 * The human form of {@link describeImage}'s model, as lines: everything before the region
 * table (`head`), the table's lines (made from `image` one at a time, in two passes: widths,
 * then lines), and the totals. Names are shown escaped and cut (text.ts shownName).
 */
export function renderInspect(d: InspectJson, c: Colors, featureName: FeatureName, image: RegionSource | null): { head: string[]; table: Iterable<string>; tail: string[] } {
  const v = d.validation;
  const lines = renderPairs([
    ['image', safeText(d.file)],
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
  if (d.chain) {
    lines.push('', c.bold(`parent chain (${plural(d.chain.length, 'image')} below)`));
    for (const p of d.chain) {
      const what = p.status === 'ok' ? c.green('ok') : c.red(`${p.status}: ${safeText(p.error ?? '')}`);
      lines.push(`  ${p.level}. ${p.imageId} at ${safeText(p.location)}: ${what}`);
    }
  }
  lines.push('', c.bold('validation block'));
  const pairs: [string, string][] = [];
  if (v.producerName !== null) pairs.push(['producer', safeText([v.producerName, v.producerVersion].filter((x) => x !== null).join(' '))]);
  if (v.architecture !== null) pairs.push(['architecture', safeText(v.architecture)]);
  if (v.pageSize !== null) pairs.push(['page size', String(v.pageSize)]);
  for (const [k, val] of Object.entries(v.labels)) pairs.push(['label', safeText(`${k}=${val}`)]);
  for (const [k, hex] of Object.entries(v.bitmaps)) pairs.push(['bitmap', bitmapText(k, hex, featureName)]);
  for (const [k, val] of Object.entries(v.metrics)) pairs.push(['metric', `${safeText(k)}=${val}`]);
  if (v.hotList) pairs.push(['hot list', `${plural(v.hotList.chunks, 'chunk')} fetched first by a lazy restore (${plural(v.hotList.runs, 'run')})`]);
  if (v.skippedRecords) pairs.push(['skipped', `${plural(v.skippedRecords, 'record')} of unknown types`]);
  for (const l of pairs.length ? renderPairs(pairs, '  ') : ['  (empty)']) lines.push(l);
  lines.push('');
  const t = d.totals;
  if (t === null || image === null) {
    lines.push(c.yellow('index: encrypted; the region table needs a key (--key-file, --key-env or --passphrase-file)'));
    return { head: lines, table: [], tail: [] };
  }
  lines.push(c.bold(`regions (${t.regions})`));
  const table = (function* () {
    const widths = columnWidths(REGION_COLUMNS, regionRows(image, t.regions));
    yield tableLine(REGION_COLUMNS, widths, REGION_COLUMNS.map((col) => col.title), '  ');
    for (const cells of regionRows(image, t.regions)) yield tableLine(REGION_COLUMNS, widths, cells, '  ');
  })();
  const tail = ['', c.bold('totals'), ...renderPairs([
    ['regions', `${t.regions - t.gaps} data, ${plural(t.gaps, 'gap')} (${humanBytes(t.reserved)} reserved)`],
    ['mapped', `${humanBytes(t.mapped)} (${t.mapped} bytes)`],
    ['stored', `${humanBytes(t.stored)} (${t.stored} bytes), ratio ${percent(t.ratio)}`],
    ['chunks', `${t.chunks}, ${t.zeroChunks} zero`],
  ], '  ')];
  return { head: lines, table, tail };
}

/** Prints {@link renderInspect}'s lines, the table in batches as it is made. */
async function printInspect(cli: Cli, d: InspectJson, featureName: FeatureName, image: RegionSource | null): Promise<void> {
  const { head, table, tail } = renderInspect(d, cli.colors, featureName, image);
  cli.printLines(head);
  let batch = '';
  for (const line of table) {
    batch += line + '\n';
    if (batch.length >= WRITE_BATCH) { await cli.writeText(batch); batch = ''; }
  }
  await cli.writeText(batch);
  cli.printLines(tail);
}

export function registerInspect(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'inspect <img>',
    'show the header, validation block, region table and totals (reads no chunk data)',
    (a) => withJson(withParentOption(withKeyOptions(a.positional('img', { type: 'string', demandOption: true, describe: 'image file' }), 'list the regions of an encrypted image')))
      .example('$0 inspect app.img', 'header, restore constraints and regions as aligned tables')
      .example('$0 inspect app.img --json | jq .totals', 'the same as JSON')
      .example('$0 inspect secret.img --key-file app.key', 'an encrypted image: without a key only header and validation block'),
    async (a) => {
      const { featureName } = await import('../../image/index.js');
      // Printed while the image is open: the region table is read from it row by row.
      await withImage(a.img, keySources(a), cli.env, async (image) => {
        const d = describeImage(image, a.img);
        const chain = await describeChain(image);
        if (chain) d.chain = chain;
        if (a.json) await printInspectJson(cli, d, image);
        else await printInspect(cli, d, featureName, image.indexLocked ? null : image);
      });
      exit(0);
    },
  );
}
