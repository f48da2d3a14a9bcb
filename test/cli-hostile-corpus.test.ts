/**
 * Every CLI command over the hostile-file corpus of issue 14 (test/hostile-corpus.ts): the
 * outcome it must have, and the time and memory it takes beyond its start-up. One child process
 * per corpus file runs the built CLI in-process (test/cli-inproc.ts): it loads the CLI once,
 * warms every command up on a small valid image, then runs each command on the corpus file and
 * on the small image in turn, three times. Time beyond start-up: the best corpus run less the
 * best small-image run (printing a few lines), bound 100 ms (test/machine.ts budget()).
 * Memory: the child's peak RSS after the command's first corpus run less its peak after the
 * warm-up, bound 64 MiB; the peak is monotonic, so this bounds the command and every one before
 * it in that child. A command over a bound there is measured again alone in a fresh child
 * (warm-up and that command), whose figures stand: an earlier command's peak, or a burst of
 * load, is not its own. Two children run at a time. (Before: ~700 `node` processes, best of 3 each, 269 s, and start-up noise
 * of 100 ms or more on a busy 2-core machine failing idle runs.)
 *
 * Where the work is the user's explicit request it is not bounded here: printing, checking or
 * copying every one of 2^20 regions (inspect, inspect --json, stats, verify, diff, convert of
 * the two 64 MiB files, and export-core of the valid one). Those are bounded by the file's size
 * and left out of the matrix; the region table of 2^20 regions sharing one long name is printed
 * once below, and the file converted once, each in bounded memory. export-core of that file
 * refuses before writing (a core's note holds each region's name), so it is bounded and in the
 * matrix. The other commands on those two files open a 64 MiB region section, which stays in
 * the file (read as it streams by, then by pread when asked; a first read also checks every
 * region's totals against the chunk table, spec section 8.1), within the same 100 ms: the
 * records are checked and hashed by the addon, and large tables go into huge-page memory (this
 * VM's first touch of a 4 KiB page costs 12-25 us). (Before: 100 ms + 2 ms per MiB for those two
 * files, 59-160 ms measured; before that 100 ms + 8 ms per MiB and 64 MiB + the file's size,
 * 660-1250 ms seen on a loaded machine.)
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { openImage } from '../index.js';
import { HOSTILE, HOSTILE_PASSPHRASE, writeHostileCorpus } from './hostile-corpus.js';
import { tempDir } from './helpers.js';
import { budget, slowdown } from './machine.js';
import { demoImage, ensureBuilt } from './cli-helpers.js';
import { crimgBatch, type Batch, type BatchRun, type BatchResult } from './cli-inproc.js';

const t = tempDir();
afterAll(() => t.cleanup());
const MiB = 1024 * 1024;
let files: Record<string, string> = {};
let small = '';

beforeAll(async () => {
  ensureBuilt();
  writeFileSync(t.path('pass'), HOSTILE_PASSPHRASE);
  files = writeHostileCorpus(t.path('corpus'));
  small = t.path('small.img');
  await demoImage(small);
  for (const [name, path] of [...Object.entries(files), ['small', small]] as const) {
    if (name !== 'small' && HOSTILE[name]!.passphrase) continue;
    const image = await openImage(path);
    try {
      for (let i = 0; i < image.regionCount; i++) {
        const r = image.region(i);
        if (!r.isGap) { first.set(path, '0x' + r.address.toString(16)); break; }
      }
    } finally {
      await image.close();
    }
  }
  // The longest children first: two at a time, the rest fill in behind them.
  void wholeRun('inspect');
  void wholeRun('convert');
  for (const name of Object.keys(HOSTILE)) void resultsOf(name);
}, budget(60_000));

/** The first data region's address of each image (a plain open; the passphrase image has none). */
const first = new Map<string, string>();
function firstAddress(img: string): string {
  return first.get(img) ?? '0x7f0000000000';
}

/** A command line for `img` writing into `out` (a fresh name per call). */
type Command = (img: string, out: string) => string[];

const COMMANDS: Record<string, Command> = {
  inspect: (img) => ['inspect', img],
  'inspect --json': (img) => ['inspect', img, '--json'],
  check: (img) => ['check', img],
  'check --json': (img) => ['check', img, '--json'],
  stats: (img) => ['stats', img],
  verify: (img) => ['verify', img],
  diff: (img) => ['diff', img, img],
  dump: (img) => ['dump', img, '-a', firstAddress(img), '-n', '256'],
  extract: (img, out) => ['extract', img, '-a', firstAddress(img), '-n', '4096', '-o', out],
  convert: (img, out) => ['convert', img, out],
  'export-core': (img, out) => ['export-core', img, out, '--arch', 'x86_64'],
};

