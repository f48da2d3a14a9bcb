/**
 * Timing helpers: one warm-up, then the median of a few runs. Times are seconds (hrtime).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/**
 * An input size in MiB from environment variable `name` (default `fallback`): an integer of at
 * least `min`; else the benchmark says so and exits with status 2.
 */
export function envMiB(name: string, fallback: number, min: number): number {
  const text = process.env[name] ?? String(fallback);
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    console.error(`expected ${name} to be an integer of at least ${min}, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

/** Seconds since `t0` (a `process.hrtime.bigint()` value). */
export function since(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('expected at least one sample');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The `q` quantile (0..1) by nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface Runs<T> {
  /** Median of the timed runs' seconds. */
  seconds: number;
  samples: number[];
  /** What the run whose time is the median returned. */
  result: T;
  /** What every timed run returned, in run order. */
  results: T[];
}

/**
 * Runs `fn` `warmup` times untimed (default 1: page cache, JIT, lazy loading), then `runs`
 * times (default 3). `prepare` runs before each run, untimed (delete the previous output,
 * flush dirty pages). `fn` may time itself by returning `{ seconds }`; else the call is timed.
 */
export async function timeRuns<T>(
  fn: () => Promise<T> | T,
  options: { runs?: number; warmup?: number; prepare?: () => Promise<void> | void } = {},
): Promise<Runs<T>> {
  return (await timeInterleaved({ fn: async () => fn() }, options)).fn!;
}

/**
 * Like {@link timeRuns} for several contenders at once, interleaved run by run (A B C, A B C...)
 * so that a slow spell of a shared machine hits them all alike.
 */
export async function timeInterleaved<T>(
  contenders: Record<string, () => Promise<T>>,
  options: { runs?: number; warmup?: number; prepare?: (name: string) => Promise<void> | void } = {},
): Promise<Record<string, Runs<T>>> {
  const runs = options.runs ?? 3;
  const warmup = options.warmup ?? 1;
  const got: Record<string, { s: number; r: T }[]> = {};
  for (let i = 0; i < warmup + runs; i++) {
    for (const [name, fn] of Object.entries(contenders)) {
      await options.prepare?.(name);
      const t0 = process.hrtime.bigint();
      const r = await fn();
      const own = (r as { seconds?: unknown } | null)?.seconds;
      const s = typeof own === 'number' ? own : since(t0);
      if (i >= warmup) (got[name] ??= []).push({ s, r });
    }
  }
  const out: Record<string, Runs<T>> = {};
  for (const [name, samples] of Object.entries(got)) {
    const sorted = [...samples].sort((a, b) => a.s - b.s);
    out[name] = {
      seconds: median(samples.map((x) => x.s)),
      samples: samples.map((x) => x.s),
      result: sorted[sorted.length >> 1]!.r,
      results: samples.map((x) => x.r),
    };
  }
  return out;
}

/** Flushes every dirty page of the machine, so one run's writeback does not slow the next. */
export function syncAll(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
}

/** CPU seconds (user + system) of one thread of this process, from /proc/self/task. */
export interface ThreadCpu {
  tid: number;
  /** True for the main (JavaScript event loop) thread. */
  main: boolean;
  seconds: number;
}

/**
 * CPU seconds of every live thread of this process, busiest first (Linux only; [] elsewhere).
 * Worker threads, libuv's pool and V8's helpers all show as "node": the busy ones beside the
 * main thread are the chunk workers and the pool threads doing reads and writes.
 */
export function threadCpu(): ThreadCpu[] {
  const hz = 100; // USER_HZ, 100 on every Linux that node supports
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return [];
  }
  const out: ThreadCpu[] = [];
  for (const t of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      // Fields after "(comm) ": state is field 3, utime 14 and stime 15 (proc(5)).
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ tid: Number(t), main: Number(t) === process.pid, seconds: (Number(f[11]) + Number(f[12])) / hz });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out.sort((a, b) => b.seconds - a.seconds);
}

/** Peak resident set of this process in bytes: VmHWM from /proc, or maxRSS where /proc is missing. */
export function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
