/** ANSI colours for human output: off with NO_COLOR (any value) or when the stream is not a TTY. */

export interface Colors {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
}

const wrap = (open: number, close: number) => (s: string): string => `\x1b[${open}m${s}\x1b[${close}m`;

const ON: Colors = { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39) };
const id = (s: string): string => s;
const OFF: Colors = { bold: id, dim: id, red: id, green: id, yellow: id };

/** https://no-color.org: NO_COLOR set to anything non-empty turns colour off. */
export function colorsFor(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): Colors {
  return isTTY === true && !env['NO_COLOR'] ? ON : OFF;
}
