/**
 * Every CLI command over the hostile-file corpus of issue 14 (test/hostile-corpus.ts): the
 * outcome it must have, and the time and memory beyond those of the same command on a small
 * valid image (start-up, loading the modules, printing a few lines). The built binary runs
 * with a preload that writes its peak RSS to a file at exit.
 *
 * Where the work is the user's explicit request it is not bounded: printing or copying every
 * one of 2^20 regions (inspect, stats, diff, convert, export-core of the two 64 MiB files), and
 * checking every chunk (verify of them). Those are bounded by the file's size and left out here.
 * The other commands on those two files open a 64 MiB index: their bounds are 100 ms + 8 ms per
 * MiB of file and 64 MiB + the file's size.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openImage } from '../index.js';
import { HOSTILE, HOSTILE_PASSPHRASE, writeHostileCorpus } from './hostile-corpus.js';
import { tempDir } from './helpers.js';
import { budget } from './machine.js';
import { ROOT, demoImage, ensureBuilt } from './cli-helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());
const BIN = join(ROOT, 'bin', 'crimg.js');
const HOOK = t.path('rss-hook.mjs');
const MiB = 1024 * 1024;
let files: Record<string, string> = {};
let small = '';

beforeAll(async () => {
  ensureBuilt();
  writeFileSync(HOOK, "import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(process.env.CRIMG_TEST_RSS, String(process.resourceUsage().maxRSS * 1024)));\n");
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
}, budget(60_000));

interface Run { status: number; stdout: string; stderr: string; ms: number; rss: number }

let runs = 0;
/** Runs the built CLI with the RSS hook; with `discard`, stdout goes to /dev/null (not kept). */
function run(args: string[], discard = false): Promise<Run> {
  const rssFile = t.path(`rss-${runs++}`);
  const env: NodeJS.ProcessEnv = { ...process.env, CRIMG_TEST_RSS: rssFile };
  delete env['NODE_OPTIONS'];
  delete env['CRIMG_PROGRESS'];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...args], { env, stdio: ['ignore', discard ? 'ignore' : 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = performance.now() - t0;
      resolve({ status: status ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms, rss: Number(readFileSync(rssFile, 'utf8')) });
    });
  });
}

/**
 * The best of three runs of each command line, taken in turn (base, subject, base, ...) so
 * that a loaded machine slows both alike.
 */
async function bestOf3(base: string[], subject: string[]): Promise<[Run, Run]> {
  const b: Run[] = [];
  const s: Run[] = [];
  for (let i = 0; i < 3; i++) {
    b.push(await run(base));
    s.push(await run(subject));
  }
  const pick = (rs: Run[]): Run => ({ ...rs[rs.length - 1]!, ms: Math.min(...rs.map((r) => r.ms)), rss: Math.min(...rs.map((r) => r.rss)) });
  return [pick(b), pick(s)];
}

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

/** Commands that enumerate every region or chunk: the user's request at 2^20 regions. */
const ENUMERATING = new Set(['inspect', 'inspect --json', 'stats', 'verify', 'diff', 'convert', 'export-core']);
const BIG = new Set(['shared-name-gaps', 'many-regions']);

describe('every CLI command over the hostile corpus', () => {
  const cases: [string, string][] = [];
  for (const name of Object.keys(HOSTILE)) {
    for (const cmd of Object.keys(COMMANDS)) {
      if (BIG.has(name) && ENUMERATING.has(cmd)) continue;
      cases.push([name, cmd]);
    }
  }

  test.each(cases)('%s: %s ends with an answer, < 100 ms and < 64 MiB beyond the same command on a small image (64 MiB files: bounds grow with the size)', async (name, cmd) => {
    const make = COMMANDS[cmd]!;
    let n = 0;
    const out = (): string => t.path(`${name}-${cmd.replace(/\W+/g, '-')}-${n++}`);
    const keyArgs = HOSTILE[name]!.passphrase ? ['--passphrase-file', t.path('pass')] : [];
    const [base, r] = await bestOf3(make(small, out()), [...make(files[name]!, out()), ...(cmd === 'check' || cmd === 'check --json' ? [] : keyArgs)]);
    // An answer, never a crash: exit 0 or 1 with output, or exit 1 with one error line.
    expect({ name, cmd, status: [0, 1].includes(r.status) }).toEqual({ name, cmd, status: true });
    if (r.status !== 0) expect({ name, cmd, stderr: r.stderr }).toEqual({ name, cmd, stderr: expect.stringMatching(/^(crimg: [A-Z_]+: [^\n]*\n)?$/) });
    const extraMs = r.ms - base.ms;
    const extraRss = r.rss - base.rss;
    // Opening reads the index, which is most of the two 64 MiB files: for them the bound grows
    // with the file's size (as the library's open does, test/hostile.test.ts).
    const size = statSync(files[name]!).size;
    const msBound = BIG.has(name) ? budget(100 + 8 * (size / MiB)) : budget(100);
    const rssBound = BIG.has(name) ? 64 * MiB + size : 64 * MiB;
    expect({ name, cmd, ms: Math.round(extraMs), fast: extraMs < msBound }).toEqual({ name, cmd, ms: Math.round(extraMs), fast: true });
    expect({ name, cmd, mib: Math.round(extraRss / MiB), small: extraRss < rssBound }).toEqual({ name, cmd, mib: Math.round(extraRss / MiB), small: true });
  }, budget(60_000));
});

describe('the region table of 2^20 regions naming one 4 KiB string', () => {
  test('inspect prints every row in bounded memory, names cut at 256 characters (it ran out of heap at 4 GiB)', async () => {
    const r = await run(['inspect', files['shared-name-gaps']!], true);
    expect([r.status, r.stderr]).toEqual([0, '']);
    // The 64 MiB file, its region section, and batches of output: not 4 GiB of names.
    expect({ mib: Math.round(r.rss / MiB), bounded: r.rss < 512 * MiB }).toEqual({ mib: Math.round(r.rss / MiB), bounded: true });
  }, budget(120_000));
});

describe('regions sharing one long name', () => {
  test('convert and export-core refuse before writing (LIMIT_EXCEEDED), not after 4 GiB of names', async () => {
    const img = files['shared-name-gaps']!;
    const [base, conv] = await bestOf3(['convert', small, t.path('ok.img')], ['convert', img, t.path('sng.img')]);
    const core = await run(['export-core', img, t.path('sng.core'), '--arch', 'x86_64']);
    for (const r of [conv, core]) {
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^crimg: LIMIT_EXCEEDED: the region names come to more than 67108864 bytes written once per region \(by region 16384\)/);
    }
    // It took 65 s and 5 GB before failing with "Invalid typed array length".
    const size = statSync(img).size;
    expect({ ms: Math.round(conv.ms - base.ms), fast: conv.ms - base.ms < budget(100 + 8 * (size / MiB)) }).toEqual({ ms: Math.round(conv.ms - base.ms), fast: true });
    expect(readdirSync(t.dir).filter((n) => n.startsWith('sng') || n.includes('.sng'))).toEqual([]);
  }, budget(120_000));
});
