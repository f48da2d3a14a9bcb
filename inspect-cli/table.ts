/** Aligned plain-text tables for the human output of the commands. Pure. */

export type Align = 'left' | 'right';

export interface Column {
  title: string;
  align?: Align;
}

/** Visible width: ANSI colour sequences take no room. */
function width(s: string): number {
  // Most cells hold no colour: no regular expression for them (a table may have a million rows).
  // eslint-disable-next-line no-control-regex
  return s.includes('\x1b') ? s.replace(/\x1b\[[0-9;]*m/g, '').length : s.length;
}

function pad(s: string, w: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return align === 'right' ? fill + s : s + fill;
}

/**
 * Column widths for `rows` under `columns`' titles: one pass, nothing kept, so rows may come
 * from a generator (a table of 2^20 regions is measured, then rendered, without holding it).
 */
export function columnWidths(columns: readonly Column[], rows: Iterable<readonly string[]>): number[] {
  // A loop, not Math.max(...rows): a spread of 125,000 rows or more overflows the stack.
  const widths = columns.map((c) => width(c.title));
  for (const r of rows) {
    for (let i = 0; i < widths.length; i++) {
      const w = width(r[i] ?? '');
      if (w > widths[i]!) widths[i] = w;
    }
  }
  return widths;
}

/** One line of a table with these column widths (see {@link columnWidths}), trailing blanks trimmed. */
export function tableLine(columns: readonly Column[], widths: readonly number[], cells: readonly string[], indent = ''): string {
  return (indent + columns.map((c, i) => pad(cells[i] ?? '', widths[i]!, c.align ?? 'left')).join('  ')).trimEnd();
}

/**
 * Renders rows under a header, columns separated by two spaces, trailing blanks trimmed.
 * @param indent prefix of every line.
 */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths = columnWidths(columns, rows);
  const line = (cells: readonly string[]): string => tableLine(columns, widths, cells, indent);
  return [line(columns.map((c) => c.title)), ...rows.map(line)];
}

/** "key   value" lines with the keys padded to one width. */
export function renderPairs(pairs: readonly (readonly [string, string])[], indent = ''): string[] {
  let w = 0;
  for (const [k] of pairs) w = Math.max(w, width(k));
  return pairs.map(([k, v]) => `${indent}${pad(k, w, 'left')}  ${v}`.trimEnd());
}
