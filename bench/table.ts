/**
 * Result rows of the benchmarks, their text table and number formats.
 */
import { GiB, MiB } from './measure.js';

export type Verdict = 'PASS' | 'FAIL' | 'info' | 'skipped';

/** One printed line; the numbers stay beside their text for the JSON results. */
export interface Row {
  section: string;
  measure: string;
  figure: string;
  baseline: string;
  ratio: string;
  target: string;
  result: Verdict;
  value?: number;
  unit?: string;
  baselineValue?: number;
  ratioValue?: number;
  note?: string;
}

export const gibps = (bytes: number, seconds: number): string => `${(bytes / GiB / seconds).toFixed(2)} GiB/s`;
export const mibps = (bytes: number, seconds: number): string => `${(bytes / MiB / seconds).toFixed(0)} MiB/s`;
export const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
export const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
export const times = (x: number): string => `${x.toFixed(2)}x`;
export const us = (seconds: number): string => `${(seconds * 1e6).toFixed(1)} us`;
export const ms = (seconds: number): string => `${(seconds * 1e3).toFixed(2)} ms`;

/** PASS when `ok`, else FAIL. */
export const verdict = (ok: boolean): Verdict => (ok ? 'PASS' : 'FAIL');

/** A plain text table, grouped by section. */
export function formatTable(rows: readonly Row[]): string {
  const head = ['measure', 'figure', 'baseline', 'ratio', 'target', 'result'];
  const cells = rows.map((r) => [r.measure, r.figure, r.baseline, r.ratio, r.target, r.result]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((x, i) => x.padEnd(width[i]!)).join('  ').trimEnd();
  const out: string[] = [line(head), width.map((w) => '-'.repeat(w)).join('  ')];
  let section = '';
  rows.forEach((r, i) => {
    if (r.section !== section) {
      section = r.section;
      out.push(`[${section}]`);
    }
    out.push(line(cells[i]!));
    if (r.note) out.push(`    ${r.note}`);
  });
  return out.join('\n');
}
