/**
 * Cleanup on interruption (image/_interrupt.ts, image/_output-file.ts; issue 14 item 11): real
 * child processes writing images are sent SIGINT, SIGTERM and SIGHUP mid-write. Afterwards
 * there is no temporary file and no final file, and the child died of that signal (the
 * registry re-raises it). A host that handles the signal itself keeps control; process exit
 * cleans up too; `cleanupOnSignal: false` opts out. Children run the built JavaScript.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureBuilt } from './cli-helpers.js';
import { prng, tempDir } from './helpers.js';

beforeAll(() => ensureBuilt());

const t = tempDir();
afterAll(() => t.cleanup());

const LIB = pathToFileURL(join(process.cwd(), 'build', 'image', 'index.js')).href;

/**
 * argv: out, variant (plain | sealed | host | keep), then writes one region of pages forever
 * (a page every few ms) until stopped; prints "writing" once bytes are flowing.
 */
const WRITER = `
import { ImageWriter } from ${JSON.stringify(LIB)};
const [out, variant] = process.argv.slice(2);
let stop = false;
if (variant === 'host') {
  // A host application with its own SIGTERM handling: it decides to stop writing, then finishes.
  process.on('SIGTERM', () => { process.stdout.write('host saw SIGTERM\\n'); stop = true; });
}
const options = variant === 'sealed'
  ? { compress: 'deflate:1', encrypt: 'aes-256-gcm', key: new Uint8Array(32).fill(1), workers: 0 }
  : variant === 'keep' ? { cleanupOnSignal: false } : {};
const w = await ImageWriter.create(out, { fsync: false, chunkSize: 16384, ...options });
async function* pages() {
  for (let i = 0; !stop; i++) {
    if (i === 4) process.stdout.write('writing\\n');
    yield new Uint8Array(4096).fill((i % 255) + 1);
    await new Promise((r) => setTimeout(r, 2));
  }
}
await w.addRegion({ address: 0x10000, data: pages() });
try {
  await w.finish();
  process.stdout.write('finished\\n');
} catch (e) {
  process.stdout.write(e.code + ': ' + e.message + '\\n');
}
`;

/** argv: marker file. Registers three cleanups (one disposed) and waits for a signal. */
const REGISTRY = `
import { appendFileSync } from 'node:fs';
import { onInterrupt } from ${JSON.stringify(LIB)};
const [marker, how] = process.argv.slice(2);
// Listeners added by the registry (modules of the library may listen to 'exit' themselves).
const base = ['SIGINT', 'SIGTERM', 'SIGHUP', 'exit'].map((s) => process.listenerCount(s));
const counts = () => ['SIGINT', 'SIGTERM', 'SIGHUP', 'exit'].map((s, i) => process.listenerCount(s) - base[i]).join(',');
const before = counts();
const kept = [onInterrupt(() => appendFileSync(marker, 'first\\n'))];
const disposed = onInterrupt(() => appendFileSync(marker, 'disposed\\n'));
kept.push(onInterrupt(() => { appendFileSync(marker, 'throws\\n'); throw new Error('a failing cleanup'); }));
kept.push(onInterrupt(() => appendFileSync(marker, 'last\\n')));
disposed();
disposed(); // twice: nothing
appendFileSync(marker, 'listeners ' + before + ' -> ' + counts() + '\\n');
if (how === 'exit') process.exit(3);
if (how === 'none') {
  // Every cleanup disposed: the listeners are gone, the signal's default action applies.
  kept.forEach((d) => d());
  appendFileSync(marker, 'listeners ' + counts() + '\\n');
}
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`;

/**
 * argv: marker file. Two cleanups: "quick" (registered first, so it runs last) and "slow",
 * which writes "cleaning" to stdout and then busy-waits 300 ms (a second signal lands then).
 */
const SLOW = `
import { appendFileSync, writeSync } from 'node:fs';
import { onInterrupt } from ${JSON.stringify(LIB)};
const [marker] = process.argv.slice(2);
onInterrupt(() => appendFileSync(marker, 'quick\\n'));
onInterrupt(() => {
  appendFileSync(marker, 'slow start\\n');
  writeSync(1, 'cleaning\\n');
  const until = Date.now() + 300;
  while (Date.now() < until) { /* a cleanup that takes a while */ }
  appendFileSync(marker, 'slow end\\n');
});
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`;

