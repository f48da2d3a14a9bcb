/**
 * Many CLI command lines in ONE child process (the built CLI, build/inspect-cli/main.js, called
 * through its exported main(argv, streams)): start-up and module loading are paid once instead
 * of once per command line, and each run is timed and measured from inside the process, so
 * what is measured is the command's own work, not node's start-up on a loaded machine.
 *
 *   const [r] = await crimgBatch([{ args: ['verify', img] }], { warm: [{ args: ['verify', small] }] });
 *   r.status; r.stderr; r.ms; r.peakRss;
 *
 * `warm` runs first and is not reported (it loads the modules, the native addon and the code
 * paths); `warmPeakRss` is the process's peak RSS after it, the baseline the memory bounds of a
 * run are taken against. Memory of a run: the process's peak RSS (VmHWM) after it,
 * the garbage of the previous runs collected before it. A peak is monotonic over the process's
 * life, so `peakRss - warmPeakRss` of a run is an upper bound on what that run took beyond the
 * warm-up (and beyond every run before it): a run that stays within a bound proves it did.
 * VmHWM, not getrusage's maxRSS: Linux keeps the peak of the mm an exec replaces in maxRSS, so
 * a child spawned by a jest worker of 600 MiB reported a 589-591 MiB peak for a run that
 * peaks at ~128 MiB (twice, failing a bound of 512 MiB in CI).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, ensureBuilt, type CliResult } from './cli-helpers.js';

export interface BatchRun {
  /** The command line, without `crimg`. */
  args: string[];
  /** Added to the child's environment (without NODE_OPTIONS, CRIMG_PROGRESS, FORCE_COLOR). */
  env?: Record<string, string>;
  /** False: count stdout's bytes but do not keep them (as `> /dev/null`). Default true. */
  keep?: boolean;
}

export interface BatchResult extends CliResult {
  /** Wall time of main(argv), ms. */
  ms: number;
  /** The process's peak RSS after the run, bytes. */
  peakRss: number;
  /** Bytes written to stdout (kept or not). */
  stdoutLength: number;
}

export interface Batch {
  runs: BatchResult[];
  /** The process's peak RSS after the warm-up, bytes. */
  warmPeakRss: number;
}

/** The child: argv[2] is a JSON job file, argv[3] where to write the results. */
const CHILD = `
import { readFileSync, writeFileSync } from 'node:fs';
const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { main } = await import(job.main);
const peakRss = () => Number(/^VmHWM:\\s+(\\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const base = { ...process.env };
for (const k of ['NODE_OPTIONS', 'CRIMG_PROGRESS', 'FORCE_COLOR']) delete base[k];
const sink = (keep) => {
  const chunks = [];
  let length = 0;
  const stream = { isTTY: false, once: () => undefined, write: (c) => { const b = Buffer.from(c); length += b.length; if (keep) chunks.push(b); return true; } };
  return { stream, chunks, length: () => length };
};
const one = async (run) => {
  const out = sink(run.keep !== false);
  const err = sink(true);
  globalThis.gc();
  const t0 = performance.now();
  const status = await main(run.args, { stdout: out.stream, stderr: err.stream, env: { ...base, ...(run.env ?? {}) } });
  const ms = performance.now() - t0;
  return {
    status, ms, peakRss: peakRss(), stdoutLength: out.length(),
    stdout: Buffer.concat(out.chunks).toString('base64'), stderr: Buffer.concat(err.chunks).toString('utf8'),
  };
};
for (const run of job.warm) await one(run);
const warmPeakRss = peakRss();
const runs = [];
for (const run of job.runs) runs.push(await one(run));
writeFileSync(process.argv[3], JSON.stringify({ warmPeakRss, runs }));
process.exit(0); // a worker pool left idle must not keep the child alive
`;

/**
 * Runs `runs` in order in one child process (after `warm`) and returns their results. Rejects
 * when the child dies or takes longer than `timeoutMs`.
 */
export async function crimgBatch(runs: BatchRun[], o: { warm?: BatchRun[]; timeoutMs?: number } = {}): Promise<Batch> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'crimg-batch-'));
  try {
    const script = join(dir, 'child.mjs');
    const jobFile = join(dir, 'job.json');
    const resultFile = join(dir, 'result.json');
    writeFileSync(script, CHILD);
    writeFileSync(jobFile, JSON.stringify({ main: pathToFileURL(join(ROOT, 'build', 'inspect-cli', 'main.js')).href, warm: o.warm ?? [], runs }));
    const env = { ...process.env };
    delete env['NODE_OPTIONS']; // jest's --experimental-vm-modules is not for the child
    const stderr = await new Promise<string>((resolvePromise, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', script, jobFile, resultFile], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: o.timeoutMs ?? 120_000 });
      const err: Buffer[] = [];
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      child.on('close', (status, signal) => {
        const text = Buffer.concat(err).toString('utf8');
        if (status === 0) resolvePromise(text);
        else reject(new Error(`the batch child exited ${status} (${signal}): ${text}`));
      });
    });
    const got = JSON.parse(readFileSync(resultFile, 'utf8')) as { warmPeakRss: number; runs: (Omit<BatchResult, 'stdoutBytes'>)[] };
    if (stderr) throw new Error(`the batch child wrote to its own stderr: ${stderr}`);
    return {
      warmPeakRss: got.warmPeakRss,
      runs: got.runs.map((r) => {
        const stdoutBytes = Buffer.from(r.stdout, 'base64');
        return { ...r, stdoutBytes, stdout: stdoutBytes.toString('utf8') };
      }),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