/** Commands that print, check or copy every region or chunk: the user's request at 2^20 regions. */
const EXPLICIT: Record<string, ReadonlySet<string>> = {
  'many-regions': new Set(['inspect', 'inspect --json', 'stats', 'verify', 'diff', 'convert', 'export-core']),
  // export-core refuses this before writing (LIMIT_EXCEEDED): bounded, so measured.
  'shared-name-gaps': new Set(['inspect', 'inspect --json', 'stats', 'verify', 'diff', 'convert']),
};
const commandsOf = (name: string): string[] => Object.keys(COMMANDS).filter((c) => !EXPLICIT[name]?.has(c));
const REPEAT = 3;

interface Measured {
  base: BatchResult; run: BatchResult; extraMs: number; extraRss: number;
  /** How much the command's first run raised the child's peak (exact when > 0; for the figures). */
  rise: number;
}
interface FileResults { commands: Record<string, Measured>; batch: Batch }

let outputs = 0;
/** A fresh output path: `small-*` for the small image's runs, NAME-COMMAND-N for the file's. */
const out = (what: string): string => t.path(`${what.replace(/\W+/g, '-')}-${outputs++}`);

/**
 * One child: warm-up on the small image (each command once), then per command (small, file)
 * × 3, in turn.
 */
async function measure(name: string, cmds: string[]): Promise<FileResults> {
  const keyArgs = HOSTILE[name]!.passphrase ? ['--passphrase-file', t.path('pass')] : [];
  const base = (c: string): BatchRun => ({ args: COMMANDS[c]!(small, out('small')), keep: false });
  const warm = cmds.map(base);
  const runs: BatchRun[] = [];
  for (const c of cmds) {
    const extra = c === 'check' || c === 'check --json' ? [] : keyArgs;
    for (let i = 0; i < REPEAT; i++) runs.push(base(c), { args: [...COMMANDS[c]!(files[name]!, out(`${name} ${c}`)), ...extra], keep: false });
  }
  const batch = await crimgBatch(runs, { warm, timeoutMs: budget(60_000) });
  const commands: Record<string, Measured> = {};
  cmds.forEach((c, k) => {
    const mine = batch.runs.slice(k * 2 * REPEAT, (k + 1) * 2 * REPEAT);
    const bases = mine.filter((_, i) => i % 2 === 0);
    const subjects = mine.filter((_, i) => i % 2 === 1);
    const best = (rs: BatchResult[]): number => Math.min(...rs.map((r) => r.ms));
    const before = mine[0]!.peakRss; // after the small-image run just before it
    commands[c] = { base: bases[0]!, run: subjects[0]!, extraMs: best(subjects) - best(bases), extraRss: subjects[0]!.peakRss - batch.warmPeakRss, rise: subjects[0]!.peakRss - before };
  });
  return { commands, batch };
}

/** Two children at a time (one per core of the 2-core machines the tests run on). */
let active = 0;
const waiting: (() => void)[] = [];
async function inSlot<T>(f: () => Promise<T>): Promise<T> {
  while (active >= 2) await new Promise<void>((resolve) => waiting.push(resolve));
  active++;
  try {
    return await f();
  } finally {
    active--;
    waiting.shift()?.();
  }
}

const measured = new Map<string, Promise<FileResults>>();
function resultsOf(name: string): Promise<FileResults> {
  if (!measured.has(name)) {
    const p = inSlot(() => measure(name, commandsOf(name)));
    p.catch(() => undefined); // the test that awaits it reports the failure
    measured.set(name, p);
  }
  return measured.get(name)!;
}

/**
 * The user's explicit requests on the 2^20 regions sharing one long name, each in its own child
 * (warmed up by the same command on the small image): the region table printed whole, and the
 * file converted. Bounded by the child's peak RSS only.
 */
const whole = new Map<string, Promise<BatchResult>>();
function wholeRun(cmd: 'inspect' | 'convert'): Promise<BatchResult> {
  if (!whole.has(cmd)) {
    const line = (img: string, o: string): string[] => (cmd === 'inspect' ? ['inspect', img] : ['convert', img, o]);
    const p = inSlot(async () => (await crimgBatch([{ args: line(files['shared-name-gaps']!, t.path('sng-copy.img')), keep: false }], {
      warm: [{ args: line(small, out('small')), keep: false }], timeoutMs: budget(120_000),
    })).runs[0]!);
    p.catch(() => undefined); // the test that awaits it reports the failure
    whole.set(cmd, p);
  }
  return whole.get(cmd)!;
}

const figures: string[] = [];
afterAll(() => {
  console.log(`CLI over the hostile corpus, in-process, slowdown ${slowdown.toFixed(2)} (ms beyond the small image; MiB of peak beyond the warm-up, this command's and the ones before it in its child):\n${figures.join('\n')}`);
});