interface Exit { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs `script` with `args`; sends `signal` a moment after `readyLine` appears (if given). */
function run(script: string, args: string[], signal?: NodeJS.Signals, readyLine?: string, delayMs = 0): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['NODE_OPTIONS']; // jest's flags are not for the child
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (signal && readyLine && !sent && stdout.includes(`${readyLine}\n`)) {
        sent = true;
        setTimeout(() => child.kill(signal), delayMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}

let n = 0;
function freshDir(): string {
  const d = t.path(`run${n++}`);
  mkdirSync(d);
  return d;
}

describe('a writer interrupted by a signal leaves nothing and dies of the signal', () => {
  const writer = t.path('writer.mjs');
  beforeAll(() => writeFileSync(writer, WRITER));
  const rnd = prng(0x5161);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    for (const variant of ['plain', 'sealed']) {
      test(`${signal}, ${variant}, three moments`, async () => {
        for (let i = 0; i < 3; i++) {
          const d = freshDir();
          const r = await run(writer, [join(d, 'out.img'), variant], signal, 'writing', Math.floor(rnd() * 40));
          expect({ signal: r.signal, code: r.code, stderr: r.stderr }).toEqual({ signal, code: null, stderr: '' });
          expect(r.stdout).toBe('writing\n');
          expect(readdirSync(d)).toEqual([]);
        }
      });
    }
  }

  test('a host that handles SIGTERM keeps control: the temporary file is gone, finish() says why, the process goes on', async () => {
    const d = freshDir();
    const r = await run(writer, [join(d, 'out.img'), 'host'], 'SIGTERM', 'writing', 10);
    expect({ signal: r.signal, code: r.code }).toEqual({ signal: null, code: 0 });
    expect(r.stdout).toMatch(/^writing\nhost saw SIGTERM\nIO_ERROR: .*out\.img was not written: an interruption signal removed its temporary file .*\.out\.img\.[0-9a-f]{16}\.crimg-tmp\n$/);
    expect(readdirSync(d)).toEqual([]);
  });

  test('cleanupOnSignal: false leaves the temporary file to the caller (and SIGTERM its default action)', async () => {
    const d = freshDir();
    const r = await run(writer, [join(d, 'out.img'), 'keep'], 'SIGTERM', 'writing', 0);
    expect(r.signal).toBe('SIGTERM');
    expect(readdirSync(d)).toEqual([expect.stringMatching(/^\.out\.img\.[0-9a-f]{16}\.crimg-tmp$/)]);
  });
});

describe('the registry (onInterrupt)', () => {
  const registry = t.path('registry.mjs');
  beforeAll(() => writeFileSync(registry, REGISTRY));

  test.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('%s runs every registered cleanup once, newest first, past a throwing one, then re-raises', async (signal) => {
    const marker = t.path(`marker-${signal}`);
    const r = await run(registry, [marker, 'wait'], signal, 'ready');
    expect(r.signal).toBe(signal);
    expect(readFileSync(marker, 'utf8')).toBe('listeners 0,0,0,0 -> 1,1,1,1\nlast\nthrows\nfirst\n');
  });

  test('with every cleanup disposed nothing listens: SIGTERM kills by its default action, no cleanup runs', async () => {
    const marker = t.path('marker-none');
    const r = await run(registry, [marker, 'none'], 'SIGTERM', 'ready');
    expect(r.signal).toBe('SIGTERM');
    expect(readFileSync(marker, 'utf8')).toBe('listeners 0,0,0,0 -> 1,1,1,1\nlisteners 0,0,0,0\n');
  });

  test('a second SIGTERM during a slow cleanup is ignored: every cleanup runs, then the process dies of SIGTERM', async () => {
    const script = t.path('slow.mjs');
    writeFileSync(script, SLOW);
    const marker = t.path('marker-slow');
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    const child = spawn(process.execPath, [script, marker], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let first = false;
    let second = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('ready\n') && !first) {
        first = true;
        child.kill('SIGTERM');
      }
      if (stdout.includes('cleaning\n') && !second) {
        second = true;
        setTimeout(() => child.kill('SIGTERM'), 50); // 50 ms into the 300 ms cleanup
      }
    });
    // 'close': after the exit and all of stdout.
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('close', (c, s) => r([c, s])));
    expect(second).toBe(true);
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGTERM' });
    expect(readFileSync(marker, 'utf8')).toBe('slow start\nslow end\nquick\n');
  });

  test('process exit runs them too, without a signal', async () => {
    const marker = t.path('marker-exit');
    const r = await run(registry, [marker, 'exit']);
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 3, signal: null });
    expect(readFileSync(marker, 'utf8')).toBe('listeners 0,0,0,0 -> 1,1,1,1\nlast\nthrows\nfirst\n');
  });
});
