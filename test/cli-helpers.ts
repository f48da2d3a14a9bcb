/**
 * Helpers of the CLI tests (test/cli-*.test.ts). The tests run the BUILT binary
 * (`node bin/crimg.js`, which imports build/inspect-cli/main.js) as a subprocess. `npm test`
 * builds first; when running jest alone, ensureBuilt() rebuilds if build/inspect-cli/main.js is
 * missing or older than a source file (a lock directory keeps parallel workers from building
 * twice at once).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ImageWriter, featureBitmap } from '../index.js';
import { memoryLike } from './helpers.js';

export const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'crimg.js');
const BUILT = join(ROOT, 'build', 'inspect-cli', 'main.js');
/** What the build compiles: the `include` of tsconfig.build.json, so the two never disagree. */
const SOURCES = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;

function newestSource(p: string): number {
  const st = statSync(p);
  if (!st.isDirectory()) return p.endsWith('.ts') ? st.mtimeMs : 0;
  return Math.max(0, ...readdirSync(p).map((n) => newestSource(join(p, n))));
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True when build/inspect-cli/main.js is missing or older than a source file. */
function stale(): boolean {
  return !existsSync(BUILT) || statSync(BUILT).mtimeMs < Math.max(...SOURCES.map((s) => newestSource(join(ROOT, s))));
}

/**
 * Builds (tsc -p tsconfig.build.json) when the build is missing or stale; `npm test` has built
 * already, so this matters when jest runs alone. Every test then runs the build, fresh or not.
 */
export function ensureBuilt(): void {
  if (stale()) buildUnderLock();
}

/** One build at a time across jest workers; a worker that waited finds the build fresh. */
function buildUnderLock(): void {
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  const lock = join(ROOT, 'build', '.cli-test-lock');
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (i > 600) throw new Error(`${lock} is held for a minute: remove it if no build is running`);
      sleep(100);
    }
  }
  try {
    if (stale()) {
      // tsc exits non-zero when another module has type errors but still emits: check the output.
      spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
      if (!existsSync(BUILT)) throw new Error('the build did not produce build/inspect-cli/main.js: run `npm run build`');
    }
  } finally {
    rmdirSync(lock);
  }
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/**
 * Runs `node bin/crimg.js ...args` (asynchronously, so tests can run several at once); progress
 * bars and colours are off unless `env` turns them on.
 */
export function crimg(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const base = { ...process.env };
  delete base['NODE_OPTIONS']; // jest's --experimental-vm-modules is not for the child
  delete base['CRIMG_PROGRESS'];
  delete base['FORCE_COLOR'];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (status) => {
      const stdoutBytes = Buffer.concat(out);
      resolvePromise({ status: status ?? -1, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
  });
}

/** Parses stdout as JSON. */
export function json<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.status}): ${r.stdout}\n${r.stderr}`);
  }
}

export const HEAP_AT = 0x7f0000000000n;
export const GAP_AT = 0x7f0000100000n;
export const STACK_AT = 0x7f0000110000n;

export interface DemoOptions {
  chunkSize?: number;
  /** Changes the heap before writing (for diff tests). */
  editHeap?: (heap: Buffer) => void;
  labels?: Record<string, string>;
}

/**
 * A small image: a heap of 40 memory-like pages starting "Hello, crimg!", a 64 KiB gap, and a
 * stack of 3 pages + 100 bytes; restore constraints x86_64, engine=jvm-21, cpu.features
 * {sse2, avx512f}.
 */
export async function demoImage(path: string, o: DemoOptions = {}): Promise<{ heap: Buffer; stack: Buffer }> {
  const heap = memoryLike(40, 1);
  heap.write('Hello, crimg!', 0, 'latin1');
  o.editHeap?.(heap);
  const stack = Buffer.concat([memoryLike(3, 2), Buffer.alloc(100, 0x41)]);
  const w = await ImageWriter.create(path, {
    chunkSize: o.chunkSize ?? 16384,
    fsync: false,
    created: Date.UTC(2025, 0, 2, 3, 4, 5),
    validation: {
      producerName: 'test', producerVersion: '1.0', architecture: 'x86_64',
      labels: o.labels ?? { engine: 'jvm-21' },
      bitmaps: { 'cpu.features': featureBitmap(['sse2', 'avx512f']) },
      metrics: { 'heap.used': 1234 },
    },
  });
  await w.addRegion({ address: HEAP_AT, data: heap, kind: 'heap', name: 'java heap' });
  await w.addGap({ address: GAP_AT, length: 0x10000n, name: 'guard' });
  await w.addRegion({ address: STACK_AT, data: stack, kind: 'stack', prot: 'rw-', name: 'main stack' });
  await w.finish();
  return { heap, stack };
}

/**
 * Runs the CLI in this process through the exported main(argv), capturing its output: cheap,
 * for the many small usage and help cases (the rest go through the built binary).
 */
export async function crimgInProcess(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const { main } = await import('../inspect-cli/main.js');
  const capture = (): { chunks: Buffer[]; stream: { write(c: string | Uint8Array): boolean; once(): unknown; isTTY: boolean } } => {
    const chunks: Buffer[] = [];
    return { chunks, stream: { write: (c) => { chunks.push(Buffer.from(c)); return true; }, once: () => undefined, isTTY: false } };
  };
  const out = capture();
  const err = capture();
  const status = await main(args, { stdout: out.stream, stderr: err.stream, env: { PATH: process.env['PATH'] ?? '', ...env } });
  const stdoutBytes = Buffer.concat(out.chunks);
  return { status, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err.chunks).toString('utf8'), stdoutBytes };
}