describe('every CLI command over the hostile corpus', () => {
  const cases: [string, string][] = [];
  for (const name of Object.keys(HOSTILE)) for (const cmd of commandsOf(name)) cases.push([name, cmd]);

  test.each(cases)('%s: %s ends with an answer within 100 ms and < 64 MiB beyond start-up', async (name, cmd) => {
    const msBound = budget(100);
    const rssBound = 64 * MiB;
    let m = (await resultsOf(name)).commands[cmd]!;
    let again = '';
    // Over a bound in the file's child: measure the command again alone, in a fresh child, up
    // to three times, so that neither an earlier command's peak (the child's peak only grows)
    // nor a burst of load elsewhere counts against it (commands that write fsync their output:
    // an fsync behind the other suites' writes took 30-70 ms more). The last figures stand, and
    // the first are printed.
    const first = m;
    let alone = 0;
    while (alone < 3 && (m.extraMs >= msBound || m.extraRss >= rssBound)) {
      m = (await inSlot(() => measure(name, [cmd]))).commands[cmd]!;
      alone++;
    }
    if (alone > 0) again = `; measured alone ${alone} time(s): first, in the file's child, ${first.extraMs.toFixed(1)} ms, ${(first.extraRss / MiB).toFixed(1)} MiB`;
    const { run: r, extraMs, extraRss, rise } = m;
    figures.push(`  ${name.padEnd(17)} ${cmd.padEnd(15)} exit ${r.status} ${extraMs.toFixed(1).padStart(7)} ms ${(extraRss / MiB).toFixed(1).padStart(6)} MiB (peak raised ${(rise / MiB).toFixed(1)} MiB${again})`);
    // An answer, never a crash: exit 0 or 1 with output, or exit 1 with one error line.
    const answered = [0, 1].includes(r.status);
    expect({ name, cmd, answered, stderr: answered ? '' : r.stderr }).toEqual({ name, cmd, answered: true, stderr: '' });
    if (r.status !== 0) expect({ name, cmd, stderr: r.stderr }).toEqual({ name, cmd, stderr: expect.stringMatching(/^(crimg: [A-Z_]+: [^\n]*\n)?$/) });
    expect({ name, cmd, ms: Math.round(extraMs), fast: extraMs < msBound }).toEqual({ name, cmd, ms: Math.round(extraMs), fast: true });
    expect({ name, cmd, mib: Math.round(extraRss / MiB), small: extraRss < rssBound }).toEqual({ name, cmd, mib: Math.round(extraRss / MiB), small: true });
  }, budget(60_000));
});

describe('the region table of 2^20 regions naming one 4 KiB string', () => {
  test('inspect prints every row in bounded memory, names cut at 256 characters (it ran out of heap at 4 GiB)', async () => {
    const r = await wholeRun('inspect');
    figures.push(`  shared-name-gaps  inspect, all 2^20 rows: ${r.ms.toFixed(0)} ms, child's peak ${(r.peakRss / MiB).toFixed(0)} MiB`);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdoutLength).toBeGreaterThan(1 << 20); // every row: at least a byte per region
    // The whole child's peak (the CLI, the 64 MiB file, its region section, batches of output),
    // not 4 GiB of names.
    expect({ mib: Math.round(r.peakRss / MiB), bounded: r.peakRss < 512 * MiB }).toEqual({ mib: Math.round(r.peakRss / MiB), bounded: true });
  }, budget(120_000));
});

describe('regions sharing one long name', () => {
  test('convert copies them, the name held once (not 4 GiB of names); export-core refuses before writing (LIMIT_EXCEEDED)', async () => {
    const conv = await wholeRun('convert');
    const { commands } = await resultsOf('shared-name-gaps');
    figures.push(`  shared-name-gaps  convert, all 2^20 regions: ${conv.ms.toFixed(0)} ms, child's peak ${(conv.peakRss / MiB).toFixed(0)} MiB`);
    expect([conv.status, conv.stderr]).toEqual([0, '']);
    expect(statSync(t.path('sng-copy.img')).size).toBeGreaterThan(1 << 20);
    // The whole child's peak: the names once, not once per region.
    expect({ mib: Math.round(conv.peakRss / MiB), bounded: conv.peakRss < 1024 * MiB }).toEqual({ mib: Math.round(conv.peakRss / MiB), bounded: true });
    const core = commands['export-core']!.run;
    expect(core.status).toBe(1);
    expect(core.stderr).toMatch(/^crimg: LIMIT_EXCEEDED: the region names come to more than 67108864 bytes written once per region \(by region 16384\)/);
    // It took 65 s and 5 GB before failing with "Invalid typed array length"; its time and
    // memory bounds are checked in the matrix above.
    expect(readdirSync(t.dir).filter((n) => /shared-name-gaps-export-core-/.test(n))).toEqual([]);
  }, budget(120_000));
});
