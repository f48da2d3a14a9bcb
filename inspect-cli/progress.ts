/**
 * A progress bar on stderr for long work (verify, convert, extract, create). Shown only when
 * stderr is a TTY; CRIMG_PROGRESS=1 forces it (tests, CI logs), CRIMG_PROGRESS=0 or --quiet
 * turns it off. Redrawn at most 10 times a second, with carriage returns, never on stdout.
 */
import { humanBytes } from './text.js';

export interface Progress {
  /** Sets the amount done so far. */
  update(done: number): void;
  /** Draws 100% (or where it stopped) and ends the line. */
  finish(): void;
}

export interface ProgressOptions {
  stream: { write(s: string): unknown };
  label: string;
  total: number;
  /** bytes: counts shown as 1.5 MiB; items: plain numbers. */
  unit: 'bytes' | 'items';
  now?: () => number;
}

const WIDTH = 24;

/** Whether to draw progress bars: --quiet and CRIMG_PROGRESS=0 win, then CRIMG_PROGRESS=1, then the TTY test. */
export function progressEnabled(stderrIsTTY: boolean | undefined, env: NodeJS.ProcessEnv, quiet: boolean): boolean {
  if (quiet || env['CRIMG_PROGRESS'] === '0') return false;
  if (env['CRIMG_PROGRESS'] === '1') return true;
  return stderrIsTTY === true;
}

const NONE: Progress = { update() {}, finish() {} };

/** A progress bar, or one that draws nothing when `enabled` is false. */
export function createProgress(enabled: boolean, o: ProgressOptions): Progress {
  if (!enabled) return NONE;
  const now = o.now ?? Date.now;
  const fmt = (n: number): string => (o.unit === 'bytes' ? humanBytes(n) : String(n));
  let last = -Infinity;
  let done = 0;
  let lastWidth = 0;
  let finished = false;
  const draw = (): void => {
    const frac = o.total > 0 ? Math.min(1, done / o.total) : 1;
    const filled = Math.round(frac * WIDTH);
    const text = `${o.label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${Math.floor(frac * 100)
      .toString()
      .padStart(3)}% ${fmt(done)}/${fmt(o.total)}`;
    o.stream.write(`\r${text}${' '.repeat(Math.max(0, lastWidth - text.length))}`);
    lastWidth = text.length;
  };
  return {
    update(n: number): void {
      done = n;
      const t = now();
      if (t - last >= 100) {
        last = t;
        draw();
      }
    },
    finish(): void {
      if (finished) return;
      finished = true;
      draw();
      o.stream.write('\n');
    },
  };
}
